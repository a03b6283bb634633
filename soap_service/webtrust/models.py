"""The message types of the drop-in services, as spyne models (docs/migration.md).

Type names are those the earlier API's client libraries create by name
(``client.factory.create("ReissueInput")``): each operation's request is ``<Op>Input``, its
result ``<Op>Output``; the request headers are ``orderRequestHeader`` and
``queryRequestHeader``, the credentials ``authToken``. Element names are the Order API's
(``Request``, ``OrderRequestHeader``, ``AuthToken``, ``PartnerCode``...). The order's ID is
answered as ``GeoTrustOrderID``, where the earlier API put it. Types with nothing to adapt
(errors, certificates, ParsedCSR, contacts...) are the Order API's own (``api.models``).

Every text element the RA does not bound itself (ProductCode, ApiVersion, ReplayToken,
WebServerType, ModifyOrderReasonMessage...) is bounded here, in the published schema, which
the guard checks before anything reads the request. The namespace is the Order API's.
"""

# mypy: allow-subclassing-any

from __future__ import annotations

from typing import Any

from soap_service.api import models as m
from soap_service.api.models import IN_TNS, OPTIONAL, REQUIRED, TNS, Flag, Int, OptionalText, OptionalTime, Text
from soap_service.api.spyne_loader import ComplexModel, Integer32, Unicode
from soap_service.ra.replay import MAX_REPLAY_TOKEN_CHARS as MAX_REPLAY_TOKEN_CHARS_CORE

MAX_HELLO_INPUT_CHARS = m.MAX_HELLO_INPUT_CHARS
MAX_CODE_CHARS = 64
"""ProductCode, ApiVersion, WebServerType, ModifyOrderOperation, RevokeReason, ChangeType."""
MAX_REPLAY_TOKEN_CHARS = MAX_REPLAY_TOKEN_CHARS_CORE
"""The replay core's bound (``ra.replay``): a longer token is refused by the schema, before anything."""
MAX_REASON_MESSAGE_CHARS = 1024
MAX_EMAIL_CHARS = 254
MAX_CHANGE_VALUE_CHARS = 253


_bounded = m.bounded_text


class _Model(ComplexModel):
    __namespace__ = TNS


required, optional, items = m.required, m.optional, m.items

# ------------------------------------------------------------------------------ requests


class AuthToken(_Model):
    """Optional, as in the Order API: a ``wsse:Security`` UsernameToken may authenticate instead."""

    __type_name__ = "authToken"
    _type_info = [("UserName", Text), ("Password", Text)]


_HEADER_EXTRAS: list[tuple[str, Any]] = [
    ("ProductCode", _bounded(MAX_CODE_CHARS, "ProductCodeText")),
    ("ApiVersion", _bounded(MAX_CODE_CHARS, "ApiVersionText")),
    ("ReplayToken", _bounded(MAX_REPLAY_TOKEN_CHARS, "ReplayTokenText")),
    ("UseReplayToken", Flag),
]
"""What the earlier API's headers also carried; accepted (ProductCode and ApiVersion ignored; the replay
token answered again on Reissue, Revoke and ModifyOrder: ``webtrust.replay_hook``)."""


class OrderRequestHeader(_Model):
    """PartnerOrderID is optional in the schema (Revoke by certificate needs none); the RA
    refuses a Reissue, ValidateOrderParameters or ModifyOrder without it (-2019)."""

    __type_name__ = "orderRequestHeader"
    _type_info = [
        ("PartnerCode", Text),
        ("AuthToken", optional(AuthToken)),
        ("PartnerOrderID", OptionalText),
        *_HEADER_EXTRAS,
    ]


class QueryRequestHeader(_Model):
    __type_name__ = "queryRequestHeader"
    _type_info = [("PartnerCode", Text), ("AuthToken", optional(AuthToken)), *_HEADER_EXTRAS]


class OrderParameters(_Model):
    __type_name__ = "orderParameters"
    _type_info = [
        ("CSR", Text),
        ("WebServerType", _bounded(MAX_CODE_CHARS, "WebServerTypeText")),
        ("DNSNames", optional(m.DNSNames)),
        ("SignatureHashAlgorithm", OptionalText),
    ]


class OrderChange(_Model):
    """One change the earlier API's Reissue could carry; not offered: name the certificate's
    names in OrderParameters/DNSNames instead (a change is -2019 on OrderChanges)."""

    __type_name__ = "orderChange"
    _type_info = [
        ("ChangeType", _bounded(MAX_CODE_CHARS, "ChangeTypeText")),
        ("NewValue", _bounded(MAX_CHANGE_VALUE_CHARS, "ChangeValueText")),
        ("OldValue", _bounded(MAX_CHANGE_VALUE_CHARS, "ChangeValueText")),
    ]


MAX_ORDER_CHANGES = 100
"""Changes in one OrderChanges at most (any change is refused, -2019): a list the schema bounds is
not 90,000 empty elements parsed before the login."""


class OrderChanges(_Model):
    __type_name__ = "orderChanges"
    _type_info = [("Change", OrderChange.customize(min_occurs=0, max_occurs=MAX_ORDER_CHANGES, nillable=False))]


class ReissueInput(_Model):
    __type_name__ = "ReissueInput"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("OrderParameters", required(OrderParameters)),
        ("ReissueEmail", OptionalText),
        ("OrderChanges", optional(OrderChanges)),
    ]


class ValidateOrderParametersInput(_Model):
    __type_name__ = "ValidateOrderParametersInput"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("OrderParameters", required(OrderParameters)),
        ("ReissueEmail", OptionalText),
    ]


class RevokeInput(_Model):
    """RevokeReason: one of RFC 5280's reasons as the Order API spells them (``keyCompromise``...);
    left out, ``unspecified``."""

    __type_name__ = "RevokeInput"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("Certificate", m.CertificatePEM),
        ("SerialNumber", m.SerialNumberText),
        ("RevokeReason", _bounded(MAX_CODE_CHARS, "RevokeReasonText")),
    ]


class ModifyOrderInput(_Model):
    """ModifyOrderOperation: ``CANCEL``; any other of the earlier API's operations is -2019."""

    __type_name__ = "ModifyOrderInput"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("ModifyOrderOperation",
         Unicode(max_len=MAX_CODE_CHARS, type_name="ModifyOrderOperationText", **IN_TNS, **REQUIRED)),
        ("ModifyOrderReasonMessage", _bounded(MAX_REASON_MESSAGE_CHARS, "ReasonMessageText")),
        ("RequestorEmail", _bounded(MAX_EMAIL_CHARS, "EmailText")),
    ]


class OrderQueryOptions(_Model):
    """The Order API's five options first, then those of the earlier API that clients send and
    this service has nothing for (accepted, ignored; contacts always come back): every option the
    earlier API's client libraries document for GetOrderByPartnerOrderID is here."""

    __type_name__ = "orderQueryOptions"
    _type_info = [
        ("ReturnCertificateInfo", Flag),
        ("ReturnFulfillment", Flag),
        ("ReturnCACerts", Flag),
        ("ReturnPKCS7Cert", Flag),
        ("ReturnCertificateHistory", Flag),
        ("ReturnProductDetail", Flag),
        ("ReturnContacts", Flag),
        ("ReturnPaymentInfo", Flag),
        ("ReturnOrderAttributes", Flag),
        ("ReturnAuthenticationComments", Flag),
        ("ReturnAuthenticationStatuses", Flag),
        ("ReturnCertificateAlgorithmInfo", Flag),
        ("ReturnPartnerTags", Flag),
        ("ReturnTrustServicesSummary", Flag),
        ("ReturnTrustServicesDetails", Flag),
        ("ReturnVulnerabilityScanSummary", Flag),
        ("ReturnVulnerabilityScanDetails", Flag),
        ("ReturnFileAuthDVSummary", Flag),
        ("ReturnDNSAuthDVSummary", Flag),
    ]


IGNORED_QUERY_OPTIONS = (
    "ReturnProductDetail", "ReturnContacts", "ReturnPaymentInfo", "ReturnOrderAttributes",
    "ReturnAuthenticationComments", "ReturnAuthenticationStatuses", "ReturnCertificateAlgorithmInfo",
    "ReturnPartnerTags", "ReturnTrustServicesSummary", "ReturnTrustServicesDetails",
    "ReturnVulnerabilityScanSummary", "ReturnVulnerabilityScanDetails", "ReturnFileAuthDVSummary",
    "ReturnDNSAuthDVSummary",
)


class GetOrderByPartnerOrderIDInput(_Model):
    """OrderQueryOptions is required (it may be empty: every option is optional): suds builds a
    required element into the request it creates by name and leaves an optional one ``None``, and
    SymAPI (Python) sets each option on the request's own ``OrderQueryOptions``, as it does in
    GetModifiedOrders and as SymAPI (PHP) always sends the element."""

    __type_name__ = "GetOrderByPartnerOrderIDInput"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("PartnerOrderID", Text),
        ("OrderQueryOptions", required(OrderQueryOptions)),
    ]


class GetModifiedOrdersInput(_Model):
    __type_name__ = "GetModifiedOrdersInput"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("FromDate", m.Time),
        ("ToDate", m.Time),
        ("OrderQueryOptions", required(OrderQueryOptions)),
    ]


class GetModifiedOrderSummaryInput(_Model):
    __type_name__ = "GetModifiedOrderSummaryInput"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("FromDate", m.Time),
        ("ToDate", m.Time),
    ]


class ParseCSRInput(_Model):
    __type_name__ = "ParseCSRInput"
    _type_info = [("QueryRequestHeader", required(QueryRequestHeader)), ("CSR", Text)]


class CheckStatusInput(_Model):
    __type_name__ = "CheckStatusInput"
    _type_info = [("QueryRequestHeader", required(QueryRequestHeader)), ("PartnerOrderID", Text)]


class GetFulfillmentInput(_Model):
    """ReturnIconScript (a site seal's script, which the libraries may ask for) is accepted and
    changes nothing."""

    __type_name__ = "GetFulfillmentInput"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("PartnerOrderID", Text),
        ("ReturnCACerts", Flag),
        ("ReturnPKCS7Cert", Flag),
        ("ReturnIconScript", Flag),
    ]


# ------------------------------------------------------------------------ response headers


class OrderResponseHeader(_Model):
    __type_name__ = "orderResponseHeader"
    _type_info = [
        ("PartnerOrderID", OptionalText),
        ("SuccessCode", Int),
        ("Errors", optional(m.Errors)),
        ("Warnings", optional(m.Warnings)),
        ("Timestamp", m.Time),
    ]


class QueryResponseHeader(_Model):
    __type_name__ = "queryResponseHeader"
    _type_info = [
        ("SuccessCode", Int),
        ("Errors", optional(m.Errors)),
        ("Warnings", optional(m.Warnings)),
        ("Timestamp", m.Time),
        ("ReturnCount", Integer32(**OPTIONAL)),
    ]


# ---------------------------------------------------------------------------------- orders


class OrderInfo(_Model):
    __type_name__ = "orderInfo"
    _type_info = [
        ("GeoTrustOrderID", Text),
        ("PartnerOrderID", Text),
        ("Brand", Text),
        ("ProductCode", Text),
        ("ValidationLevel", Text),
        ("OrderStatus", Text),
        ("TermStart", m.Time),
        ("TermEnd", m.Time),
        ("DNSNames", required(m.DNSNames)),
    ]


class ModificationEvent(_Model):
    """A change of the order in the window GetModifiedOrders asked for."""

    __type_name__ = "modificationEvent"
    _type_info = [
        ("ModificationEventID", Int),
        ("ModificationEventName", Text),
        ("ModificationTimestamp", m.Time),
        ("SerialNumber", OptionalText),
    ]


class ModificationEvents(_Model):
    __type_name__ = "modificationEvents"
    _type_info = [("ModificationEvent", items(ModificationEvent))]


class OrderDetail(_Model):
    __type_name__ = "orderDetail"
    _type_info = [
        ("OrderInfo", required(OrderInfo)),
        ("Organization", optional(m.Organization)),
        ("Contacts", required(m.Contacts)),
        ("CertificateInfo", optional(m.CertificateInfo)),
        ("Fulfillment", optional(m.Fulfillment)),
        ("CertificateHistory", optional(m.CertificateHistory)),
        ("ModificationEvents", optional(ModificationEvents)),
    ]


class OrderDetails(_Model):
    __type_name__ = "orderDetails"
    _type_info = [("OrderDetail", items(OrderDetail))]


class OrderSummary(_Model):
    __type_name__ = "orderSummary"
    _type_info = [
        ("GeoTrustOrderID", Text),
        ("PartnerOrderID", Text),
        ("ModificationEventID", Int),
        ("ModificationEventName", Text),
        ("ModificationTimestamp", m.Time),
        ("SerialNumber", OptionalText),
    ]


class OrderSummaries(_Model):
    __type_name__ = "orderSummaries"
    _type_info = [("OrderSummary", items(OrderSummary))]


class OrderStatusModel(_Model):
    __type_name__ = "orderStatus"
    _type_info = [
        ("GeoTrustOrderID", Text),
        ("PartnerOrderID", Text),
        ("OrderStatus", Text),
        ("CertificateStatus", OptionalText),
        ("SerialNumber", OptionalText),
        ("NotAfter", OptionalTime),
    ]


# --------------------------------------------------------------------------------- results


class ReissueOutput(_Model):
    __type_name__ = "ReissueOutput"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("GeoTrustOrderID", OptionalText),
        ("Certificate", optional(m.CertificateModel)),
    ]


class ValidateOrderParametersOutput(_Model):
    __type_name__ = "ValidateOrderParametersOutput"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("GeoTrustOrderID", OptionalText),
        ("ParsedCSR", optional(m.ParsedCSRModel)),
        ("CertificateDNSNames", optional(m.DNSNames)),
        ("ReturnsCurrentCertificate", Flag),
    ]


class RevokeOutput(_Model):
    __type_name__ = "RevokeOutput"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("GeoTrustOrderID", OptionalText),
        ("SerialNumber", OptionalText),
        ("RevokedAt", OptionalTime),
        ("RevokeReason", OptionalText),
        ("AlsoRevoked", optional(m.SerialNumbers)),
    ]


class ModifyOrderOutput(_Model):
    __type_name__ = "ModifyOrderOutput"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("GeoTrustOrderID", OptionalText),
        ("CancelledAt", OptionalTime),
        ("Revoked", optional(m.SerialNumbers)),
    ]


class GetOrderByPartnerOrderIDOutput(_Model):
    __type_name__ = "GetOrderByPartnerOrderIDOutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderDetail", optional(OrderDetail)),
    ]


class GetModifiedOrdersOutput(_Model):
    __type_name__ = "GetModifiedOrdersOutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderDetails", optional(OrderDetails)),
    ]


class GetModifiedOrderSummaryOutput(_Model):
    __type_name__ = "GetModifiedOrderSummaryOutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderSummaries", optional(OrderSummaries)),
    ]


class ParseCSROutput(_Model):
    __type_name__ = "ParseCSROutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("ParsedCSR", optional(m.ParsedCSRModel)),
    ]


class CheckStatusOutput(_Model):
    __type_name__ = "CheckStatusOutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderStatus", optional(OrderStatusModel)),
    ]


class GetFulfillmentOutput(_Model):
    __type_name__ = "GetFulfillmentOutput"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("GeoTrustOrderID", OptionalText),
        ("Fulfillment", optional(m.Fulfillment)),
    ]

