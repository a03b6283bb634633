"""Revoke, ModifyOrder (CANCEL) and GetModifiedOrders over the wire: gunicorn on a loopback
port, a zeep client generated from the served WSDL, every message validated against
schemas/order.xsd (``api_support.SchemaCheck``), on SQLite and PostgreSQL. The contract is
docs/soap-api.md's; the rules behind it are the RA's (docs/design.md, "The SOAP contract")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api_support import (
    RunningServer,
    ZeepService,
    auth,
    envelope,
    fault_of,
    order_request,
    post,
    query_header,
    running_server,
    zeep_service,
)
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner
from keyfactory import csr_pem, make_csr
from soap_service.api.requestlog import RequestRecord
from soap_service.api.service import modify_order
from soap_service.ra.changes import MAX_PAGE, MAX_WINDOW
from soap_service.ra.orders import show_order_by_operator

NAMES = ("example.com", "www.example.com")


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> ZeepService:
    return zeep_service(server.wsdl_url, server.url)


@pytest.fixture
def partner(installation: Installation) -> Partner:
    """A partner of its own for each test, so that its change feed holds that test's orders only."""
    return new_partner(installation.ra)


def _order(installation: Installation, partner: Partner, **options: Any) -> Any:
    return new_order(installation.ra, partner, **options).order


def _errors(header: Any) -> list[tuple[int, str | None, str]]:
    if header.Errors is None:
        return []
    return [(e.ErrorCode, e.ErrorField, e.ErrorMessage) for e in header.Errors.Error]


def _refused(header: Any, code: int, field: str | None) -> str:
    errors = _errors(header)
    assert header.SuccessCode == code, errors
    assert [(c, f) for c, f, _ in errors] == [(code, field)]
    return errors[0][2]


def _revoke(api: ZeepService, partner: Partner, reason: str, *, order: str | None = None, serial: str | None = None,
            pem: str | None = None) -> Any:
    header: dict[str, Any] = {"PartnerCode": partner.code, "AuthToken": auth(partner)}
    if order is not None:
        header["PartnerOrderID"] = order
    request: dict[str, Any] = {"OrderRequestHeader": header, "RevokeReason": reason}
    if pem is not None:
        request["Certificate"] = pem
    if serial is not None:
        request["SerialNumber"] = serial
    return api.service.Revoke(Request=request)


def _cancel(api: ZeepService, partner: Partner, order: str) -> Any:
    header = {"PartnerCode": partner.code, "AuthToken": auth(partner), "PartnerOrderID": order}
    return api.service.ModifyOrder(Request={"OrderRequestHeader": header, "ModifyOrderOperation": "CANCEL"})


def _reissue(api: ZeepService, partner: Partner, order: str, csr: str | None = None) -> Any:
    return api.service.Reissue(Request=order_request(partner, order, csr or fresh_key_csr(NAMES)))


def _history(api: ZeepService, partner: Partner, order: str) -> dict[str, Any]:
    found = api.service.GetOrderByPartnerOrderID(Request={
        "QueryRequestHeader": query_header(partner), "PartnerOrderID": order,
        "OrderQueryOptions": {"ReturnCertificateHistory": True},
    })
    assert found.QueryResponseHeader.SuccessCode == 0, _errors(found.QueryResponseHeader)
    return {c.SerialNumber: c for c in found.OrderDetail.CertificateHistory.Certificate}


def _feed(api: ZeepService, partner: Partner, start: datetime, end: datetime, page_size: int | None = None,
          after: int | None = None) -> Any:
    request: dict[str, Any] = {"QueryRequestHeader": query_header(partner), "FromDate": start, "ToDate": end}
    if page_size is not None:
        request["PageSize"] = page_size
    if after is not None:
        request["AfterChangeID"] = after
    return api.service.GetModifiedOrders(Request=request)


def _changes(result: Any) -> list[Any]:
    assert result.QueryResponseHeader.SuccessCode == 0, _errors(result.QueryResponseHeader)
    return [] if result.OrderChanges is None else list(result.OrderChanges.OrderChange)


# -------------------------------------------------------------------------------------- Revoke


def test_revoke_by_serial_ends_the_original_after_a_reissue_and_the_new_one_stays_reissuable(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    reissued = _reissue(api, partner, order.partner_order_id)
    assert reissued.OrderResponseHeader.SuccessCode == 0
    before = datetime.now(UTC)
    result = _revoke(api, partner, "superseded", order=order.partner_order_id, serial=order.certificate.serial)
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.Errors, header.PartnerOrderID) == (0, None, order.partner_order_id)
    assert (result.OrderID, result.SerialNumber, result.RevokeReason) == (
        order.order_id, order.certificate.serial, "superseded")
    assert before - timedelta(seconds=1) <= result.RevokedAt <= datetime.now(UTC)
    assert result.AlsoRevoked is None  # left out: nothing else was revoked

    history = _history(api, partner, order.partner_order_id)
    original, current = history[order.certificate.serial], history[reissued.Certificate.SerialNumber]
    assert (original.CertificateStatus, original.RevocationReason) == ("REVOKED", "superseded")
    assert original.RevokedAt == result.RevokedAt
    assert current.CertificateStatus == "VALID"
    assert _reissue(api, partner, order.partner_order_id).OrderResponseHeader.SuccessCode == 0


def test_revoke_by_pem_needs_no_partner_order_id(api: ZeepService, installation: Installation,
                                                 partner: Partner) -> None:
    order = _order(installation, partner)
    result = _revoke(api, partner, "cessationOfOperation", pem=order.certificate.pem)
    assert result.OrderResponseHeader.SuccessCode == 0, _errors(result.OrderResponseHeader)
    assert result.OrderResponseHeader.PartnerOrderID == order.partner_order_id
    assert (result.OrderID, result.SerialNumber) == (order.order_id, order.certificate.serial)


def test_revoke_with_neither_serial_nor_pem_revokes_the_current_certificate_and_blocks_reissue(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    result = _revoke(api, partner, "affiliationChanged", order=order.partner_order_id)
    assert result.OrderResponseHeader.SuccessCode == 0, _errors(result.OrderResponseHeader)
    assert result.SerialNumber == order.certificate.serial
    _refused(_reissue(api, partner, order.partner_order_id).OrderResponseHeader, -4011, None)


def test_revoking_a_revoked_certificate_is_4014_except_to_make_it_key_compromise(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    poid, serial = order.partner_order_id, order.certificate.serial
    assert _revoke(api, partner, "superseded", order=poid, serial=serial).OrderResponseHeader.SuccessCode == 0
    again = _revoke(api, partner, "unspecified", order=poid, serial=serial)
    _refused(again.OrderResponseHeader, -4014, "SerialNumber")
    assert (again.OrderID, again.SerialNumber, again.RevokedAt) == (None, None, None)

    changed = _revoke(api, partner, "keyCompromise", order=poid, serial=serial)
    assert changed.OrderResponseHeader.SuccessCode == 0, _errors(changed.OrderResponseHeader)
    assert changed.RevokeReason == "keyCompromise"
    assert _history(api, partner, poid)[serial].RevocationReason == "keyCompromise"
    _refused(_revoke(api, partner, "keyCompromise", order=poid, serial=serial).OrderResponseHeader, -4014,
             "SerialNumber")


def test_key_compromise_revokes_the_keys_other_certificates_and_blocks_the_key(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_pem(make_csr(key, NAMES))
    first, second = (_order(installation, partner, csr=csr) for _ in range(2))
    result = _revoke(api, partner, "keyCompromise", order=first.partner_order_id)
    assert result.OrderResponseHeader.SuccessCode == 0, _errors(result.OrderResponseHeader)
    assert result.AlsoRevoked.SerialNumber == [second.certificate.serial]
    other = _history(api, partner, second.partner_order_id)[second.certificate.serial]
    assert (other.CertificateStatus, other.RevocationReason) == ("REVOKED", "keyCompromise")

    someone_else = new_partner(installation.ra)
    elsewhere = _order(installation, someone_else)
    refused = _reissue(api, someone_else, elsewhere.partner_order_id, csr=csr_pem(make_csr(key, NAMES)))
    _refused(refused.OrderResponseHeader, -4009, "CSR")


def test_another_partners_certificate_is_answered_exactly_like_a_missing_order(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    theirs = _order(installation, partner)
    intruder = new_partner(installation.ra)
    own = _order(installation, intruder)
    missing = _refused(_revoke(api, intruder, "unspecified", order="PO-NO-SUCH-ORDER").OrderResponseHeader,
                       -4003, "PartnerOrderID")
    attempts = [
        _revoke(api, intruder, "unspecified", order=theirs.partner_order_id),
        _revoke(api, intruder, "unspecified", order=theirs.partner_order_id, serial=theirs.certificate.serial),
        _revoke(api, intruder, "unspecified", order=own.partner_order_id, serial=theirs.certificate.serial),
        _revoke(api, intruder, "keyCompromise", pem=theirs.certificate.pem),
        _cancel(api, intruder, theirs.partner_order_id),
    ]
    for attempt in attempts:
        assert _refused(attempt.OrderResponseHeader, -4003, "PartnerOrderID") == missing
        assert attempt.OrderID is None
    assert {c.CertificateStatus for c in _history(api, partner, theirs.partner_order_id).values()} == {"VALID"}


def test_revoke_fields_are_checked(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner)
    no_order = _revoke(api, partner, "unspecified")
    _refused(no_order.OrderResponseHeader, -2019, "PartnerOrderID")
    assert not no_order.OrderResponseHeader.PartnerOrderID  # sent empty, which zeep reads as None
    _refused(_revoke(api, partner, "unspecified", order=order.partner_order_id, serial="not-hex").OrderResponseHeader,
             -2019, "SerialNumber")
    _refused(_revoke(api, partner, "unspecified", order=order.partner_order_id, serial="ab",
                     pem=order.certificate.pem).OrderResponseHeader, -2019, "SerialNumber")
    _refused(_revoke(api, partner, "unspecified", pem="-----BEGIN CERTIFICATE-----\nAAAA\n").OrderResponseHeader,
             -2019, "Certificate")


def test_the_schema_refuses_a_reason_or_operation_outside_its_enumeration_and_an_overlong_serial(
    server: RunningServer, partner: Partner
) -> None:
    """RevokeReason and ModifyOrderOperation are closed sets in the published schema; the guard
    refuses anything else before any work, naming the element, never quoting the value."""
    token = (f"<o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken><o:UserName>{partner.username}"
             f"</o:UserName><o:Password>{partner.password}</o:Password></o:AuthToken>")
    cases = {
        "Revoke/Request/RevokeReason: is not one of the allowed values": envelope(
            "Revoke", f"<o:Request><o:OrderRequestHeader>{token}<o:PartnerOrderID>PO-1</o:PartnerOrderID>"
            "</o:OrderRequestHeader><o:RevokeReason>certificateHold</o:RevokeReason></o:Request>"),
        "Revoke/Request/SerialNumber: is too long": envelope(
            "Revoke", f"<o:Request><o:OrderRequestHeader>{token}</o:OrderRequestHeader>"
            f"<o:SerialNumber>{'a' * 65}</o:SerialNumber><o:RevokeReason>unspecified</o:RevokeReason></o:Request>"),
        "ModifyOrder/Request/ModifyOrderOperation: is not one of the allowed values": envelope(
            "ModifyOrder", f"<o:Request><o:OrderRequestHeader>{token}<o:PartnerOrderID>PO-1</o:PartnerOrderID>"
            "</o:OrderRequestHeader><o:ModifyOrderOperation>DEACTIVATE</o:ModifyOrderOperation></o:Request>"),
        "GetModifiedOrders/Request/FromDate: is not a date and time (such as 2026-03-15T10:00:00Z)": envelope(
            "GetModifiedOrders", f"<o:Request><o:QueryRequestHeader>{token}</o:QueryRequestHeader>"
            "<o:FromDate>yesterday</o:FromDate><o:ToDate>2026-03-15T10:00:00Z</o:ToDate></o:Request>"),
    }
    for rule, body in cases.items():
        code, text = fault_of(post(server, body))
        assert (code.split(":", 1)[1], text) == (
            "Client.SchemaValidationError", f"the request does not follow the schema: {rule}")


# ------------------------------------------------------------------------------ ModifyOrder


def test_cancel_revokes_the_orders_certificates_and_ends_it(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    reissued = _reissue(api, partner, order.partner_order_id).Certificate.SerialNumber
    result = _cancel(api, partner, order.partner_order_id)
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.PartnerOrderID, result.OrderID) == (0, order.partner_order_id, order.order_id)
    assert sorted(result.Revoked.SerialNumber) == sorted([order.certificate.serial, reissued])
    assert result.CancelledAt.tzinfo is not None
    history = _history(api, partner, order.partner_order_id)
    assert {(c.CertificateStatus, c.RevocationReason) for c in history.values()} == {
        ("REVOKED", "cessationOfOperation")}

    _refused(_reissue(api, partner, order.partner_order_id).OrderResponseHeader, -4012, None)
    _refused(_cancel(api, partner, order.partner_order_id).OrderResponseHeader, -4012, None)


def test_an_operation_the_service_cannot_do_is_2019_on_modify_order_operation(
    installation: Installation, partner: Partner
) -> None:
    """Behind the schema's enumeration: a ModifyOrderOperation the service has no use case for
    (should one enter the schema first) is refused -2019 naming the field, and nothing is done."""
    order = _order(installation, partner)
    request = SimpleNamespace(
        OrderRequestHeader=SimpleNamespace(PartnerCode=partner.code, PartnerOrderID=order.partner_order_id,
                                           AuthToken=SimpleNamespace(UserName=partner.username,
                                                                     Password=partner.password)),
        ModifyOrderOperation="DEACTIVATE",
    )
    result = modify_order(installation.ra, RequestRecord(), request)
    errors = result.OrderResponseHeader.Errors.Error
    assert [(e.ErrorCode, e.ErrorField) for e in errors] == [(-2019, "ModifyOrderOperation")]
    assert result.OrderID is None
    assert show_order_by_operator(installation.ra, partner_code=partner.code,
                                  partner_order_id=order.partner_order_id).status == order.status


# ------------------------------------------------------------------------ GetModifiedOrders


def test_the_feed_shows_issued_reissued_revoked_cancelled_in_order_and_to_no_other_partner(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    order = _order(installation, partner)
    reissued = _reissue(api, partner, order.partner_order_id).Certificate.SerialNumber
    assert _revoke(api, partner, "superseded", order=order.partner_order_id,
                   serial=order.certificate.serial).OrderResponseHeader.SuccessCode == 0
    assert _cancel(api, partner, order.partner_order_id).OrderResponseHeader.SuccessCode == 0
    end = datetime.now(UTC) + timedelta(seconds=1)

    result = _feed(api, partner, start, end)
    changes = _changes(result)
    assert result.More is False
    assert {(c.OrderID, c.PartnerOrderID) for c in changes} == {(order.order_id, order.partner_order_id)}
    original = order.certificate.serial
    assert [(c.Change, c.SerialNumber, c.Detail) for c in changes] == [
        ("issued", original, None),
        ("reissued", reissued, None),
        ("revoked", original, "superseded"),
        ("revoked", reissued, "cessationOfOperation"),  # by the cancel, in the same transaction
        ("cancelled", None, None),
    ]
    times = [c.ChangedAt for c in changes]
    assert times == sorted(times) and all(start <= t < end for t in times)

    assert _changes(_feed(api, new_partner(installation.ra), start, end)) == []


def test_the_feed_pages_after_the_last_change_id_and_says_until_when_it_covers(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    orders = [_order(installation, partner) for _ in range(3)]
    end = datetime.now(UTC) + timedelta(hours=1)
    whole_result = _feed(api, partner, start, end)
    whole = _changes(whole_result)
    assert [c.OrderID for c in whole] == [o.order_id for o in orders]
    ids = [c.ChangeID for c in whole]
    assert ids == sorted(ids) and all(isinstance(i, int) and i > 0 for i in ids)
    # ToDate is an hour ahead: the answer covers until the time it read, the next poll's FromDate
    assert whole[-1].ChangedAt < whole_result.CoveredUntil < end

    first = _feed(api, partner, start, end, page_size=2)
    assert first.More is True
    page = _changes(first)
    assert [c.OrderID for c in page] == [o.order_id for o in orders[:2]]
    rest = _feed(api, partner, start, end, page_size=2, after=page[-1].ChangeID)
    assert rest.More is False
    assert [c.OrderID for c in _changes(rest)] == [orders[2].order_id]
    assert _changes(_feed(api, partner, start, end, page_size=MAX_PAGE))[-1].OrderID == orders[2].order_id
    past = _feed(api, partner, start - timedelta(days=1), start)
    assert _changes(past) == [] and past.CoveredUntil == start
    assert [e[0] for e in _errors(_feed(api, partner, start, end, after=ids[0] + 10_000_000).QueryResponseHeader)] == [
        -2019]


def test_the_feeds_bounds(api: ZeepService, partner: Partner) -> None:
    now = datetime.now(UTC)
    _refused(_feed(api, partner, now - MAX_WINDOW - timedelta(seconds=1), now).QueryResponseHeader, -2019, "ToDate")
    assert _feed(api, partner, now - MAX_WINDOW, now).QueryResponseHeader.SuccessCode == 0
    _refused(_feed(api, partner, now, now - timedelta(hours=1)).QueryResponseHeader, -2019, "ToDate")
    _refused(_feed(api, partner, now.replace(tzinfo=None), now).QueryResponseHeader, -2019, "FromDate")
    for size in (0, MAX_PAGE + 1):
        _refused(_feed(api, partner, now - timedelta(hours=1), now, page_size=size).QueryResponseHeader,
                 -2019, "PageSize")
    _refused(api.service.GetModifiedOrders(Request={
        "QueryRequestHeader": query_header(partner, password="wrong"), "FromDate": now, "ToDate": now,
    }).QueryResponseHeader, -4001, None)
