"""Internal failures, in process: a soap:Server fault whose message and detail carry an
incident ID that the log also holds, and nothing of the failure's internals; an incident
opened below an edge is answered with its own ID, never a second one; a certificate the
linter refuses is such an incident; and what must not become one (a body that cannot be
read is the client's fault)."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from datetime import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from sqlalchemy import select

from api_support import SOAP_ENV, TNS, envelope, hello_envelope
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from keyfactory import csr_pem, make_csr
from soap_service.api.application import create_wsgi_app, xsd_document
from soap_service.api.guard import SOAPGuard
from soap_service.ra.incidents import open_incident
from soap_service.storage.models import AuditEvent

SECRET_DETAIL = "boom: postgres://user:hunter2@db/secret SELECT * FROM partners"


def _boom() -> datetime:
    raise RuntimeError(SECRET_DETAIL)


def _call(app: Any, body: bytes) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda _data: None

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/order", "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }
    content = b"".join(app(environ, start_response))
    return captured["status"], captured["headers"], content


def _server_fault(status: str, content: bytes) -> tuple[str, str]:
    """The incident ID of a soap:Server fault, checked for shape; and its message."""
    assert status.startswith("500")
    assert b"Traceback" not in content and b"hunter2" not in content and b"SELECT" not in content
    fault = etree.fromstring(content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap11env:Server"
    detail = fault.find(f"detail/{{{TNS}}}InternalError")
    assert detail is not None
    assert detail.findtext(f"{{{TNS}}}ErrorCode") == "-9000"
    incident = detail.findtext(f"{{{TNS}}}IncidentID") or ""
    assert incident.startswith("INC-")
    message = fault.findtext("faultstring") or ""
    assert message == f"internal error, incident {incident}"
    return incident, message


def _query(partner: Any, csr: str) -> bytes:
    return envelope(
        "ParseCSR",
        f"<o:Request><o:QueryRequestHeader><o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>{partner.username}</o:UserName><o:Password>{partner.password}</o:Password></o:AuthToken>"
        f"</o:QueryRequestHeader><o:CSR>{csr}</o:CSR></o:Request>",
    )


def _reissue(partner: Any, partner_order_id: str, csr: str) -> bytes:
    return envelope(
        "Reissue",
        f"<o:Request><o:OrderRequestHeader><o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>{partner.username}</o:UserName><o:Password>{partner.password}</o:Password></o:AuthToken>"
        f"<o:PartnerOrderID>{partner_order_id}</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>{csr}</o:CSR></o:OrderParameters></o:Request>",
    )


def test_a_failure_inside_the_ra_is_a_server_fault_with_the_logged_incident(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    broken = dataclasses.replace(installation.ra, clock=_boom)  # authentication keeps its own clock
    app = create_wsgi_app(broken)
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, _reissue(partner, order.partner_order_id, fresh_key_csr()))
    incident, _message = _server_fault(status, content)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR and incident in r.getMessage()]
    assert failures, caplog.text
    line = next(r.getMessage() for r in caplog.records if r.name == "soap_service.api.requests")
    assert "outcome=fault:Server http=500" in line and f"incident={incident}" in line
    assert not [r for r in caplog.records if r.name.startswith("spyne")]


def _incident_ids(text: str) -> set[str]:
    return set(re.findall(r"INC-[0-9A-F]{12}", text))


def test_an_incident_of_the_ra_is_answered_with_its_own_id_not_a_second_one(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    app = create_wsgi_app(dataclasses.replace(installation.ra, clock=_boom))
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, _reissue(partner, order.partner_order_id, fresh_key_csr()))
    incident, _message = _server_fault(status, content)
    assert _incident_ids(caplog.text) == {incident}
    opened = [r for r in caplog.records if r.getMessage().endswith(f" failed, incident {incident}")]
    assert [(r.name, r.getMessage()) for r in opened] == [
        ("soap_service.ra.reissue", f"reissue failed, incident {incident}")
    ]
    assert not [r for r in caplog.records if r.name.startswith("soap_service.api") and r.levelno >= logging.ERROR]


def test_a_certificate_the_linter_refuses_is_an_incident_with_its_findings_in_the_log_and_the_audit(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    """An internal name (not the public URL's) in the SAN: pkilint refuses the certificate. The
    partner gets -9000 and an incident, never a refusal code nor the finding."""
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner, names=("example.com", "intranet.local"),
                      csr=fresh_key_csr(["example.com"])).order
    app = create_wsgi_app(installation.ra)
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, _reissue(partner, order.partner_order_id,
                                                        fresh_key_csr(["intranet.local"])))
    incident, _message = _server_fault(status, content)
    assert b"internal_domain_name" not in content and b"Errors" not in content
    [logged] = [r for r in caplog.records if r.levelno >= logging.ERROR and incident in r.getMessage()]
    assert "refused by the pre-issuance linter" in logged.getMessage()
    assert "internal_domain_name" in logged.getMessage() and logged.exc_info is None
    with installation.ra.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.incident_id == incident))
    assert (event.action, event.outcome, event.code, event.channel) == ("reissue", "failed", -9000, "api")
    assert event.detail.startswith("lint: ") and "internal_domain_name" in event.detail


def test_an_incident_reaching_the_guard_is_answered_with_its_own_id(caplog: pytest.LogCaptureFixture) -> None:
    """The guard's last resort has the same three cases: an incident opened below it is
    answered as it is (logged once, where it was opened)."""
    opened: list[str] = []

    def failing_soap_app(environ: dict[str, Any], start_response: Any) -> Any:
        incident = open_incident(logging.getLogger("tests.below_the_guard"), "a step below the guard failed")
        opened.append(incident.incident_id)
        raise incident

    app = SOAPGuard(failing_soap_app, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, hello_envelope())
    incident, _message = _server_fault(status, content)
    assert opened == [incident]
    assert _incident_ids(caplog.text) == {incident}
    assert not [r for r in caplog.records if r.name == "soap_service.api.guard" and r.levelno >= logging.ERROR]
    line = next(r.getMessage() for r in caplog.records if r.name == "soap_service.api.requests")
    assert "outcome=fault:Server http=500" in line and f"incident={incident}" in line


def test_a_failure_in_the_api_layer_is_a_server_fault_too(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    partner = new_partner(installation.ra)
    app = create_wsgi_app(dataclasses.replace(installation.ra, clock=_boom))
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, _query(partner, fresh_key_csr()))
    incident, _message = _server_fault(status, content)
    logged = [r for r in caplog.records if r.name == "soap_service.api.service" and incident in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log, not in the answer


def test_an_exception_escaping_spyne_is_a_server_fault(caplog: pytest.LogCaptureFixture) -> None:
    def broken_soap_app(environ: dict[str, Any], start_response: Any) -> Any:
        raise RuntimeError(SECRET_DETAIL)

    app = SOAPGuard(broken_soap_app, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        status, headers, content = _call(app, hello_envelope())
    incident, _message = _server_fault(status, content)
    assert headers["Content-Type"].startswith("text/xml")
    assert incident in caplog.text


def test_a_server_fault_made_by_spyne_gets_an_incident(caplog: pytest.LogCaptureFixture) -> None:
    spyne_fault = (
        f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV}"><soap11env:Body><soap11env:Fault>'
        "<faultcode>soap11env:Server</faultcode><faultstring>TypeError: internals</faultstring>"
        "</soap11env:Fault></soap11env:Body></soap11env:Envelope>"
    ).encode()

    def faulting_soap_app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
        return [spyne_fault]

    app = SOAPGuard(faulting_soap_app, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, hello_envelope())
    incident, _message = _server_fault(status, content)
    assert b"internals" not in content
    assert incident in caplog.text


# ------------------------------------------------------------- answers spyne cannot write, bodies that fail


def _result(content: bytes, operation: str) -> etree._Element:
    body = etree.fromstring(content).find(f"{{{SOAP_ENV}}}Body")
    assert body is not None, content[:300]
    response = body.find(f"{{{TNS}}}{operation}Response")
    assert response is not None, content[:300]
    return response


def test_csr_text_that_xml_cannot_carry_is_escaped_not_lost(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    """spyne cannot write a control character and answered HTTP 200 with an empty Envelope,
    logged as a success: each such character is written as \\xNN instead."""
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_pem(make_csr(key, names=("example.com", "bad\x01.example.com"),
                           subject=[(NameOID.ORGANIZATIONAL_UNIT_NAME, "a\x01b\x1bc")]))
    app = create_wsgi_app(installation.ra)
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, _query(partner, csr))
    assert status.startswith("200"), content[:300]
    parsed = _result(content, "ParseCSR").find(f".//{{{TNS}}}ParsedCSR")
    assert parsed is not None
    assert parsed.findtext(f"{{{TNS}}}OrganizationalUnit") == "a\\x01b\\x1bc"
    assert parsed.findtext(f".//{{{TNS}}}SubjectAttribute/{{{TNS}}}Value") == "a\\x01b\\x1bc"
    assert [e.text for e in parsed.iterfind(f"{{{TNS}}}DNSNames/{{{TNS}}}DNSName")] == [
        "example.com", "bad\\x01.example.com"
    ]

    validate = _reissue(partner, order.partner_order_id, csr).replace(b"Reissue>", b"ValidateOrderParameters>")
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, validate)
    assert status.startswith("200"), content[:300]
    error = _result(content, "ValidateOrderParameters").find(f".//{{{TNS}}}Error")
    assert error is not None
    assert error.findtext(f"{{{TNS}}}ErrorCode") == "-4010"
    assert "bad\\x01.example.com" in (error.findtext(f"{{{TNS}}}ErrorMessage") or "")
    lines = [r.getMessage() for r in caplog.records if r.name == "soap_service.api.requests"]
    assert [line.split(" outcome=")[1].split(" ")[0] for line in lines] == ["0", "-4010"]


def test_a_spyne_answer_without_the_operations_response_is_a_server_fault(caplog: pytest.LogCaptureFixture) -> None:
    def empty_answer(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV}"/>'.encode()]

    app = SOAPGuard(empty_answer, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        status, _headers, content = _call(app, hello_envelope())
    incident, _message = _server_fault(status, content)
    assert any(r.levelno >= logging.ERROR and incident in r.getMessage() for r in caplog.records)
    line = next(r.getMessage() for r in caplog.records if r.name == "soap_service.api.requests")
    assert "op=Hello" in line and "outcome=fault:Server http=500" in line and f"incident={incident}" in line


class _FailingInput:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, size: int = -1) -> bytes:
        raise self.error


@pytest.mark.parametrize(
    ("error", "subcode"),
    [
        (TimeoutError("timed out"), "RequestTimeout"),
        (ConnectionResetError(104, "reset"), "BadRequest"),
        (ValueError("Invalid chunk size: b'" + SECRET_DETAIL + "'"), "BadRequest"),
    ],
    ids=["timeout", "reset", "bad-chunk"],
)
def test_a_body_that_cannot_be_read_is_a_client_fault_not_an_incident(
    error: Exception, subcode: str, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(environ: dict[str, Any], start_response: Any) -> Any:
        raise AssertionError("spyne must not be called")

    app = SOAPGuard(unreachable, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/order", "QUERY_STRING": "", "CONTENT_TYPE": "text/xml",
        "CONTENT_LENGTH": "1000", "wsgi.input": _FailingInput(error), "REMOTE_ADDR": "127.0.0.1",
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        return lambda _data: None

    with caplog.at_level(logging.INFO):
        content = b"".join(app(environ, start_response))
    assert captured["status"].startswith("500")
    fault = etree.fromstring(content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == f"soap11env:Client.{subcode}"
    assert b"hunter2" not in content and "hunter2" not in caplog.text and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"outcome=fault:Client.{subcode} http=500" in caplog.text
