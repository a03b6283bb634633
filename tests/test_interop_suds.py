"""suds (suds-community, PyPI ``suds``) against the real server: a client built from the served
WSDL alone (``suds.client.Client(<server>/api/order?wsdl, location=<server>/api/order)``),
requests made with ``client.factory.create`` as docs/soap-api.md shows, every answer read as suds
gives it. The scenario of tracker issue 10: Hello; Reissue with its chain and PKCS#7; a business
error (-4010) read from ``Errors``; a SOAP fault as ``suds.WebFault``; GetOrderByPartnerOrderID
with a history of one certificate and of two; Revoke.

What suds does with our answers (pinned here, written in docs/soap-api.md, "Python: suds"):
an element of ``maxOccurs="unbounded"`` is a Python list, even of one item; an absent optional
element is an absent attribute (``hasattr``), and ``factory.create`` leaves an optional
complex element None (create it too); an empty list element (``<SubjectAttributes/>``) is an
object whose item attribute is absent; ``xs:int`` is an int, ``xs:boolean`` a bool,
``xs:dateTime`` a ``datetime`` with its offset and microseconds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from suds import WebFault
from suds.client import Client

from api_support import RunningServer, assert_issued_chain, load_pem_certificate, running_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner
from interop_support import HELLO, NAMES, OPERATIONS


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Client:
    """As an integrator builds it: the served WSDL, the address called (the WSDL's soap:address
    is SOAP_SERVICE_PUBLIC_URL, not the test server), no WSDL cache."""
    return Client(server.wsdl_url, location=server.url, cache=None, timeout=60)


def _auth_token(client: Client, partner: Partner) -> Any:
    token = client.factory.create("AuthToken")
    token.UserName = partner.username
    token.Password = partner.password
    return token


def _order_header(client: Client, partner: Partner, order: str) -> Any:
    header = client.factory.create("OrderRequestHeader")
    header.PartnerCode = partner.code
    header.AuthToken = _auth_token(client, partner)
    header.PartnerOrderID = order
    return header


def _query_header(client: Client, partner: Partner) -> Any:
    header = client.factory.create("QueryRequestHeader")
    header.PartnerCode = partner.code
    header.AuthToken = _auth_token(client, partner)
    return header


def _reissue(client: Client, partner: Partner, order: str, csr: str) -> Any:
    request = client.factory.create("ReissueRequest")
    request.OrderRequestHeader = _order_header(client, partner, order)
    request.OrderParameters.CSR = csr
    return client.service.Reissue(request)


def _history(client: Client, partner: Partner, order: str) -> Any:
    request = client.factory.create("GetOrderByPartnerOrderIDRequest")
    request.QueryRequestHeader = _query_header(client, partner)
    request.PartnerOrderID = order
    request.OrderQueryOptions = client.factory.create("OrderQueryOptions")  # optional: None until created
    request.OrderQueryOptions.ReturnCertificateHistory = True
    return client.service.GetOrderByPartnerOrderID(request)


def _aware(value: Any) -> datetime:
    assert isinstance(value, datetime) and value.tzinfo is not None, value
    return value


def test_loads_the_served_wsdl_with_the_eight_operations(client: Client) -> None:
    methods = client.wsdl.services[0].ports[0].methods
    assert set(methods) == OPERATIONS
    # wrapped: the operation takes the Request itself (suds unwraps Reissue's one element)
    assert [definition[0] for definition in methods["Reissue"].binding.input.param_defs(methods["Reissue"])] == [
        "Request"]


def test_hello_echoes(client: Client) -> None:
    assert client.service.Hello(HELLO) == HELLO


def test_reissue_returns_a_certificate_its_chain_and_a_pkcs7(
        client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    result = _reissue(client, partner, order.partner_order_id, fresh_key_csr(NAMES))
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.PartnerOrderID) == (0, order.partner_order_id)
    assert not hasattr(header, "Errors") and not hasattr(header, "Warnings")  # absent optional elements
    _aware(header.Timestamp)
    assert result.OrderID == order.order_id
    issued = result.Certificate
    leaf = load_pem_certificate(issued.ServerCertificate)
    assert issued.SerialNumber == format(leaf.serial_number, "x")
    assert (_aware(issued.NotBefore), _aware(issued.NotAfter)) == (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    chain = issued.CACertificates.CACertificate
    assert isinstance(chain, list) and len(chain) == 2
    assert_issued_chain(issued.ServerCertificate, [(ca.Type, ca.CACert) for ca in chain], issued.PKCS7)


def test_a_name_outside_the_order_is_error_4010_read_from_errors(
        client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    result = _reissue(client, partner, order.partner_order_id, fresh_key_csr(("example.com", "other.example.org")))
    header = result.OrderResponseHeader
    assert not hasattr(result, "Certificate")
    errors = header.Errors.Error
    assert isinstance(errors, list) and len(errors) == 1  # a list of one, not the bare item
    error = errors[0]
    assert (header.SuccessCode, error.ErrorCode, error.ErrorField) == (-4010, -4010, "CSR")
    assert type(error.ErrorCode) is int
    assert "other.example.org" in error.ErrorMessage


def test_a_soap_fault_is_a_web_fault(client: Client) -> None:
    """An Input over the schema's 256 characters: the guard answers a SOAP fault (HTTP 500),
    which suds raises as ``suds.WebFault``; ``.fault`` holds faultcode and faultstring."""
    with pytest.raises(WebFault) as raised:
        client.service.Hello("x" * 257)
    fault = raised.value.fault
    assert fault.faultcode.split(":", 1)[1] == "Client.SchemaValidationError", fault
    assert "Hello/Input" in fault.faultstring, fault
    assert "xxxx" not in fault.faultstring  # the value is not echoed


def test_reads_a_history_of_one_certificate(client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    result = _history(client, partner, order.partner_order_id)
    assert result.QueryResponseHeader.SuccessCode == 0
    detail = result.OrderDetail
    assert detail.OrderInfo.OrderID == order.order_id
    entries = detail.CertificateHistory.Certificate
    assert isinstance(entries, list) and len(entries) == 1  # a list of one
    assert entries[0].SerialNumber == order.certificate.serial
    assert not hasattr(entries[0], "ReplacesSerialNumber")
    assert entries[0].DNSNames.DNSName == list(NAMES)
    assert _aware(detail.OrderInfo.TermStart) == order.term_start  # microseconds kept
    assert not hasattr(detail, "CertificateInfo")  # not asked for


def test_reads_a_history_of_two_certificates(client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    reissued = _reissue(client, partner, order.partner_order_id, fresh_key_csr(NAMES)).Certificate.SerialNumber
    history = _history(client, partner, order.partner_order_id).OrderDetail.CertificateHistory
    entries = {entry.SerialNumber: entry for entry in history.Certificate}
    assert set(entries) == {order.certificate.serial, reissued}
    assert entries[reissued].ReplacesSerialNumber == order.certificate.serial
    assert {entry.CertificateStatus for entry in entries.values()} == {"VALID"}


def test_parse_csr_gives_an_empty_list_as_an_object_without_items(client: Client, partner: Partner) -> None:
    request = client.factory.create("ParseCSRRequest")
    request.QueryRequestHeader = _query_header(client, partner)
    request.CSR = fresh_key_csr(("example.com",))  # no subject: <SubjectAttributes/>
    parsed = client.service.ParseCSR(request).ParsedCSR
    assert parsed.DNSNames.DNSName == ["example.com"]
    assert parsed.KeySize == 256 and parsed.Curve == "P-256"
    assert not hasattr(parsed.SubjectAttributes, "SubjectAttribute"), parsed.SubjectAttributes


def test_revokes_by_serial_then_is_refused_4014(client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    request = client.factory.create("RevokeRequest")
    request.OrderRequestHeader = client.factory.create("RevokeOrderRequestHeader")
    request.OrderRequestHeader.PartnerCode = partner.code
    request.OrderRequestHeader.AuthToken = _auth_token(client, partner)
    request.OrderRequestHeader.PartnerOrderID = order.partner_order_id
    request.SerialNumber = order.certificate.serial
    request.RevokeReason = "superseded"
    result = client.service.Revoke(request)
    assert result.OrderResponseHeader.SuccessCode == 0
    assert (result.OrderID, result.SerialNumber, result.RevokeReason) == (
        order.order_id, order.certificate.serial, "superseded")
    _aware(result.RevokedAt)
    again = client.service.Revoke(request)
    error = again.OrderResponseHeader.Errors.Error[0]
    assert (error.ErrorCode, error.ErrorField) == (-4014, "SerialNumber")
