"""The worker's parts without a server: the request head scanner, the body framing and the
chunked body scanner (checked against gunicorn's own reader), the unreader that refuses to
block while a head is parsed and serves the buffered body, the limits and the deadline
settings. The worker on a real server: tests/test_slow_clients.py."""

from __future__ import annotations

import errno
import logging
import socket
import time
from pathlib import Path

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from gunicorn.http.wsgi import Response

from soap_service import gunicorn_conf
from soap_service.answer_buffer import ANSWER_LIMIT, AnswerBuffer, AnswerTooLarge
from soap_service.config import ConfigurationError
from soap_service.request_body import (
    CHUNKED_FRAMING_ALLOWANCE,
    CHUNKED_OVER_LIMIT,
    BodyState,
    ChunkedBody,
    ChunkedFramingTooLarge,
    body_to_buffer,
)
from soap_service.worker import (
    CONTINUE,
    HeadBufferingWorker,
    HeadState,
    HeadUnreader,
    PreparsedParser,
    RequestHead,
    head_size_limit,
    request_line_check,
    request_line_limit,
)

HEAD = b"POST /api/order HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"


def service_config() -> Config:
    """gunicorn's configuration as gunicorn_conf sets it."""
    cfg = Config()
    for name, value in vars(gunicorn_conf).items():
        if name in cfg.settings and value is not None:
            cfg.set(name, value)
    return cfg


def new_head(limit: int = 10_000, line_limit: int = 100) -> RequestHead:
    return RequestHead(limit, line_limit, request_line_check(service_config()))


def test_a_head_in_one_piece_or_byte_by_byte_is_whole_at_its_blank_line() -> None:
    whole = new_head()
    assert whole.feed(HEAD) is HeadState.COMPLETE
    assert whole.data[whole.end:] == b"hello"
    head = new_head()
    end = HEAD.index(b"\r\n\r\n") + 4
    states = [head.feed(HEAD[i:i + 1]) for i in range(end)]
    assert states[-1] is HeadState.COMPLETE
    assert set(states[:-1]) == {HeadState.INCOMPLETE}


def test_one_empty_line_may_come_first() -> None:
    head = new_head()
    assert head.feed(b"\r\n") is HeadState.INCOMPLETE
    assert head.feed(b"GET / HTTP/1.1\r\n") is HeadState.INCOMPLETE
    assert head.feed(b"\r\n") is HeadState.COMPLETE
    # Two empty lines: an empty request line, refused by gunicorn's parser at once.
    assert new_head().feed(b"\r\n\r\n") is HeadState.MALFORMED


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHost: x\n",
    b"\nGET / HTTP/1.1\r\n",
])
def test_a_bare_lf_is_handed_over_at_once(data: bytes) -> None:
    assert new_head().feed(data) is HeadState.MALFORMED


@pytest.mark.parametrize("line", [
    b"hunter2-password-fragment\r\n",
    b"GET / HTTP/3.0\r\n",
    b"GET nowhere HTTP/1.1\r\n",
    b"get / HTTP/1.1\r\n",
])
def test_a_request_line_gunicorn_refuses_is_handed_over_when_it_ends(line: bytes) -> None:
    """As gunicorn did when it read the line itself: a body read as the next request (its
    Content-Length was short) is refused at its first line, not left to the deadline."""
    head = new_head()
    assert head.feed(line[:-2]) is HeadState.INCOMPLETE
    assert head.feed(line[-2:]) is HeadState.MALFORMED


def test_a_request_line_over_its_limit_is_handed_over_without_waiting_for_its_end() -> None:
    assert new_head(line_limit=100).feed(b"GET /" + b"a" * 95 + b" HTTP/1.1\r\n") is HeadState.TOO_LARGE
    head = new_head(line_limit=100)  # gunicorn reads the line and its CRLF before it refuses
    assert head.feed(b"GET /" + b"a" * 97) is HeadState.INCOMPLETE
    assert head.feed(b"a") is HeadState.TOO_LARGE


def test_a_head_that_reaches_its_limit_without_an_end_is_handed_over() -> None:
    head = new_head(limit=1000)
    assert head.feed(b"GET / HTTP/1.1\r\n") is HeadState.INCOMPLETE
    state = HeadState.INCOMPLETE
    while state is HeadState.INCOMPLETE:
        state = head.feed(b"X-Filler: aaaaaaaaaa\r\n")
    assert state is HeadState.TOO_LARGE
    assert 1000 <= len(head.data) < 1000 + 22


def test_a_head_at_its_limit_fed_a_byte_at_a_time_costs_no_rescans() -> None:
    """Each byte is looked at once: the largest head gunicorn_conf allows, one byte per read,
    is scanned in a fraction of a second (hang detection: the bound is far above)."""
    limit = head_size_limit(service_config())
    head = RequestHead(limit, request_line_limit(service_config()))
    assert head.feed(b"GET / HTTP/1.1\r\n") is HeadState.INCOMPLETE
    filler = b"X: " + b"a" * 8000 + b"\r\n"
    started = time.perf_counter()
    state = HeadState.INCOMPLETE
    while state is HeadState.INCOMPLETE:
        for byte in range(len(filler)):
            state = head.feed(filler[byte:byte + 1])
            if state is not HeadState.INCOMPLETE:
                break
    assert state is HeadState.TOO_LARGE
    assert time.perf_counter() - started < 20


def test_the_limits_are_gunicorns() -> None:
    cfg = service_config()
    assert request_line_limit(cfg) == 8190
    assert head_size_limit(cfg) == 2 + 8190 + 2 + 64 * (8190 + 2) + 4


def test_the_unreader_refuses_to_read_the_socket_while_a_head_is_parsed() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        unreader = HeadUnreader(ours)
        unreader.unread(b"GET / HTTP/1.1\r\n")
        unreader.head_only = True
        assert unreader.read() == b"GET / HTTP/1.1\r\n"
        with pytest.raises(LimitRequestHeaders):
            unreader.read()
        unreader.head_only = False
        theirs.sendall(b"body")
        assert unreader.read() == b"body"


@pytest.mark.parametrize(("setting", "value"), [("", 10.0), ("2.5", 2.5), ("300", 300.0)])
def test_the_header_deadline_setting(setting: str, value: float) -> None:
    assert gunicorn_conf.header_read_timeout({"SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": setting}) == value


@pytest.mark.parametrize("setting", ["0", "-1", "nan", "inf", "301", "ten"])
def test_a_bad_header_deadline_is_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match="SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS must be a number"):
        gunicorn_conf.header_read_timeout({"SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": setting})


@pytest.mark.parametrize(("setting", "value"), [("", 10.0), ("0.5", 0.5), ("300", 300.0)])
def test_the_body_deadline_setting(setting: str, value: float) -> None:
    assert gunicorn_conf.body_read_timeout({"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": setting}) == value


@pytest.mark.parametrize("setting", ["0", "-1", "nan", "inf", "301", "ten"])
def test_a_bad_body_deadline_is_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match="SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS must be a number"):
        gunicorn_conf.body_read_timeout({"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": setting})


@pytest.mark.parametrize(("name", "value"), [
    ("certfile", "/nonexistent/cert.pem"),
    ("http2_cleartext", "upgrade"),
    ("proxy_protocol", "v1"),
])
def test_the_worker_refuses_what_would_be_read_in_a_thread_again(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = service_config()
    cfg.set(name, value)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        HeadBufferingWorker.check_config(cfg, logging.getLogger("test"))
    assert "serves plain HTTP/1.x only" in caplog.text


def test_the_worker_takes_the_service_configuration() -> None:
    HeadBufferingWorker.check_config(service_config(), logging.getLogger("test"))
    assert gunicorn_conf.worker_class == "soap_service.worker.HeadBufferingWorker"


@pytest.mark.parametrize("tail", [
    "a" * 1_000_000,  # no ": " at all: the whole message is the "address"
    ":" * 1_000_000,
    "1" * 64 + "!" + ": x",
])
def test_the_invalid_request_filter_takes_any_message_in_linear_time(tail: str) -> None:
    """gunicorn_conf's one pattern (the address of "Invalid request from ip=..."): a bounded
    character class matched whole, which cannot backtrack; 1 MB of input is refused at once."""
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1,
                               "Invalid request from ip=" + tail, None, None)
    started = time.perf_counter()
    assert gunicorn_conf.InvalidRequestFilter().filter(record)
    assert time.perf_counter() - started < 1.0
    assert record.getMessage() == "Invalid request from ip=?: invalid request (what was read is not logged)"


# ----------------------------------------------------------------------------- request bodies

LIMIT = 1024 * 1024
PEER = ("127.0.0.1", 40000)
NEXT = b"GET /next HTTP/1.1\r\n\r\n"
"""A pipelined request behind each body: where the body ends must leave it whole."""


def post(headers: str, version: str = "1.1") -> bytes:
    return f"POST /api/order HTTP/{version}\r\nHost: example.com\r\n{headers}\r\n".encode()


def gunicorn_reads(head: bytes, rest: bytes) -> tuple[bytes, bytes]:
    """The body gunicorn's parser reads behind ``head`` from ``rest``, and what it leaves after it."""
    unreader = IterUnreader([rest[i:i + 7] for i in range(0, len(rest), 7)])
    unreader.unread(head)
    request = Request(service_config(), unreader, PEER)
    body = request.body.read()
    return body, unreader.take_buffered() + b"".join(unreader.iter or ())


def scanned(raw: bytes, piece: int, *, limit: int = LIMIT, framing_limit: int = CHUNKED_FRAMING_ALLOWANCE,
            ) -> tuple[BodyState, ChunkedBody, bytearray]:
    """Where a ChunkedBody stands after ``raw`` arrives in pieces of ``piece`` bytes (it stops at
    the first state that is not INCOMPLETE)."""
    scanner = ChunkedBody(0, limit, framing_limit=framing_limit)
    data = bytearray()
    state = BodyState.INCOMPLETE
    for start in range(0, len(raw), piece):
        data += raw[start:start + piece]
        state = scanner.scan(data)
        if state is not BodyState.INCOMPLETE:
            break
    return state, scanner, data


CHUNKED_BODIES = [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5;name=value\r\nhello\r\n3 ; a\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", b"helloabc"),
    (b"00005\r\nhello\r\n000\r\n\r\n", b"hello"),
    (b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", b"0123456789abcdefghij"),
    (b"1\r\n\n\r\n1\r\n\r\r\n0\r\n\r\n", b"\n\r"),  # CR and LF as chunk data
]


@pytest.mark.parametrize(("raw", "body"), CHUNKED_BODIES)
@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_a_chunked_body_ends_where_gunicorns_reader_ends_it(raw: bytes, body: bytes, piece: int) -> None:
    head = post("Transfer-Encoding: chunked\r\n")
    assert gunicorn_reads(head, raw + NEXT) == (body, NEXT)
    state, scanner, data = scanned(raw + NEXT, piece)
    assert state is BodyState.COMPLETE
    assert data[scanner.end:].startswith(NEXT[:len(data) - scanner.end]) and scanner.end == len(raw)
    assert scanner.data_bytes == len(body)
    # Not whole one byte before its end.
    assert scanned(raw[:-1], piece)[0] is BodyState.INCOMPLETE


@pytest.mark.parametrize("raw", [
    b"zz\r\nhello\r\n0\r\n\r\n",          # not a hex size
    b"\r\nhello\r\n0\r\n\r\n",            # an empty size line
    b"5\nhello\r\n0\r\n\r\n",              # a bare LF ends the size line
    b"5\r\nhelloXX0\r\n\r\n",               # the chunk is not followed by CRLF
    b"5\r\nhello\r\n0\r\nX: 1\n\r\n",      # a bare LF in the trailers
    b"-5\r\nhello\r\n0\r\n\r\n",          # a sign
])
def test_a_malformed_chunked_body_is_handed_over_as_soon_as_it_shows(raw: bytes) -> None:
    head = post("Transfer-Encoding: chunked\r\n")
    with pytest.raises(Exception):  # noqa: B017 - gunicorn's own refusal, whichever it is
        gunicorn_reads(head, raw + NEXT)
    assert scanned(raw + NEXT, 1)[0] is BodyState.MALFORMED


def test_a_size_line_longer_than_gunicorns_limit_is_malformed_before_its_end() -> None:
    state, _scanner, data = scanned(b"1" + b"0" * 9000, 100)
    assert state is BodyState.MALFORMED and len(data) < 8190 + 200


def test_chunk_data_past_the_limit_is_buffered_64_kib_further_then_handed_over() -> None:
    """The guard reads limit + 1 bytes and gunicorn's reader asks for up to 1 KiB more: that
    much must be buffered before the body is handed over as too large (tests/test_slow_clients.py
    checks that the answer is then RequestTooLarge, from the buffer)."""
    limit = 1000
    raw = b"%x\r\n" % (limit + CHUNKED_OVER_LIMIT + 10) + b"x" * (limit + CHUNKED_OVER_LIMIT)
    assert scanned(raw, 4096, limit=limit)[0] is BodyState.INCOMPLETE
    state, scanner, _data = scanned(raw + b"x", 4096, limit=limit)
    assert state is BodyState.TOO_LARGE and scanner.data_bytes == limit + CHUNKED_OVER_LIMIT + 1
    # A whole body a little over the limit is whole: the guard refuses it from the buffer.
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (limit + 10, b"x" * (limit + 10))
    assert scanned(raw, 4096, limit=limit)[0] is BodyState.COMPLETE


def test_tiny_chunks_are_handed_over_past_the_framing_allowance() -> None:
    state, scanner, data = scanned(b"1\r\nx\r\n" * 40, 1, framing_limit=100)
    assert state is BodyState.FRAMING_TOO_LARGE
    assert len(data) - scanner.data_bytes <= 100 + 5
    # The default: one-byte chunks stop after about 13,000 of them.
    state, scanner, _data = scanned(b"1\r\nx\r\n" * 20_000, 65536)
    assert state is BodyState.FRAMING_TOO_LARGE
    assert scanner.data_bytes < CHUNKED_FRAMING_ALLOWANCE // 5 + 1
    # Long trailers count as framing too.
    raw = b"0\r\n" + b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n" * 10
    assert scanned(raw, 7, framing_limit=100)[0] is BodyState.FRAMING_TOO_LARGE


def test_a_chunked_body_of_one_mib_fed_a_byte_at_a_time_costs_no_rescans() -> None:
    """Each byte is looked at once: 1 MiB in 1 KiB chunks, one byte per read, is followed in a
    few seconds at most (hang detection: the bound is far above)."""
    chunk = b"x" * 1024
    raw = (b"400\r\n" + chunk + b"\r\n") * 1024 + b"0\r\n\r\n"
    started = time.perf_counter()
    state, scanner, _data = scanned(raw, 1)
    assert state is BodyState.COMPLETE and scanner.data_bytes == LIMIT
    assert time.perf_counter() - started < 30


def parsed(head: bytes) -> Request:
    """gunicorn's request from ``head`` alone, as the worker parses it on its main loop."""
    unreader = IterUnreader(())
    unreader.unread(head)
    return Request(service_config(), unreader, PEER)


@pytest.mark.parametrize(("headers", "length", "chunked", "expects_continue"), [
    ("Content-Length: 5\r\n", 5, False, False),
    ("Content-Length: 005\r\n", 5, False, False),
    (f"Content-Length: {LIMIT}\r\n", LIMIT, False, False),
    ("Transfer-Encoding: chunked\r\n", None, True, False),
    ("Content-Length: 5\r\nExpect: 100-continue\r\n", 5, False, True),
    ("Transfer-Encoding: chunked\r\nExpect: 100-Continue\r\n", None, True, True),
])
def test_the_body_to_wait_for_is_the_one_gunicorn_frames(
    headers: str, length: int | None, chunked: bool, expects_continue: bool
) -> None:
    head = post(headers)
    body = body_to_buffer(parsed(head), len(head), LIMIT)
    assert body is not None
    assert (body.start, body.length, body.chunked is not None, body.expects_continue) == (
        len(head), length, chunked, expects_continue)


@pytest.mark.parametrize("headers", ["", "Content-Length: 0\r\n", f"Content-Length: {LIMIT + 1}\r\n"])
def test_nothing_is_waited_for_without_a_body_or_over_the_limit(headers: str) -> None:
    """A Content-Length over the limit is refused by the guard by its length, unread."""
    head = post(headers)
    assert body_to_buffer(parsed(head), len(head), LIMIT) is None


@pytest.mark.parametrize(("headers", "version"), [
    ("Content-Length: 5\r\nContent-Length: 5\r\n", "1.1"),
    ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "1.1"),
    ("Content-Length: five\r\n", "1.1"),
    ("Content-Length: \u00b2\r\n", "1.1"),  # a digit to str.isnumeric only
    ("Transfer-Encoding: gzip\r\n", "1.1"),
    ("Transfer-Encoding: chunked\r\n", "1.0"),
])
def test_a_head_whose_framing_gunicorn_refuses_is_refused_on_the_main_loop(headers: str, version: str) -> None:
    """The parser's refusal, kept for the thread (which answers it): no body is waited for."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        parser = PreparsedParser(service_config(), ours, PEER)
        parser.unreader.unread(post(headers, version))
        assert parser.prepare() is None
        with pytest.raises(Exception):  # noqa: B017 - gunicorn's own refusal, whichever it is
            next(parser)


def test_an_expectation_of_http_1_0_is_ignored_as_gunicorn_does() -> None:
    head = post("Content-Length: 5\r\nExpect: 100-continue\r\n", "1.0")
    body = body_to_buffer(parsed(head), len(head), LIMIT)
    assert body is not None and not body.expects_continue


def test_the_thread_gets_the_request_parsed_on_the_main_loop_and_reads_its_body_from_the_buffer() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        parser = PreparsedParser(service_config(), ours, PEER)
        parser.unreader.unread(HEAD[:-5])
        request = parser.prepare()
        assert request is not None and request.method == "POST"
        parser.unreader.pending = b"hello" + NEXT
        parser.unreader.refusal = TimeoutError("no socket")
        assert next(parser) is request
        assert request.body.read() == b"hello"
        assert parser.unreader.take_buffered() == NEXT


def test_the_unreader_serves_the_buffered_body_in_socket_sized_pieces_then_the_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        unreader = HeadUnreader(ours)
        unreader.unread(b"POST / HTTP/1.1\r\n\r\n")
        unreader.pending = b"a" * 20_000 + b"b" * 5
        assert unreader.read() == b"POST / HTTP/1.1\r\n\r\n"
        assert len(unreader.read()) == 8192  # a read without a size: one socket-sized piece
        assert unreader.read(2000, read_ahead=20_000) == b"a" * 2000  # the rest of the piece stays buffered
        assert unreader.take_buffered() == b"a" * (20_000 - 8192 - 2000) + b"b" * 5
        theirs.sendall(b"next")
        assert unreader.read() == b"next"


def test_the_unreader_refuses_the_socket_past_the_buffer_when_told() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"never read")
        unreader = HeadUnreader(ours)
        unreader.pending = b"buffered"
        unreader.refusal = ChunkedFramingTooLarge("too much framing")
        assert unreader.read() == b"buffered"
        with pytest.raises(ChunkedFramingTooLarge):
            unreader.read()
        unreader.refusal = None
        unreader.deadline = time.monotonic() - 1
        with pytest.raises(TimeoutError):
            unreader.read()
        assert ours.recv(100) == b"never read"


def test_a_read_of_the_socket_ends_at_the_bodys_deadline_not_the_sockets_timeout() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(30)  # pre_request's bound of each read and write
        unreader = HeadUnreader(ours)
        unreader.deadline = time.monotonic() + 0.3
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            unreader.read()
        assert time.monotonic() - started < 5
        assert ours.gettimeout() == 30  # the answer's writes keep their bound
        theirs.sendall(b"in time")
        unreader.deadline = time.monotonic() + 5
        assert unreader.read() == b"in time"


# ------------------------------------------------------------------------------------ answers


def answer_socketpair() -> tuple[socket.socket, socket.socket]:
    """The worker's end (non-blocking, a small send buffer: partial sends) and the client's."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    return ours, theirs


def test_the_answer_buffer_keeps_what_the_thread_writes_and_the_main_loop_sends_it_as_it_is_read() -> None:
    ours, theirs = answer_socketpair()
    with ours, theirs:
        answer = AnswerBuffer(ours)
        body = bytes(range(256)) * 4096  # 1 MiB
        assert answer.send(CONTINUE) == len(CONTINUE)
        answer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
        answer.sendall(bytearray(body[:10]))  # not bytes: copied
        answer.sendall(body[10:])
        answer.sendall(b"")
        expected = CONTINUE + b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + body
        assert answer.size == answer.pending == len(expected)
        received = bytearray()
        stalls = 0
        while answer.pending:
            if not answer.send_to(ours):
                stalls += 1  # the client has not read: nothing waits, nothing is lost
                received += theirs.recv(65536)
        received += theirs.recv(65536)
        while len(received) < len(expected):
            received += theirs.recv(65536)
        assert bytes(received) == expected
        assert answer.sent == answer.size and stalls > 0
        assert answer.send_to(ours) == 0


def test_an_answer_over_its_limit_fails_the_write_as_a_broken_pipe_and_nothing_is_sent() -> None:
    ours, theirs = answer_socketpair()
    with ours, theirs:
        answer = AnswerBuffer(ours, limit=100)
        answer.sendall(b"x" * 60)
        with pytest.raises(AnswerTooLarge) as raised:
            answer.sendall(b"y" * 41)
        assert raised.value.errno == errno.EPIPE  # gunicorn's thread: "Ignoring connection epipe", at DEBUG
        assert isinstance(raised.value, BrokenPipeError)
        assert answer.overflowed and answer.pending == 0
        with pytest.raises(AnswerTooLarge):
            answer.sendall(b"z")
        assert answer.send_to(ours) == 0
    assert ANSWER_LIMIT == 16 * 1024 * 1024


def test_the_threads_shutdown_and_close_only_say_how_the_connection_ends_after_the_answer() -> None:
    ours, theirs = answer_socketpair()
    with ours, theirs:
        answer = AnswerBuffer(ours)
        answer.sendall(b"the answer")
        util.close_graceful(answer)  # gunicorn, after an answer that failed half-way: no wait here
        assert answer.shut and not answer.abandoned
        assert answer.recv(10) == b""
        assert ours.fileno() != -1
        while answer.pending:
            answer.send_to(ours)
        assert theirs.recv(100) == b"the answer"
        answer.shutdown(socket.SHUT_RDWR)
        assert answer.abandoned
        theirs.sendall(b"still open")
        assert ours.recv(100) == b"still open"


def test_everything_but_the_writes_is_the_sockets() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        answer = AnswerBuffer(ours)
        answer.setblocking(True)
        answer.settimeout(7)
        assert ours.gettimeout() == answer.gettimeout() == 7
        assert answer.fileno() == ours.fileno()
        theirs.sendall(b"body")
        assert answer.recv(10) == b"body"


def test_a_file_answer_is_read_into_the_buffer(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        path = tmp_path / "document"
        path.write_bytes(b"0123456789" * 10_000)
        answer = AnswerBuffer(ours)
        with path.open("rb") as file:
            assert answer.sendfile(file, offset=3, count=70_000) == 70_000
            assert answer.sendfile(file, offset=99_990) == 10
        assert answer.size == 70_010


def test_gunicorns_response_writes_its_answer_to_the_buffer() -> None:
    cfg = service_config()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        request = Request(cfg, IterUnreader([b"GET /api/order?wsdl HTTP/1.1\r\nHost: x\r\n\r\n"]), PEER, 1)
        answer = AnswerBuffer(ours)
        response = Response(request, answer, cfg)
        response.start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        response.write(b"hello")
        response.close()
        assert answer.pending > 5
        ours.setblocking(False)
        while answer.pending:
            answer.send_to(ours)
        received = theirs.recv(65536)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\nhello")
        assert b"Connection: keep-alive" in received


class _FailedBody:
    failed = True


class _FailedRequest:
    def __init__(self, sock: socket.socket) -> None:
        self.body = _FailedBody()
        self.unreader = IterUnreader([])
        self.unreader.sock = sock


def test_post_request_shuts_the_socket_the_answer_was_written_to() -> None:
    """Under the worker, the answer's buffer: the answer is still to be sent, the socket stays
    open until it is; under plain gthread (the client's socket in ``gunicorn.socket``), the
    socket itself, as before."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        answer = AnswerBuffer(ours)
        answer.sendall(b"Client.RequestTimeout")
        gunicorn_conf.post_request(None, _FailedRequest(ours), {"gunicorn.socket": answer}, None)
        assert answer.abandoned
        ours.setblocking(False)
        answer.send_to(ours)
        assert theirs.recv(100) == b"Client.RequestTimeout"
        gunicorn_conf.post_request(None, _FailedRequest(ours), {"gunicorn.socket": ours}, None)
        assert theirs.recv(100) == b""
