"""Hostile and broken input over the wire: each refused before any work with a clean
SOAP fault (never an HTML page), the server answering the next request as if nothing
happened, and nothing of a request body in the server's log.

Every check of the log looks only at what was written during the test (``log_mark``):
the server is shared by the module. The server runs with a body read timeout of
:data:`BODY_READ_TIMEOUT` seconds, so that clients that stop sending are dealt with quickly.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from api_support import (
    SERVICE_PATH,
    TNS,
    Answer,
    RunningServer,
    assert_schema_valid,
    connect,
    envelope,
    fault_of,
    hello_envelope,
    http_answers,
    padded_hello_envelope,
    post,
    post_head,
    read_until_closed,
    request,
    running_server,
)
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner

ONE_MIB = 1024 * 1024
BODY_READ_TIMEOUT = 2.0
THREADS = 4
MARKER = "bodymarker-Zq7x"
"""In every hostile body: it must never reach the log."""


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(
        installation, tmp_path_factory, workers=1, threads=THREADS,
        extra_env={"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": str(BODY_READ_TIMEOUT)},
    )


def reissue_payload(partner_code: str, username: str, password: str, partner_order_id: str, csr: str) -> str:
    return (
        "<o:Reissue><o:Request><o:OrderRequestHeader>"
        f"<o:PartnerCode>{escape(partner_code)}</o:PartnerCode>"
        f"<o:AuthToken><o:UserName>{escape(username)}</o:UserName><o:Password>{escape(password)}</o:Password>"
        f"</o:AuthToken><o:PartnerOrderID>{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters></o:Request></o:Reissue>"
    )


def reissue_envelope(partner_code: str, username: str, password: str, partner_order_id: str, csr: str) -> bytes:
    payload = reissue_payload(partner_code, username, password, partner_order_id, csr)
    return envelope("Reissue", payload.removeprefix("<o:Reissue>").removesuffix("</o:Reissue>"))


def assert_client_fault(answer: Answer, subcode: str | None = None, *, faultcode: str = "Client") -> str:
    assert answer.status == 500, answer.body[:300]
    assert answer.content_type.startswith("text/xml"), answer.content_type
    assert b"<html" not in answer.body.lower() and b"traceback" not in answer.body.lower()
    code, message = fault_of(answer)
    expected = f"soap11env:{faultcode}" + (f".{subcode}" if subcode else "")
    assert code == expected if subcode else code.startswith(expected), code
    return message


def assert_logged(server: RunningServer, mark: int, *outcomes: str, secrets: tuple[str, ...] = (MARKER,)) -> list[str]:
    """The request lines written since ``mark``: one per outcome, in order; none of ``secrets`` in the log."""
    lines = server.request_lines(mark)
    assert [line.split(" outcome=", 1)[1].split(" ", 1)[0] for line in lines] == list(outcomes), lines
    log = server.log(mark)
    for secret in secrets:
        assert secret not in log
    assert "Traceback" not in log
    return lines


def assert_still_serving(server: RunningServer) -> None:
    sent = hello_envelope("still-here")
    answer = post(server, sent, soap_action='"Hello"')
    assert answer.status == 200 and b"still-here" in answer.body
    assert answer.root is not None
    assert_schema_valid(etree.fromstring(sent))
    assert_schema_valid(answer.root)


def _utf16(document: str) -> bytes:
    return document.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")


HELLO = hello_envelope(MARKER).decode()
XXE = (
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + HELLO.replace(f"<o:Input>{MARKER}</o:Input>", f"<o:Input>&xxe;{MARKER}</o:Input>").split("?>", 1)[1]
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
    + HELLO.replace(f"<o:Input>{MARKER}</o:Input>", f"<o:Input>&lol9;{MARKER}</o:Input>").split("?>", 1)[1]
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>'
    + HELLO.split("?>", 1)[1]
)
UTF8 = "text/xml; charset=utf-8"


@pytest.mark.parametrize(
    ("body", "content_type", "soap_action", "subcode"),
    [
        (XXE.encode(), UTF8, None, "DTDNotAllowed"),
        (LAUGHS.encode(), UTF8, None, "DTDNotAllowed"),
        (PARAMETER_ENTITY.encode(), UTF8, None, "DTDNotAllowed"),
        # In UTF-16 the bytes hold no "<!DOCTYPE": the scan runs on the decoded text.
        (_utf16(XXE), "text/xml; charset=utf-16", None, "DTDNotAllowed"),
        (_utf16(LAUGHS), "text/xml", None, "DTDNotAllowed"),
        (HELLO.encode()[:-20], UTF8, None, "MalformedXML"),
        (f"PartnerCode=DEMO&Password={MARKER}".encode(), UTF8, None, "MalformedXML"),
        (b"<a>" * 5000 + MARKER.encode() + b"</a>" * 5000, UTF8, None, "MalformedXML"),
        (b"", UTF8, None, "EmptyBody"),
        (HELLO.encode(), UTF8, '"Reissue"', "SOAPActionMismatch"),
        (HELLO.encode(), UTF8, "http://attacker.example/GetOrderByPartnerOrderID", "SOAPActionMismatch"),
        (envelope("DeleteEverything", f"<o:Request>{MARKER}</o:Request>"), UTF8, None, "UnknownOperation"),
        (HELLO.replace(TNS, "urn:someone-else").encode(), UTF8, None, "UnknownOperation"),
        # What the body is written in: one charset, said once, that the guard and spyne both read.
        (HELLO.encode("utf-16"), UTF8, None, "MalformedXML"),
        (HELLO.encode(), "text/xml; charset=foo", None, "UnsupportedCharset"),
        (HELLO.encode(), "text/xml; charset=utf-7", None, "UnsupportedCharset"),
        (HELLO.encode().replace(b'encoding="UTF-8"', b'encoding="UTF-7"'), "text/xml", None, "UnsupportedCharset"),
        (HELLO.encode(), "application/soap+xml; charset=utf-8", None, "UnsupportedMediaType"),
        (HELLO.encode(), "multipart/related; boundary=BB; type=text/xml", None, "UnsupportedMediaType"),
    ],
    ids=["xxe", "billion-laughs", "parameter-entity", "xxe-utf16", "billion-laughs-utf16-bom", "truncated",
         "form-data", "deep-nesting", "empty", "soapaction-other-op", "soapaction-uri-other-op",
         "unknown-operation", "foreign-namespace", "utf16-labelled-utf8", "unknown-charset", "utf7-charset",
         "utf7-declaration", "soap12-media-type", "multipart"],
)
def test_hostile_messages_get_a_client_fault(
    server: RunningServer, body: bytes, content_type: str, soap_action: str | None, subcode: str
) -> None:
    mark = server.log_mark()
    assert_client_fault(post(server, body, soap_action=soap_action, content_type=content_type), subcode)
    assert_logged(server, mark, f"fault:Client.{subcode}")
    assert_still_serving(server)


# ------------------------------------------------------ one document: the one the guard checked


def _smuggled_reissue(*, valid: bool) -> str:
    """A Reissue payload (password: MARKER), schema-valid or not (no CSR)."""
    payload = reissue_payload("P-NONE", "api", MARKER, "ORDER-1", fresh_key_csr())
    return payload if valid else re.sub("<o:OrderParameters>.*</o:OrderParameters>", "", payload, flags=re.S)


def _multipart_smuggle(inner: str) -> bytes:
    """A Hello whose Input is a CDATA section that, read as MIME (multipart/related; boundary=BB),
    holds a whole Reissue envelope as its first part."""
    smuggled = envelope("Reissue", inner.removeprefix("<o:Reissue>").removesuffix("</o:Reissue>"))
    part = smuggled.decode().split("?>", 1)[1]  # no XML declaration: spyne parses the part as text
    return hello_envelope(f"<![CDATA[\r\n--BB\r\n\r\n{part}\r\n--BB--\r\n]]>")


def _utf7(text: str) -> bytes:
    """``text`` in UTF-7, every character in its base64 form (Python writes "<" as it is)."""
    return b"+" + base64.b64encode(text.encode("utf-16-be")).rstrip(b"=") + b"-"


def _utf7_smuggle(inner: str) -> bytes:
    """A Body that read as UTF-8 holds a Hello; read as UTF-7, a comment hides the Hello and a Reissue
    appears (written in UTF-7's base64, which UTF-8 reads as text)."""
    hello = f"<o:Hello><o:Input>{MARKER}</o:Input></o:Hello>"
    hidden = _utf7("<!--") + hello.encode() + _utf7("-->") + _utf7(inner)
    return envelope("Hello", "<o:Input>x</o:Input>").replace(b"<o:Hello><o:Input>x</o:Input></o:Hello>", hidden)


@pytest.mark.parametrize("valid", [True, False], ids=["schema-valid", "schema-invalid"])
@pytest.mark.parametrize(
    ("smuggle", "content_type", "subcode"),
    [
        (_multipart_smuggle, "multipart/related; boundary=BB", "UnsupportedMediaType"),
        (_utf7_smuggle, "text/xml; charset=utf-7", "UnsupportedCharset"),
    ],
    ids=["multipart", "utf-7"],
)
def test_a_request_hidden_from_the_guard_never_reaches_spyne(
    server: RunningServer, smuggle: Callable[[str], bytes], content_type: str, subcode: str, valid: bool
) -> None:
    """spyne decoded the body again with the Content-Type's charset, or unpacked it as MIME: a Reissue
    the guard never saw (nor checked against the schema) reached the RA, logged as a Hello."""
    body = smuggle(_smuggled_reissue(valid=valid))
    mark = server.log_mark()
    answer = post(server, body, soap_action='"Hello"', content_type=content_type)
    assert_client_fault(answer, subcode)
    assert b"ReissueResponse" not in answer.body
    assert_logged(server, mark, f"fault:Client.{subcode}")
    assert "op=Reissue" not in server.log(mark)
    assert_still_serving(server)


def test_what_spyne_answers_is_what_the_guard_read(server: RunningServer, installation: Installation) -> None:
    """The MIME-looking text of a CDATA section is just text to both (here a ParseCSR's CSR: the
    RA reads the text and finds words around a PEM block); a Header is not passed on."""
    partner = new_partner(installation.ra)
    mime_text = _multipart_smuggle(_smuggled_reissue(valid=True)).decode()
    cdata = mime_text[mime_text.index("<![CDATA["):mime_text.index("]]>") + 3]
    body = envelope(
        "ParseCSR",
        f"<o:Request><o:QueryRequestHeader><o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>{partner.username}</o:UserName><o:Password>{partner.password}</o:Password>"
        f"</o:AuthToken></o:QueryRequestHeader><o:CSR>{cdata}</o:CSR></o:Request>",
    ).replace(
        b"<soapenv:Body>", b'<soapenv:Header><h:Note xmlns:h="urn:h" href="#x">n</h:Note></soapenv:Header>'
                           b"<soapenv:Body>"
    )
    mark = server.log_mark()
    answer = post(server, body, soap_action='"ParseCSR"')
    assert answer.status == 200 and answer.root is not None, answer.body[:300]
    assert answer.root.findtext(f".//{{{TNS}}}SuccessCode") == "-4007"
    assert "text outside its PEM block" in (answer.root.findtext(f".//{{{TNS}}}ErrorMessage") or "")
    assert_schema_valid(answer.root)
    assert_logged(server, mark, "-4007")
    assert "op=ParseCSR " in server.log(mark)


def test_a_boolean_with_whitespace_is_read_as_the_schema_reads_it(
    server: RunningServer, installation: Installation
) -> None:
    """xs:boolean collapses whitespace: the schema accepts " true ", which spyne read as false
    (and answered without the CertificateInfo that was asked for)."""
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    body = envelope(
        "GetOrderByPartnerOrderID",
        f"<o:Request><o:QueryRequestHeader><o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>{partner.username}</o:UserName><o:Password>{escape(partner.password)}</o:Password>"
        f"</o:AuthToken></o:QueryRequestHeader><o:PartnerOrderID>{order.partner_order_id}</o:PartnerOrderID>"
        "<o:OrderQueryOptions><o:ReturnCertificateInfo>\n  true \t</o:ReturnCertificateInfo>"
        "<o:ReturnFulfillment> 0 </o:ReturnFulfillment><o:ReturnCACerts> 1</o:ReturnCACerts>"
        "</o:OrderQueryOptions></o:Request>",
    )
    answer = post(server, body, soap_action='"GetOrderByPartnerOrderID"')
    assert answer.status == 200 and answer.root is not None, answer.body[:300]
    assert answer.root.findtext(f".//{{{TNS}}}SuccessCode") == "0"
    detail = answer.root.find(f".//{{{TNS}}}OrderDetail")
    assert detail is not None
    assert detail.find(f"{{{TNS}}}CertificateInfo") is not None
    fulfillment = detail.find(f"{{{TNS}}}Fulfillment")
    assert fulfillment is not None and fulfillment.find(f"{{{TNS}}}ServerCertificate") is None
    assert fulfillment.find(f"{{{TNS}}}CACertificates") is not None


@pytest.mark.parametrize(
    ("text", "encoding", "content_type"),
    [
        ("é ü ß", "utf-16", "text/xml; charset=utf-16"),
        ("é ü ß", "utf-16", "text/xml"),  # its byte order mark says UTF-16
        ("café", "iso-8859-1", "text/xml; charset=ISO-8859-1"),
        ("plain", "ascii", "text/xml; charset=us-ascii"),
    ],
)
def test_the_charsets_that_are_read(server: RunningServer, text: str, encoding: str, content_type: str) -> None:
    body = hello_envelope(text).decode().replace("UTF-8", encoding.upper()).encode(encoding)
    answer = post(server, body, soap_action='"Hello"', content_type=content_type)
    assert answer.status == 200 and answer.root is not None, answer.body[:300]
    assert answer.root.findtext(f".//{{{TNS}}}HelloResult") == text


def test_a_cdata_body_just_under_the_limit_is_served_though_it_grows_for_spyne(server: RunningServer) -> None:
    """Re-serialized, each "&" of a CDATA section takes five bytes: spyne must still take it
    (here in a Reissue's CSR, which the schema does not bound; the RA refuses it by its size)."""
    inner = (
        "<o:Request><o:OrderRequestHeader><o:PartnerCode>NOBODY</o:PartnerCode><o:AuthToken>"
        "<o:UserName>nobody</o:UserName><o:Password>not-a-password</o:Password></o:AuthToken>"
        "<o:PartnerOrderID>PO-1</o:PartnerOrderID></o:OrderRequestHeader>"
        "<o:OrderParameters><o:CSR><![CDATA[{}]]></o:CSR></o:OrderParameters></o:Request>"
    )
    text = "&" * (ONE_MIB - len(envelope("Reissue", inner.format(""))) - 10)
    answer = post(server, envelope("Reissue", inner.format(text)), soap_action='"Reissue"')
    assert answer.status == 200 and answer.root is not None, answer.body[:300]
    assert answer.root.findtext(f".//{{{TNS}}}SuccessCode") in ("-4001", "-4007")


def test_hello_echoes_at_most_256_characters(server: RunningServer) -> None:
    """Hello echoes its Input: unbounded, 1 MiB of CDATA ampersands came back as 5 MiB of
    ``&amp;`` to a client that need not read it. The schema bounds Input."""
    answer = post(server, hello_envelope("h" * 256), soap_action='"Hello"')
    assert answer.status == 200 and answer.root is not None
    assert answer.root.findtext(f".//{{{TNS}}}HelloResult") == "h" * 256
    message = assert_client_fault(post(server, hello_envelope("h" * 257), soap_action='"Hello"'),
                                  "SchemaValidationError")
    assert "Hello/Input" in message
    text = "&" * (ONE_MIB - len(hello_envelope("<![CDATA[]]>")) - 10)
    answer = post(server, hello_envelope(f"<![CDATA[{text}]]>"), soap_action='"Hello"')
    assert_client_fault(answer, "SchemaValidationError")
    assert len(answer.body) < 2048


def test_a_header_block_marked_must_understand_gets_a_must_understand_fault(server: RunningServer) -> None:
    def with_header(attributes: str) -> bytes:
        return hello_envelope(MARKER).replace(
            b"<soapenv:Body>",
            f'<soapenv:Header><w:Security xmlns:w="urn:w" {attributes}>{MARKER}</w:Security></soapenv:Header>'
            "<soapenv:Body>".encode(),
        )

    mark = server.log_mark()
    answer = post(server, with_header('soapenv:mustUnderstand="1"'), soap_action='"Hello"')
    message = assert_client_fault(answer, faultcode="MustUnderstand")
    assert "header block 1 " in message and "Security" not in message and "urn:w" not in message
    assert fault_of(answer)[0] == "soap11env:MustUnderstand"
    assert_logged(server, mark, "fault:MustUnderstand")
    for attributes in ('soapenv:mustUnderstand="0"', 'soapenv:actor="urn:other" soapenv:mustUnderstand="1"'):
        answer = post(server, with_header(attributes), soap_action='"Hello"')
        assert answer.status == 200 and MARKER.encode() in answer.body


def test_a_message_that_breaks_the_schema_gets_a_client_fault(server: RunningServer) -> None:
    header = (
        "<o:QueryRequestHeader><o:PartnerCode>X</o:PartnerCode><o:AuthToken><o:UserName>u</o:UserName>"
        f"<o:Password>{MARKER}</o:Password></o:AuthToken></o:QueryRequestHeader>"
    )
    mark = server.log_mark()
    missing_csr = envelope("ParseCSR", f"<o:Request>{header}</o:Request>")
    message = assert_client_fault(post(server, missing_csr, soap_action='"ParseCSR"'), "SchemaValidationError")
    assert message.endswith("ParseCSR/Request: a required element is missing (expected: CSR)"), message
    extra_element = envelope("Hello", "<o:Input>x</o:Input><o:Extra>1</o:Extra>")
    message = assert_client_fault(post(server, extra_element), "SchemaValidationError")
    # The element's name is the client's: the fault says where and what, not which name.
    assert message.endswith("Hello: unexpected element not in the schema (nothing more belongs here)"), message
    not_a_boolean = envelope(
        "GetOrderByPartnerOrderID",
        f"<o:Request>{header}<o:PartnerOrderID>O-1</o:PartnerOrderID><o:OrderQueryOptions>"
        "<o:ReturnCertificateInfo>maybe</o:ReturnCertificateInfo></o:OrderQueryOptions></o:Request>",
    )
    message = assert_client_fault(post(server, not_a_boolean), "SchemaValidationError")
    assert "ReturnCertificateInfo" in message and "boolean" in message and "maybe" not in message
    assert_logged(server, mark, *["fault:Client.SchemaValidationError"] * 3)
    assert_still_serving(server)


# -------------------------------------------------------------------- sizes and Content-Length


def test_a_body_over_one_mib_is_refused(server: RunningServer) -> None:
    large = padded_hello_envelope(ONE_MIB + 16)
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
    answer = post(server, padded_hello_envelope(ONE_MIB - 10), soap_action='"Hello"')
    assert answer.status == 200 and answer.root is not None
    assert answer.root.findtext(f".//{{{TNS}}}HelloResult") == "padded"


def test_bodies_that_stop_arriving_do_not_stop_the_server(server: RunningServer) -> None:
    """Clients that announce 1000 bytes, send 8 and wait, twice as many as the server has threads
    (gthread read the body on a blocking socket: every thread stuck for good; then each thread
    waited BODY_READ_TIMEOUT and a Hello behind them waited two rounds of that). The worker now
    waits for bodies on its main loop: the Hello is answered at once, before their deadline, and
    each slow client gets Client.RequestTimeout when the deadline of its whole body passes, its
    connection closed at once (not after gunicorn's 2 s "graceful" linger)."""
    slow_clients = 2 * THREADS
    mark = server.log_mark()
    stalled: list[socket.socket] = []
    try:
        for _ in range(slow_clients):
            sock = connect(server, timeout=30)
            sock.sendall(post_head(1000) + b"<soapenv")
            stalled.append(sock)
        time.sleep(0.2)  # the server has accepted them all before the Hello
        started = time.monotonic()
        status, _headers, body = request(
            server, "POST", SERVICE_PATH, hello_envelope("after-the-slow-ones"),
            {"Content-Type": UTF8}, timeout=2 * BODY_READ_TIMEOUT + 10,
        )
        waited = time.monotonic() - started
        assert status == 200 and b"after-the-slow-ones" in body
        assert waited < BODY_READ_TIMEOUT - 0.5, waited
        for sock in stalled:
            answers = http_answers(read_until_closed(sock))
            assert len(answers) == 1, answers
            assert_client_fault(answers[0], "RequestTimeout")
        closed = time.monotonic() - started
        assert closed < BODY_READ_TIMEOUT + 4, closed
    finally:
        for sock in stalled:
            sock.close()
    lines = server.request_lines(mark)
    assert sum("outcome=fault:Client.RequestTimeout http=500" in line for line in lines) == slow_clients
    assert sum("op=Hello" in line and "outcome=0 " in line for line in lines) == 1
    assert "Traceback" not in server.log(mark)
    assert_still_serving(server)


def test_a_body_shorter_than_its_content_length_is_refused(server: RunningServer) -> None:
    """The client says 1000 bytes, sends a whole Hello of fewer, and stops sending."""
    sent = hello_envelope(MARKER)
    mark = server.log_mark()
    with connect(server) as sock:
        sock.sendall(post_head(1000) + sent)
        sock.shutdown(socket.SHUT_WR)
        answers = http_answers(read_until_closed(sock))
    assert len(answers) == 1
    message = assert_client_fault(answers[0], "BadRequest")
    assert f"after {len(sent)} of the 1000 bytes" in message
    assert_logged(server, mark, "fault:Client.BadRequest")
    assert_still_serving(server)


def test_a_malformed_chunked_body_is_the_clients_fault(server: RunningServer) -> None:
    mark = server.log_mark()
    with connect(server) as sock:
        sock.sendall(
            f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {UTF8}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{MARKER}\r\n<soapenv:Envelope>\r\n0\r\n\r\n".encode()
        )
        answers = http_answers(read_until_closed(sock))
    assert len(answers) == 1
    # gunicorn reads the chunks as the guard reads the body: a client fault, not an incident
    # (whose traceback quoted the bad chunk, body bytes, in the log).
    assert_client_fault(answers[0], "BadRequest")
    assert_logged(server, mark, "fault:Client.BadRequest")
    assert_still_serving(server)


def test_other_paths_and_methods_are_plain_refusals(server: RunningServer) -> None:
    not_allowed: set[tuple[str, str | None, bytes]] = set()
    for method, path, expected in [
        ("GET", "/", 404), ("GET", "/api/order", 405), ("PUT", "/api/order", 405), ("GET", "/api/order?x", 405),
        ("DELETE", "/api/order?wsdl", 405), ("POST", "/api/other", 404),
    ]:
        status, headers, body = request(server, method, path, b"" if method in ("PUT", "POST") else None)
        assert status == expected, (method, path, status)
        assert b"<html" not in body.lower() and not headers["content-type"].startswith("text/html")
        if status == 405:
            not_allowed.add((headers["content-type"], headers.get("allow"), body))
    # One 405 answer, whether the method or the document asked for is what is not served.
    assert not_allowed == {
        ("text/plain; charset=utf-8", "GET, HEAD, POST", b"POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n")
    }
    assert_still_serving(server)


# ------------------------------------------------------------------------------------ the log


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
    mark = server.log_mark()
    for body, status in exchanges:
        answer = post(server, body, soap_action='"Reissue"')
        assert answer.status == status
        if status == 200:
            assert answer.root is not None
            assert_schema_valid(answer.root)

    # A keep-alive request whose Content-Length ends where the password starts: the rest of
    # the body is read as the next request, and gunicorn refuses it, quoting its "method" (the
    # password up to the first space; the CSR's CRLF line ends make that line a request line).
    crlf_csr = csr.replace("\n", "\r\n")
    full = reissue_envelope(partner.code, partner.username, partner.password, order.partner_order_id, crlf_csr)
    cut = full.index(partner.password.encode())
    with connect(server) as sock:
        sock.sendall(post_head(cut, extra='SOAPAction: "Reissue"\r\n') + full)
        answers = http_answers(read_until_closed(sock))
    assert len(answers) == 2, answers
    assert_client_fault(answers[0], "MalformedXML")
    assert answers[1].status == 400

    log = server.log(mark)
    for secret in (partner.password, wrong, *csr_lines):
        assert secret not in log
    assert "BEGIN CERTIFICATE REQUEST" not in log
    assert re.search(r"Invalid request from ip=127\.0\.0\.1: \w+ \(what was read is not logged\)", log), log
    ours = f"partner={partner.code} "
    lines = [line for line in server.request_lines(mark) if ours in line]
    assert len(lines) == 2  # the refused ones never got as far as naming a partner
    assert re.search(rf"op=Reissue partner={partner.code} partner_order_id={order.partner_order_id} "
                     rf"order_id={order.order_id} outcome=0 http=200 ms=[0-9.]+ incident=- ", lines[0])
    assert "outcome=-4001 http=200" in lines[1]
    outcomes = [line.split(" outcome=", 1)[1].split(" ", 1)[0] for line in server.request_lines(mark)]
    assert outcomes == ["0", "-4001", "fault:Client.MalformedXML", "fault:Client.SchemaValidationError",
                        "fault:Client.DTDNotAllowed", "fault:Client.MalformedXML"]
