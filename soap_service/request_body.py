"""Where a request's body ends, found on the worker's main loop as its bytes arrive
(docs/design.md, "Serving"; docs/security.md, slow clients).

:class:`soap_service.worker.HeadBufferingWorker` gives a connection to a thread only
once its request head *and* body are in the connection's buffer, so that no thread
waits on a client that trickles its body. What the body is made of is gunicorn's own
reading of the head: its parser runs on the main loop over the head's bytes (never the
socket), and the request it makes is the one the thread serves (:func:`body_to_buffer`
reads its framing), so the worker and the thread cannot disagree on where the body ends.

- ``Content-Length: N``: the body is whole when N bytes follow the head. A length over
  the body limit is not waited for (the guard refuses it by its Content-Length, unread).
- ``Transfer-Encoding: chunked``: :class:`ChunkedBody` follows the chunks (RFC 9112
  section 7.1) as they arrive, each byte looked at once: whole at the last chunk and its
  trailer section. Handed over before their end: a framing gunicorn refuses (the thread's
  chunked reader refuses it from the buffer: ``Client.BadRequest``), more chunk data received than
  the body limit plus :data:`CHUNKED_OVER_LIMIT` (the guard refuses it from the buffer:
  ``Client.RequestTooLarge``), and more than :data:`CHUNKED_FRAMING_ALLOWANCE` bytes of
  framing (size lines, chunk ends, trailers: tiny chunks; the thread does not read on,
  :class:`ChunkedFramingTooLarge`, ``Client.BadRequest``).
- A request without a body is not waited for (nor a head gunicorn's parser refuses: the
  worker does not get this far).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from gunicorn.http.body import ChunkedReader, LengthReader

CHUNKED_OVER_LIMIT = 64 * 1024
"""Chunk data past the body limit that is buffered before a body is handed over as too large.
The guard reads the limit + 1 bytes, and gunicorn's body reader asks its chunked reader for up
to 1 KiB more than that (``Body.read``'s smallest step): all of it must be in the buffer, or
the thread would wait on the socket for it."""

CHUNKED_FRAMING_ALLOWANCE = 64 * 1024
"""Bytes of chunk size lines, chunk ends and trailers a chunked body may carry: real clients
send chunks of kilobytes (a few bytes of framing each: 1 MiB in 4 KiB chunks has 2 KiB); a body
in one-byte chunks is six times its size, and gunicorn's reader spends microseconds on each
chunk. At most about 13,000 chunks (tens of milliseconds of the thread) get through."""

DEFAULT_CHUNK_LINE_LIMIT = 8190
"""gunicorn's bound of a chunk size line when the request has no header field limit."""

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class BodyState(Enum):
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    MALFORMED = "malformed"
    TOO_LARGE = "too large"
    FRAMING_TOO_LARGE = "framing too large"


class ChunkedFramingTooLarge(ValueError):
    """Raised in the thread, instead of a read of the socket, for a chunked body whose framing
    passed :data:`CHUNKED_FRAMING_ALLOWANCE` while it was buffered (the guard answers it as a
    body it cannot read)."""


class _Part(Enum):
    SIZE = "size line"
    DATA = "chunk data"
    DATA_END = "chunk end"
    TRAILERS = "trailer section"


class ChunkedBody:
    """The end of a chunked body that starts at ``start`` of a growing buffer, found as bytes
    are added to it: :meth:`scan` looks at each byte once, whatever the pieces it comes in."""

    __slots__ = ("_line_start", "_part", "_pos", "_remaining", "data_bytes", "end", "framing_limit", "limit",
                 "line_limit", "start")

    def __init__(self, start: int, limit: int, line_limit: int = DEFAULT_CHUNK_LINE_LIMIT,
                 framing_limit: int = CHUNKED_FRAMING_ALLOWANCE) -> None:
        self.start = start
        self.limit = limit
        self.line_limit = line_limit
        self.framing_limit = framing_limit
        self.data_bytes = 0
        """Chunk data received so far."""
        self.end = -1
        self._part = _Part.SIZE
        self._pos = start
        self._line_start = start
        self._remaining = 0

    def scan(self, data: bytes | bytearray) -> BodyState:
        """Where the body stands now that ``data`` (the whole buffer, which only grows) is there:
        whole (:attr:`end` is then the offset just past its trailer section); still arriving;
        malformed as gunicorn's chunked reader refuses it (a size line that is not hex digits
        and extensions, longer than ``line_limit`` or ended by a bare LF, a chunk not followed
        by CRLF, a trailer line ended by a bare LF or too long); more chunk data *received*
        than ``limit`` + :data:`CHUNKED_OVER_LIMIT` (the guard then refuses it from the buffer,
        without reading more); or more than ``framing_limit`` bytes that are not chunk data."""
        while True:
            part = self._part
            if part is _Part.SIZE or part is _Part.TRAILERS:
                newline = data.find(b"\n", self._pos)
                if newline < 0:
                    if len(data) - self._line_start > self.line_limit:
                        return BodyState.MALFORMED
                    self._pos = len(data)
                    return self._incomplete(len(data))
                if newline + 1 - self.start - self.data_bytes > self.framing_limit:
                    return BodyState.FRAMING_TOO_LARGE
                if newline == self._line_start or data[newline - 1] != 0x0D:
                    return BodyState.MALFORMED
                line_end = newline - 1
                if line_end - self._line_start > self.line_limit:
                    return BodyState.MALFORMED
                self._pos = newline + 1
                if part is _Part.TRAILERS:
                    if line_end == self._line_start:  # the empty line that ends the body
                        self.end = newline + 1
                        return BodyState.COMPLETE
                    self._line_start = newline + 1
                    continue
                size = _chunk_size(bytes(data[self._line_start:line_end]))
                self._line_start = newline + 1
                if size is None:
                    return BodyState.MALFORMED
                if size == 0:
                    self._part = _Part.TRAILERS
                    continue
                self._part, self._remaining = _Part.DATA, size
            elif part is _Part.DATA:
                taken = min(len(data) - self._pos, self._remaining)
                self._pos += taken
                self._remaining -= taken
                self.data_bytes += taken
                if self.data_bytes > self.limit + CHUNKED_OVER_LIMIT:
                    return BodyState.TOO_LARGE
                if self._remaining:
                    return self._incomplete(self._pos)
                self._part = _Part.DATA_END
            else:  # _Part.DATA_END
                if len(data) - self._pos < 2:
                    return self._incomplete(len(data))
                if data[self._pos:self._pos + 2] != b"\r\n":
                    return BodyState.MALFORMED
                self._pos += 2
                self._part, self._line_start = _Part.SIZE, self._pos

    def _incomplete(self, received: int) -> BodyState:
        if received - self.start - self.data_bytes > self.framing_limit:
            return BodyState.FRAMING_TOO_LARGE
        return BodyState.INCOMPLETE


def _chunk_size(line: bytes) -> int | None:
    """The size of a chunk size line (hex digits, then optional extensions after ";"), as
    gunicorn reads it; None when gunicorn refuses the size (its extensions it checks itself)."""
    size, semicolon, _extensions = line.partition(b";")
    if semicolon:
        size = size.rstrip(b" \t")
    if not size or not _HEX_DIGITS.issuperset(size):
        return None
    return int(size, 16)


@dataclass
class RequestBody:
    """The body the worker waits for: ``length`` bytes after the head's end (``start``), or a
    chunked body; ``expects_continue`` when the client waits for "100 Continue" before sending it."""

    start: int
    length: int | None
    chunked: ChunkedBody | None
    expects_continue: bool

    def scan(self, data: bytes | bytearray) -> BodyState:
        if self.chunked is not None:
            return self.chunked.scan(data)
        assert self.length is not None
        return BodyState.COMPLETE if len(data) - self.start >= self.length else BodyState.INCOMPLETE

    def missing(self, data: bytes | bytearray) -> int | None:
        """How many bytes are still due (None for a chunked body: not known)."""
        if self.length is None:
            return None
        return max(0, self.start + self.length - len(data))


def body_to_buffer(request: Any, start: int, limit: int) -> RequestBody | None:
    """The body to wait for behind a parsed request's head (which ends at ``start`` of the
    connection's buffer), as gunicorn's parser framed it (``request``: its ``Request``); None
    when there is nothing to wait for: no body, or a Content-Length over ``limit``."""
    reader = request.body.reader if request.body is not None else None
    expects_continue = bool(request._expected_100_continue)  # gunicorn's reading of Expect
    if isinstance(reader, LengthReader):
        if reader.length == 0 or reader.length > limit:
            return None
        return RequestBody(start, int(reader.length), None, expects_continue)
    if isinstance(reader, ChunkedReader):
        line_limit = int(getattr(request, "limit_request_field_size", 0) or DEFAULT_CHUNK_LINE_LIMIT)
        return RequestBody(start, None, ChunkedBody(start, limit, line_limit), expects_continue)
    return None
