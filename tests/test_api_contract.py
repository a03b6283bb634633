"""The published contract, in process: the checked-in WSDL and XSD are the service's,
message shapes are those of docs/design.md, "The SOAP contract", the guard refuses what it must and hands spyne
what it checked; the serving settings (gunicorn's) that the guard relies on."""

from __future__ import annotations

import io
import logging
import os
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree

from api_support import SOAP_ENV, TNS, WSDL_FILE, XSD_FILE, envelope
from soap_service import gunicorn_conf, server
from soap_service.api.application import wsdl_document, xsd_document
from soap_service.api.envelope import (
    read_request,
    refuse_mandatory_headers,
    soap_action_names,
    spyne_envelope,
)
from soap_service.api.faults import internal_detail
from soap_service.api.header_blocks import SOAP_ACTOR_NEXT
from soap_service.api.http_body import MAX_BODY_BYTES, request_charset
from soap_service.api.refusal import Refusal
from soap_service.api.requestlog import field
from soap_service.api.service import OPERATIONS
from soap_service.config import ConfigurationError
from soap_service.main import run

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


def _schema() -> etree._Element:
    return etree.fromstring(xsd_document())


def _complex_type(name: str) -> etree._Element:
    found = _schema().find(f"{{{XS}}}complexType[@name='{name}']")
    assert found is not None, name
    return found


def _elements(type_name: str) -> list[tuple[str, str, str | None]]:
    """(name, type, minOccurs) of a complex type's sequence."""
    return [
        (e.get("name") or "", e.get("type") or "", e.get("minOccurs"))
        for e in _complex_type(type_name).iterfind(f"{{{XS}}}sequence/{{{XS}}}element")
    ]


def _shape(element: etree._Element) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(str(e.tag), sorted(e.attrib.items())) for e in element.iter() if isinstance(e.tag, str)]


def test_checked_in_wsdl_is_the_service_wsdl() -> None:
    assert WSDL_FILE.read_bytes() == wsdl_document(DEFAULT_PUBLIC_URL), (
        "wsdl/order.wsdl is stale: regenerate it with "
        "`soap-service wsdl --public-url http://127.0.0.1:8080 > wsdl/order.wsdl`"
    )


def test_checked_in_xsd_is_the_wsdl_schema() -> None:
    assert XSD_FILE.read_bytes() == xsd_document(), (
        "schemas/order.xsd is stale: regenerate it with `soap-service wsdl --xsd > schemas/order.xsd`"
    )
    definitions = etree.fromstring(WSDL_FILE.read_bytes())
    inline = definitions.find(f"{{{WSDL}}}types/{{{XS}}}schema")
    assert inline is not None
    assert _shape(inline) == _shape(_schema())
    etree.XMLSchema(_schema())  # a schema lxml accepts


def test_checked_in_drop_in_wsdls_are_the_served_ones() -> None:
    """The drop-in services' WSDLs (tracker issue 12) are checked in too: wsdl/webtrust-order.wsdl
    and wsdl/webtrust-query.wsdl (``make wsdl``; tests/test_webtrust_contract.py checks more)."""
    from soap_service.webtrust.application import SERVICES
    from soap_service.webtrust.application import wsdl_document as drop_in_wsdl

    for name in SERVICES:
        checked_in = WSDL_FILE.parent / f"webtrust-{name}.wsdl"
        stale = f"{checked_in.name} is stale: regenerate it with `make wsdl`"
        assert checked_in.read_bytes() == drop_in_wsdl(name, DEFAULT_PUBLIC_URL), stale


def test_soap_address_follows_the_public_url() -> None:
    definitions = etree.fromstring(wsdl_document("https://api.example.net"))
    address = definitions.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{SOAP_BINDING}}}address")
    assert address is not None
    assert address.get("location") == "https://api.example.net/api/order"
    binding = definitions.find(f"{{{WSDL}}}binding/{{{SOAP_BINDING}}}binding")
    assert binding is not None
    assert binding.get("style") == "document"
    assert binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"


def test_wsdl_command_prints_the_published_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["wsdl", "--public-url", DEFAULT_PUBLIC_URL]) == 0
    assert capsys.readouterr().out.encode() == WSDL_FILE.read_bytes()
    assert run(["wsdl", "--xsd"]) == 0
    assert capsys.readouterr().out.encode() == XSD_FILE.read_bytes()


def test_every_operation_is_document_literal_with_its_soap_action() -> None:
    definitions = etree.fromstring(WSDL_FILE.read_bytes())
    operations = definitions.findall(f"{{{WSDL}}}binding/{{{WSDL}}}operation")
    assert {o.get("name") for o in operations} == set(OPERATIONS)
    for operation in operations:
        soap = operation.find(f"{{{SOAP_BINDING}}}operation")
        assert soap is not None
        assert soap.get("soapAction") == operation.get("name")
        assert soap.get("style") == "document"
        for body in operation.iter(f"{{{SOAP_BINDING}}}body"):
            assert body.get("use") == "literal"


@pytest.mark.parametrize(
    ("operation", "request_type", "result_type"),
    [
        ("Reissue", "ReissueRequest", "ReissueResult"),
        ("ValidateOrderParameters", "ReissueRequest", "ValidateOrderParametersResult"),
        ("ParseCSR", "ParseCSRRequest", "ParseCSRResult"),
        ("GetOrderByPartnerOrderID", "GetOrderByPartnerOrderIDRequest", "GetOrderByPartnerOrderIDResult"),
    ],
)
def test_wrapped_messages_carry_one_request_and_one_result(operation: str, request_type: str, result_type: str) -> None:
    assert _elements(operation) == [("Request", f"tns:{request_type}", None)]
    assert _elements(operation + "Response") == [(operation + "Result", f"tns:{result_type}", None)]


def test_hello_echoes_input() -> None:
    assert _elements("Hello") == [("Input", "tns:Hello_InputType", None)]
    assert _elements("HelloResponse") == [("HelloResult", "xs:string", None)]


def test_reissue_shapes_are_those_of_the_design() -> None:
    assert _elements("ReissueRequest") == [
        ("OrderRequestHeader", "tns:OrderRequestHeader", None),
        ("OrderParameters", "tns:OrderParameters", None),
        ("ReissueEmail", "xs:string", "0"),
    ]
    assert _elements("OrderRequestHeader") == [
        ("PartnerCode", "xs:string", None),
        ("AuthToken", "tns:AuthToken", "0"),
        ("PartnerOrderID", "xs:string", None),
        ("ReplayToken", "tns:ReplayTokenText", "0"),
        ("UseReplayToken", "xs:boolean", "0"),
        ("ProductCode", "tns:ProductCodeText", "0"),
        ("ApiVersion", "tns:ApiVersionText", "0"),
    ]
    assert _elements("AuthToken") == [("UserName", "xs:string", None), ("Password", "xs:string", None)]
    assert _elements("OrderParameters") == [
        ("CSR", "xs:string", None),
        ("DNSNames", "tns:DNSNames", "0"),
        ("SignatureHashAlgorithm", "xs:string", "0"),
    ]
    assert _elements("DNSNames") == [("DNSName", "xs:string", "0")]
    assert _elements("ReissueResult") == [
        ("OrderResponseHeader", "tns:OrderResponseHeader", None),
        ("OrderID", "xs:string", "0"),
        ("Certificate", "tns:Certificate", "0"),
    ]
    assert _elements("OrderResponseHeader") == [
        ("PartnerOrderID", "xs:string", None),
        ("SuccessCode", "xs:int", None),
        ("Errors", "tns:Errors", "0"),
        ("Warnings", "tns:Warnings", "0"),
        ("Timestamp", "xs:dateTime", None),
    ]
    assert _elements("Error") == [
        ("ErrorCode", "xs:int", None),
        ("ErrorField", "xs:string", "0"),
        ("ErrorMessage", "xs:string", None),
    ]
    assert _elements("Warning") == [("WarningCode", "xs:int", None), ("WarningMessage", "xs:string", None)]
    assert _elements("Certificate") == [
        ("SerialNumber", "xs:string", None),
        ("NotBefore", "xs:dateTime", None),
        ("NotAfter", "xs:dateTime", None),
        ("ServerCertificate", "xs:string", None),
        ("CACertificates", "tns:CACertificates", None),
        ("PKCS7", "xs:string", None),
    ]
    assert _elements("CACertificate") == [("Type", "xs:string", None), ("CACert", "xs:string", None)]


def test_no_element_is_nillable_and_integers_are_xs_int() -> None:
    schema = _schema()
    assert schema.get("elementFormDefault") == "qualified"
    assert schema.get("targetNamespace") == TNS
    elements = list(schema.iter(f"{{{XS}}}element"))
    assert not [e.get("name") for e in elements if e.get("nillable") == "true"]
    assert not [e.get("name") for e in elements if e.get("type") in ("xs:integer", "xs:long", "xs:decimal")]
    assert {e.get("type") for e in elements if e.get("name") in ("SuccessCode", "ErrorCode", "KeySize")} == {"xs:int"}
    lists = {e.get("name") for e in elements if e.get("maxOccurs") == "unbounded"}
    assert lists == {"DNSName", "Error", "Warning", "CACertificate", "SubjectAttribute", "Contact", "Certificate",
                     "SerialNumber", "OrderChange"}


# ------------------------------------------------------------------------------------- the guard


def test_guard_reads_the_operation_of_a_valid_envelope() -> None:
    assert read_request(envelope("Reissue", "<o:Request/>"), OPERATIONS).operation == "Reissue"
    with_header = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/><s:Body><!-- c -->'
        f'<Hello xmlns="{TNS}"><Input>x</Input></Hello></s:Body></s:Envelope>'
    ).encode()
    assert read_request(with_header, OPERATIONS).operation == "Hello"


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        (b"", "EmptyBody"),
        (b"<a><b></a>", "MalformedXML"),
        (b"\xff\xfe<<<", "MalformedXML"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "y">]><x>&e;</x>', "DTDNotAllowed"),
        ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><x/>'.encode("utf-16"), "DTDNotAllowed"),
        (b'<x xmlns="urn:other"/>', "NotSOAP"),
        (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
         "VersionMismatch"),
        (f'<e:Envelope xmlns:e="{SOAP_ENV}"><e:Body/></e:Envelope>'.encode(), "UnknownOperation"),
        (envelope("DeleteOrder", "<o:Request/>"), "UnknownOperation"),
        (f'<e:Envelope xmlns:e="{SOAP_ENV}"><e:Body><Hello><Input/></Hello></e:Body></e:Envelope>'.encode(),
         "UnknownOperation"),
        (envelope("Hello", "<o:Input/>").replace(b"</soapenv:Body>", b"<o:Hello/></soapenv:Body>"),
         "UnknownOperation"),
    ],
)
def test_guard_refuses_what_is_not_a_request_of_ours(body: bytes, subcode: str) -> None:
    with pytest.raises(Refusal) as refused:
        read_request(body, OPERATIONS)
    assert refused.value.subcode == subcode


@pytest.mark.parametrize(
    ("action", "names"),
    [
        ("", True),
        ('""', True),
        ('"Reissue"', True),
        ("Reissue", True),
        (f'"{TNS}/Reissue"', True),
        ('"urn:x#Reissue"', True),
        ('"Hello"', False),
        ('"ReissueX"', False),
        ('"XReissue"', False),
    ],
)
def test_soap_action_must_name_the_body_operation(action: str, names: bool) -> None:
    assert soap_action_names(action, "Reissue") is names


def test_log_fields_cannot_forge_a_line() -> None:
    assert field("DEMO-SSL123") == "DEMO-SSL123"
    assert field(None) == "-"
    hostile = field("x\nop=Reissue outcome=0 " + "A" * 200)
    assert "\n" not in hostile and len(hostile) < 90 and hostile.startswith('"')


def _call(app: Any, body: bytes, **environ: str) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda _data: None

    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/order", "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }
    base.update(environ)
    content = b"".join(app(base, start_response))
    return captured["status"], captured["headers"], content


def test_an_oversized_body_is_refused_unread(installation: Any) -> None:
    from soap_service.api.application import create_wsgi_app

    app = create_wsgi_app(installation.ra)
    status, headers, content = _call(app, b"", CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))
    assert status.startswith("500") and headers["Content-Type"].startswith("text/xml")
    assert b"Client.RequestTooLarge" in content
    status, _headers, content = _call(app, b"", REQUEST_METHOD="PUT")
    assert status.startswith("405") and b"<html" not in content.lower()



# ------------------------------------------------------- what the guard reads, and what it hands spyne


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        (None, None),
        ("", None),
        ("text/xml", None),
        ("text/xml; charset=utf-8", "utf-8"),
        ('TEXT/XML;Charset="UTF-8"', "utf-8"),
        ("text/xml; charset=us-ascii", "ascii"),
        ("text/xml; charset=ISO-8859-1", "iso8859-1"),
        ("text/xml; charset=utf-16", "utf-16"),
        ("text/xml; charset=UTF-16LE", "utf-16-le"),
        ("text/xml; charset=utf-8; charset=utf-8", "utf-8"),
    ],
)
def test_the_charsets_a_request_may_be_written_in(content_type: str | None, charset: str | None) -> None:
    assert request_charset(content_type) == charset


@pytest.mark.parametrize(
    ("content_type", "subcode"),
    [
        ("multipart/related; boundary=BB; type=text/xml", "UnsupportedMediaType"),
        ('multipart/related; type="application/xop+xml"; boundary=BB', "UnsupportedMediaType"),
        ("application/soap+xml; charset=utf-8", "UnsupportedMediaType"),
        ("application/xml", "UnsupportedMediaType"),
        ("text/plain; charset=utf-8", "UnsupportedMediaType"),
        ("text/xml; charset=utf-7", "UnsupportedCharset"),
        ("text/xml; charset=utf-32", "UnsupportedCharset"),
        ("text/xml; charset=foo", "UnsupportedCharset"),
        ("text/xml; charset=", "UnsupportedCharset"),
        ("text/xml; charset=utf-8; charset=utf-7", "UnsupportedCharset"),
    ],
)
def test_other_content_types_and_charsets_are_refused(content_type: str, subcode: str) -> None:
    with pytest.raises(Refusal) as refused:
        request_charset(content_type)
    assert refused.value.subcode == subcode


def test_the_content_type_charset_decides_over_the_document() -> None:
    """RFC 7303: the charset parameter overrides the XML declaration; without one, the document decides."""
    latin = envelope("Hello", "<o:Input>café</o:Input>").replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    assert read_request(latin, OPERATIONS, charset="utf-8").payload.findtext(f"{{{TNS}}}Input") == "café"
    assert read_request(latin, OPERATIONS).payload.findtext(f"{{{TNS}}}Input") == "cafÃ©"
    utf16 = envelope("Hello", "<o:Input>é</o:Input>").decode().replace("UTF-8", "UTF-16").encode("utf-16")
    assert read_request(utf16, OPERATIONS, charset="utf-16").payload.findtext(f"{{{TNS}}}Input") == "é"
    assert read_request(utf16, OPERATIONS).payload.findtext(f"{{{TNS}}}Input") == "é"
    with pytest.raises(Refusal) as refused:
        read_request(utf16, OPERATIONS, charset="utf-8")
    assert refused.value.subcode == "MalformedXML"
    utf7 = envelope("Hello", "<o:Input>x</o:Input>").replace(b'encoding="UTF-8"', b'encoding="UTF-7"')
    with pytest.raises(Refusal) as refused:
        read_request(utf7, OPERATIONS)
    assert refused.value.subcode == "UnsupportedCharset"


def test_a_declaration_is_refused_whatever_the_body_is_written_in() -> None:
    """The scan runs on the decoded text: in UTF-16 the bytes hold no "<!DOCTYPE" (and a
    billion laughs there made lxml fail on its amplification limit, a MalformedXML)."""
    for document in ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "y">]><x>&e;</x>',
                     '<?xml version="1.0" encoding="UTF-16"?><!doctype x><x/>'):
        encoded = document.encode("utf-16")
        assert b"<!DOCTYPE" not in encoded and b"<!ENTITY" not in encoded
        for charset in (None, "utf-16"):
            with pytest.raises(Refusal) as refused:
                read_request(encoded, OPERATIONS, charset=charset)
            assert refused.value.subcode == "DTDNotAllowed"


def test_spyne_gets_the_checked_operation_alone_in_utf_8() -> None:
    body = (
        f'<?xml version="1.0" encoding="UTF-16"?><s:Envelope xmlns:s="{SOAP_ENV}" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<s:Header><h:Token xmlns:h="urn:h" href="#x">secret</h:Token></s:Header><s:Body>'
        f'<o:Hello xmlns:o="{TNS}"><o:Input xsi:type="xsd:string">é<![CDATA[ <--BB--> ]]><!-- c --></o:Input>'
        "</o:Hello></s:Body></s:Envelope>"
    ).encode("utf-16")
    clean = spyne_envelope(read_request(body, OPERATIONS, charset="utf-16"))
    assert b"encoding" not in clean and b"Header" not in clean and b"secret" not in clean
    root = etree.fromstring(clean)  # UTF-8, as its Content-Type will say
    assert [child.tag for child in root] == [f"{{{SOAP_ENV}}}Body"]
    payload = root[0][0]
    assert payload.findtext(f"{{{TNS}}}Input") == "é <--BB--> "
    assert payload[0].nsmap["xsd"] == XS  # the prefix of a QName in a value still resolves
    # The schema accepted the xsi:type; spyne reads the declared type, and refused the ones it
    # has no class for (xs:token...) with a fault quoting the attribute: it is not passed on.
    assert payload[0].get("{http://www.w3.org/2001/XMLSchema-instance}type") is None


def test_a_header_block_that_must_be_understood_is_refused() -> None:
    def header(attributes: str) -> bytes:
        return envelope("Hello", "<o:Input>x</o:Input>").replace(
            b"<soapenv:Body>", f'<soapenv:Header><w:Security xmlns:w="urn:w" {attributes}/></soapenv:Header>'
                               "<soapenv:Body>".encode()
        )

    for attributes in ('soapenv:mustUnderstand="1"', 'soapenv:mustUnderstand="true"',
                       f'soapenv:mustUnderstand="1" soapenv:actor="{SOAP_ACTOR_NEXT}"'):
        with pytest.raises(Refusal) as refused:
            refuse_mandatory_headers(read_request(header(attributes), OPERATIONS).envelope)
        assert refused.value.faultcode == "MustUnderstand"
    for attributes in ('soapenv:mustUnderstand="0"', "", 'mustUnderstand="1"',
                       'soapenv:mustUnderstand="1" soapenv:actor="urn:someone-else"'):
        refuse_mandatory_headers(read_request(header(attributes), OPERATIONS).envelope)


def test_internal_errors_are_declared_in_the_contract() -> None:
    assert _elements("InternalError") == [("ErrorCode", "xs:int", None), ("IncidentID", "xs:string", None)]
    assert _schema().find(f"{{{XS}}}element[@name='InternalError']") is not None
    detail = etree.fromstring(etree.tostring(internal_detail("INC-0123456789AB")))
    assert etree.XMLSchema(_schema()).validate(detail)
    definitions = etree.fromstring(WSDL_FILE.read_bytes())
    for path in (f"{{{WSDL}}}portType/{{{WSDL}}}operation", f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        operations = definitions.findall(path)
        assert {o.get("name") for o in operations} == set(OPERATIONS)
        for operation in operations:
            assert [f.get("name") for f in operation.iterfind(f"{{{WSDL}}}fault")] == ["InternalError"]


# ------------------------------------------------------------------------- serving: settings, log


def test_the_body_read_timeout_setting() -> None:
    assert gunicorn_conf.body_read_timeout({}) == gunicorn_conf.DEFAULT_BODY_READ_TIMEOUT == 10
    assert gunicorn_conf.body_read_timeout({"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": " 2.5 "}) == 2.5
    for bad in ("0", "-1", "ten", "nan", "inf", "301"):
        with pytest.raises(ConfigurationError):
            gunicorn_conf.body_read_timeout({"SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS": bad})


def test_serve_refuses_a_bad_body_read_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS", "ten")
    assert run(["serve", "--quiet"]) == 2
    assert "SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS must be a number" in capsys.readouterr().err


def test_pre_request_bounds_the_reads_of_the_request_socket() -> None:
    left, right = socket.socketpair()
    try:
        request = SimpleNamespace(unreader=SimpleNamespace(sock=left))
        gunicorn_conf.pre_request(None, request)
        assert left.gettimeout() == gunicorn_conf.body_read_timeout()
        gunicorn_conf.pre_request(None, SimpleNamespace())  # a request without a socket: nothing to do
    finally:
        left.close()
        right.close()


def test_post_request_closes_a_connection_whose_body_failed_in_its_thread() -> None:
    for failed, closed in ((True, True), (False, False)):
        left, right = socket.socketpair()
        try:
            request = SimpleNamespace(unreader=SimpleNamespace(sock=left), body=SimpleNamespace(failed=failed))
            gunicorn_conf.post_request(None, request, {}, None)
            right.settimeout(0.5)
            if closed:
                assert right.recv(10) == b""  # the peer sees the end at once
            else:
                with pytest.raises(TimeoutError):
                    right.recv(10)
        finally:
            left.close()
            right.close()
    gunicorn_conf.post_request(None, SimpleNamespace(), {}, None)  # nothing to close


def test_gunicorn_invalid_request_lines_keep_the_address_and_the_error_class() -> None:
    logger = logging.getLogger("test.gunicorn.error")
    logger.addFilter(gunicorn_conf.InvalidRequestFilter())
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("Invalid HTTP method: 'pw-SECRET</o:Password>'")
        except ValueError:
            logger.warning("Invalid request from ip=127.0.0.1: Invalid HTTP method: 'pw-SECRET</o:Password>'")
        logger.warning("Invalid request from ip=::1: Invalid HTTP method: 'pw-SECRET'")
        logger.warning("worker %s ready", 42)
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert messages[0] == "Invalid request from ip=127.0.0.1: ValueError (what was read is not logged)"
    assert messages[1] == "Invalid request from ip=::1: invalid request (what was read is not logged)"
    assert messages[2] == "worker 42 ready"
    config = gunicorn_conf.logconfig_dict
    assert config["loggers"]["gunicorn.error"]["filters"] == ["invalid_request"]
    assert config["filters"]["invalid_request"]["()"] is gunicorn_conf.InvalidRequestFilter


def test_heartbeat_files_stay_in_memory_when_they_can() -> None:
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert gunicorn_conf.worker_tmp_dir == "/dev/shm"
    else:
        assert gunicorn_conf.worker_tmp_dir is None


@pytest.mark.parametrize(
    ("bind", "public_url", "warns"),
    [
        ("127.0.0.1:9000", "http://127.0.0.1:8080", True),
        ("0.0.0.0:9000", "http://localhost:8080", True),
        ("10.0.0.5:8080", "http://10.0.0.5", True),
        ("127.0.0.1:8080", "http://127.0.0.1:8080", False),
        ("127.0.0.1:8080", "https://api.example.com", False),  # behind a reverse proxy
        ("fd://3", "http://127.0.0.1:8080", False),
        ("unix:/run/soap.sock", "http://127.0.0.1:8080", False),
    ],
)
def test_serve_warns_when_the_wsdl_would_name_another_port(bind: str, public_url: str, warns: bool) -> None:
    warning = server.bind_mismatch(bind, public_url)
    assert (warning is not None) is warns
    if warning is not None:
        assert bind.rpartition(":")[2] in warning and "soap:address" in warning
