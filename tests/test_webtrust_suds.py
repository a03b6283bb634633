"""The drop-in services (tracker issue 12, docs/migration.md) against the real server, as a client
library of the earlier webtrust API drives them: suds clients built from
``/webtrust/order.jws?WSDL`` and ``/webtrust/query.jws?WSDL``, requests made by XSD type name
(``client.factory.create("ReissueInput")``, ``"orderRequestHeader"``, ``"authToken"``...). hello;
Reissue with its chain; GetOrderByPartnerOrderID with every option; GetModifiedOrders; Revoke by
the certificate's PEM; ModifyOrder CANCEL; a business error read from ``Errors``; an operation
not offered. Also zeep, loading both WSDLs and calling one operation of each."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zeep
from sqlalchemy import func, select
from suds import MethodNotFound, WebFault
from suds.client import Client

from api_support import RunningServer, assert_issued_chain, load_pem_certificate, running_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner
from interop_support import HELLO, NAMES
from soap_service.storage.models import Certificate, Order
from soap_service.webtrust.service import ORDER_OPERATIONS, QUERY_OPERATIONS

pytestmark = pytest.mark.slow  # a server per backend

LIBRARY_QUERY_OPTIONS = (
    "ReturnProductDetail", "ReturnContacts", "ReturnCertificateInfo", "ReturnFulfillment", "ReturnCACerts",
    "ReturnPKCS7Cert", "ReturnOrderAttributes", "ReturnAuthenticationComments", "ReturnAuthenticationStatuses",
    "ReturnTrustServicesSummary", "ReturnTrustServicesDetails", "ReturnVulnerabilityScanSummary",
    "ReturnVulnerabilityScanDetails", "ReturnFileAuthDVSummary", "ReturnDNSAuthDVSummary",
    "ReturnCertificateHistory",
)
"""The OrderQueryOptions SymAPI documents for GetOrderByPartnerOrderID, and this service's
ReturnCertificateHistory."""


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


def _client(server: RunningServer, name: str) -> Client:
    """As a SymAPI-style integrator builds it: the .jws?WSDL URL, the endpoint called."""
    return Client(f"{server.base_url}/webtrust/{name}.jws?WSDL", location=f"{server.base_url}/webtrust/{name}",
                  cache=None, timeout=60)


@pytest.fixture(scope="module")
def order_client(server: RunningServer) -> Client:
    return _client(server, "order")


@pytest.fixture(scope="module")
def query_client(server: RunningServer) -> Client:
    return _client(server, "query")


def _auth_token(client: Client, partner: Partner) -> Any:
    token = client.factory.create("authToken")
    token.UserName = partner.username
    token.Password = partner.password
    return token


def _request_header(client: Client, kind: str, partner: Partner, replay_token: str | None = None) -> Any:
    """As SymAPI (Python, suds) builds a header: ``<kind>RequestHeader`` with PartnerCode,
    ApiVersion (None unless set), an ``authToken``, and with a replay token ReplayToken and
    UseReplayToken true."""
    header = client.factory.create(kind + "RequestHeader")
    header.PartnerCode = partner.code
    header.ApiVersion = None
    header.AuthToken = _auth_token(client, partner)
    if replay_token is not None:
        header.ReplayToken = replay_token
        header.UseReplayToken = True
    return header


def _prepared(client: Client, kind: str, method: str, partner: Partner, replay_token: str | None = None) -> Any:
    """As SymAPI prepares a call: ``<method>Input`` created by name, its header set."""
    request = client.factory.create(method + "Input")
    setattr(request, f"{kind.capitalize()}RequestHeader", _request_header(client, kind, partner, replay_token))
    return request


def _query_header(client: Client, partner: Partner) -> Any:
    return _request_header(client, "query", partner)


def _reissue_input(client: Client, partner: Partner, order: str, csr: str, replay_token: str | None = None,
                   reissue_email: str | None = None) -> Any:
    """SymAPI's Reissue(partnerOrderID, reissueEmail, options, replayToken, productCode,
    orderChanges): each option set on the request's own ``OrderParameters`` if it has it."""
    request = _prepared(client, "order", "Reissue", partner, replay_token)
    request.OrderRequestHeader.PartnerOrderID = order
    request.OrderRequestHeader.ProductCode = None
    request.ReissueEmail = reissue_email
    request.OrderChanges = None
    for key, value in {"CSR": csr, "WebServerType": "apachessl", "SignatureHashAlgorithm": "SHA256"}.items():
        if key in request.OrderParameters:
            request.OrderParameters[key] = value
    return request


def _reissue(client: Client, partner: Partner, order: str, csr: str) -> Any:
    return client.service.Reissue(_reissue_input(client, partner, order, csr))


def test_the_wsdls_offer_the_operations_and_nothing_of_what_is_not_offered(
        order_client: Client, query_client: Client) -> None:
    assert set(order_client.wsdl.services[0].ports[0].methods) == ORDER_OPERATIONS
    assert set(query_client.wsdl.services[0].ports[0].methods) == QUERY_OPERATIONS
    with pytest.raises(MethodNotFound):
        order_client.service.QuickOrder  # noqa: B018 - a generated client fails loudly


def test_hello_echoes(query_client: Client) -> None:
    assert query_client.service.hello(HELLO) == HELLO


def test_reissue_returns_the_certificate_and_its_chain(
        order_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    result = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES))
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.PartnerOrderID) == (0, order.partner_order_id)
    assert not hasattr(header, "Errors")
    assert result.GeoTrustOrderID == order.order_id
    issued = result.Certificate
    leaf = load_pem_certificate(issued.ServerCertificate)
    assert issued.SerialNumber == format(leaf.serial_number, "x")
    chain = issued.CACertificates.CACertificate
    assert len(chain) == 2
    assert_issued_chain(issued.ServerCertificate, [(ca.Type, ca.CACert) for ca in chain], issued.PKCS7)


def test_a_business_error_is_read_from_errors(
        order_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    result = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(("other.example.org",)))
    header = result.OrderResponseHeader
    assert not hasattr(result, "Certificate")
    error = header.Errors.Error[0]
    assert (header.SuccessCode, error.ErrorCode, error.ErrorField) == (-4010, -4010, "CSR")
    unknown = _reissue(order_client, partner, "NO-SUCH-ORDER", fresh_key_csr(NAMES)).OrderResponseHeader
    assert unknown.Errors.Error[0].ErrorCode == -4003


def test_get_order_with_every_option(
        order_client: Client, query_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    reissued = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES)).Certificate
    request = _prepared(query_client, "query", "GetOrderByPartnerOrderID", partner)
    request.PartnerOrderID = order.partner_order_id
    for flag in LIBRARY_QUERY_OPTIONS:  # as SymAPI sets its options: on the request's own OrderQueryOptions
        assert flag in request.OrderQueryOptions, flag
        request.OrderQueryOptions[flag] = True
    result = query_client.service.GetOrderByPartnerOrderID(request)
    assert (result.QueryResponseHeader.SuccessCode, result.QueryResponseHeader.ReturnCount) == (0, 1)
    detail = result.OrderDetail
    assert (detail.OrderInfo.GeoTrustOrderID, detail.OrderInfo.PartnerOrderID) == (
        order.order_id, order.partner_order_id)
    assert detail.CertificateInfo.SerialNumber == reissued.SerialNumber
    assert detail.Fulfillment.ServerCertificate == reissued.ServerCertificate
    assert len(detail.Fulfillment.CACertificates.CACertificate) == 2
    assert detail.Fulfillment.PKCS7.startswith("-----BEGIN PKCS7-----")
    assert {entry.SerialNumber for entry in detail.CertificateHistory.Certificate} == {
        order.certificate.serial, reissued.SerialNumber}
    bare = _prepared(query_client, "query", "GetOrderByPartnerOrderID", partner)
    bare.PartnerOrderID = order.partner_order_id
    plain = query_client.service.GetOrderByPartnerOrderID(bare).OrderDetail
    assert not hasattr(plain, "CertificateInfo") and not hasattr(plain, "Fulfillment")


def test_get_modified_orders(
        order_client: Client, query_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES))
    request = query_client.factory.create("GetModifiedOrdersInput")
    request.QueryRequestHeader = _query_header(query_client, partner)
    now = datetime.now(UTC)
    request.FromDate, request.ToDate = now - timedelta(days=1), now + timedelta(minutes=1)
    result = query_client.service.GetModifiedOrders(request)
    header = result.QueryResponseHeader
    assert header.SuccessCode == 0
    details = {d.OrderInfo.PartnerOrderID: d for d in result.OrderDetails.OrderDetail}
    assert header.ReturnCount == len(details)
    events = [e.ModificationEventName for e in details[order.partner_order_id].ModificationEvents.ModificationEvent]
    assert "reissued" in events
    backwards = query_client.factory.create("GetModifiedOrdersInput")
    backwards.QueryRequestHeader = _query_header(query_client, partner)
    backwards.FromDate, backwards.ToDate = now, now - timedelta(days=1)
    refused = query_client.service.GetModifiedOrders(backwards).QueryResponseHeader
    assert refused.SuccessCode == -2019 and not hasattr(refused, "ReturnCount")


def test_revoke_by_the_certificate_pem(
        order_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    issued = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES)).Certificate
    request = _prepared(order_client, "order", "Revoke", partner)  # no PartnerOrderID: the PEM says
    request.Certificate = issued.ServerCertificate
    request.RevokeReason = "superseded"
    result = order_client.service.Revoke(request)
    assert result.OrderResponseHeader.SuccessCode == 0, result
    assert (result.GeoTrustOrderID, result.SerialNumber, result.RevokeReason) == (
        order.order_id, issued.SerialNumber, "superseded")
    again = order_client.service.Revoke(request).OrderResponseHeader
    assert again.Errors.Error[0].ErrorCode == -4014


def test_modify_order_cancel_and_an_operation_not_offered(
        order_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    request = _prepared(order_client, "order", "ModifyOrder", partner)
    request.OrderRequestHeader.PartnerOrderID = order.partner_order_id
    request.ModifyOrderOperation = "APPROVE"
    request.ModifyOrderReasonMessage = "as agreed"
    request.RequestorEmail = "admin@example.com"
    refused = order_client.service.ModifyOrder(request).OrderResponseHeader
    assert (refused.SuccessCode, refused.Errors.Error[0].ErrorField) == (-2019, "ModifyOrderOperation")
    request.ModifyOrderOperation = "CANCEL"
    result = order_client.service.ModifyOrder(request)
    assert result.OrderResponseHeader.SuccessCode == 0
    assert result.GeoTrustOrderID == order.order_id
    assert result.Revoked.SerialNumber == [order.certificate.serial]
    after = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES)).OrderResponseHeader
    assert after.Errors.Error[0].ErrorCode == -4012


def test_a_schema_breach_is_a_web_fault(query_client: Client) -> None:
    with pytest.raises(WebFault) as raised:
        query_client.service.hello("x" * 257)
    assert raised.value.fault.faultcode.split(":", 1)[1] == "Client.SchemaValidationError"


def test_zeep_loads_both_wsdls_and_calls_them(server: RunningServer, partner: Partner) -> None:
    query = zeep.Client(f"{server.base_url}/webtrust/query.jws?WSDL")
    query_service = query.create_service(next(iter(query.wsdl.bindings)), f"{server.base_url}/webtrust/query")
    assert query_service.hello(Input="zeep") == "zeep"
    parsed = query_service.ParseCSR(Request={
        "QueryRequestHeader": {"PartnerCode": partner.code,
                               "AuthToken": {"UserName": partner.username, "Password": partner.password}},
        "CSR": fresh_key_csr(("example.com",)),
    })
    assert parsed.QueryResponseHeader.SuccessCode == 0 and parsed.ParsedCSR.DNSNames.DNSName == ["example.com"]
    order = zeep.Client(f"{server.base_url}/webtrust/order.jws?WSDL")
    order_service = order.create_service(next(iter(order.wsdl.bindings)), f"{server.base_url}/webtrust/order")
    refused = order_service.ModifyOrder(Request={
        "OrderRequestHeader": {"PartnerCode": partner.code,
                               "AuthToken": {"UserName": partner.username, "Password": "wrong"},
                               "PartnerOrderID": "X"},
        "ModifyOrderOperation": "CANCEL",
    })
    assert refused.OrderResponseHeader.SuccessCode == -4001


def test_parse_csr_check_status_get_fulfillment_and_the_summary(
        order_client: Client, query_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    issued = _reissue(order_client, partner, order.partner_order_id, fresh_key_csr(NAMES)).Certificate
    parse = query_client.factory.create("ParseCSRInput")
    parse.QueryRequestHeader = _query_header(query_client, partner)
    parse.CSR = fresh_key_csr(("example.com",))
    parsed = query_client.service.ParseCSR(parse)
    assert parsed.QueryResponseHeader.SuccessCode == 0 and parsed.ParsedCSR.DNSNames.DNSName == ["example.com"]
    status = query_client.factory.create("CheckStatusInput")
    status.QueryRequestHeader = _query_header(query_client, partner)
    status.PartnerOrderID = order.partner_order_id
    answered = query_client.service.CheckStatus(status).OrderStatus
    assert (answered.GeoTrustOrderID, answered.SerialNumber, answered.CertificateStatus) == (
        order.order_id, issued.SerialNumber, "VALID")
    status.PartnerOrderID = "NO-SUCH-ORDER"
    assert query_client.service.CheckStatus(status).QueryResponseHeader.Errors.Error[0].ErrorCode == -4003
    fulfil = query_client.factory.create("GetFulfillmentInput")
    fulfil.QueryRequestHeader = _query_header(query_client, partner)
    fulfil.PartnerOrderID = order.partner_order_id
    bare = query_client.service.GetFulfillment(fulfil).Fulfillment
    assert bare.ServerCertificate == issued.ServerCertificate and not hasattr(bare, "PKCS7")
    fulfil.ReturnCACerts, fulfil.ReturnPKCS7Cert = True, True
    full = query_client.service.GetFulfillment(fulfil).Fulfillment
    assert len(full.CACertificates.CACertificate) == 2 and full.PKCS7.startswith("-----BEGIN PKCS7-----")
    summary = query_client.factory.create("GetModifiedOrderSummaryInput")
    summary.QueryRequestHeader = _query_header(query_client, partner)
    now = datetime.now(UTC)
    summary.FromDate, summary.ToDate = now - timedelta(days=1), now + timedelta(minutes=1)
    result = query_client.service.GetModifiedOrderSummary(summary)
    mine = [s for s in result.OrderSummaries.OrderSummary if s.PartnerOrderID == order.partner_order_id]
    assert result.QueryResponseHeader.ReturnCount == len(result.OrderSummaries.OrderSummary)
    assert {s.ModificationEventName for s in mine} >= {"reissued"}
    assert all(s.GeoTrustOrderID == order.order_id for s in mine)


def test_validate_order_parameters_issues_nothing(
        order_client: Client, partner: Partner, installation: Installation) -> None:
    order = new_order(installation.ra, partner).order
    request = _prepared(order_client, "order", "ValidateOrderParameters", partner)  # as SymAPI's
    request.OrderRequestHeader.ProductCode = "QuickSSLPremium"
    request.OrderRequestHeader.PartnerOrderID = order.partner_order_id
    for key, value in {"CSR": fresh_key_csr(NAMES), "ValidityPeriod": 12, "WebServerType": "iis"}.items():
        if key in request.OrderParameters:  # SymAPI skips what the type does not have
            request.OrderParameters[key] = value
    result = order_client.service.ValidateOrderParameters(request)
    assert (result.OrderResponseHeader.SuccessCode, result.GeoTrustOrderID) == (0, order.order_id)
    assert result.CertificateDNSNames.DNSName == list(NAMES) and result.ReturnsCurrentCertificate is False
    assert not hasattr(result, "Certificate")
    request.OrderParameters.CSR = "not a CSR"
    refused = order_client.service.ValidateOrderParameters(request).OrderResponseHeader
    assert (refused.SuccessCode, refused.Errors.Error[0].ErrorField) == (-4007, "CSR")


def test_a_replayed_token(server: RunningServer, partner: Partner, installation: Installation) -> None:
    """SymAPI's replayToken argument (issue 12): the same token with the same request is the first
    answer byte for byte and one certificate; the same token with another request is -4016."""
    raw = _client(server, "order")
    raw.set_options(retxml=True)  # the answer's bytes as served
    order = new_order(installation.ra, partner).order
    token = "suds-" + secrets.token_hex(8)
    first_request = _reissue_input(raw, partner, order.partner_order_id, fresh_key_csr(NAMES), token)
    first = raw.service.Reissue(first_request)
    assert b"SuccessCode>0</" in first, first[:600]
    assert raw.service.Reissue(first_request) == first
    assert _certificates(installation, order.partner_order_id) == 2  # the order's first and one reissue
    another = _reissue_input(raw, partner, order.partner_order_id, fresh_key_csr(NAMES), token)
    refused = _client(server, "order").service.Reissue(another).OrderResponseHeader
    assert (refused.SuccessCode, refused.Errors.Error[0].ErrorCode, refused.Errors.Error[0].ErrorField) == (
        -4016, -4016, "ReplayToken")
    assert _certificates(installation, order.partner_order_id) == 2
    cancel = _prepared(raw, "order", "ModifyOrder", partner, "suds-" + secrets.token_hex(8))
    cancel.OrderRequestHeader.PartnerOrderID = order.partner_order_id
    cancel.ModifyOrderOperation = "CANCEL"
    cancelled = raw.service.ModifyOrder(cancel)
    assert raw.service.ModifyOrder(cancel) == cancelled  # not -4012: the first answer again


def _certificates(installation: Installation, poid: str) -> int:
    with installation.ra.readers() as session:
        return session.scalar(
            select(func.count(Certificate.id)).join(Order, Certificate.order_pk == Order.id)
            .where(Order.partner_order_id == poid)
        ) or 0
