"""The answer to one request, produced by a thread and written by the worker's main loop
(docs/design.md, "Serving"; docs/security.md, slow clients).

gunicorn's thread wrote each answer to the client's socket itself, blocking: a client that
does not read (or reads slowly) held the thread until a write timed out, and a few of them
held every thread of the server. :class:`soap_service.worker.HeadBufferingWorker` gives the
thread an :class:`AnswerBuffer` in place of the socket: gunicorn's ``Response`` (status line,
headers, body), its error pages and its "100 Continue" go into it, the thread is free as
soon as the answer is made, and the main loop sends it as the client reads
(:meth:`AnswerBuffer.send_to`, non-blocking), within a deadline for the whole answer.

- Nothing is copied: the buffer keeps the ``bytes`` objects it is given (the guard's whole
  answer, gunicorn's head) and sends them with one ``sendmsg`` per writable event.
- At most :data:`ANSWER_LIMIT` bytes per answer (16 MiB; this service's largest answers are a
  few MiB): a write past it empties the buffer and fails with :class:`AnswerTooLarge`, a
  ``BrokenPipeError`` (gunicorn's thread then stops the answer quietly, as for a client that
  went away), and the worker closes the connection without sending any of it.
- ``shutdown`` and ``close`` from the thread (gunicorn's graceful close after a failed
  answer, the ``post_request`` hook of ``soap_service.gunicorn_conf``) do not touch the
  socket: they say how to end the connection once the answer is out.
- Everything else (``setblocking``, ``settimeout``, ``fileno``, ...) is the socket's: the
  thread still reads the request's body from it.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, BinaryIO

ANSWER_LIMIT = 16 * 1024 * 1024
"""The most bytes of one answer the worker holds for a client (the whole answer: head and body)."""

MAX_PIECES_PER_SEND = 64
"""Buffers given to one ``sendmsg`` (well under any system's IOV_MAX)."""

FILE_BLOCK = 65536


class AnswerTooLarge(BrokenPipeError):
    """Raised in the thread by a write that takes an answer past :data:`ANSWER_LIMIT`, with
    ``EPIPE``: gunicorn's thread ends the answer and logs it at DEBUG only, as a client gone
    away (the worker logs a warning when it closes the connection)."""

    def __init__(self, limit: int) -> None:
        super().__init__(errno.EPIPE, f"the answer is over {limit} bytes")


class AnswerBuffer:
    """A socket for gunicorn's thread that keeps what it is given, for the main loop to send."""

    def __init__(self, sock: socket.socket, limit: int = ANSWER_LIMIT) -> None:
        self.sock = sock
        self.limit = limit
        self.size = 0
        """Bytes put in so far (the answer's size once the thread is done)."""
        self.sent = 0
        self.overflowed = False
        self.shut = False
        """The thread shut or closed the connection: no keep-alive after this answer."""
        self.abandoned = False
        """The thread shut both directions (``post_request``: the request's body failed): close
        at once after the answer, without waiting for the client to close first."""
        self._pieces: list[bytes] = []
        self._index = 0
        self._offset = 0

    # -- the thread's side: a socket that does not block -----------------------------------

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._put(data)

    def send(self, data: Any, flags: int = 0) -> int:
        return self._put(data)

    def sendfile(self, file: BinaryIO, offset: int = 0, count: int | None = None) -> int:
        """``socket.sendfile``, read into the buffer (this service answers no file)."""
        file.seek(offset)
        total = 0
        while count is None or total < count:
            block = file.read(FILE_BLOCK if count is None else min(FILE_BLOCK, count - total))
            if not block:
                break
            total += self._put(block)
        return total

    def shutdown(self, how: int) -> None:
        self.shut = True
        if how == socket.SHUT_RDWR:
            self.abandoned = True

    def close(self) -> None:
        self.shut = True

    def recv(self, size: int, flags: int = 0) -> bytes:
        """After a shutdown (gunicorn's graceful close lingers for the client's end): nothing
        to wait for here, the worker does that once the answer is out. Otherwise the socket's."""
        if self.shut:
            return b""
        data: bytes = self.sock.recv(size, flags)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def _put(self, data: Any) -> int:
        piece = data if type(data) is bytes else bytes(data)
        if self.overflowed or self.size + len(piece) > self.limit:
            self.overflowed = True
            self._pieces, self._index, self._offset = [], 0, 0
            raise AnswerTooLarge(self.limit)
        if piece:
            self._pieces.append(piece)
            self.size += len(piece)
        return len(piece)

    # -- the main loop's side ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes still to send."""
        return 0 if self.overflowed else self.size - self.sent

    def send_to(self, sock: socket.socket) -> int:
        """Send what ``sock`` (non-blocking) takes now; the bytes sent (0 when it takes none).
        An ``OSError`` other than "would block" is the connection's end, and propagates."""
        if self._index >= len(self._pieces):
            return 0
        first = memoryview(self._pieces[self._index])[self._offset:]
        pieces: list[bytes | memoryview] = [first]
        pieces += self._pieces[self._index + 1:self._index + MAX_PIECES_PER_SEND]
        try:
            sent = sock.sendmsg(pieces) if len(pieces) > 1 else sock.send(first)
        except (BlockingIOError, InterruptedError):
            return 0
        self.sent += sent
        left = sent
        while left:
            rest = len(self._pieces[self._index]) - self._offset
            if left < rest:
                self._offset += left
                break
            left -= rest
            self._pieces[self._index] = b""  # sent: let it go now, not with the whole answer
            self._index += 1
            self._offset = 0
        return sent
