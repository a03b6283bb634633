"""The worker's parts without a server: the request head scanner, the unreader that refuses
to block while a head is parsed, the limits and the header deadline setting. The worker on
a real server: tests/test_slow_clients.py."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import LimitRequestHeaders

from soap_service import gunicorn_conf
from soap_service.config import ConfigurationError
from soap_service.worker import (
    HeadBufferingWorker,
    HeadState,
    HeadUnreader,
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
    assert new_head().feed(HEAD) is HeadState.COMPLETE
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
