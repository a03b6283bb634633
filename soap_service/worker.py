"""The gunicorn worker of the Order API: gunicorn's gthread worker, except that no thread
waits on a slow client (docs/design.md, "Serving"; docs/security.md, slow clients).

gthread hands a connection to a thread as soon as it is readable, and the thread reads
the request line, headers and body on a blocking socket, then writes the answer on it: a
few connections that send half a head, trickle a body, or do not read their answer, hold
every thread, and every other client waits behind them. This worker reads the head and
the body on its main loop instead (the poller that already watches the listeners and the
kept-alive connections), non-blocking, into a buffer per connection, a thread gets the
request only when it is whole, and its answer goes back to the main loop, which writes it:

- the head first, up to its blank line, within ``SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS``
  (default 10, counted from the accept, or from the first byte of a kept-alive
  connection's next request): past it the connection is closed, whatever it trickled
  meanwhile. A head that cannot be valid (a bare LF, a request line gunicorn refuses,
  more than the size limits allow) is not waited for;
- the head is parsed on the main loop by gunicorn's own parser (:class:`PreparsedParser`),
  once: the thread gets that request, or the parser's refusal, which it answers exactly
  as gthread did;
- then the body, as that parse frames it (``soap_service.request_body``): a
  Content-Length of at most the body limit (1 MiB, ``soap_service.api.http_body``) or a
  chunked body, read into the same buffer until it is whole, within
  ``SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS`` (default 10) counted from the end of the
  head: a deadline for the *whole* body, not for each read. The thread then reads the
  body from the buffer (:class:`HeadUnreader`), not from the socket;
- a body that misses its deadline goes to a thread too, with what arrived of it: the
  thread's read past it fails at once, the client gets the SOAP fault
  ``Client.RequestTimeout`` and the connection is closed (as when a thread waited, but
  at the deadline of the whole body). A client that closes its side before the body's
  end gets ``Client.BadRequest``, as before;
- not waited for: a Content-Length over the limit (the guard refuses it by its length,
  unread); a chunked body that cannot be whole (malformed; more than the limit; more
  than 64 KiB of chunk framing), refused from the buffer. The thread then reads no more
  of the socket, and the connection is closed after the answer instead of drained;
- ``Expect: 100-continue``: a client that waits for it before sending its body gets
  "100 Continue" from the main loop (the thread does not send it again);
- the answer: the thread writes it (status line, headers, body; gunicorn's error pages)
  to an :class:`~soap_service.answer_buffer.AnswerBuffer` in place of the socket, at most
  16 MiB, and is free as soon as it is made. The main loop sends it non-blocking as the
  client reads, and the whole answer must be read within
  ``SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS`` (counted from when it is ready): past it the
  connection is reset (the kernel drops what it still held for it), logged once at INFO
  without a traceback. A client that goes away meanwhile is logged at DEBUG. An answer
  over 16 MiB is not sent: the thread's write fails as a broken pipe, and the connection
  is reset (logged as a warning);
- only once an answer is all sent is the connection's next request read, a pipelined one
  included: a connection holds one answer at most, however many requests it sends;
- the same for every request of a keep-alive connection, pipelined requests included;
- the "graceful" close of a connection (half-close, drain what the client still sends,
  at most 2 s) happens on the poller too: gthread does it on its main loop, blocking,
  and a client that never closes stopped the worker's accepts for 2 s each time;
- a kept-alive connection serves at most :data:`MAX_REQUESTS_PER_CONNECTION` requests (as
  nginx's ``keepalive_requests``): the last answer says "Connection: close". Workers share
  one listening socket and the one whose loop runs first accepts a burst of connections;
  a client (or a proxy) that keeps a few connections for good would otherwise keep one
  worker busy and the others idle. Reconnecting lets the kernel spread them again (on
  2 workers, OCSP keep-alive load measured 1,500/s when the connections landed on one worker,
  3,600/s when spread; bench/ocsp_load.py);
- the worker holds at most ``worker_connections`` connections (gunicorn_conf: 100) in
  any state; at the cap it stops accepting and new connections wait in the listen
  backlog, as with gthread.

- a stopping worker (SIGTERM, ``max_requests``) keeps sending the answers it holds, each
  within its deadline, up to ``graceful_timeout``.

Memory: a connection's buffer holds at most a head (gunicorn's limits: about 0.5 MiB) and
a body (1 MiB; a chunked one up to 64 KiB over it plus 64 KiB of framing), only what the
client actually sent, for at most the two deadlines, then its answer (at most 16 MiB) for
at most one more: a worker holds at most ``worker_connections`` x (head + body + answer).
The answers of this service are small but for a few authenticated ones (a few MiB at most);
the anonymous ones (the WSDL and XSD, shared by every answer and never copied, Hello's
256 characters, faults) are tens of KiB. So in practice ``worker_connections`` x 1.7 MiB,
about 115 MiB at the default cap of 100 with ordinary heads (bench/slow_clients.py measures
it), and 100 x (1.7 + 16) MiB in theory. Lower ``worker_connections`` on a small machine.

TLS, cleartext HTTP/2 and the PROXY protocol are refused at start: their handshakes and
prefaces would be read in a thread again (terminate TLS at the proxy in front).
"""

from __future__ import annotations

import errno
import selectors
import socket
import struct
import time
from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import message
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from soap_service.answer_buffer import ANSWER_LIMIT, AnswerBuffer
from soap_service.api.http_body import MAX_BODY_BYTES
from soap_service.gunicorn_conf import (
    DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT,
    body_read_timeout,
    header_read_timeout,
)
from soap_service.request_body import BodyState, ChunkedFramingTooLarge, RequestBody, body_to_buffer

MAX_REQUEST_LINE: int = message.MAX_REQUEST_LINE
MAX_HEADERS: int = message.MAX_HEADERS
DEFAULT_MAX_HEADERFIELD_SIZE: int = message.DEFAULT_MAX_HEADERFIELD_SIZE
RECEIVE_SIZE = 65536
"""Largest read of a head on the main loop (what follows the head is kept for the body)."""
BODY_RECEIVE_SIZE = 256 * 1024
"""Largest read of a body on the main loop (never past the end of a Content-Length body)."""
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
UNLIMITED_REQUEST_LINE = 1024 * 1024
"""The request line's bound when ``limit_request_line`` is 0 ("unlimited"), as gunicorn's C parser has it."""
RESET_ON_CLOSE = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: ``close`` resets the connection and drops what the kernel still holds for it."""
CLOSE_LINGER_SECONDS = 2.0
CLOSE_MAX_DRAIN = 65536
"""A graceful close waits this long at most for the client to close, reading this much at most
(gunicorn's ``util.close_graceful``)."""


class HeadState(Enum):
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    MALFORMED = "malformed"
    TOO_LARGE = "too large"


def request_line_limit(cfg: Any) -> int:
    """The longest request line gunicorn's parser takes (``limit_request_line``, as it reads it)."""
    line = int(cfg.limit_request_line)
    if line < 0 or line > MAX_REQUEST_LINE:
        return MAX_REQUEST_LINE
    return line if line > 0 else UNLIMITED_REQUEST_LINE


def head_size_limit(cfg: Any) -> int:
    """The most bytes a head can have under gunicorn's limits: an optional leading CRLF, the
    request line and the header block (``limit_request_fields`` x ``limit_request_field_size``,
    as gunicorn's parser bounds it)."""
    fields = int(cfg.limit_request_fields)
    if fields <= 0 or fields > MAX_HEADERS:
        fields = MAX_HEADERS
    field_size = int(cfg.limit_request_field_size)
    if field_size <= 0:
        field_size = DEFAULT_MAX_HEADERFIELD_SIZE
    return 2 + request_line_limit(cfg) + 2 + fields * (field_size + 2) + 4


class RequestHead:
    """The bytes of one request head as they arrive. Each byte is looked at once, whatever the
    pieces it comes in (a client that sends one byte at a time costs no rescans)."""

    __slots__ = ("_line_ended", "_scanned", "data", "end", "limit", "line_is_valid", "line_limit")

    def __init__(self, limit: int, line_limit: int, line_is_valid: Callable[[bytes], bool] | None = None) -> None:
        self.data = bytearray()
        self.limit = limit
        self.line_limit = line_limit
        self.line_is_valid = line_is_valid
        self._scanned = 0
        self._line_ended = False
        self.end = -1
        """Once the head is whole: the offset just past its blank line (what follows is body)."""

    def feed(self, chunk: bytes) -> HeadState:
        """Add ``chunk``; whether the head is now whole (its blank line has arrived), can no
        longer be a head (a line ends in a bare LF, or ``line_is_valid`` refuses the request
        line), or is too large: a request line over ``line_limit``, or ``limit`` bytes without
        the end. gunicorn's parser refuses the last three from these bytes alone, without
        reading more, as it did when it read them itself."""
        data = self.data
        data += chunk
        start = 2 if data.startswith(b"\r\n") else 0  # RFC 9112 section 2.2: one empty line first
        newline = data.find(b"\n", self._scanned)
        while newline >= 0:
            if newline == 0 or data[newline - 1] != 0x0D:
                return HeadState.MALFORMED
            if not self._line_ended and newline > 1:
                self._line_ended = True
                if newline - 1 - start > self.line_limit:
                    return HeadState.TOO_LARGE
                if self.line_is_valid is not None and not self.line_is_valid(bytes(data[start:newline - 1])):
                    return HeadState.MALFORMED
            if newline >= 3 and data[newline - 2] == 0x0A and data[newline - 3] == 0x0D:
                self.end = newline + 1
                return HeadState.COMPLETE
            newline = data.find(b"\n", newline + 1)
        self._scanned = len(data)
        if len(data) >= self.limit or (not self._line_ended and len(data) - start - 2 > self.line_limit):
            return HeadState.TOO_LARGE
        return HeadState.INCOMPLETE


def request_line_check(cfg: Any) -> Callable[[bytes], bool]:
    """Whether gunicorn's parser takes a request line, by its own rules (method, target, version):
    it refuses a bad line as soon as the line has arrived, before the headers."""

    def line_is_valid(line: bytes) -> bool:
        probe = Request.__new__(Request)  # the parser's checks, without its reading
        probe.cfg = cfg
        try:
            probe.parse_request_line(line)
        except Exception:  # noqa: BLE001 - any refusal: the parser will raise it again, and answer it
            return False
        return True

    return line_is_valid


class HeadUnreader(SocketUnreader):  # type: ignore[misc]
    """The connection's unreader: the worker puts a request's head in its buffer before the
    parser runs, and what followed the head (the body, and any pipelined request behind it)
    in :attr:`pending`. While the parser reads the head (``head_only``), needing more than the
    buffer means the head was cut at the size limit: gunicorn's 431, instead of a blocking read.
    After it, reads take :attr:`pending` first, in the pieces a read of the socket would
    return (gunicorn's chunked reader copies what follows each chunk in the piece it holds:
    one piece of a whole body would cost it time in the square of the number of chunks).
    Then a read of the socket is bounded by what is left until ``deadline`` (the body's, a
    ``time.monotonic()`` value) and fails at once with :class:`TimeoutError` past it;
    ``refusal``, when set, is raised instead of any read of the socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.head_only = False
        self.pending = b""
        self.pending_at = 0
        self.deadline: float | None = None
        self.refusal: Exception | None = None

    def take_buffered(self) -> bytes:
        data: bytes = super().take_buffered()
        rest, self.pending, self.pending_at = self.pending[self.pending_at:], b"", 0
        return data + rest

    def chunk(self, size_hint: int | None = None) -> bytes:
        if self.head_only:
            raise LimitRequestHeaders("max buffer headers")
        if self.pending_at < len(self.pending):
            size = self.mxchunk  # as SocketUnreader.chunk sizes its reads
            if size_hint and size_hint > size:
                size = min(size_hint, self.max_body_chunk)
            piece = self.pending[self.pending_at:self.pending_at + size]
            self.pending_at += len(piece)
            if self.pending_at == len(self.pending):
                self.pending, self.pending_at = b"", 0
            return piece
        if self.refusal is not None:
            raise self.refusal
        if self.deadline is None:
            data: bytes = super().chunk(size_hint)
            return data
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request body's deadline has passed")
        prior = self.sock.gettimeout()
        bounded = prior is None or prior > remaining
        if bounded:
            self.sock.settimeout(remaining)
        try:
            data = super().chunk(size_hint)
        finally:
            if bounded:
                self.sock.settimeout(prior)  # the answer's writes keep their own timeout
        return data


class PreparsedParser(RequestParser):  # type: ignore[misc]
    """gunicorn's request parser, whose next request is parsed on the worker's main loop
    (:meth:`prepare`, from the head in the unreader's buffer): the thread gets that request,
    or the parser's refusal of it, raised as gunicorn's parser would have raised it."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any) -> None:
        super().__init__(cfg, sock, client)
        self.unreader = HeadUnreader(sock)
        self.prepared: Request | Exception | None = None

    def prepare(self) -> Request | None:
        """Parse the next request's head (it is whole in the unreader's buffer, or cannot be
        served); None when the parser refuses it (the thread raises the refusal)."""
        self.req_count += 1
        self.unreader.head_only = True
        try:
            self.mesg = self.prepared = Request(self.cfg, self.unreader, self.source_addr, self.req_count)
        except Exception as refusal:  # noqa: BLE001 - raised again in the thread, which answers it
            self.prepared = refusal
            return None
        finally:
            self.unreader.head_only = False
        return self.mesg

    def __next__(self) -> Request:
        prepared, self.prepared = self.prepared, None
        if prepared is None:  # never parsed on the main loop: as gunicorn does
            request: Request = super().__next__()
            return request
        if isinstance(prepared, Exception):
            raise prepared
        return prepared

    next = __next__


MAX_REQUESTS_PER_CONNECTION = 100
"""Requests served on one kept-alive connection at most; the last answer closes it (module docstring)."""


class HeadConn(TConn):  # type: ignore[misc]
    """A client connection, with the request being read (its head's buffer also holds the
    body) and the deadline of what it waits for."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.initialized: bool = False
        self.head: RequestHead | None = None
        self.body: RequestBody | None = None
        self.deadline = 0.0
        self.body_deadline = 0.0
        self.continued = False
        """"100 Continue" was sent for the request being read or served."""
        self.drained = 0
        self.answer: AnswerBuffer | None = None
        """The answer of the request being served: the thread puts it here, the main loop sends it."""
        self.keep_alive = False
        self.served = 0
        """Requests handed to a thread on this connection so far."""

    def init(self) -> None:
        """The parser, on the connection's first request (gthread's, without TLS or HTTP/2, which
        ``check_config`` refuses; the socket stays non-blocking for the main loop)."""
        if self.initialized:
            return
        self.initialized = True
        self.parser = PreparsedParser(self.cfg, self.sock, self.client)


class HeadBufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gthread whose threads only ever get connections with a whole request, head and body
    (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = DEFAULT_HEADER_READ_TIMEOUT
        self.body_timeout = DEFAULT_BODY_READ_TIMEOUT
        self.body_limit = MAX_BODY_BYTES
        self.head_limit = head_size_limit(self.cfg)
        self.line_limit = request_line_limit(self.cfg)
        self.line_is_valid = request_line_check(self.cfg)
        # Connections whose head is being read, and connections being closed, each with its
        # deadline. Every deadline of a table is "now + the same delay" when it is added, so
        # insertion order is deadline order: the sweep stops at the first one still running.
        self.reading_heads: dict[HeadConn, float] = {}
        self.reading_bodies: dict[HeadConn, float] = {}
        self.writing: dict[HeadConn, float] = {}
        self.closing: dict[HeadConn, float] = {}
        self.answer_limit = ANSWER_LIMIT
        self.receive_buffer = bytearray(BODY_RECEIVE_SIZE)
        self.receive_view = memoryview(self.receive_buffer)

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        refused = []
        if cfg.is_ssl:
            refused.append("TLS (certfile, keyfile): terminate TLS at the proxy in front")
        if getattr(cfg, "http2_cleartext", "off") != "off":
            refused.append("cleartext HTTP/2 (http2_cleartext)")
        if getattr(cfg, "proxy_protocol", "off") != "off":
            refused.append("the PROXY protocol (proxy_protocol)")
        if getattr(cfg, "protocol", "http") != "http":
            refused.append(f"protocol {cfg.protocol}")
        if refused:
            log.error("%s.%s serves plain HTTP/1.x only; refused: %s", cls.__module__, cls.__name__,
                      "; ".join(refused))
            raise SystemExit(1)

    def init_process(self) -> None:
        self.header_timeout = header_read_timeout()  # a bad setting stops the worker's boot
        self.body_timeout = body_read_timeout()
        super().init_process()

    # -- connections arrive ---------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
            conn = HeadConn(self.cfg, client_sock, client_addr, listener.getsockname())
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.await_head(conn)

    def on_client_socket_readable(self, conn: HeadConn, client: socket.socket) -> None:
        """A kept-alive connection's next request begins: read its head here, not in a thread."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.await_head(conn)

    # -- heads are read -------------------------------------------------------------------

    def await_head(self, conn: HeadConn, buffered: bytes = b"") -> None:
        """Start reading a request head on ``conn`` (``buffered``: what was already read of it)."""
        conn.head = RequestHead(self.head_limit, self.line_limit, self.line_is_valid)
        conn.deadline = time.monotonic() + self.header_timeout
        conn.body_deadline = conn.deadline + self.body_timeout
        conn.continued = False
        try:
            conn.sock.setblocking(False)
        except OSError:
            self.drop(conn)
            return
        state = conn.head.feed(buffered) if buffered else self.receive_head(conn)
        if state is None:
            return
        if state is HeadState.COMPLETE:
            self.await_body(conn)
            return
        if state is not HeadState.INCOMPLETE:
            self.refuse_head(conn)
            return
        self.reading_heads[conn] = conn.deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def receive_head(self, conn: HeadConn) -> HeadState | None:
        """Read what has arrived of the head; None when the connection ended (and is dropped)."""
        assert conn.head is not None
        try:
            data = conn.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return HeadState.INCOMPLETE
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return None
        return conn.head.feed(data)

    def on_head_readable(self, conn: HeadConn, client: socket.socket) -> None:
        state = self.receive_head(conn)
        if state is None or state is HeadState.INCOMPLETE:
            return
        self.poller.unregister(client)
        del self.reading_heads[conn]
        if state is HeadState.COMPLETE:
            self.await_body(conn)
        else:
            self.refuse_head(conn)

    # -- bodies are read ------------------------------------------------------------------

    def parse_head(self, conn: HeadConn) -> Request | None:
        """Parse the request's head with gunicorn's parser (the thread gets what it makes); None
        when the parser refuses it."""
        assert conn.head is not None
        head = conn.head
        end = head.end if head.end >= 0 else len(head.data)
        conn.init()
        conn.parser.unreader.unread(bytes(head.data[:end]))
        request: Request | None = conn.parser.prepare()
        return request

    def refuse_head(self, conn: HeadConn) -> None:
        """A head that cannot be served (a bare LF, over the limits): the parser refuses it, and
        the thread answers that as gunicorn did."""
        self.parse_head(conn)
        self.hand_off(conn, _no_reads())

    def await_body(self, conn: HeadConn) -> None:
        """The head is whole: parse it, then wait for the body it announces (what already followed
        the head is in the buffer), or hand the request over when there is nothing to wait for."""
        assert conn.head is not None
        head = conn.head
        conn.body_deadline = time.monotonic() + self.body_timeout
        request = self.parse_head(conn)
        body = body_to_buffer(request, head.end, self.body_limit) if request is not None else None
        if body is None:
            self.hand_off(conn, _no_reads())
            return
        state = body.scan(head.data)
        if state is not BodyState.INCOMPLETE:
            self.hand_off(conn, _refusal(state))
            return
        if body.expects_continue and len(head.data) == body.start and not self.send_continue(conn):
            return
        conn.body = body
        self.reading_bodies[conn] = conn.body_deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_body_readable, conn))

    def send_continue(self, conn: HeadConn) -> bool:
        """Send "100 Continue" (gunicorn's thread would, once the body is read: too late for a
        client that waits for it). False when it cannot go whole at once (the client does not
        read what it is sent): the connection is dropped."""
        try:
            sent = conn.sock.send(CONTINUE)
        except OSError:
            sent = 0
        if sent != len(CONTINUE):
            self.log.debug("Closed the connection of %s: cannot send 100 Continue", _address(conn.client))
            self.drop(conn)
            return False
        conn.continued = True
        return True

    def on_body_readable(self, conn: HeadConn, client: socket.socket) -> None:
        assert conn.head is not None and conn.body is not None
        data = conn.head.data
        missing = conn.body.missing(data)
        size = BODY_RECEIVE_SIZE if missing is None else min(missing, BODY_RECEIVE_SIZE)
        try:
            received = client.recv_into(self.receive_view, size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            received = 0
        refusal = None  # the client closed its side: the thread reads that and finds the body short
        if received:
            data += self.receive_view[:received]
            state = conn.body.scan(data)
            if state is BodyState.INCOMPLETE:
                return
            refusal = _refusal(state)
        self.poller.unregister(client)
        del self.reading_bodies[conn]
        self.hand_off(conn, refusal)

    # -- requests go to a thread ----------------------------------------------------------

    def hand_off(self, conn: HeadConn, refusal: Exception | None) -> None:
        """Give what followed the head (the body, and anything behind it) to the unreader and
        the connection, with its parsed request, to a thread. ``refusal``: raised in the thread
        instead of any read of the socket for this request, when the worker stopped waiting
        for the body before its end, or did not wait for it (past its deadline, over the limit,
        malformed, no body): what the thread needs is buffered, and past it the connection is
        closed, not drained. None when the body is whole (no read expected) or the client
        closed its side: reads then end at the body's deadline."""
        assert conn.head is not None
        data, end = conn.head.data, conn.head.end
        conn.head = conn.body = None
        unreader = conn.parser.unreader
        unreader.pending, unreader.pending_at = (bytes(data[end:]) if end >= 0 else b""), 0
        unreader.deadline = conn.body_deadline
        unreader.refusal = refusal
        conn.data_ready = True
        conn.answer = AnswerBuffer(conn.sock, self.answer_limit)
        self.enqueue_req(conn)

    def handle(self, conn: HeadConn) -> Any:
        """In the thread: gthread's, with the answer written to the connection's
        :class:`AnswerBuffer` instead of its socket (the thread never waits on the client)."""
        sock = conn.sock
        if conn.answer is not None:
            conn.sock = conn.answer
        try:
            return super().handle(conn)
        finally:
            conn.sock = sock

    def handle_request(self, req: Any, conn: HeadConn) -> bool:
        """In the thread, with the request parsed on the main loop: the body is read from the buffer."""
        if conn.continued:
            req._expected_100_continue = False  # the main loop sent it
            conn.continued = False
        conn.served += 1
        if conn.served >= MAX_REQUESTS_PER_CONNECTION:
            req.must_close = True  # gunicorn's answer then says "Connection: close"
        keep_alive: bool = super().handle_request(req, conn)
        return keep_alive

    # -- requests end ---------------------------------------------------------------------

    def finish_request(self, conn: HeadConn, fs: Any) -> None:
        """On the main loop, after a thread served a request: send its answer, then keep the
        connection for its next request or close it, without blocking the loop."""
        try:
            keep_alive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - the thread failed outside gunicorn's own handling: close, as gthread
            self.drop(conn)
            return
        conn.keep_alive = keep_alive
        answer = conn.answer
        if answer is None:
            self.answer_sent(conn)
            return
        if answer.overflowed:
            self.log.warning("Closed the connection of %s: its answer was over %d bytes (not sent)",
                             _address(conn.client), answer.limit)
            self.drop(conn, reset=True)
            return
        try:
            conn.sock.setblocking(False)
        except OSError:
            self.drop(conn)
            return
        sent = self.send_answer(conn, answer)
        if sent is None:
            return
        if sent:
            self.answer_sent(conn)
            return
        self.writing[conn] = time.monotonic() + self.body_timeout
        self.poller.register(conn.sock, selectors.EVENT_WRITE, partial(self.on_answer_writable, conn))

    # -- answers are sent -----------------------------------------------------------------

    def send_answer(self, conn: HeadConn, answer: AnswerBuffer) -> bool | None:
        """Send what the client's socket takes now: whether the answer is all sent; None when the
        connection is gone (it is dropped)."""
        try:
            while answer.pending and answer.send_to(conn.sock):
                pass
        except OSError as error:
            self.log.debug("The client %s went away during its answer (%s)", _address(conn.client),
                           errno.errorcode.get(error.errno or 0, type(error).__name__))
            self.drop(conn)
            return None
        return not answer.pending

    def on_answer_writable(self, conn: HeadConn, client: socket.socket) -> None:
        answer = conn.answer
        if conn not in self.writing or answer is None:
            return  # dropped meanwhile
        if not self.send_answer(conn, answer):
            return
        self.poller.unregister(client)
        del self.writing[conn]
        self.answer_sent(conn)

    def answer_sent(self, conn: HeadConn) -> None:
        """The answer is out (in the kernel's buffer): the connection's next request, or its end.
        Only now is a pipelined request behind it read: a connection holds one answer at most."""
        answer, conn.answer = conn.answer, None
        if answer is not None and answer.abandoned:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.drop(conn)
            return
        if not conn.keep_alive or (answer is not None and answer.shut):
            self.close_gracefully(conn)
            return
        try:
            # A body drain can read ahead into the next request: its head starts there.
            pending: bytes = conn.parser.unreader.take_buffered()
            if pending:
                self.await_head(conn, pending)
                return
            conn.sock.setblocking(False)
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        except Exception:  # noqa: BLE001 - the socket is gone (closed by the thread): close, as gthread
            self.drop(conn)

    # -- connections end ------------------------------------------------------------------

    def close_gracefully(self, conn: HeadConn) -> None:
        """RFC 9112 section 9.6 as gunicorn's ``util.close_graceful`` does it (send FIN, read
        until the client closes, then close, so the answer is not cut by a reset), on the poller."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.drop(conn)
            return
        conn.drained = 0
        conn.deadline = time.monotonic() + CLOSE_LINGER_SECONDS
        self.closing[conn] = conn.deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_closing_readable, conn))

    def on_closing_readable(self, conn: HeadConn, client: socket.socket) -> None:
        try:
            data = client.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= CLOSE_MAX_DRAIN:
            self.drop(conn)

    def drop(self, conn: HeadConn, *, reset: bool = False) -> None:
        """Close ``conn`` now, wherever it is on the main loop; ``reset``: with a TCP reset, so
        that the kernel does not keep trying to deliver what the client did not read."""
        self.reading_heads.pop(conn, None)
        self.reading_bodies.pop(conn, None)
        self.writing.pop(conn, None)
        self.closing.pop(conn, None)
        conn.answer = None
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        if reset:
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            except OSError:
                pass
        util.close(conn.sock)

    # -- deadlines ------------------------------------------------------------------------

    def murder_pending(self) -> None:
        """Called by the main loop after each wait (and while it stops): close the connections
        whose head or close is past its deadline; hand the requests whose body is past its
        deadline to a thread, which answers ``Client.RequestTimeout``."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading_heads:
            conn, deadline = next(iter(self.reading_heads.items()))
            if deadline > now:
                break
            received = len(conn.head.data) if conn.head is not None else 0
            log = self.log.info if received else self.log.debug
            log("Closed the connection of %s: no whole request head within %gs (%d bytes received)",
                _address(conn.client), self.header_timeout, received)
            self.drop(conn)
        while self.reading_bodies:
            conn, deadline = next(iter(self.reading_bodies.items()))
            if deadline > now:
                break
            del self.reading_bodies[conn]
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.log.debug("The request body of %s missed its deadline of %gs", _address(conn.client),
                           self.body_timeout)
            self.hand_off(conn, TimeoutError("the request body's deadline has passed"))
        while self.writing:
            conn, deadline = next(iter(self.writing.items()))
            if deadline > now:
                break
            answer = conn.answer
            sent, size = (answer.sent, answer.size) if answer is not None else (0, 0)
            self.log.info("Closed the connection of %s: its answer was not read within %gs (%d of %d bytes sent)",
                          _address(conn.client), self.body_timeout, sent, size)
            self.drop(conn, reset=True)
        while self.closing:
            conn, deadline = next(iter(self.closing.items()))
            if deadline > now:
                break
            self.drop(conn)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wake up for the next deadline too, not only every second."""
        now = time.monotonic()
        for table in (self.reading_heads, self.reading_bodies, self.writing, self.closing):
            if table:
                timeout = min(timeout, max(0.0, next(iter(table.values())) - now))
        super().wait_for_and_dispatch_events(timeout)


def _no_reads() -> TimeoutError:
    """What the thread raises for a read of the socket the worker did not expect it to make."""
    return TimeoutError("the worker reads no more of this request")


def _refusal(state: BodyState) -> Exception | None:
    """What the thread raises instead of reading the socket, once a body stands at ``state``."""
    if state is BodyState.COMPLETE:
        return None
    if state is BodyState.FRAMING_TOO_LARGE:
        return ChunkedFramingTooLarge("the chunked request body carries more framing than the server buffers")
    return _no_reads()  # malformed or too large: refused from what is buffered


def _address(client: Any) -> str:
    if isinstance(client, tuple) and client:
        return str(client[0])
    return "?"
