"""Hostile and broken input over the wire: each refused before any work with a clean
SOAP Client fault (never an HTML page), the server answering the next request as if
nothing happened, and nothing of a request body in the server's log."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from api_support import (
    SOAP_ENV,
    TNS,
    Answer,
    RunningServer,
    assert_schema_valid,
    envelope,
    fault_of,
    hello_envelope,
    post,
    request,
    running_server,
)
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner

ONE_MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


def reissue_envelope(partner_code: str, username: str, password: str, partner_order_id: str, csr: str) -> bytes:
    return envelope(
        "Reissue",
        "<o:Request><o:OrderRequestHeader>"
        f"<o:PartnerCode>{escape(partner_code)}</o:PartnerCode>"
        f"<o:AuthToken><o:UserName>{escape(username)}</o:UserName><o:Password>{escape(password)}</o:Password>"
        f"</o:AuthToken><o:PartnerOrderID>{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters></o:Request>",
    )


def assert_client_fault(answer: Answer, subcode: str | None = None) -> str:
    assert answer.status == 500, answer.body[:300]
    assert answer.content_type.startswith("text/xml"), answer.content_type
    assert b"<html" not in answer.body.lower() and b"traceback" not in answer.body.lower()
    code, message = fault_of(answer)
    expected = "soap11env:Client" + (f".{subcode}" if subcode else "")
    assert code == expected if subcode else code.startswith(expected), code
    return message


def assert_still_serving(server: RunningServer) -> None:
    sent = hello_envelope("still-here")
    answer = post(server, sent, soap_action='"Hello"')
    assert answer.status == 200 and b"still-here" in answer.body
    assert answer.root is not None
    assert_schema_valid(etree.fromstring(sent))
    assert_schema_valid(answer.root)


HELLO = hello_envelope().decode()
XXE = (
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + HELLO.replace("<o:Input>ping</o:Input>", "<o:Input>&xxe;</o:Input>").split("?>", 1)[1]
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
    + HELLO.replace("<o:Input>ping</o:Input>", "<o:Input>&lol9;</o:Input>").split("?>", 1)[1]
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>'
    + HELLO.split("?>", 1)[1]
)


@pytest.mark.parametrize(
    ("body", "soap_action", "subcode"),
    [
        (XXE.encode(), None, "DTDNotAllowed"),
        (LAUGHS.encode(), None, "DTDNotAllowed"),
        (PARAMETER_ENTITY.encode(), None, "DTDNotAllowed"),
        (HELLO.encode()[:-20], None, "MalformedXML"),
        (b"PartnerCode=DEMO&Password=secret", None, "MalformedXML"),
        (b"<a>" * 5000 + b"</a>" * 5000, None, "MalformedXML"),
        (b"", None, "EmptyBody"),
        (HELLO.encode(), '"Reissue"', "SOAPActionMismatch"),
        (HELLO.encode(), "http://attacker.example/GetOrderByPartnerOrderID", "SOAPActionMismatch"),
        (HELLO.replace(SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope").encode(), None, "VersionMismatch"),
        (envelope("DeleteEverything", "<o:Request/>"), None, "UnknownOperation"),
        (HELLO.replace(TNS, "urn:someone-else").encode(), None, "UnknownOperation"),
    ],
    ids=["xxe", "billion-laughs", "parameter-entity", "truncated", "form-data", "deep-nesting", "empty",
         "soapaction-other-op", "soapaction-uri-other-op", "soap12", "unknown-operation", "foreign-namespace"],
)
def test_hostile_messages_get_a_client_fault(
    server: RunningServer, body: bytes, soap_action: str | None, subcode: str
) -> None:
    assert_client_fault(post(server, body, soap_action=soap_action), subcode)
    assert_still_serving(server)


def test_a_message_that_breaks_the_schema_gets_a_client_fault(server: RunningServer) -> None:
    missing_csr = envelope(
        "ParseCSR",
        "<o:Request><o:QueryRequestHeader><o:PartnerCode>X</o:PartnerCode><o:AuthToken><o:UserName>u</o:UserName>"
        "<o:Password>p</o:Password></o:AuthToken></o:QueryRequestHeader></o:Request>",
    )
    message = assert_client_fault(post(server, missing_csr, soap_action='"ParseCSR"'))
    assert "CSR" in message
    not_an_int = envelope("Hello", "<o:Input>x</o:Input><o:Extra>1</o:Extra>")
    assert_client_fault(post(server, not_an_int))
    assert_still_serving(server)


def test_a_body_over_one_mib_is_refused(server: RunningServer) -> None:
    padding = "x" * (ONE_MIB + 16)
    large = hello_envelope(padding)
    assert_client_fault(post(server, large, soap_action='"Hello"'), "RequestTooLarge")
    assert_still_serving(server)
    # The same without a Content-Length: chunked, counted as it is read.
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        chunks = (large[i : i + 65536] for i in range(0, len(large), 65536))
        connection.request("POST", "/api/order", body=chunks, encode_chunked=True,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
    answer.root = etree.fromstring(answer.body)
    assert_client_fault(answer, "RequestTooLarge")
    assert_still_serving(server)


def test_a_post_without_content_type_is_read_as_soap_1_1(server: RunningServer) -> None:
    status, headers, body = request(server, "POST", "/api/order", hello_envelope("untyped"), {})
    assert status == 200 and headers["content-type"].startswith("text/xml") and b"untyped" in body


def test_just_under_the_limit_is_served(server: RunningServer) -> None:
    text = "y" * (ONE_MIB - len(hello_envelope("")) - 10)
    answer = post(server, hello_envelope(text), soap_action='"Hello"')
    assert answer.status == 200 and len(answer.body) > len(text)


def test_other_paths_and_methods_are_plain_refusals(server: RunningServer) -> None:
    for method, path, expected in [
        ("GET", "/", 404), ("GET", "/api/order", 405), ("PUT", "/api/order", 405), ("GET", "/api/order?x", 405),
        ("POST", "/api/other", 404),
    ]:
        status, headers, body = request(server, method, path, b"" if method in ("PUT", "POST") else None)
        assert status == expected, (method, path, status)
        assert b"<html" not in body.lower() and not headers["content-type"].startswith("text/html")
    assert_still_serving(server)


def test_the_log_has_one_line_per_request_and_never_a_password_or_a_csr(
    server: RunningServer, installation: Installation
) -> None:
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    csr = fresh_key_csr(("example.com", "www.example.com"))
    csr_lines = [line for line in csr.splitlines() if line and not line.startswith("-----")]
    wrong = "wrong-PASSWORD-" + partner.password[-8:]
    exchanges = [
        (reissue_envelope(partner.code, partner.username, partner.password, order.partner_order_id, csr), 200),
        (reissue_envelope(partner.code, partner.username, wrong, order.partner_order_id, csr), 200),
        (reissue_envelope(partner.code, partner.username, partner.password, order.partner_order_id, csr)[:-40], 500),
        (reissue_envelope(partner.code, partner.username, partner.password, order.partner_order_id, csr)
         .replace(b"<o:OrderParameters>", b"<o:Bogus/><o:OrderParameters>"), 500),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY p "' + partner.password.encode() + b'">]>'
         + reissue_envelope(partner.code, partner.username, "&p;", order.partner_order_id, csr).split(b"?>", 1)[1],
         500),
    ]
    assert_schema_valid(etree.fromstring(exchanges[0][0]))
    for body, status in exchanges:
        answer = post(server, body, soap_action='"Reissue"')
        assert answer.status == status
        if status == 200:
            assert answer.root is not None
            assert_schema_valid(answer.root)
    log = server.log()
    for secret in (partner.password, wrong, *csr_lines):
        assert secret not in log
    assert "BEGIN CERTIFICATE REQUEST" not in log
    ours = f"partner={partner.code} "
    lines = [line for line in log.splitlines() if "soap_service.api.requests" in line and ours in line]
    assert len(lines) == 2  # the refused ones never got as far as naming a partner
    assert re.search(rf"op=Reissue partner={partner.code} partner_order_id={order.partner_order_id} "
                     rf"order_id={order.order_id} outcome=0 http=200 ms=[0-9.]+ incident=- ", lines[0])
    assert "outcome=-4001 http=200" in lines[1]
    for subcode in ("MalformedXML", "SchemaValidationError", "DTDNotAllowed"):
        assert f"outcome=fault:Client.{subcode}" in log
