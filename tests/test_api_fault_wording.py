"""Faults name the element and the rule, never the value (issue 6, defect 6).

Over the wire: hostile values in every typed field of a request, unexpected elements and
attributes with secret-looking names and content, header blocks, charsets and SOAPActions
that carry a secret: the secret is never in the answer, nor in the server's log. In
process: spyne's own client faults are answered in our words, the words for every rule of
the schema (the request schema has only booleans: a schema of our namespace with the other
types stands in), and lxml's error path followed without a blow-up.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from api_support import (
    SOAP_ENV,
    TNS,
    RunningServer,
    envelope,
    fault_of,
    hello_envelope,
    post,
    running_server,
)
from conftest import TestInstallation as Installation
from factory import new_order, new_partner
from soap_service.api.application import create_wsgi_app, xsd_document
from soap_service.api.guard import SOAPGuard
from soap_service.api.schema import UNKNOWN_ELEMENT, OperationSchema, resolve_path

SECRET = "TopSecret-42"
"""In every hostile value and name below: never in an answer or in the log."""
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
OPTIONS = "GetOrderByPartnerOrderID/Request/OrderQueryOptions"
NOT_A_BOOLEAN = "is not a boolean (true, false, 1 or 0)"
FLAGS = ("ReturnCertificateInfo", "ReturnFulfillment", "ReturnCACerts", "ReturnPKCS7Cert", "ReturnCertificateHistory")


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2)


def query_header(password: str = "pw") -> str:
    return (
        "<o:QueryRequestHeader><o:PartnerCode>P-NONE</o:PartnerCode><o:AuthToken><o:UserName>api</o:UserName>"
        f"<o:Password>{password}</o:Password></o:AuthToken></o:QueryRequestHeader>"
    )


def get_order(options: str, *, header: str | None = None, extra: str = "") -> bytes:
    return envelope(
        "GetOrderByPartnerOrderID",
        f"<o:Request>{header or query_header()}<o:PartnerOrderID>O-1</o:PartnerOrderID>{extra}"
        f"<o:OrderQueryOptions>{options}</o:OrderQueryOptions></o:Request>",
    )


def assert_secret_kept(server: RunningServer, mark: int, body: bytes) -> None:
    assert SECRET.lower().encode() not in body.lower(), body[:600]
    assert SECRET.lower() not in server.log(mark).lower()


def schema_fault(server: RunningServer, body: bytes) -> str:
    mark = server.log_mark()
    answer = post(server, body)
    assert answer.status == 500, answer.body[:300]
    code, message = fault_of(answer)
    assert code == "soap11env:Client.SchemaValidationError", (code, message)
    assert message.startswith("the request does not follow the schema: "), message
    assert_secret_kept(server, mark, answer.body)
    assert server.request_lines(mark)[-1].count("outcome=fault:Client.SchemaValidationError http=500") == 1
    return message.removeprefix("the request does not follow the schema: ")


# --------------------------------------------------------------------------------- the reproducer


def test_the_value_of_a_boolean_is_not_in_the_fault(server: RunningServer, installation: Installation) -> None:
    """As reported: lxml's "'TopSecret-42' is not a valid value of the atomic type 'xs:boolean'"
    was the faultstring."""
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    header = query_header(partner.password).replace("P-NONE", partner.code).replace(">api<", f">{partner.username}<")
    body = envelope(
        "GetOrderByPartnerOrderID",
        f"<o:Request>{header}<o:PartnerOrderID>{order.partner_order_id}</o:PartnerOrderID><o:OrderQueryOptions>"
        f"<o:ReturnCertificateInfo>{SECRET}</o:ReturnCertificateInfo></o:OrderQueryOptions></o:Request>",
    )
    said = schema_fault(server, body)
    assert said == f"{OPTIONS}/ReturnCertificateInfo: {NOT_A_BOOLEAN}"
    assert "xs:" not in said and "atomic" not in said


# ------------------------------------------------------------------------- hostile values, by field


HOSTILE_BOOLEANS = [
    SECRET,
    f"yes {SECRET}",
    f"{SECRET}' is not a valid value of the atomic type 'xs:int",  # a forged message tail
    f"<![CDATA[{SECRET}]]>",
    f"1{SECRET}",
    f"{SECRET}&amp;&lt;x&gt;",
]


@pytest.mark.parametrize("flag", FLAGS)
def test_no_hostile_boolean_is_quoted(server: RunningServer, flag: str) -> None:
    for value in HOSTILE_BOOLEANS:
        said = schema_fault(server, get_order(f"<o:{flag}>{value}</o:{flag}>"))
        assert said == f"{OPTIONS}/{flag}: {NOT_A_BOOLEAN}"


FOREIGN = f'xmlns:s="urn:{SECRET}:namespace"'
UNEXPECTED = f"<s:{SECRET}Element {FOREIGN}>{SECRET}-content</s:{SECRET}Element>"
LONG_PREFIX = f"{SECRET}{'x' * 150}"  # libxml2 cuts a long prefix:name in its error path


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (get_order("", extra=UNEXPECTED),
         "GetOrderByPartnerOrderID/Request: unexpected element not in the schema (expected: OrderQueryOptions)"),
        (get_order(f"<o:ReturnCACerts>1</o:ReturnCACerts>{UNEXPECTED}"),
         "GetOrderByPartnerOrderID/Request/OrderQueryOptions: unexpected element not in the schema "
         "(expected: ReturnPKCS7Cert or ReturnCertificateHistory)"),
        (get_order("", header=query_header(f"pw</o:Password>{UNEXPECTED}<o:Password>pw")),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken: unexpected element not in the schema "
         "(nothing more belongs here)"),
        (get_order("", header=query_header(f"pw{UNEXPECTED}")),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: holds an element where only "
         "text belongs"),
        (get_order("", extra=f'<{SECRET}Element xmlns="urn:{SECRET}">{SECRET}</{SECRET}Element>'),
         "GetOrderByPartnerOrderID/Request: unexpected element not in the schema (expected: OrderQueryOptions)"),
        (get_order("", extra=f"<o:{SECRET}Element>{SECRET}</o:{SECRET}Element>"),
         "GetOrderByPartnerOrderID/Request: unexpected element not in the schema (expected: OrderQueryOptions)"),
        (get_order("", extra=f"<o:PartnerOrderID>{SECRET}</o:PartnerOrderID>"),
         "GetOrderByPartnerOrderID/Request: unexpected element PartnerOrderID (expected: OrderQueryOptions)"),
        (get_order("", extra=f'<{LONG_PREFIX}:x xmlns:{LONG_PREFIX}="urn:x">{SECRET}</{LONG_PREFIX}:x>'),
         "GetOrderByPartnerOrderID/Request: unexpected element not in the schema (expected: OrderQueryOptions)"),
        (get_order("", header=query_header().replace("<o:AuthToken>", f"<o:AuthToken>{SECRET}")),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken: holds text where only elements belong"),
        (get_order("", header=query_header().replace("<o:Password>", f'<o:Password {SECRET}="{SECRET}">')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries an attribute that is "
         "not allowed"),
        (get_order("", header=query_header().replace("<o:Password>", f'<o:Password {FOREIGN} s:a="{SECRET}">')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries an attribute that is "
         "not allowed"),
        (get_order("", header=query_header().replace(
            "<o:Password>", f'<o:Password xmlns:xsi="{XSI}" xmlns:xs="{XS}" xsi:type="xs:{SECRET}">')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries an xsi:type that is "
         "not the element's type"),
        (get_order("", header=query_header().replace(
            "<o:Password>", f'<o:Password xmlns:xsi="{XSI}" xmlns:{SECRET}="{XS}" xsi:type="{SECRET}:int">')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries an xsi:type that is "
         "not the element's type"),
        (get_order("", header=query_header(SECRET + " x").replace(
            "<o:Password>", f'<o:Password xmlns:xsi="{XSI}" xmlns:xs="{XS}" xsi:type="xs:language">')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: is not a valid value of its type"),
        (get_order("", header=query_header().replace(
            "<o:Password>pw</o:Password>", f'<o:Password xmlns:xsi="{XSI}" xsi:nil="{SECRET}"/>')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries an attribute whose "
         "value is not valid"),
        (get_order("", header=query_header().replace(
            "<o:Password>pw</o:Password>", f'<o:Password xmlns:xsi="{XSI}" xsi:nil="true"/>')),
         "GetOrderByPartnerOrderID/Request/QueryRequestHeader/AuthToken/Password: carries xsi:nil, which no "
         "element allows: leave an optional element out"),
        (envelope("Hello", f"<o:Input>{SECRET}</o:Input>{UNEXPECTED}"),
         "Hello: unexpected element not in the schema (nothing more belongs here)"),
    ],
    ids=["in-request", "in-options", "in-auth-token", "in-a-string", "default-namespace", "our-namespace",
         "repeated-element", "long-prefix", "text-in-complex", "attribute", "foreign-attribute", "xsi-type-unknown",
         "xsi-type-not-derived", "xsi-type-derived-invalid", "xsi-nil-invalid", "xsi-nil", "in-hello"],
)
def test_unexpected_names_and_content_are_not_quoted(server: RunningServer, body: bytes, said: str) -> None:
    assert schema_fault(server, body) == said


def typed_csr_request(attributes: str) -> bytes:
    """A ParseCSR (an unbounded ``xs:string`` field, unlike Hello's Input) whose CSR element
    carries ``attributes``; its credentials are nobody's, so it is answered -4001."""
    return envelope(
        "ParseCSR",
        "<o:Request><o:QueryRequestHeader><o:PartnerCode>NOBODY</o:PartnerCode><o:AuthToken>"
        "<o:UserName>nobody</o:UserName><o:Password>not-a-password</o:Password></o:AuthToken>"
        f"</o:QueryRequestHeader><o:CSR {attributes}>ping</o:CSR></o:Request>",
    )


def test_an_xsi_type_the_schema_accepts_is_read_not_refused(server: RunningServer) -> None:
    """spyne refused an xsi:type it has no class for (``xs:token`` on an ``xs:string``, which the
    schema accepts) with a Client.ValidationError quoting the attribute, prefix and all."""
    body = typed_csr_request(f'xmlns:xsi="{XSI}" xmlns:{SECRET}="{XS}" xsi:type="{SECRET}:token"')
    mark = server.log_mark()
    answer = post(server, body)
    assert answer.status == 200, answer.body[:400]
    assert answer.root is not None and answer.root.findtext(f".//{{{TNS}}}SuccessCode") == "-4001"
    assert_secret_kept(server, mark, answer.body)


@pytest.mark.parametrize(
    ("body", "headers", "content_type", "faultcode"),
    [
        (hello_envelope().replace(
            b"<soapenv:Body>",
            f'<soapenv:Header><{SECRET}Block xmlns="urn:{SECRET}" soapenv:mustUnderstand="1">{SECRET}'
            f"</{SECRET}Block></soapenv:Header><soapenv:Body>".encode()),
         {}, "text/xml; charset=utf-8", "MustUnderstand"),
        (hello_envelope(), {"SOAPAction": f'"urn:{SECRET}#Reissue"'}, "text/xml; charset=utf-8",
         "Client.SOAPActionMismatch"),
        (hello_envelope(), {}, f"text/xml; charset={SECRET}", "Client.UnsupportedCharset"),
        (hello_envelope(), {}, f"application/{SECRET}+xml", "Client.UnsupportedMediaType"),
        (hello_envelope().replace(b'encoding="UTF-8"', f'encoding="{SECRET}"'.encode()), {}, "text/xml",
         "Client.UnsupportedCharset"),
        (envelope(f"{SECRET}Operation", SECRET), {}, "text/xml; charset=utf-8", "Client.UnknownOperation"),
        (hello_envelope(f"{SECRET}</o:Wrong>"), {}, "text/xml; charset=utf-8", "Client.MalformedXML"),
        (f"<{SECRET}/>".encode(), {}, "text/xml; charset=utf-8", "Client.NotSOAP"),
        (hello_envelope(SECRET).replace(b"<o:Input>", "<o:Input>\u00e9".encode("latin-1")), {},
         "text/xml; charset=utf-8", "Client.MalformedXML"),
    ],
    ids=["must-understand", "soap-action", "charset", "media-type", "declared-encoding", "operation",
         "not-well-formed", "not-soap", "not-utf8"],
)
def test_no_other_fault_quotes_the_request(
    server: RunningServer, body: bytes, headers: dict[str, str], content_type: str, faultcode: str
) -> None:
    mark = server.log_mark()
    answer = post(server, body, headers=headers, content_type=content_type)
    assert answer.status == 500, answer.body[:300]
    assert fault_of(answer)[0] == f"soap11env:{faultcode}"
    assert_secret_kept(server, mark, answer.body)


# ---------------------------------------------------------------------- spyne's own client faults


def _call(app: Any, body: bytes) -> tuple[str, bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        return lambda _data: None

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/order", "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }
    content = b"".join(app(environ, start_response))
    return captured["status"], content


def test_a_client_fault_of_spyne_is_answered_in_our_words(caplog: pytest.LogCaptureFixture) -> None:
    spyne_fault = (
        f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV}"><soap11env:Body><soap11env:Fault>'
        f"<faultcode>soap11env:Client.ValidationError</faultcode><faultstring>The value '{SECRET}' could not be "
        "validated.</faultstring><faultactor></faultactor></soap11env:Fault></soap11env:Body></soap11env:Envelope>"
    ).encode()

    def refusing_soap_app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
        return [spyne_fault]

    app = SOAPGuard(refusing_soap_app, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        status, content = _call(app, hello_envelope())
    assert status.startswith("500")
    fault = etree.fromstring(content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap11env:Client.SchemaValidationError"
    assert fault.findtext("faultstring") == (
        "the request does not follow the schema: a value cannot be read as its declared type (Hello)"
    )
    assert SECRET not in content.decode() and SECRET not in caplog.text
    assert "spyne refused a Hello request the schema accepted (Client.ValidationError)" in caplog.text
    assert "outcome=fault:Client.SchemaValidationError http=500" in caplog.text


def test_spyne_reads_every_xsi_type_the_schema_accepts(installation: Installation) -> None:
    """In process, with spyne itself: each string type derived from xs:string, on a field of each
    operation level, is read (the copy spyne gets carries no xsi:type)."""
    app = create_wsgi_app(installation.ra)
    for kind in ("string", "token", "normalizedString", "Name", "NCName", "NMTOKEN", "language"):
        body = typed_csr_request(f'xmlns:xsi="{XSI}" xmlns:{SECRET}="{XS}" xsi:type="{SECRET}:{kind}"')
        status, content = _call(app, body)
        assert status.startswith("200"), (kind, content[:400])
        assert SECRET not in content.decode()
    typed_request = hello_envelope("ping").replace(
        b"<o:Hello>", f'<o:Hello xmlns:xsi="{XSI}" xsi:type="o:Hello">'.encode()
    )
    assert _call(app, typed_request)[0].startswith("200")


# --------------------------------------------------------------- the words for every rule, in process


RULES_XSD = f"""<xs:schema xmlns:xs="{XS}" xmlns:tns="{TNS}" targetNamespace="{TNS}" elementFormDefault="qualified">
  <xs:simpleType name="Level"><xs:restriction base="xs:string">
    <xs:enumeration value="DV"/><xs:enumeration value="OV"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="Code"><xs:restriction base="xs:string">
    <xs:maxLength value="8"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="Short"><xs:restriction base="xs:string">
    <xs:minLength value="200"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="Hex"><xs:restriction base="xs:string">
    <xs:pattern value="[0-9a-f]+"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="Small"><xs:restriction base="xs:int">
    <xs:maxInclusive value="9"/></xs:restriction></xs:simpleType>
  <xs:element name="Typed"><xs:complexType><xs:sequence>
    <xs:element name="Count" type="xs:int" minOccurs="0"/>
    <xs:element name="Big" type="xs:integer" minOccurs="0"/>
    <xs:element name="Long" type="xs:long" minOccurs="0"/>
    <xs:element name="When" type="xs:dateTime" minOccurs="0"/>
    <xs:element name="Day" type="xs:date" minOccurs="0"/>
    <xs:element name="Amount" type="xs:decimal" minOccurs="0"/>
    <xs:element name="Level" type="tns:Level" minOccurs="0"/>
    <xs:element name="Code" type="tns:Code" minOccurs="0"/>
    <xs:element name="Short" type="tns:Short" minOccurs="0"/>
    <xs:element name="Hex" type="tns:Hex" minOccurs="0"/>
    <xs:element name="Small" type="tns:Small" minOccurs="0"/>
    <xs:element name="Flag" type="xs:boolean" minOccurs="0"/>
    <xs:element name="Empty" minOccurs="0"><xs:complexType/></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>""".encode()


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("Count", SECRET, "is not a 32-bit integer"),
        ("Count", "99999999999", "is not a 32-bit integer"),
        ("Big", SECRET, "is not an integer"),
        ("Long", f"1{SECRET}", "is not a 64-bit integer"),
        ("When", f"2026-03-15T{SECRET}", "is not a date and time (such as 2026-03-15T10:00:00Z)"),
        ("Day", SECRET, "is not a date (such as 2026-03-15)"),
        ("Amount", SECRET, "is not a decimal number"),
        ("Level", SECRET, "is not one of the allowed values"),
        ("Code", SECRET * 2, "is too long"),
        ("Short", SECRET, "is too short"),
        ("Hex", SECRET, "is not in the required format"),
        ("Small", "4217", "is out of range"),
        ("Flag", SECRET, NOT_A_BOOLEAN),
        ("Empty", SECRET, "must be empty"),
    ],
)
def test_each_rule_is_named_without_the_value(field: str, value: str, rule: str) -> None:
    schema = OperationSchema(RULES_XSD)
    breach = schema.breach(etree.fromstring(f'<Typed xmlns="{TNS}"><{field}>{value}</{field}></Typed>'))
    assert breach is not None
    assert str(breach) == f"Typed/{field}: {rule}"
    assert value not in str(breach)


def test_an_attribute_value_is_not_taken_for_the_elements() -> None:
    """xsi:nil with a value that is no boolean: lxml's datatype error is about the attribute."""
    schema = OperationSchema(RULES_XSD)
    payload = etree.fromstring(f'<Typed xmlns="{TNS}" xmlns:xsi="{XSI}"><Count xsi:nil="{SECRET}"/></Typed>')
    assert str(schema.breach(payload)) == "Typed/Count: carries an attribute whose value is not valid"


def test_libxml2_paths_are_followed_as_it_counts() -> None:
    """``*`` steps count every element sibling; ``prefix:name`` steps the siblings of the same name
    and prefix (even when the prefix is bound to another namespace); a step that does not resolve
    ends the walk."""
    payload = etree.fromstring(
        f'<o:Op xmlns:o="{TNS}"><o:A/><o:A><o:B/><o:A xmlns:o="urn:x"/></o:A><C xmlns="urn:d"/><C/></o:Op>'
    )
    chain, resolved = resolve_path(payload, "/o:Op/o:A[2]/o:A")
    assert resolved and chain[-1].tag == "{urn:x}A"
    chain, resolved = resolve_path(payload, "/o:Op/*[3]")
    assert resolved and chain[-1].tag == "{urn:d}C"
    chain, resolved = resolve_path(payload, "/o:Op/C")
    assert resolved and chain[-1].tag == "C"
    chain, resolved = resolve_path(payload, "/o:Op/o:A[7]/o:B")
    assert not resolved and chain == [payload]
    chain, resolved = resolve_path(payload, "/o:Op/o:A[x]")
    assert not resolved and chain == [payload]
    schema = OperationSchema(xsd_document())
    unknown = etree.fromstring(f'<o:Hello xmlns:o="{TNS}"><o:Input>x</o:Input><o:Nope/></o:Hello>')
    assert schema._where(resolve_path(unknown, "/o:Hello/o:Nope")[0], True) == f"Hello/{UNKNOWN_ELEMENT}"


def test_a_breach_among_many_siblings_is_found_in_linear_time() -> None:
    """libxml2's index counts siblings: a path resolved by asking each element for its own path
    was quadratic in the siblings. Expected well under 0.5 s; the bound only catches a blow-up."""
    schema = OperationSchema(xsd_document())
    names = "<o:DNSName>a</o:DNSName>" * 40_000
    body = envelope(
        "Reissue",
        "<o:Request><o:OrderRequestHeader><o:PartnerCode>P</o:PartnerCode><o:AuthToken><o:UserName>u</o:UserName>"
        "<o:Password>p</o:Password></o:AuthToken><o:PartnerOrderID>O</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>c</o:CSR><o:DNSNames>{names}<o:DNSName>x<o:{SECRET}/></o:DNSName>"
        "</o:DNSNames></o:OrderParameters></o:Request>",
    )
    assert len(body) < 1024 * 1024
    payload = etree.fromstring(body)[0][0]
    started = time.perf_counter()
    breach = schema.breach(payload)
    elapsed = time.perf_counter() - started
    assert str(breach) == (
        "Reissue/Request/OrderParameters/DNSNames/DNSName[40001]: holds an element where only text belongs"
    )
    assert elapsed < 5.0, elapsed
