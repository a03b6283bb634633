"""Slow clients do not stall the server (issue 6, defect 4): real gunicorn on loopback.

gthread gave a connection to a thread as soon as it was readable, and the thread read the
request line and headers on a blocking socket: 24 connections that sent half a head held
every thread of the default server (2 workers x 4 threads) and a Hello waited until they
closed. ``soap_service.worker`` reads heads on the worker's main loop and closes a
connection whose head is not whole within ``SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS``.
The same for bodies (the follow-up): a thread read the body, each read bounded by the body
read timeout, so 40 connections that trickled a byte of body every few seconds held every
thread; the worker now reads the body on its main loop too, and a body that is not whole
within ``SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS`` (its whole deadline, not each read's) is
answered ``Client.RequestTimeout``.

The servers run on SQLite only: what is tested here lives below the database. Time limits
are hang detectors (a Hello takes milliseconds), and the deadlines are checked within a
wide margin.
"""

from __future__ import annotations

import http.client
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_support import (
    SERVICE_PATH,
    START_TIMEOUT,
    Answer,
    RunningServer,
    connect,
    hello_envelope,
    http_answers,
    padded_hello_envelope,
    request,
    running_server,
    server_environment,
)
from conftest import TestInstallation as Installation
from conftest import build_installation, database_environment
from soap_service.worker import MAX_REQUESTS_PER_CONNECTION

HEADER_DEADLINE = 2.0
BODY_DEADLINE = 2.0
ONE_MIB = 1024 * 1024
HANG = 10.0
"""Hang detection: far above what a Hello or a deadline's sweep takes."""
STALLED = 50
UTF8 = "text/xml; charset=utf-8"
HALF_HEAD = f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty".encode()


@pytest.fixture(scope="module")
def sqlite_installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    for environ in database_environment("sqlite", tmp_path_factory.mktemp("slow-clients"), "slow"):
        installation = build_installation(environ, "sqlite")
        try:
            yield installation
        finally:
            installation.ra.close()


@pytest.fixture(scope="module")
def patient_server(
    sqlite_installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The default shape (2 workers x 4 threads), with a head deadline longer than the test."""
    yield from running_server(sqlite_installation, tmp_path_factory, workers=2, threads=4,
                              extra_env={"SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": "120",
                                         "SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": "120"})


@pytest.fixture(scope="module")
def strict_server(
    sqlite_installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from running_server(sqlite_installation, tmp_path_factory, workers=2, threads=4,
                              extra_env={"SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": str(HEADER_DEADLINE),
                                         "SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": str(BODY_DEADLINE)})


def hello_request(text: str, *, close: bool = False) -> bytes:
    body = hello_envelope(text)
    connection = "close" if close else "keep-alive"
    head = (f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {UTF8}\r\n"
            f'SOAPAction: "Hello"\r\nConnection: {connection}\r\nContent-Length: {len(body)}\r\n\r\n')
    return head.encode() + body


def timed_hello(server: RunningServer, text: str) -> float:
    started = time.monotonic()
    status, _headers, body = request(server, "POST", SERVICE_PATH, hello_envelope(text),
                                     {"Content-Type": UTF8, "SOAPAction": '"Hello"'}, timeout=HANG)
    assert status == 200 and text.encode() in body
    return time.monotonic() - started


def read_answers(sock: socket.socket, count: int) -> list[Answer]:
    """The next ``count`` HTTP answers on a kept-alive connection (each has a Content-Length)."""
    received = b""
    while True:
        if _whole_answers(received) >= count:
            return http_answers(received)
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {received[:300]!r}"
        received += data


def _whole_answers(raw: bytes) -> int:
    whole = 0
    while raw:
        head, separator, rest = raw.partition(b"\r\n\r\n")
        if not separator:
            break
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if len(rest) < length:
            break
        whole, raw = whole + 1, rest[length:]
    return whole


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long the server took to close ``sock`` (sending nothing); fails after ``limit``."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        data = b""
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {limit}s") from None
    assert data == b"", f"the server answered {data[:200]!r}"
    return time.monotonic() - started


def is_open(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except ConnectionResetError:
        return False


def open_stalled(server: RunningServer, count: int, head: bytes = HALF_HEAD) -> list[socket.socket]:
    stalled = []
    for _ in range(count):
        sock = connect(server, timeout=HANG)
        if head:
            sock.sendall(head)
        stalled.append(sock)
    return stalled


def test_hello_is_answered_while_50_connections_hold_half_a_head(patient_server: RunningServer) -> None:
    """The attack of the review, twice over: on gthread the Hellos time out."""
    mark = patient_server.log_mark()
    stalled = open_stalled(patient_server, STALLED)
    try:
        time.sleep(0.3)  # the workers have accepted them
        waited = [timed_hello(patient_server, f"hello-{i}") for i in range(8)]
        assert max(waited) < HANG, waited
        assert all(is_open(sock) for sock in stalled), "the stalled connections must still be open"
    finally:
        for sock in stalled:
            sock.close()
    assert "Traceback" not in patient_server.log(mark)


def test_a_half_head_and_a_silent_connection_are_closed_at_the_deadline(strict_server: RunningServer) -> None:
    stalled = open_stalled(strict_server, 10) + open_stalled(strict_server, 2, head=b"")
    try:
        for sock in stalled:
            closed_after = seconds_until_closed(sock, HEADER_DEADLINE + HANG)
            assert closed_after < HEADER_DEADLINE + HANG
        assert timed_hello(strict_server, "after-the-cut") < HANG
    finally:
        for sock in stalled:
            sock.close()


def test_a_head_trickled_a_byte_a_second_is_cut_at_the_deadline(strict_server: RunningServer) -> None:
    """The deadline is for the whole head, not for each read: every byte arrives well within it."""
    sock = connect(strict_server, timeout=HANG)
    started = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - started < HEADER_DEADLINE + HANG:
            try:
                sock.sendall(HALF_HEAD[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable and not is_open(sock):
                break
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert elapsed < HEADER_DEADLINE + HANG, "the trickling connection was never closed"
    assert elapsed > HEADER_DEADLINE - 0.5, elapsed
    assert 2 <= sent < len(HALF_HEAD)


def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline(strict_server: RunningServer) -> None:
    sock = connect(strict_server, timeout=HANG)
    try:
        sock.sendall(hello_request("first"))
        (answer,) = read_answers(sock, 1)
        assert answer.status == 200 and b"first" in answer.body
        sock.sendall(HALF_HEAD)
        assert seconds_until_closed(sock, HEADER_DEADLINE + HANG) < HEADER_DEADLINE + HANG
    finally:
        sock.close()


def test_heads_in_pieces_pipelined_and_kept_alive_are_served(strict_server: RunningServer) -> None:
    sock = connect(strict_server, timeout=HANG)
    try:
        # A head in pieces, each well within the deadline.
        first = hello_request("in-pieces")
        for start in range(0, 120, 40):
            sock.sendall(first[start:start + 40])
            time.sleep(0.1)
        sock.sendall(first[120:])
        (answer,) = read_answers(sock, 1)
        assert answer.status == 200 and b"in-pieces" in answer.body
        # Two requests in one write, the third's head cut in two behind them.
        third = hello_request("third")
        sock.sendall(hello_request("second-a") + hello_request("second-b") + third[:30])
        time.sleep(0.2)
        sock.sendall(third[30:])
        answers = read_answers(sock, 3)
        assert [a.status for a in answers] == [200, 200, 200]
        assert [t in a.body for t, a in zip((b"second-a", b"second-b", b"third"), answers, strict=True)] == [
            True, True, True]
        # A chunked body.
        body = hello_envelope("chunked")
        head = (f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {UTF8}\r\n"
                'SOAPAction: "Hello"\r\nTransfer-Encoding: chunked\r\n\r\n').encode()
        sock.sendall(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        (answer,) = read_answers(sock, 1)
        assert answer.status == 200 and b"chunked" in answer.body
    finally:
        sock.close()


@pytest.mark.parametrize(("head", "status"), [
    # 64 headers of 8190 bytes at most (gunicorn_conf): this head can never end.
    (f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + b"X-Filler: " + b"a" * 8000 + b"\r\n"
     + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 8100) for i in range(70)), 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", 414),
    (f"POST {SERVICE_PATH} HTTP/1.1\nHost: 127.0.0.1\n".encode(), 400),
])
def test_heads_that_cannot_be_served_get_gunicorns_answer_at_once(
    strict_server: RunningServer, head: bytes, status: int
) -> None:
    sock = connect(strict_server, timeout=HANG)
    started = time.monotonic()
    try:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer may come before the whole head is sent
        received = b""
        while not received.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    finally:
        sock.close()
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]
    assert time.monotonic() - started < HEADER_DEADLINE, "answered only at the deadline"


def test_a_kept_alive_connection_is_closed_after_its_hundredth_answer(strict_server: RunningServer) -> None:
    """A connection serves MAX_REQUESTS_PER_CONNECTION requests, the last answer says "Connection:
    close" and the server closes it, so that a client's few long-lived connections spread over the
    workers again when they reconnect (soap_service.worker)."""
    sock = connect(strict_server, timeout=HANG)
    try:
        answers = []
        for i in range(MAX_REQUESTS_PER_CONNECTION):
            sock.sendall(hello_request(f"kept-{i}"))
            answers.extend(read_answers(sock, 1))
        assert [a.status for a in answers] == [200] * MAX_REQUESTS_PER_CONNECTION
        assert f"kept-{MAX_REQUESTS_PER_CONNECTION - 1}".encode() in answers[-1].body
        assert [a.headers["connection"] for a in answers] == (
            ["keep-alive"] * (MAX_REQUESTS_PER_CONNECTION - 1) + ["close"])
        assert seconds_until_closed(sock, HANG) < HANG
    finally:
        sock.close()


def test_closing_connections_do_not_hold_up_the_worker(strict_server: RunningServer) -> None:
    """An answer with "Connection: close" is followed by a graceful close: wait (2 s at most) for the
    client to close. gthread waited on its main loop, blocking: 20 clients that never close held up
    every accept and every answer of the worker for 2 s each."""
    clients = open_stalled(strict_server, 20, head=b"")
    started = time.monotonic()
    try:
        for i, sock in enumerate(clients):
            sock.sendall(hello_request(f"closing-{i}", close=True))
        for i, sock in enumerate(clients):
            (answer,) = read_answers(sock, 1)
            assert answer.status == 200 and f"closing-{i}".encode() in answer.body
        timed_hello(strict_server, "after-the-closing-ones")
        elapsed = time.monotonic() - started
    finally:
        for sock in clients:
            sock.close()
    assert elapsed < HANG / 2, elapsed


def start_plain_gunicorn(
    installation: Installation, directory: Path, extra_env: dict[str, str], *options: str
) -> RunningServer:
    """Plain gunicorn with this package's configuration and ``options``, serving."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    log_path = directory / "server.log"
    environ = server_environment(installation, extra_env)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:soap_service.gunicorn_conf",
               "--bind", f"fd://{listener.fileno()}", *options, "soap_service.wsgi:application"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=directory, env=environ, stdout=log, stderr=subprocess.STDOUT,
                                   pass_fds=[listener.fileno()])
    port = listener.getsockname()[1]
    listener.close()
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_serving(server)
    except BaseException:
        server.process.kill()
        server.process.wait()
        raise
    return server


def test_a_worker_at_its_connection_cap_stops_accepting_until_a_deadline_frees_a_slot(
    sqlite_installation: Installation, tmp_path: Path
) -> None:
    """Plain gunicorn with this package's configuration, one worker capped at 10 connections."""
    server = start_plain_gunicorn(sqlite_installation, tmp_path,
                                  {"SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": str(HEADER_DEADLINE)},
                                  "--workers", "1", "--worker-connections", "10")
    try:
        stalled = open_stalled(server, 10)
        opened = time.monotonic()
        try:
            timed_hello(server, "over-the-cap")
            # Only the deadline of the stalled connections made room for it.
            assert time.monotonic() - opened > HEADER_DEADLINE - 0.5
            # The first deadline to pass freed the slot; the others pass within moments of it
            # (the sweep closes them one by one), so wait for each rather than peek at once.
            assert all(seconds_until_closed(sock, HANG) < HANG for sock in stalled)
        finally:
            for sock in stalled:
                sock.close()
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log()


def _wait_until_serving(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.alive(), server.log()
        try:
            timed_hello(server, "up")
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer within {START_TIMEOUT}s:\n{server.log()}")


# ------------------------------------------------------------------------------------ bodies

TRICKLING = 40


def trickled_head(content_length: int, extra: str = "") -> bytes:
    """A valid head of a Hello POST announcing ``content_length`` bytes of body."""
    return (f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {UTF8}\r\n"
            f'SOAPAction: "Hello"\r\nContent-Length: {content_length}\r\n{extra}\r\n').encode()


class Trickle:
    """Sends one byte of body on each of ``socks`` every ``interval`` seconds, in a thread, until stopped."""

    def __init__(self, socks: list[socket.socket], interval: float = 1.0) -> None:
        self.socks = socks
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(HANG)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for sock in self.socks:
                try:
                    sock.sendall(b"<")
                except OSError:
                    continue
            self.sent += 1


def test_hello_is_answered_while_40_connections_trickle_their_bodies(patient_server: RunningServer) -> None:
    """The follow-up attack: valid heads announcing 100,000 bytes, then one body byte a second.
    gthread, and the worker that buffered heads only, gave each of them a thread that read the
    body (each read well within the body read timeout): the Hellos timed out."""
    mark = patient_server.log_mark()
    trickling = open_stalled(patient_server, TRICKLING, head=trickled_head(100_000))
    try:
        with Trickle(trickling) as trickle:
            time.sleep(1.5)  # the workers have accepted them and the first bytes have gone
            waited = [timed_hello(patient_server, f"hello-{i}") for i in range(8)]
            assert trickle.sent >= 1
        assert max(waited) < HANG, waited
        assert all(is_open(sock) for sock in trickling), "the trickling connections must still be open"
    finally:
        for sock in trickling:
            sock.close()
    assert "Traceback" not in patient_server.log(mark)


def answer_within(sock: socket.socket, limit: float) -> tuple[Answer, float]:
    """The one answer the server sends before it closes ``sock``, and how long it took."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except TimeoutError:
        raise AssertionError(f"no answer and no close within {limit}s: {received[:200]!r}") from None
    except ConnectionResetError:
        pass
    (answer,) = http_answers(received)
    return answer, time.monotonic() - started


def fault_code(answer: Answer) -> str:
    """The faultcode of a SOAP fault answer."""
    assert answer.status == 500 and answer.content_type.startswith("text/xml"), answer
    code = answer.body.split(b"<faultcode>", 1)[1].split(b"</faultcode>", 1)[0]
    return code.decode()


def chunked(body: bytes, size: int, *, extension: bytes = b"", trailers: bytes = b"") -> bytes:
    """``body`` as a chunked transfer coding, in chunks of ``size`` bytes."""
    pieces = [b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), extension, body[i:i + size])
              for i in range(0, len(body), size)]
    return b"".join(pieces) + b"0\r\n" + trailers + b"\r\n"


def chunked_head(extra: str = "") -> bytes:
    return (f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {UTF8}\r\n"
            f'SOAPAction: "Hello"\r\nTransfer-Encoding: chunked\r\n{extra}\r\n').encode()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_trickled_body_is_answered_at_its_deadline_not_at_each_read(
    strict_server: RunningServer, framing: str
) -> None:
    """A byte every 0.4 s: every read well within the body deadline, the body never whole. The
    caller gets Client.RequestTimeout when the deadline of the whole body passes (with a
    deadline per read it would never come), then the connection is closed."""
    mark = strict_server.log_mark()
    sock = connect(strict_server, timeout=HANG)
    body = hello_envelope("trickled")
    if framing == "chunked":
        head, payload = chunked_head(), chunked(body, 16)
    else:
        head, payload = trickled_head(len(body)), body
    sock.sendall(head)
    started = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - started < BODY_DEADLINE + HANG:
            readable, _, _ = select.select([sock], [], [], 0.4)
            if readable:
                break
            try:
                sock.sendall(payload[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        answer, _ = answer_within(sock, HANG)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert fault_code(answer) == "soap11env:Client.RequestTimeout"
    assert BODY_DEADLINE - 0.5 < elapsed < BODY_DEADLINE + HANG, elapsed
    assert 2 <= sent < len(payload)
    lines = strict_server.request_lines(mark)
    assert sum("outcome=fault:Client.RequestTimeout" in line for line in lines) == 1, lines


def test_a_body_that_never_comes_is_answered_at_its_deadline(strict_server: RunningServer) -> None:
    """More of them than the server has threads: none holds one while it waits."""
    opened = time.monotonic()
    socks = open_stalled(strict_server, 6, head=trickled_head(1000))
    socks += open_stalled(strict_server, 6, head=trickled_head(1000) + b"<soapenv")
    try:
        assert timed_hello(strict_server, "while-they-wait") < BODY_DEADLINE - 0.5
        for sock in socks:
            answer, _ = answer_within(sock, BODY_DEADLINE + HANG)
            assert fault_code(answer) == "soap11env:Client.RequestTimeout"
        assert BODY_DEADLINE - 0.5 < time.monotonic() - opened < BODY_DEADLINE + HANG
        assert timed_hello(strict_server, "after-the-silent-ones") < HANG
    finally:
        for sock in socks:
            sock.close()


def test_bodies_in_pieces_kept_alive_and_pipelined_are_served(strict_server: RunningServer) -> None:
    sock = connect(strict_server, timeout=HANG)
    try:
        # A body in pieces (the head apart), each well within the deadline; twice on one connection.
        for text in ("pieces-1", "pieces-2"):
            request_bytes = hello_request(text)
            end = request_bytes.index(b"\r\n\r\n") + 4
            sock.sendall(request_bytes[:end])
            for start in range(end, len(request_bytes), 50):
                time.sleep(0.05)
                sock.sendall(request_bytes[start:start + 50])
            (answer,) = read_answers(sock, 1)
            assert answer.status == 200 and text.encode() in answer.body
        # Three requests in one write, the third's body cut in two behind them.
        third = hello_request("third")
        sock.sendall(hello_request("second-a") + hello_request("second-b") + third[:-40])
        time.sleep(0.3)
        sock.sendall(third[-40:])
        answers = read_answers(sock, 3)
        assert [a.status for a in answers] == [200, 200, 200]
        assert [t in a.body for t, a in zip((b"second-a", b"second-b", b"third"), answers, strict=True)] == [
            True, True, True]
        # A chunked body in pieces, with chunk extensions and a trailer, then a request behind it.
        body = hello_envelope("chunked-pieces")
        message = chunked_head() + chunked(body, 40, extension=b";step=1", trailers=b"X-Check: 1\r\n")
        for start in range(0, len(message), 33):
            sock.sendall(message[start:start + 33])
            time.sleep(0.02)
        sock.sendall(hello_request("after-chunked"))
        answers = read_answers(sock, 2)
        assert [a.status for a in answers] == [200, 200]
        assert b"chunked-pieces" in answers[0].body and b"after-chunked" in answers[1].body
    finally:
        sock.close()


def test_expect_100_continue_is_answered_before_the_body(strict_server: RunningServer) -> None:
    """A client that waits for "100 Continue" before it sends the body (.NET does by default) gets
    it from the worker's main loop, once; a client that sends its body at once gets it too, once,
    as gunicorn always did."""
    body = hello_envelope("continued")
    sock = connect(strict_server, timeout=HANG)
    try:
        sock.sendall(trickled_head(len(body), "Expect: 100-continue\r\n"))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            data = sock.recv(1)
            assert data, "closed before 100 Continue"
            interim += data
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        (answer,) = read_answers(sock, 1)
        assert answer.status == 200 and b"continued" in answer.body
        # The next request on the connection, body sent at once.
        sock.sendall(trickled_head(len(body), "Expect: 100-continue\r\n") + body)
        received = b""
        while _whole_answers(received.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")) < 1:
            data = sock.recv(65536)
            assert data, received
            received += data
        assert received.count(b"100 Continue") == 1
        (answer,) = http_answers(received.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n"))
        assert answer.status == 200 and b"continued" in answer.body
    finally:
        sock.close()


def test_head_and_get_are_served_as_before(strict_server: RunningServer) -> None:
    parts = strict_server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=HANG)
    try:
        for method in ("HEAD", "GET", "HEAD"):
            connection.request(method, SERVICE_PATH + "?wsdl")
            response = connection.getresponse()
            content = response.read()
            assert response.status == 200
            assert (content == b"") is (method == "HEAD")
        connection.request("POST", SERVICE_PATH, body=hello_envelope("after-head"),
                           headers={"Content-Type": UTF8, "SOAPAction": '"Hello"'})
        response = connection.getresponse()
        assert response.status == 200 and b"after-head" in response.read()
    finally:
        connection.close()


def test_a_one_mib_body_in_pieces_is_served_and_one_over_is_refused_at_once(strict_server: RunningServer) -> None:
    body = padded_hello_envelope(ONE_MIB)
    assert len(body) == ONE_MIB
    sock = connect(strict_server, timeout=HANG)
    try:
        sock.sendall(trickled_head(len(body)))
        for start in range(0, len(body), 65536):
            sock.sendall(body[start:start + 65536])
            time.sleep(0.01)
        (answer,) = read_answers(sock, 1)
        assert answer.status == 200 and b"<tns:HelloResult>padded<" in answer.body
    finally:
        sock.close()
    # One byte over, announced and not sent: refused by its Content-Length, not at the deadline.
    sock = connect(strict_server, timeout=HANG)
    try:
        sock.sendall(trickled_head(ONE_MIB + 1))
        answer, waited = answer_within_kept_alive(sock)
        assert fault_code(answer) == "soap11env:Client.RequestTooLarge"
        assert waited < BODY_DEADLINE - 0.5, waited
    finally:
        sock.close()


def answer_within_kept_alive(sock: socket.socket) -> tuple[Answer, float]:
    """The next answer on ``sock`` (the server may keep the connection), and how long it took."""
    started = time.monotonic()
    (answer,) = read_answers(sock, 1)
    return answer, time.monotonic() - started


@pytest.mark.parametrize(("message", "code"), [
    # A chunk size that is not hex: gunicorn's reader refuses it, from the buffer.
    (b"zz\r\n<a/>\r\n0\r\n\r\n", "soap11env:Client.BadRequest"),
    # Chunk data not followed by CRLF.
    (b"4\r\n<a/>XX0\r\n\r\n", "soap11env:Client.BadRequest"),
    # More chunk data than the limit (and the 64 KiB the worker buffers past it), the end never sent.
    (b"200000\r\n" + b"x" * (ONE_MIB + 65537), "soap11env:Client.RequestTooLarge"),
    # Over the limit but whole, in chunks of 64 KiB.
    (chunked(b"x" * (ONE_MIB + 1000), 65536), "soap11env:Client.RequestTooLarge"),
    # Within the limit, but in one-byte chunks: more framing than the worker buffers.
    (b"1\r\nx\r\n" * 200_000, "soap11env:Client.BadRequest"),
])
def test_chunked_bodies_that_cannot_be_served_are_refused_at_once(
    strict_server: RunningServer, message: bytes, code: str
) -> None:
    sock = connect(strict_server, timeout=HANG)
    started = time.monotonic()
    try:
        try:
            sock.sendall(chunked_head() + message)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer, _ = answer_within_kept_alive(sock)
    finally:
        sock.close()
    assert fault_code(answer) == code
    assert time.monotonic() - started < BODY_DEADLINE - 0.5, "answered only at the deadline"


# ----------------------------------------------------------------------------------- answers

WSDL_GET = f"GET {SERVICE_PATH}?wsdl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
PIPELINED = 300
"""GET ?wsdl requests each non-reading connection sends at once: about 11 KB up, 7.5 MB of answers."""
TCP_ESTABLISHED = 1
NON_READING_RECEIVE_BUFFER = 4096


def open_non_reading(server: RunningServer, count: int, requests: int = PIPELINED) -> list[socket.socket]:
    """``count`` connections that each send ``requests`` pipelined ``GET ?wsdl`` and never read
    (a small receive buffer: what the server sends them stops at once)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NON_READING_RECEIVE_BUFFER)
        sock.settimeout(HANG)
        sock.connect((host, int(port)))
        sock.sendall(WSDL_GET * requests)
        socks.append(sock)
    return socks


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (Linux ``TCP_INFO``): it does not read the socket, so it
    sees the server's reset behind data the client never read."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def wsdl_of(server: RunningServer) -> bytes:
    status, _headers, body = request(server, "GET", SERVICE_PATH + "?wsdl", timeout=HANG)
    assert status == 200
    return body


needs_tcp_info = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux's")


@needs_tcp_info
@pytest.mark.parametrize("count", [8, 40])
def test_hello_is_answered_while_connections_do_not_read_their_answers(
    patient_server: RunningServer, count: int
) -> None:
    """The attack of the review: each connection asks for 7.5 MB of WSDL, pipelined, and reads none
    of it. The thread that wrote an answer blocked in sendall until the write timeout, so 8 such
    connections held every thread of the default server and a Hello waited seconds (or timed out);
    the answer is now written by the worker's main loop as the client reads."""
    mark = patient_server.log_mark()
    non_reading = open_non_reading(patient_server, count)
    try:
        time.sleep(0.5)  # the workers have their requests and have answered what they could
        waited = [timed_hello(patient_server, f"hello-{i}") for i in range(8)]
        assert max(waited) < HANG, waited
        assert [tcp_state(sock) for sock in non_reading] == [TCP_ESTABLISHED] * count, \
            "the non-reading connections must still be open"
    finally:
        for sock in non_reading:
            sock.close()
    log = patient_server.log(mark)
    assert "Traceback" not in log and "Socket error" not in log, log


@needs_tcp_info
def test_a_connection_that_does_not_read_is_closed_at_its_answers_deadline(strict_server: RunningServer) -> None:
    """The whole answer must be read within the body deadline, or the connection is reset; the log
    says so once, at INFO, without a traceback (a write that timed out in a thread logged
    "Socket error processing request" with one, at ERROR)."""
    mark = strict_server.log_mark()
    non_reading = open_non_reading(strict_server, 3)
    opened = time.monotonic()
    try:
        open_for = [0.0] * len(non_reading)
        while time.monotonic() - opened < BODY_DEADLINE + HANG:
            now = time.monotonic() - opened
            for i, sock in enumerate(non_reading):
                if not open_for[i] and tcp_state(sock) != TCP_ESTABLISHED:
                    open_for[i] = now
            if all(open_for):
                break
            time.sleep(0.05)
        assert timed_hello(strict_server, "after-the-non-readers") < HANG
    finally:
        for sock in non_reading:
            sock.close()
    assert all(BODY_DEADLINE - 0.5 < seconds < BODY_DEADLINE + HANG for seconds in open_for), open_for
    log = strict_server.log(mark)
    assert "Traceback" not in log and "Socket error" not in log, log
    cut = [line for line in log.splitlines() if "was not read within" in line]
    assert len(cut) == len(non_reading), log
    assert all(json.loads(line)["level"] == "INFO" for line in cut), cut


def test_a_slow_but_steady_reader_gets_every_answer(strict_server: RunningServer) -> None:
    """30 pipelined answers read 4 KiB at a time through a small receive buffer: longer than the
    deadline in all, each answer well within it (the deadline is per answer), every byte in order."""
    wsdl = wsdl_of(strict_server)
    count = 30
    # Paced so that the reads alone take 1.5 deadlines in all, whatever the machine's speed: each
    # recv returns at most 4 KiB, so there are at least count * len(wsdl) / 4 KiB pauses.
    pause = 1.5 * BODY_DEADLINE * 4096 / (count * len(wsdl))
    sock = connect(strict_server, timeout=HANG)
    started = time.monotonic()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * NON_READING_RECEIVE_BUFFER)
        sock.sendall(WSDL_GET * count)
        received = bytearray()
        while _whole_answers(bytes(received)) < count:
            data = sock.recv(4096)
            assert data, f"closed after {len(received)} bytes"
            received += data
            time.sleep(pause)
    finally:
        sock.close()
    answers = http_answers(bytes(received))
    assert len(answers) == count
    assert all(answer.status == 200 and answer.body == wsdl for answer in answers)
    assert time.monotonic() - started > BODY_DEADLINE, "read too fast to tell a per-answer deadline"


def read_to_the_end(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            raise AssertionError(f"reset after {len(received)} bytes") from None
        if not data:
            return bytes(received)
        received += data


def assert_whole_answers_then_close(received: bytes, wsdl: bytes, asked: int) -> None:
    """Every answer sent is whole, the last one says "Connection: close", and fewer came than were asked."""
    answers = http_answers(received)
    assert 1 <= len(answers) < asked, len(answers)
    assert all(answer.status == 200 and answer.body == wsdl for answer in answers)
    assert [answer.headers["connection"] for answer in answers] == ["keep-alive"] * (len(answers) - 1) + ["close"]


@needs_tcp_info
def test_a_stopping_worker_sends_the_answers_it_holds(sqlite_installation: Installation, tmp_path: Path) -> None:
    """At ``max_requests``, then on SIGTERM, with an answer held for a client that reads late:
    the worker sends it whole (within ``graceful_timeout``), answers the pipelined request behind
    it with "Connection: close", closes, and exits cleanly."""
    server = start_plain_gunicorn(sqlite_installation, tmp_path, {"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": "30"},
                                  "--workers", "1", "--max-requests", "30", "--max-requests-jitter", "0")
    try:
        wsdl = wsdl_of(server)
        (late,) = open_non_reading(server, 1, requests=40)
        time.sleep(1.0)  # an answer waits for the client; the worker reads no request behind it
        assert tcp_state(late) == TCP_ESTABLISHED
        with late:
            assert_whole_answers_then_close(read_to_the_end(late), wsdl, 40)  # the worker's 30th request
        _wait_until_serving(server)  # its successor
        (late,) = open_non_reading(server, 1)  # more answers than the kernel's buffers hold
        time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with late:
            assert_whole_answers_then_close(read_to_the_end(late), wsdl, PIPELINED)
        assert server.process.wait(HANG) == 0
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and "Socket error" not in log, log
