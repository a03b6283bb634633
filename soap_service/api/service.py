"""The operations of the Order API: read the request, ask the RA, render its answer.

No policy lives here. Three cases, told apart by type (docs/design.md, "Error model"):
a refusal of the RA (a :class:`~soap_service.errors.ServiceError`) becomes an answer
with ``Errors`` and a negative ``SuccessCode``, in each operation; an incident (an
:class:`~soap_service.errors.InternalError`, already logged) becomes a ``soap:Server``
fault carrying its ID, in :func:`run_operation`; anything else opens a new incident there first.

The registration authority and the request's log record come with the WSGI environ
(see ``guard``), so the spyne application itself is built once and holds no state.
"""

# mypy: allow-subclassing-any

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from lxml import etree

from soap_service.api import answers
from soap_service.api import models as m
from soap_service.api.faults import InternalErrorDetail, InternalFault
from soap_service.api.requestlog import RECORD_KEY, RequestRecord
from soap_service.api.spyne_loader import ServiceBase, Unicode, get_object_as_xml, get_xml_as_object, rpc
from soap_service.api.wssecurity import SECURITY_KEY, MalformedSecurity, UsernameToken
from soap_service.config import Secret
from soap_service.errors import AuthenticationFailed, InternalError, InvalidField, ServiceError
from soap_service.ra.audit import Subject
from soap_service.ra.auth import Credentials
from soap_service.ra.changes import modified_orders
from soap_service.ra.incidents import open_incident
from soap_service.ra.queries import order_for_partner, parse_csr_for_partner
from soap_service.ra.reissue import PartnerRef, Reissuer
from soap_service.ra.reissue import ReissueRequest as RAReissueRequest
from soap_service.ra.replay import (
    ReplayRequest,
    authenticated_partner,
    read_token,
    request_digest,
    run_replayable,
)
from soap_service.ra.revocation import Revoker
from soap_service.ra.revocation import RevokeRequest as RARevokeRequest
from soap_service.ra.service import RegistrationAuthority

logger = logging.getLogger(__name__)

CHANNEL = "api"
RA_KEY = "soap_service.registration_authority"
"""The WSGI environ key under which the guard hands the service its registration authority."""

THROWS = [InternalErrorDetail]
"""Every operation may answer a soap:Server fault whose detail is ``tns:InternalError``."""

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")


def operation(*types: Any, **options: Any) -> Callable[[F], F]:
    """spyne's ``@rpc``, typed for mypy."""
    return cast(Callable[[F], F], rpc(*types, **options))


def field_text(value: Any) -> str:
    return "" if value is None else str(value)


Security = UsernameToken | MalformedSecurity | None
"""What the guard read of a ``wsse:Security`` header (``wssecurity``); ``None``: none was sent."""


def security_of(ctx: Any) -> Security:
    found = ctx.transport.req_env.get(SECURITY_KEY)
    return found if isinstance(found, UsernameToken | MalformedSecurity) else None


def credentials_of(header: Any, security: Security) -> Credentials:
    """The request header's PartnerCode with its AuthToken or the ``wsse:Security`` UsernameToken:
    exactly one of the two, else -4001 (docs/design.md, "Authentication")."""
    if isinstance(security, MalformedSecurity):
        raise AuthenticationFailed(security.message)
    token = header.AuthToken
    if token is not None and security is not None:
        raise AuthenticationFailed("send either an AuthToken or a wsse:Security UsernameToken, not both")
    if security is not None:
        return security.credentials(field_text(header.PartnerCode))
    if token is None:
        raise AuthenticationFailed("send an AuthToken in the request header or a wsse:Security UsernameToken")
    return Credentials(field_text(header.PartnerCode), field_text(token.UserName), Secret(field_text(token.Password)))


def run_operation(ctx: Any, action: Callable[[RegistrationAuthority, RequestRecord], T]) -> T:
    """Run an operation; an incident, reported or not yet, becomes the ``soap:Server`` fault."""
    environ = ctx.transport.req_env
    record: RequestRecord = environ.get(RECORD_KEY) or RequestRecord()
    try:
        ra: RegistrationAuthority | None = environ.get(RA_KEY)
        if ra is None:
            raise RuntimeError("the SOAP application was called without a registration authority")
        return action(ra, record)
    except InternalError as reported:
        incident = reported
    except Exception as failure:  # noqa: BLE001 - any other failure is an incident, opened here
        incident = open_incident(logger, f"{record.operation} failed", failure=failure)
    record.faulted("Server", incident.incident_id)
    raise InternalFault(incident.incident_id)


_STORED_ANSWER_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def canonical_request(request: Any, request_type: Any, *, header_field: str = "OrderRequestHeader",
                      left_out: frozenset[str] = m.REPLAY_HEADER_FIELDS) -> bytes:
    """What a replayable request's digest covers (``ra.replay``): the operation's ``Request`` as read
    (an instance of the spyne model ``request_type``), its header (``header_field``) without
    ``left_out``, the credentials (``AuthToken``) and ``ReplayToken`` and ``UseReplayToken``,
    serialized by its model and canonicalized (C14N): the same request is the same bytes however the
    client spelled it (prefixes, whitespace between elements, the order of namespace declarations)."""
    header = getattr(request, header_field)
    header_type = type(header)
    kept = {
        name: getattr(header, name) for name in header_type.get_flat_type_info(header_type)
        if name not in left_out
    }
    fields = {name: getattr(request, name) for name in request_type.get_flat_type_info(request_type)}
    fields[header_field] = header_type(**kept)
    return bytes(etree.tostring(get_object_as_xml(request_type(**fields), request_type), method="c14n"))


def _success_code(result: Any) -> int:
    return int(result.OrderResponseHeader.SuccessCode)


def replayable(
    ra: RegistrationAuthority,
    record: RequestRecord,
    request: Any,
    security: Security,
    *,
    operation: str,
    action: str,
    request_type: Any,
    result_type: Any,
    refused: Callable[[ServiceError], R],
    answer: Callable[[PartnerRef | None], R],
    header_field: str = "OrderRequestHeader",
    code_of: Callable[[R], int] = _success_code,
    channel: str = CHANNEL,
) -> R:
    """An operation that a ReplayToken makes idempotent (docs/soap-api.md, "ReplayToken").

    ``answer`` serves the request and renders its result, a refusal of the use case included: with
    ``None`` it authenticates the header's credentials itself (no replay asked: the path of every
    request without ``UseReplayToken``), with a partner it acts for that partner. With replay asked,
    the token is checked first (-2019), then the credentials (a wrong password is -4001, never a
    stored answer), then ``ra.replay`` answers the stored result of the token's first request or
    runs ``answer`` once and keeps its result, serialized as the response's result element.

    ``request_type`` and ``result_type`` are the spyne models of the request and of the result,
    ``header_field`` the request's header element (it carries the credentials and the token),
    ``code_of`` a result's SuccessCode, ``channel`` the audit's; ``refused`` renders a refusal met
    before ``answer`` runs (-2019 on the token, -4001, -4016, -4017). The drop-in services call it
    too."""
    header = getattr(request, header_field)
    try:
        token = read_token(getattr(header, "ReplayToken", None), getattr(header, "UseReplayToken", None))
        if token is None:
            return answer(None)
        partner = authenticated_partner(ra, credentials_of(header, security), channel=channel)
    except ServiceError as error:
        record.answered(error.code)
        return refused(error)
    canonical = canonical_request(request, request_type, header_field=header_field)
    wanted = ReplayRequest(token, operation, request_digest(canonical))
    subject = Subject(channel=channel, action=action, partner_code=partner.code, username=partner.actor,
                      partner_order_id=record.partner_order_id or None)
    first: list[R] = []

    def work() -> tuple[str, int]:
        result = answer(partner)
        first.append(result)
        text = etree.tostring(get_object_as_xml(result, result_type), encoding="unicode")
        return text, code_of(result)

    try:
        answered = run_replayable(ra, partner, wanted, subject, work)
    except ServiceError as error:
        record.answered(error.code)
        return refused(error)
    if first:
        return first[0]
    stored = get_xml_as_object(etree.fromstring(answered.answer.encode("utf-8"), _STORED_ANSWER_PARSER), result_type)
    record.answered(answered.code)
    record.order_id = getattr(stored, "OrderID", None)
    return cast(R, stored)


def reissue_request_of(request: Any) -> RAReissueRequest:
    header, parameters = request.OrderRequestHeader, request.OrderParameters
    names = parameters.DNSNames.DNSName if parameters.DNSNames is not None else None
    return RAReissueRequest(
        partner_order_id=field_text(header.PartnerOrderID),
        csr=field_text(parameters.CSR),
        dns_names=tuple(field_text(n) for n in names) if names else None,
        signature_hash_algorithm=parameters.SignatureHashAlgorithm or None,
        reissue_email=request.ReissueEmail or None,
    )


def reissue(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.ReissueResult:
    header = request.OrderRequestHeader
    poid = field_text(header.PartnerOrderID)
    record.partner_code, record.partner_order_id = field_text(header.PartnerCode), poid

    def refused(error: ServiceError) -> m.ReissueResult:
        header_ = answers.order_header(poid, ra.clock(), error=error)
        return m.ReissueResult(OrderResponseHeader=header_)

    def answer(partner: PartnerRef | None) -> m.ReissueResult:
        wanted, reissuer = reissue_request_of(request), Reissuer(ra)
        try:
            if partner is None:
                outcome = reissuer.reissue(credentials_of(header, security), wanted, channel=CHANNEL)
            else:
                outcome = reissuer.reissue_for(partner, wanted, channel=CHANNEL)
        except ServiceError as error:
            record.answered(error.code)
            return refused(error)
        record.order_id = outcome.order.order_id
        record.answered(answers.success_code(outcome.warnings))
        return m.ReissueResult(
            OrderResponseHeader=answers.order_header(poid, ra.clock(), notices=outcome.warnings),
            OrderID=outcome.order.order_id,
            Certificate=answers.issued_certificate(outcome),
        )

    return replayable(ra, record, request, security, operation="Reissue", action="reissue",
                       request_type=m.ReissueRequest, result_type=m.ReissueResult, refused=refused, answer=answer)


def validate(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.ValidateOrderParametersResult:
    header = request.OrderRequestHeader
    poid = field_text(header.PartnerOrderID)
    record.partner_code, record.partner_order_id = field_text(header.PartnerCode), poid
    try:
        outcome = Reissuer(ra).validate(
            credentials_of(header, security), reissue_request_of(request), channel=CHANNEL
        )
    except ServiceError as error:
        record.answered(error.code)
        return m.ValidateOrderParametersResult(
            OrderResponseHeader=answers.order_header(poid, ra.clock(), error=error)
        )
    record.order_id = outcome.order_id
    record.answered(answers.success_code(outcome.warnings))
    return m.ValidateOrderParametersResult(
        OrderResponseHeader=answers.order_header(poid, ra.clock(), notices=outcome.warnings),
        OrderID=outcome.order_id,
        ParsedCSR=answers.parsed_csr(outcome.csr),
        CertificateDNSNames=answers.dns_names(outcome.names),
        ReturnsCurrentCertificate=outcome.replay,
    )


def parse(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.ParseCSRResult:
    header = request.QueryRequestHeader
    record.partner_code = field_text(header.PartnerCode)
    try:
        parsed = parse_csr_for_partner(
            ra, credentials_of(header, security), field_text(request.CSR), channel=CHANNEL
        )
    except ServiceError as error:
        record.answered(error.code)
        return m.ParseCSRResult(QueryResponseHeader=answers.query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    return m.ParseCSRResult(QueryResponseHeader=answers.query_header(ra.clock()), ParsedCSR=answers.parsed_csr(parsed))


def get_order(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.GetOrderByPartnerOrderIDResult:
    header = request.QueryRequestHeader
    record.partner_code, record.partner_order_id = field_text(header.PartnerCode), field_text(request.PartnerOrderID)
    try:
        answer = order_for_partner(
            ra, credentials_of(header, security), record.partner_order_id, channel=CHANNEL
        )
    except ServiceError as error:
        record.answered(error.code)
        return m.GetOrderByPartnerOrderIDResult(QueryResponseHeader=answers.query_header(ra.clock(), error=error))
    record.order_id = answer.order.order_id
    record.answered(answers.SUCCESS)
    return m.GetOrderByPartnerOrderIDResult(
        QueryResponseHeader=answers.query_header(ra.clock()),
        OrderDetail=answers.order_detail(answer, request.OrderQueryOptions),
    )


def revoke(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.RevokeResult:
    header = request.OrderRequestHeader
    poid = field_text(header.PartnerOrderID)
    record.partner_code, record.partner_order_id = field_text(header.PartnerCode), poid
    wanted = RARevokeRequest(
        partner_order_id=header.PartnerOrderID or None,
        serial_number=request.SerialNumber or None,
        certificate_pem=request.Certificate or None,
        reason=field_text(request.RevokeReason),
    )

    def refused(error: ServiceError) -> m.RevokeResult:
        header_ = answers.order_header(poid, ra.clock(), error=error)
        return m.RevokeResult(OrderResponseHeader=header_)

    def answer(partner: PartnerRef | None) -> m.RevokeResult:
        revoker = Revoker(ra)
        try:
            if partner is None:
                revoked = revoker.revoke(credentials_of(header, security), wanted, channel=CHANNEL)
            else:
                revoked = revoker.revoke_for(partner, wanted, channel=CHANNEL)
        except ServiceError as error:
            record.answered(error.code)
            return refused(error)
        record.partner_order_id, record.order_id = revoked.partner_order_id, revoked.order_id
        record.answered(answers.SUCCESS)
        return answers.revoked_certificate(revoked, ra.clock())

    return replayable(ra, record, request, security, operation="Revoke", action="revoke",
                       request_type=m.RevokeRequest, result_type=m.RevokeResult, refused=refused, answer=answer)


def modify_order(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.ModifyOrderResult:
    header = request.OrderRequestHeader
    poid = field_text(header.PartnerOrderID)
    record.partner_code, record.partner_order_id = field_text(header.PartnerCode), poid

    def refused(error: ServiceError) -> m.ModifyOrderResult:
        return m.ModifyOrderResult(
            OrderResponseHeader=answers.order_header(poid, ra.clock(), error=error)
        )

    def answer(partner: PartnerRef | None) -> m.ModifyOrderResult:
        revoker = Revoker(ra)
        try:
            if request.ModifyOrderOperation != "CANCEL":
                # The schema's enumeration refuses any other value first; this holds should an operation
                # enter the schema before its use case exists.
                raise InvalidField("ModifyOrderOperation must be CANCEL", field="ModifyOrderOperation")
            if partner is None:
                cancelled = revoker.cancel(credentials_of(header, security), poid, channel=CHANNEL)
            else:
                cancelled = revoker.cancel_for(partner, poid, channel=CHANNEL)
        except ServiceError as error:
            record.answered(error.code)
            return refused(error)
        record.order_id = cancelled.order_id
        record.answered(answers.SUCCESS)
        return answers.cancelled_order(cancelled, ra.clock())

    return replayable(ra, record, request, security, operation="ModifyOrder", action="cancel",
                       request_type=m.ModifyOrderRequest, result_type=m.ModifyOrderResult, refused=refused,
                       answer=answer)


def get_modified_orders(
    ra: RegistrationAuthority, record: RequestRecord, request: Any, security: Security = None
) -> m.GetModifiedOrdersResult:
    header = request.QueryRequestHeader
    record.partner_code = field_text(header.PartnerCode)
    page_size = {} if request.PageSize is None else {"page_size": request.PageSize}
    try:
        page = modified_orders(
            ra, credentials_of(header, security), request.FromDate, request.ToDate,
            channel=CHANNEL, after_change_id=request.AfterChangeID, **page_size,
        )
    except ServiceError as error:
        record.answered(error.code)
        return m.GetModifiedOrdersResult(QueryResponseHeader=answers.query_header(ra.clock(), error=error))
    record.answered(answers.SUCCESS)
    return m.GetModifiedOrdersResult(
        QueryResponseHeader=answers.query_header(ra.clock()),
        OrderChanges=answers.order_changes(page.changes),
        More=page.more,
        CoveredUntil=page.covered_until,
    )


def hello(record: RequestRecord, text: str) -> str:
    record.answered(answers.SUCCESS)
    return text


class OrderService(ServiceBase):
    """The Partner Order API. Each method: one ``Request`` in, one ``<Op>Result`` out. Each docstring is
    one line: it is the operation's wsdl:documentation, and Python 3.13 strips a docstring's indentation
    where 3.11 keeps it (the WSDL must be the same on both)."""

    @operation(Unicode(max_len=m.MAX_HELLO_INPUT_CHARS, **m.REQUIRED), _returns=Unicode(**m.REQUIRED),
               _throws=THROWS)
    def Hello(ctx: Any, Input: Any) -> str:
        """Echoes Input (at most 256 characters); no authentication. The partner's connectivity test."""
        # Bounded because it is echoed: 1 MiB of CDATA ampersands came back as 5 MiB of entities.
        return run_operation(ctx, lambda _ra, record: hello(record, field_text(Input)))

    @operation(m.required(m.ReissueRequest), _returns=m.required(m.ReissueResult), _throws=THROWS)
    def Reissue(ctx: Any, Request: Any) -> m.ReissueResult:
        """A new certificate for an existing order, from a new CSR; free and unlimited."""
        return run_operation(ctx, lambda ra, record: reissue(ra, record, Request, security_of(ctx)))

    @operation(m.required(m.ReissueRequest), _returns=m.required(m.ValidateOrderParametersResult), _throws=THROWS)
    def ValidateOrderParameters(ctx: Any, Request: Any) -> m.ValidateOrderParametersResult:
        """Every check of Reissue, nothing issued: the errors and warnings Reissue would give."""
        return run_operation(ctx, lambda ra, record: validate(ra, record, Request, security_of(ctx)))

    @operation(m.required(m.ParseCSRRequest), _returns=m.required(m.ParseCSRResult), _throws=THROWS)
    def ParseCSR(ctx: Any, Request: Any) -> m.ParseCSRResult:
        """A CSR as the service reads it."""
        return run_operation(ctx, lambda ra, record: parse(ra, record, Request, security_of(ctx)))

    @operation(
        m.required(m.GetOrderByPartnerOrderIDRequest),
        _returns=m.required(m.GetOrderByPartnerOrderIDResult),
        _throws=THROWS,
    )
    def GetOrderByPartnerOrderID(ctx: Any, Request: Any) -> m.GetOrderByPartnerOrderIDResult:
        """An order of the partner's, with its certificate, chain and history as asked."""
        return run_operation(ctx, lambda ra, record: get_order(ra, record, Request, security_of(ctx)))

    @operation(m.required(m.RevokeRequest), _returns=m.required(m.RevokeResult), _throws=THROWS)
    def Revoke(ctx: Any, Request: Any) -> m.RevokeResult:
        """Revokes a certificate of yours: by Certificate, by SerialNumber or the current one; -4014 if revoked."""
        return run_operation(ctx, lambda ra, record: revoke(ra, record, Request, security_of(ctx)))

    @operation(m.required(m.ModifyOrderRequest), _returns=m.required(m.ModifyOrderResult), _throws=THROWS)
    def ModifyOrder(ctx: Any, Request: Any) -> m.ModifyOrderResult:
        """CANCEL: the order ends, its certificates are revoked (cessationOfOperation); then -4012 on it."""
        return run_operation(ctx, lambda ra, record: modify_order(ra, record, Request, security_of(ctx)))

    @operation(
        m.required(m.GetModifiedOrdersRequest), _returns=m.required(m.GetModifiedOrdersResult), _throws=THROWS
    )
    def GetModifiedOrders(ctx: Any, Request: Any) -> m.GetModifiedOrdersResult:
        """Your orders' changes, FromDate to ToDate (exclusive), oldest first; More: AfterChangeID."""
        return run_operation(ctx, lambda ra, record: get_modified_orders(ra, record, Request, security_of(ctx)))


OPERATIONS = frozenset({
    "Hello", "Reissue", "ValidateOrderParameters", "ParseCSR", "GetOrderByPartnerOrderID",
    "Revoke", "ModifyOrder", "GetModifiedOrders",
})
