"""The published contract, in process: the checked-in WSDL and XSD are the service's,
message shapes are those of DESIGN 4, and the guard refuses what it must."""

from __future__ import annotations

import io
from typing import Any

import pytest
from lxml import etree

from api_support import SOAP_ENV, TNS, WSDL_FILE, XSD_FILE, envelope
from soap_service import server
from soap_service.api.application import wsdl_document, xsd_document
from soap_service.api.guard import MAX_BODY_BYTES, Refusal, inspect_envelope, soap_action_names
from soap_service.api.requestlog import field
from soap_service.api.service import OPERATIONS

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
    assert server.main(["wsdl", "--public-url", DEFAULT_PUBLIC_URL]) == 0
    assert capsys.readouterr().out.encode() == WSDL_FILE.read_bytes()
    assert server.main(["wsdl", "--xsd"]) == 0
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
    assert _elements("Hello") == [("Input", "xs:string", None)]
    assert _elements("HelloResponse") == [("HelloResult", "xs:string", None)]


def test_reissue_shapes_are_those_of_the_design() -> None:
    assert _elements("ReissueRequest") == [
        ("OrderRequestHeader", "tns:OrderRequestHeader", None),
        ("OrderParameters", "tns:OrderParameters", None),
        ("ReissueEmail", "xs:string", "0"),
    ]
    assert _elements("OrderRequestHeader") == [
        ("PartnerCode", "xs:string", None),
        ("AuthToken", "tns:AuthToken", None),
        ("PartnerOrderID", "xs:string", None),
        ("ReplayToken", "xs:string", "0"),
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
    assert lists == {"DNSName", "Error", "Warning", "CACertificate", "SubjectAttribute", "Contact", "Certificate"}


# ------------------------------------------------------------------------------------- the guard


def test_guard_reads_the_operation_of_a_valid_envelope() -> None:
    assert inspect_envelope(envelope("Reissue", "<o:Request/>"), OPERATIONS) == "Reissue"
    with_header = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/><s:Body><!-- c -->'
        f'<Hello xmlns="{TNS}"><Input>x</Input></Hello></s:Body></s:Envelope>'
    ).encode()
    assert inspect_envelope(with_header, OPERATIONS) == "Hello"


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
        (envelope("Revoke", "<o:Request/>"), "UnknownOperation"),
        (f'<e:Envelope xmlns:e="{SOAP_ENV}"><e:Body><Hello><Input/></Hello></e:Body></e:Envelope>'.encode(),
         "UnknownOperation"),
        (envelope("Hello", "<o:Input/>").replace(b"</soapenv:Body>", b"<o:Hello/></soapenv:Body>"),
         "UnknownOperation"),
    ],
)
def test_guard_refuses_what_is_not_a_request_of_ours(body: bytes, subcode: str) -> None:
    with pytest.raises(Refusal) as refused:
        inspect_envelope(body, OPERATIONS)
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

