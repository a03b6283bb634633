"""The operations of the drop-in services: read the request, ask the RA, render its answer in
the earlier API's shapes (``webtrust.models``).

As in the Order API (``api.service``, docs/design.md, "Error model"): a refusal of the RA
becomes ``Errors`` and a negative ``SuccessCode``; an incident a ``soap:Server`` fault with its
ID (``api.service._run``). Authentication is the Order API's (AuthToken or a ``wsse:Security``
UsernameToken). Reissue, Revoke and ModifyOrder run through
:func:`~soap_service.webtrust.replay_hook.replay_hook` (ReplayToken); ValidateOrderParameters and
the queries accept a token and ignore it.
"""

# mypy: allow-subclassing-any

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from soap_service.api import answers
from soap_service.api import models as m
from soap_service.api.requestlog import RequestRecord
from soap_service.api.service import (
    THROWS,
    Security,
    credentials_of,
    operation,
    reissue_request_of,
    run_operation,
    security_of,
)
from soap_service.api.service import field_text as text
from soap_service.api.spyne_loader import ServiceBase, Unicode
from soap_service.errors import InvalidField, ServiceError
from soap_service.ra.changes import MAX_PAGE, OrderChangeView, modified_orders_of
from soap_service.ra.queries import OrderAnswer, order_for_partner, order_of, parse_csr_for_partner
from soap_service.ra.reissue import PartnerRef, Reissuer
from soap_service.ra.replay import authenticated_partner
from soap_service.ra.revocation import Revoker
from soap_service.ra.revocation import RevokeRequest as RARevokeRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.webtrust import models as w
from soap_service.webtrust.replay_hook import replay_hook

CHANNEL = "webtrust"
"""The channel of the drop-in services in the audit trail and the login records."""

DEFAULT_REVOKE_REASON = "unspecified"
LIBRARY_REVOKE_REASONS = {"key compromise": "keyCompromise", "cessation of service": "cessationOfOperation"}
"""The two reasons the earlier API's client libraries document for Revoke (``"key Compromise"``,
``"cessation of service"``, in any case), read as the RFC 5280 reasons they name; any other value
goes to the RA as sent (an unknown one is -2019)."""
CANCEL = "CANCEL"

# ------------------------------------------------------------------------ answers


def order_header(native: m.OrderResponseHeader) -> w.OrderResponseHeader:
    return w.OrderResponseHeader(
        PartnerOrderID=native.PartnerOrderID or None, SuccessCode=native.SuccessCode, Errors=native.Errors,
        Warnings=native.Warnings, Timestamp=native.Timestamp,
    )


def _order_header(record: RequestRecord, now: datetime, *, error: ServiceError | None = None,
                  warnings: Any = ()) -> w.OrderResponseHeader:
    return order_header(answers.order_header(record.partner_order_id or "", now, error=error, notices=warnings))


def query_header(
    now: datetime, *, error: ServiceError | None = None, count: int | None = None
) -> w.QueryResponseHeader:
    native = answers.query_header(now, error=error)
    return w.QueryResponseHeader(
        SuccessCode=native.SuccessCode, Errors=native.Errors, Timestamp=native.Timestamp,
        ReturnCount=count if error is None else None,
    )


def order_detail(answer: OrderAnswer, options: Any, events: list[OrderChangeView] | None = None) -> w.OrderDetail:
    native = answers.order_detail(answer, options)
    info = native.OrderInfo
    return w.OrderDetail(
        OrderInfo=w.OrderInfo(
            GeoTrustOrderID=info.OrderID, PartnerOrderID=info.PartnerOrderID, Brand=info.Brand,
            ProductCode=info.ProductCode, ValidationLevel=info.ValidationLevel, OrderStatus=info.OrderStatus,
            TermStart=info.TermStart, TermEnd=info.TermEnd, DNSNames=info.DNSNames,
        ),
        Organization=native.Organization,
        Contacts=native.Contacts,
        CertificateInfo=native.CertificateInfo,
        Fulfillment=native.Fulfillment,
        CertificateHistory=native.CertificateHistory,
        ModificationEvents=None if events is None else w.ModificationEvents(ModificationEvent=[
            w.ModificationEvent(ModificationEventID=e.change_id, ModificationEventName=e.change,
                                ModificationTimestamp=e.at, SerialNumber=e.serial_number)
            for e in events
        ]),
    )


# ------------------------------------------------------------------------ order operations


def _claimed(record: RequestRecord, header: Any) -> None:
    record.partner_code, record.partner_order_id = text(header.PartnerCode), text(header.PartnerOrderID)


def _refuse_order_changes(changes: Any) -> None:
    if changes is not None and changes.Change:
        raise InvalidField(
            "OrderChanges are not offered: name the certificate's names in OrderParameters/DNSNames",
            field="OrderChanges",
        )


def _replayed(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security, *, operation: str,
    request_type: Any, result_type: Any, refused: Callable[[ServiceError], Any],
    answer: Callable[[PartnerRef | None], Any],
) -> Any:
    return replay_hook(ra, record, request, security, operation=operation, request_type=request_type,
                       result_type=result_type, refused=refused, answer=answer, channel=CHANNEL)


def reissue(ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security) -> w.ReissueOutput:
    header = request.OrderRequestHeader
    _claimed(record, header)

    def refused(error: ServiceError) -> w.ReissueOutput:
        record.answered(error.code)
        return w.ReissueOutput(OrderResponseHeader=_order_header(record, ra.clock(), error=error))

    def answer(partner: PartnerRef | None) -> w.ReissueOutput:
        try:
            _refuse_order_changes(request.OrderChanges)
            wanted, reissuer = reissue_request_of(request), Reissuer(ra)
            if partner is None:
                outcome = reissuer.reissue(credentials_of(header, security), wanted, channel=CHANNEL)
            else:
                outcome = reissuer.reissue_for(partner, wanted, channel=CHANNEL)
        except ServiceError as error:
            return refused(error)
        record.order_id = outcome.order.order_id
        record.answered(answers.success_code(outcome.warnings))
        return w.ReissueOutput(
            OrderResponseHeader=_order_header(record, ra.clock(), warnings=outcome.warnings),
            GeoTrustOrderID=outcome.order.order_id,
            Certificate=answers.issued_certificate(outcome),
        )

    return _replayed(ra, record, request, security, operation="Reissue", request_type=w.ReissueInput,  # type: ignore[no-any-return]
                     result_type=w.ReissueOutput, refused=refused, answer=answer)


def validate(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.ValidateOrderParametersOutput:
    header = request.OrderRequestHeader
    _claimed(record, header)
    try:
        outcome = Reissuer(ra).validate(credentials_of(header, security), reissue_request_of(request), channel=CHANNEL)
    except ServiceError as error:
        record.answered(error.code)
        return w.ValidateOrderParametersOutput(OrderResponseHeader=_order_header(record, ra.clock(), error=error))
    record.order_id = outcome.order_id
    record.answered(answers.success_code(outcome.warnings))
    return w.ValidateOrderParametersOutput(
        OrderResponseHeader=_order_header(record, ra.clock(), warnings=outcome.warnings),
        GeoTrustOrderID=outcome.order_id,
        ParsedCSR=answers.parsed_csr(outcome.csr),
        CertificateDNSNames=answers.dns_names(outcome.names),
        ReturnsCurrentCertificate=outcome.replay,
    )


def _revoke_reason(sent: str | None) -> str:
    if not sent:
        return DEFAULT_REVOKE_REASON
    return LIBRARY_REVOKE_REASONS.get(sent.strip().lower(), sent)


def revoke(ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security) -> w.RevokeOutput:
    header = request.OrderRequestHeader
    _claimed(record, header)
    wanted = RARevokeRequest(
        partner_order_id=header.PartnerOrderID or None,
        serial_number=request.SerialNumber or None,
        certificate_pem=request.Certificate or None,
        reason=_revoke_reason(request.RevokeReason),
    )

    def refused(error: ServiceError) -> w.RevokeOutput:
        record.answered(error.code)
        return w.RevokeOutput(OrderResponseHeader=_order_header(record, ra.clock(), error=error))

    def answer(partner: PartnerRef | None) -> w.RevokeOutput:
        revoker = Revoker(ra)
        try:
            if partner is None:
                revoked = revoker.revoke(credentials_of(header, security), wanted, channel=CHANNEL)
            else:
                revoked = revoker.revoke_for(partner, wanted, channel=CHANNEL)
        except ServiceError as error:
            return refused(error)
        record.partner_order_id, record.order_id = revoked.partner_order_id, revoked.order_id
        record.answered(answers.SUCCESS)
        native = answers.revoked_certificate(revoked, ra.clock())
        return w.RevokeOutput(
            OrderResponseHeader=order_header(native.OrderResponseHeader), GeoTrustOrderID=native.OrderID,
            SerialNumber=native.SerialNumber, RevokedAt=native.RevokedAt, RevokeReason=native.RevokeReason,
            AlsoRevoked=native.AlsoRevoked,
        )

    return _replayed(ra, record, request, security, operation="Revoke", request_type=w.RevokeInput,  # type: ignore[no-any-return]
                     result_type=w.RevokeOutput, refused=refused, answer=answer)


def modify_order(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.ModifyOrderOutput:
    header = request.OrderRequestHeader
    _claimed(record, header)

    def refused(error: ServiceError) -> w.ModifyOrderOutput:
        record.answered(error.code)
        return w.ModifyOrderOutput(OrderResponseHeader=_order_header(record, ra.clock(), error=error))

    def answer(partner: PartnerRef | None) -> w.ModifyOrderOutput:
        revoker, poid = Revoker(ra), text(header.PartnerOrderID)
        try:
            requested = text(request.ModifyOrderOperation).strip().upper()
            if requested != CANCEL:
                raise InvalidField("ModifyOrderOperation is not offered: only CANCEL is", field="ModifyOrderOperation")
            if partner is None:
                cancelled = revoker.cancel(credentials_of(header, security), poid, channel=CHANNEL)
            else:
                cancelled = revoker.cancel_for(partner, poid, channel=CHANNEL)
        except ServiceError as error:
            return refused(error)
        record.order_id = cancelled.order_id
        record.answered(answers.SUCCESS)
        native = answers.cancelled_order(cancelled, ra.clock())
        return w.ModifyOrderOutput(
            OrderResponseHeader=order_header(native.OrderResponseHeader), GeoTrustOrderID=native.OrderID,
            CancelledAt=native.CancelledAt, Revoked=native.Revoked,
        )

    return _replayed(ra, record, request, security, operation="ModifyOrder", request_type=w.ModifyOrderInput,  # type: ignore[no-any-return]
                     result_type=w.ModifyOrderOutput, refused=refused, answer=answer)


# ------------------------------------------------------------------------ query operations


def get_order(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.GetOrderByPartnerOrderIDOutput:
    header = request.QueryRequestHeader
    record.partner_code, record.partner_order_id = text(header.PartnerCode), text(request.PartnerOrderID)
    try:
        answer = order_for_partner(ra, credentials_of(header, security), record.partner_order_id, channel=CHANNEL)
    except ServiceError as error:
        record.answered(error.code)
        return w.GetOrderByPartnerOrderIDOutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.order_id = answer.order.order_id
    record.answered(answers.SUCCESS)
    return w.GetOrderByPartnerOrderIDOutput(
        QueryResponseHeader=query_header(ra.clock(), count=1),
        OrderDetail=order_detail(answer, request.OrderQueryOptions),
    )


def _changes_in(ra: RegistrationAuthority, request: Any, security: Security) -> list[OrderChangeView]:
    """Every change of the partner's orders in [FromDate, ToDate): one page of the Order API's
    feed; a window with more than :data:`~soap_service.ra.changes.MAX_PAGE` changes is -2019 on
    ToDate (the earlier API has no paging: ask for shorter windows)."""
    partner = authenticated_partner(ra, credentials_of(request.QueryRequestHeader, security), channel=CHANNEL)
    return _changes_of(ra, partner, request)


def _changes_of(ra: RegistrationAuthority, partner: PartnerRef, request: Any) -> list[OrderChangeView]:
    """:func:`_changes_in` for a partner already authenticated."""
    page = modified_orders_of(ra, partner, request.FromDate, request.ToDate, channel=CHANNEL)
    if page.more:
        raise InvalidField(f"the window holds more than {MAX_PAGE} changes: ask for a shorter one", field="ToDate")
    return list(page.changes)


def _by_order(changes: list[OrderChangeView]) -> dict[str, list[OrderChangeView]]:
    grouped: dict[str, list[OrderChangeView]] = {}
    for change in changes:
        grouped.setdefault(change.partner_order_id, []).append(change)
    return grouped


def get_modified_orders(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.GetModifiedOrdersOutput:
    header = request.QueryRequestHeader
    record.partner_code = text(header.PartnerCode)
    try:
        # One login for the whole answer: a PasswordDigest's nonce is spent by its first check, and
        # a login per order would cost an argon2 check each (and lock the account out).
        partner = authenticated_partner(ra, credentials_of(header, security), channel=CHANNEL)
        grouped = _by_order(_changes_of(ra, partner, request))
        details = [
            order_detail(order_of(ra, partner, partner_order_id, channel=CHANNEL), request.OrderQueryOptions, events)
            for partner_order_id, events in grouped.items()
        ]
    except ServiceError as error:
        record.answered(error.code)
        return w.GetModifiedOrdersOutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    return w.GetModifiedOrdersOutput(
        QueryResponseHeader=query_header(ra.clock(), count=len(details)),
        OrderDetails=w.OrderDetails(OrderDetail=details),
    )


def get_modified_order_summary(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.GetModifiedOrderSummaryOutput:
    record.partner_code = text(request.QueryRequestHeader.PartnerCode)
    try:
        changes = _changes_in(ra, request, security)
    except ServiceError as error:
        record.answered(error.code)
        return w.GetModifiedOrderSummaryOutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    return w.GetModifiedOrderSummaryOutput(
        QueryResponseHeader=query_header(ra.clock(), count=len(changes)),
        OrderSummaries=w.OrderSummaries(OrderSummary=[
            w.OrderSummary(GeoTrustOrderID=c.order_id, PartnerOrderID=c.partner_order_id,
                           ModificationEventID=c.change_id, ModificationEventName=c.change,
                           ModificationTimestamp=c.at, SerialNumber=c.serial_number)
            for c in changes
        ]),
    )


def parse(ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security) -> w.ParseCSROutput:
    header = request.QueryRequestHeader
    record.partner_code = text(header.PartnerCode)
    try:
        parsed = parse_csr_for_partner(ra, credentials_of(header, security), text(request.CSR), channel=CHANNEL)
    except ServiceError as error:
        record.answered(error.code)
        return w.ParseCSROutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    return w.ParseCSROutput(QueryResponseHeader=query_header(ra.clock()), ParsedCSR=answers.parsed_csr(parsed))


def _order_answer(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> OrderAnswer:
    header = request.QueryRequestHeader
    record.partner_code, record.partner_order_id = text(header.PartnerCode), text(request.PartnerOrderID)
    answer = order_for_partner(ra, credentials_of(header, security), record.partner_order_id, channel=CHANNEL)
    record.order_id = answer.order.order_id
    return answer


def check_status(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.CheckStatusOutput:
    try:
        order = _order_answer(ra, record, request, security).order
    except ServiceError as error:
        record.answered(error.code)
        return w.CheckStatusOutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    current = order.certificate
    return w.CheckStatusOutput(
        QueryResponseHeader=query_header(ra.clock(), count=1),
        OrderStatus=w.OrderStatusModel(
            GeoTrustOrderID=order.order_id, PartnerOrderID=order.partner_order_id, OrderStatus=order.status,
            CertificateStatus=None if current is None else current.status.upper(),
            SerialNumber=None if current is None else current.serial,
            NotAfter=None if current is None else current.not_after,
        ),
    )


def get_fulfillment(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security
) -> w.GetFulfillmentOutput:
    try:
        answer = _order_answer(ra, record, request, security)
    except ServiceError as error:
        record.answered(error.code)
        return w.GetFulfillmentOutput(QueryResponseHeader=query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    options = m.OrderQueryOptions(
        ReturnFulfillment=True, ReturnCACerts=bool(request.ReturnCACerts),
        ReturnPKCS7Cert=bool(request.ReturnPKCS7Cert),
    )
    fulfillment = answers.order_detail(answer, options).Fulfillment
    return w.GetFulfillmentOutput(
        QueryResponseHeader=query_header(ra.clock(), count=0 if fulfillment is None else 1),
        GeoTrustOrderID=answer.order.order_id,
        Fulfillment=fulfillment,
    )


def hello(record: RequestRecord, said: str) -> str:
    record.answered(answers.SUCCESS)
    return said


# ------------------------------------------------------------------------ spyne services

Action = Callable[[RegistrationAuthority, RequestRecord, Any, Security], Any]


def _served(ctx: Any, action: Action, request: Any) -> Any:
    security = security_of(ctx)
    return run_operation(ctx, lambda ra, record: action(ra, record, request, security))


class WebtrustOrderService(ServiceBase):
    """/webtrust/order: Reissue, ValidateOrderParameters, Revoke, ModifyOrder (one-line docstrings:
    they are the WSDL's documentation, as in ``api.service.OrderService``)."""

    @operation(m.required(w.ReissueInput), _returns=m.required(w.ReissueOutput), _throws=THROWS)
    def Reissue(ctx: Any, Request: Any) -> w.ReissueOutput:
        """A new certificate for an existing order, from a new CSR, answered at once with its chain."""
        return _served(ctx, reissue, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.ValidateOrderParametersInput), _returns=m.required(w.ValidateOrderParametersOutput),
               _throws=THROWS)
    def ValidateOrderParameters(ctx: Any, Request: Any) -> w.ValidateOrderParametersOutput:
        """Every check of Reissue, nothing issued."""
        return _served(ctx, validate, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.RevokeInput), _returns=m.required(w.RevokeOutput), _throws=THROWS)
    def Revoke(ctx: Any, Request: Any) -> w.RevokeOutput:
        """Revokes a certificate of yours: by Certificate (PEM), by SerialNumber or the order's current one."""
        return _served(ctx, revoke, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.ModifyOrderInput), _returns=m.required(w.ModifyOrderOutput), _throws=THROWS)
    def ModifyOrder(ctx: Any, Request: Any) -> w.ModifyOrderOutput:
        """CANCEL: the order ends and its certificates are revoked; no other operation is offered."""
        return _served(ctx, modify_order, Request)  # type: ignore[no-any-return]


class WebtrustQueryService(ServiceBase):
    """/webtrust/query: hello and the reading operations."""

    @operation(Unicode(max_len=w.MAX_HELLO_INPUT_CHARS, **m.REQUIRED), _returns=Unicode(**m.REQUIRED),
               _throws=THROWS)
    def hello(ctx: Any, Input: Any) -> str:
        """Echoes Input (at most 256 characters); no authentication."""
        return run_operation(ctx, lambda _ra, record: hello(record, text(Input)))

    @operation(m.required(w.GetOrderByPartnerOrderIDInput), _returns=m.required(w.GetOrderByPartnerOrderIDOutput),
               _throws=THROWS)
    def GetOrderByPartnerOrderID(ctx: Any, Request: Any) -> w.GetOrderByPartnerOrderIDOutput:
        """An order of yours, with its certificate, chain and history as OrderQueryOptions ask."""
        return _served(ctx, get_order, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.GetModifiedOrdersInput), _returns=m.required(w.GetModifiedOrdersOutput), _throws=THROWS)
    def GetModifiedOrders(ctx: Any, Request: Any) -> w.GetModifiedOrdersOutput:
        """Your orders changed in [FromDate, ToDate), each with its changes (ModificationEvents)."""
        return _served(ctx, get_modified_orders, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.GetModifiedOrderSummaryInput), _returns=m.required(w.GetModifiedOrderSummaryOutput),
               _throws=THROWS)
    def GetModifiedOrderSummary(ctx: Any, Request: Any) -> w.GetModifiedOrderSummaryOutput:
        """Every change of your orders in [FromDate, ToDate), one OrderSummary each."""
        return _served(ctx, get_modified_order_summary, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.ParseCSRInput), _returns=m.required(w.ParseCSROutput), _throws=THROWS)
    def ParseCSR(ctx: Any, Request: Any) -> w.ParseCSROutput:
        """A CSR as the service reads it."""
        return _served(ctx, parse, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.CheckStatusInput), _returns=m.required(w.CheckStatusOutput), _throws=THROWS)
    def CheckStatus(ctx: Any, Request: Any) -> w.CheckStatusOutput:
        """The status of an order of yours and of its current certificate."""
        return _served(ctx, check_status, Request)  # type: ignore[no-any-return]

    @operation(m.required(w.GetFulfillmentInput), _returns=m.required(w.GetFulfillmentOutput), _throws=THROWS)
    def GetFulfillment(ctx: Any, Request: Any) -> w.GetFulfillmentOutput:
        """The current certificate of an order of yours, with its chain and PKCS#7 as asked."""
        return _served(ctx, get_fulfillment, Request)  # type: ignore[no-any-return]


ORDER_OPERATIONS = frozenset({"Reissue", "ValidateOrderParameters", "Revoke", "ModifyOrder"})
QUERY_OPERATIONS = frozenset({
    "hello", "GetOrderByPartnerOrderID", "GetModifiedOrders", "GetModifiedOrderSummary", "ParseCSR",
    "CheckStatus", "GetFulfillment",
})

NOT_OFFERED = (
    "QuickOrder", "QuickInvite", "OrderPreAuthentication", "ValidatePreAuthenticationData", "ChangeApproverEmail",
    "ResendEmail", "ShowReplayTokens", "GetQuickApproverList", "GetUserAgreement", "GetOrdersByDateRange",
    "GetPreAuthOrdersByDateRange", "GetPreAuthOrderByPartnerOrderID", "GetModifiedPreAuthOrderSummary",
)
"""Operations of the earlier API that these services do not have (docs/migration.md): not in
the WSDLs, so a client generated from them has no such method, and a request naming one is
refused by the guard with a ``soap:Client`` fault (the Body names no operation of the service)."""
