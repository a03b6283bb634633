"""Request IDs and JSON log lines on a real server (docs/operations.md; docs/design.md, "Serving"):
the client's ``X-Request-ID`` is echoed when valid, replaced when hostile and made when absent, on
every front end's answer (SOAP, faults, portal, status, OCSP, health, metrics); every log line is
a JSON object, and every line a request wrote carries its ID; no secret reaches the log."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest

from api_support import (
    RunningServer,
    connect,
    envelope,
    hello_envelope,
    http_answers,
    post,
    read_until_closed,
    request,
    running_server,
)
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner

GENERATED = re.compile(r"[0-9a-f]{32}")
PATHS = [
    ("POST", "/api/order"),  # a SOAP fault (no body)
    ("GET", "/api/order?wsdl"),
    ("GET", "/nowhere"),
    ("GET", "/portal/geotrust/"),
    ("GET", "/crl/ROOT.crl"),
    ("GET", "/ca/ROOT.crt"),
    ("POST", "/ocsp"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2)


def _lines(server: RunningServer, since: int) -> list[dict[str, object]]:
    """Every line the server wrote since ``since``, each parsed: each must be a JSON object."""
    parsed = []
    for line in server.log(since).splitlines():
        if not line.strip():
            continue
        value = json.loads(line)  # fails the test on a line that is not JSON
        assert isinstance(value, dict) and {"ts", "level", "logger", "msg", "pid"} <= value.keys(), line
        parsed.append(value)
    return parsed


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_a_valid_request_id_is_echoed_on_every_front_end(server: RunningServer, method: str, path: str) -> None:
    request_id = "client-" + secrets.token_hex(4) + ".A_b"
    status, headers, _ = request(server, method, path, b"" if method == "POST" else None,
                                 {"X-Request-ID": request_id})
    assert headers["x-request-id"] == request_id, (status, headers)


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_a_request_id_is_made_when_there_is_none(server: RunningServer, method: str, path: str) -> None:
    _, headers, _ = request(server, method, path, b"" if method == "POST" else None)
    assert GENERATED.fullmatch(headers["x-request-id"]), headers


@pytest.mark.parametrize("hostile", [
    "a" * 65,  # one over the bound
    "x" * 4000,
    "has space",
    "quote\"brace}",
    "semi;colon",
    "ünïcode",
    "",
])
def test_a_hostile_request_id_is_replaced(server: RunningServer, hostile: str) -> None:
    mark = server.log_mark()
    raw = (f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: {hostile}\r\nConnection: close\r\n\r\n").encode()
    with connect(server) as sock:
        sock.sendall(raw)
        answers = http_answers(read_until_closed(sock))
    assert len(answers) == 1 and answers[0].status == 200
    assert GENERATED.fullmatch(answers[0].headers["x-request-id"])
    if hostile.strip():
        assert hostile.strip() not in server.log(mark)


@pytest.mark.parametrize("smuggled", [b"ok\r\nX-Injected: 1", b"ok\rX-Injected: 1", b"ok\nX-Injected: 1",
                                      b"ok\x00zero", b"ok\x7fdel"])
def test_control_characters_never_reach_an_answer_header_nor_a_log_line(
    server: RunningServer, smuggled: bytes
) -> None:
    """CR, LF, NUL and DEL in the header: gunicorn refuses the request (400), or a CRLF ends the
    header where it stands (the ID is then ``ok``, the rest another request header), or the ID is
    replaced; never an extra answer header, never a forged log line."""
    mark = server.log_mark()
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + smuggled + b"\r\nConnection: close\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(raw)
        answers = http_answers(read_until_closed(sock))
    for answer in answers:
        assert "x-injected" not in answer.headers
        if answer.status == 200:
            assert re.fullmatch(r"ok|[0-9a-f]{32}", answer.headers["x-request-id"]), answer.headers
    for line in _lines(server, mark):
        assert "X-Injected" not in str(line.get("request_id", "")), line


def test_every_line_of_a_request_is_json_with_its_request_id(
    installation: Installation, server: RunningServer
) -> None:
    """A Reissue with a valid ID, a refused one (wrong password), and a request that fails inside
    (an incident): each line the request wrote names its ID; no password, CSR or passphrase is logged."""
    ra = installation.ra
    partner = new_partner(ra)
    order = new_order(ra, partner, product="RapidSSL", names=("example.com",))
    csr = fresh_key_csr(("example.com",))
    wrong = "wrong-" + secrets.token_hex(8)
    mark = server.log_mark()
    ids = []
    for password in (partner.password, wrong):
        request_id = "reissue-" + secrets.token_hex(6)
        ids.append(request_id)
        body = envelope("Reissue", (
            "<o:Request><o:OrderRequestHeader>"
            f"<o:PartnerCode>{partner.code}</o:PartnerCode>"
            f"<o:AuthToken><o:UserName>{partner.username}</o:UserName><o:Password>{escape(password)}</o:Password>"
            f"</o:AuthToken><o:PartnerOrderID>{order.order.partner_order_id}</o:PartnerOrderID>"
            f"</o:OrderRequestHeader><o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters>"
            "</o:Request>"))
        answer = post(server, body, soap_action='"Reissue"', headers={"X-Request-ID": request_id})
        assert answer.status == 200 and answer.headers["x-request-id"] == request_id
    lines = _lines(server, mark)
    request_lines = [line for line in lines if line["logger"] == "soap_service.api.requests"]
    assert [line["request_id"] for line in request_lines] == ids
    assert [line["outcome"] for line in request_lines] == ["0", "-4001"]
    first = request_lines[0]
    assert (first["op"], first["partner"], first["partner_order_id"], first["http"]) == (
        "Reissue", partner.code, order.order.partner_order_id, 200)
    assert isinstance(first["ms"], float) and first["client"] == "127.0.0.1"
    assert first["msg"].startswith(f"op=Reissue partner={partner.code} ")  # type: ignore[union-attr]
    for line in lines:
        if "request_id" in line:
            assert line["request_id"] in ids, line
    log = server.log(mark)
    for secret in (partner.password, wrong, installation.environ["SOAP_SERVICE_CA_PASSPHRASE"]):
        assert secret not in log
    assert "CERTIFICATE REQUEST" not in log


def test_hostile_values_stay_inside_their_json_keys(server: RunningServer) -> None:
    """A partner code with a newline and a forged key in it, longer than the cut: one line, the
    value cut to 64 characters (and "..."), no key of its own."""
    hostile = 'X\n{"op": "Forged", "outcome": "0"}\r\n' + "A" * 200
    body = envelope("GetOrderByPartnerOrderID", (
        "<o:Request><o:QueryRequestHeader>"
        f"<o:PartnerCode>{escape(hostile)}</o:PartnerCode>"
        "<o:AuthToken><o:UserName>api</o:UserName><o:Password>x</o:Password></o:AuthToken>"
        "</o:QueryRequestHeader><o:PartnerOrderID>PO-1</o:PartnerOrderID></o:Request>"))
    mark = server.log_mark()
    request_id = "hostile-" + secrets.token_hex(4)
    post(server, body, soap_action='"GetOrderByPartnerOrderID"', headers={"X-Request-ID": request_id})
    lines = [line for line in _lines(server, mark) if line.get("request_id") == request_id]
    request_lines = [line for line in lines if line["logger"] == "soap_service.api.requests"]
    assert len(request_lines) == 1, lines
    partner = request_lines[0]["partner"]
    assert isinstance(partner, str) and partner.startswith('X\n{"op": "Forged"'), request_lines
    assert len(partner) == 64 + len("...") and partner.endswith("A..."), partner
    assert request_lines[0]["op"] == "GetOrderByPartnerOrderID"
    assert all(line.get("op") != "Forged" for line in lines)


def test_health_answers_are_counted_but_not_logged_at_info(server: RunningServer) -> None:
    mark = server.log_mark()
    for _ in range(3):
        assert request(server, "GET", "/healthz")[0] == 200
    assert post(server, hello_envelope(), soap_action='"Hello"').status == 200
    loggers = [line["logger"] for line in _lines(server, mark)]
    assert "soap_service.health.requests" not in loggers and "soap_service.api.requests" in loggers
