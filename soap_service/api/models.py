"""The message types of the Order API (docs/design.md, "The SOAP contract"), as spyne models.

One target namespace, elements qualified, document/literal wrapped: each operation
``Op`` takes one ``Request`` and answers one ``OpResult``. An element that a valid
message always carries is ``minOccurs="1"`` and not nillable (:data:`REQUIRED`);
every other element is ``minOccurs="0"``, also not nillable (:data:`OPTIONAL`): it
is left out, never sent empty with ``xsi:nil``. Integers are ``xs:int``
(``Integer32``), times ``xs:dateTime`` in UTC.

The Python class names end in ``Model`` where the schema name would shadow a
builtin or another class; the schema name is always ``__type_name__``.
"""

# mypy: allow-subclassing-any

from __future__ import annotations

from typing import Any

from soap_service.api.spyne_loader import Boolean, ComplexModel, DateTime, Integer32, Unicode
from soap_service.ra.replay import MAX_REPLAY_TOKEN_CHARS
from soap_service.ra.revocation import REVOCATION_REASONS

TNS = "urn:soap-service:order:v1"
"""The one target namespace of every message type."""

REQUIRED: dict[str, Any] = {"min_occurs": 1, "nillable": False}
OPTIONAL: dict[str, Any] = {"min_occurs": 0, "nillable": False}
LIST_ITEM: dict[str, Any] = {"min_occurs": 0, "max_occurs": "unbounded", "nillable": False}

Text = Unicode(**REQUIRED)
MAX_HELLO_INPUT_CHARS = 256
"""Hello's Input: a connectivity test needs no more, and its answer echoes it."""
OptionalText = Unicode(**OPTIONAL)
Int = Integer32(**REQUIRED)
Time = DateTime(**REQUIRED)
OptionalTime = DateTime(**OPTIONAL)
Flag = Boolean(**OPTIONAL)


class _Model(ComplexModel):
    __namespace__ = TNS


def required(cls: Any) -> Any:
    return cls.customize(**REQUIRED)


def optional(cls: Any) -> Any:
    return cls.customize(**OPTIONAL)


def items(cls: Any) -> Any:
    return cls.customize(**LIST_ITEM)


# ------------------------------------------------------------------------------ requests


MAX_HEADER_CODE_CHARS = 64
"""ProductCode and ApiVersion: accepted and ignored, bounded in the schema all the same."""
IN_TNS: dict[str, Any] = {"__namespace__": TNS}
"""For a named simple type: in the one target namespace (spyne's default is its own module's)."""


def bounded_text(chars: int, type_name: str) -> Any:
    """An optional text of at most ``chars`` characters, as a named simple type (an anonymous one
    shared by two types would be named after whichever spyne meets first)."""
    return Unicode(max_len=chars, type_name=type_name, **IN_TNS, **OPTIONAL)


REPLAY_FIELDS: list[tuple[str, Any]] = [
    # The replay core's own bound: a longer token is a schema fault before anything reads it.
    ("ReplayToken", bounded_text(MAX_REPLAY_TOKEN_CHARS, "ReplayTokenText")),
    ("UseReplayToken", Flag),
    ("ProductCode", bounded_text(MAX_HEADER_CODE_CHARS, "ProductCodeText")),
    ("ApiVersion", bounded_text(MAX_HEADER_CODE_CHARS, "ApiVersionText")),
]
"""The end of an order request's header, all optional and bounded: ``UseReplayToken`` true with a
``ReplayToken`` makes Reissue, Revoke and ModifyOrder idempotent (``ra.replay``); ``ProductCode`` and
``ApiVersion``, which clients of other CAs' APIs send, are accepted and ignored, as ``ReplayToken`` is
without ``UseReplayToken``."""
REPLAY_HEADER_FIELDS = frozenset({"AuthToken", "ReplayToken", "UseReplayToken", "ProductCode", "ApiVersion"})
"""What a replayable request's digest leaves out of its header: the credentials, the token itself,
and the two fields the service ignores (a retry that changes only them is the same request)."""


class AuthToken(_Model):
    """Optional in every request header since a ``wsse:Security`` UsernameToken may authenticate
    instead (docs/design.md, "Authentication"); a request sends exactly one of the two."""

    __type_name__ = "AuthToken"
    _type_info = [("UserName", Text), ("Password", Text)]


class OrderRequestHeader(_Model):
    __type_name__ = "OrderRequestHeader"
    _type_info = [
        ("PartnerCode", Text),
        ("AuthToken", optional(AuthToken)),
        ("PartnerOrderID", Text),
        *REPLAY_FIELDS,
    ]


class QueryRequestHeader(_Model):
    __type_name__ = "QueryRequestHeader"
    _type_info = [("PartnerCode", Text), ("AuthToken", optional(AuthToken))]


class DNSNames(_Model):
    __type_name__ = "DNSNames"
    _type_info = [("DNSName", Unicode(**LIST_ITEM))]


class OrderParameters(_Model):
    __type_name__ = "OrderParameters"
    _type_info = [
        ("CSR", Text),
        ("DNSNames", optional(DNSNames)),
        ("SignatureHashAlgorithm", OptionalText),
    ]


class ReissueRequest(_Model):
    """The request of Reissue and of ValidateOrderParameters."""

    __type_name__ = "ReissueRequest"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("OrderParameters", required(OrderParameters)),
        ("ReissueEmail", OptionalText),
    ]


class ParseCSRRequest(_Model):
    __type_name__ = "ParseCSRRequest"
    _type_info = [("QueryRequestHeader", required(QueryRequestHeader)), ("CSR", Text)]


class OrderQueryOptions(_Model):
    __type_name__ = "OrderQueryOptions"
    _type_info = [
        ("ReturnCertificateInfo", Flag),
        ("ReturnFulfillment", Flag),
        ("ReturnCACerts", Flag),
        ("ReturnPKCS7Cert", Flag),
        ("ReturnCertificateHistory", Flag),
    ]


# Revocation (docs/design.md, "The SOAP contract"): every text element the partner sends is
# bounded here, in the published schema, and a closed set of values is an enumeration.
MAX_CERTIFICATE_PEM_CHARS = 64 * 1024
"""Revoke's Certificate: a PEM certificate, bounded as a CSR is."""
MAX_SERIAL_NUMBER_CHARS = 64
"""Revoke's SerialNumber: hex, 40 digits for the largest serial RFC 5280 allows (20 octets),
with room for a leading zero or a colon-separated spelling."""
MODIFY_ORDER_OPERATIONS = ("CANCEL",)
"""What ModifyOrder can do to an order today."""

RevokeReason = Unicode(values=list(REVOCATION_REASONS), type_name="RevokeReason", **IN_TNS, **REQUIRED)
ModifyOrderOperation = Unicode(
    values=list(MODIFY_ORDER_OPERATIONS), type_name="ModifyOrderOperation", **IN_TNS, **REQUIRED
)
CertificatePEM = Unicode(max_len=MAX_CERTIFICATE_PEM_CHARS, type_name="CertificatePEM", **IN_TNS, **OPTIONAL)
SerialNumberText = Unicode(max_len=MAX_SERIAL_NUMBER_CHARS, type_name="SerialNumberText", **IN_TNS, **OPTIONAL)


class RevokeOrderRequestHeader(_Model):
    """Revoke's header: an OrderRequestHeader whose PartnerOrderID may be left out when the
    request names the certificate by its PEM."""

    __type_name__ = "RevokeOrderRequestHeader"
    _type_info = [
        ("PartnerCode", Text),
        ("AuthToken", optional(AuthToken)),
        ("PartnerOrderID", OptionalText),
        *REPLAY_FIELDS,
    ]


class RevokeRequest(_Model):
    __type_name__ = "RevokeRequest"
    _type_info = [
        ("OrderRequestHeader", required(RevokeOrderRequestHeader)),
        ("Certificate", CertificatePEM),
        ("SerialNumber", SerialNumberText),
        ("RevokeReason", RevokeReason),
    ]


class ModifyOrderRequest(_Model):
    __type_name__ = "ModifyOrderRequest"
    _type_info = [
        ("OrderRequestHeader", required(OrderRequestHeader)),
        ("ModifyOrderOperation", ModifyOrderOperation),
    ]


class GetModifiedOrdersRequest(_Model):
    __type_name__ = "GetModifiedOrdersRequest"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("FromDate", Time),
        ("ToDate", Time),
        ("PageSize", Integer32(**OPTIONAL)),
        ("AfterChangeID", Integer32(**OPTIONAL)),
    ]


class GetOrderByPartnerOrderIDRequest(_Model):
    __type_name__ = "GetOrderByPartnerOrderIDRequest"
    _type_info = [
        ("QueryRequestHeader", required(QueryRequestHeader)),
        ("PartnerOrderID", Text),
        ("OrderQueryOptions", optional(OrderQueryOptions)),
    ]


# ------------------------------------------------------------------------ response headers


class ErrorModel(_Model):
    __type_name__ = "Error"
    _type_info = [("ErrorCode", Int), ("ErrorField", OptionalText), ("ErrorMessage", Text)]


class Errors(_Model):
    __type_name__ = "Errors"
    _type_info = [("Error", items(ErrorModel))]


class WarningModel(_Model):
    __type_name__ = "Warning"
    _type_info = [("WarningCode", Int), ("WarningMessage", Text)]


class Warnings(_Model):
    __type_name__ = "Warnings"
    _type_info = [("Warning", items(WarningModel))]


class OrderResponseHeader(_Model):
    __type_name__ = "OrderResponseHeader"
    _type_info = [
        ("PartnerOrderID", Text),
        ("SuccessCode", Int),
        ("Errors", optional(Errors)),
        ("Warnings", optional(Warnings)),
        ("Timestamp", Time),
    ]


class QueryResponseHeader(_Model):
    __type_name__ = "QueryResponseHeader"
    _type_info = [
        ("SuccessCode", Int),
        ("Errors", optional(Errors)),
        ("Warnings", optional(Warnings)),
        ("Timestamp", Time),
    ]


# ------------------------------------------------------------------------------ certificates


class CACertificate(_Model):
    __type_name__ = "CACertificate"
    _type_info = [("Type", Text), ("CACert", Text)]


class CACertificates(_Model):
    __type_name__ = "CACertificates"
    _type_info = [("CACertificate", items(CACertificate))]


class CertificateModel(_Model):
    """The certificate a Reissue answers: PEM, chain and PKCS#7 of both."""

    __type_name__ = "Certificate"
    _type_info = [
        ("SerialNumber", Text),
        ("NotBefore", Time),
        ("NotAfter", Time),
        ("ServerCertificate", Text),
        ("CACertificates", required(CACertificates)),
        ("PKCS7", Text),
    ]


# ------------------------------------------------------------------------------- ParsedCSR


class SubjectAttribute(_Model):
    __type_name__ = "SubjectAttribute"
    _type_info = [("Name", Text), ("Value", Text)]


class SubjectAttributes(_Model):
    __type_name__ = "SubjectAttributes"
    _type_info = [("SubjectAttribute", items(SubjectAttribute))]


class ParsedCSRModel(_Model):
    """A CSR as the RA reads it: subject, requested names, key and signature."""

    __type_name__ = "ParsedCSR"
    _type_info = [
        ("CommonName", OptionalText),
        ("Organization", OptionalText),
        ("OrganizationalUnit", OptionalText),
        ("Locality", OptionalText),
        ("State", OptionalText),
        ("Country", OptionalText),
        ("SubjectAttributes", required(SubjectAttributes)),
        ("DNSNames", required(DNSNames)),
        ("KeyAlgorithm", Text),
        ("KeySize", Int),
        ("Curve", OptionalText),
        ("SignatureAlgorithm", Text),
        ("SPKISHA256", Text),
        ("CSRSHA256", Text),
    ]


# ---------------------------------------------------------------------------------- orders


class OrderInfo(_Model):
    __type_name__ = "OrderInfo"
    _type_info = [
        ("OrderID", Text),
        ("PartnerOrderID", Text),
        ("Brand", Text),
        ("ProductCode", Text),
        ("ValidationLevel", Text),
        ("OrderStatus", Text),
        ("TermStart", Time),
        ("TermEnd", Time),
        ("DNSNames", required(DNSNames)),
    ]


class Organization(_Model):
    __type_name__ = "Organization"
    _type_info = [
        ("Name", Text),
        ("Country", OptionalText),
        ("State", OptionalText),
        ("Locality", OptionalText),
        ("BusinessCategory", OptionalText),
        ("JurisdictionCountry", OptionalText),
        ("RegistrationNumber", OptionalText),
    ]


class Contact(_Model):
    __type_name__ = "Contact"
    _type_info = [
        ("Role", Text),
        ("Email", Text),
        ("FirstName", OptionalText),
        ("LastName", OptionalText),
        ("Phone", OptionalText),
    ]


class Contacts(_Model):
    __type_name__ = "Contacts"
    _type_info = [("Contact", items(Contact))]


class CertificateInfo(_Model):
    __type_name__ = "CertificateInfo"
    _type_info = [
        ("SerialNumber", Text),
        ("CertificateStatus", Text),
        ("Issuer", Text),
        ("Subject", Text),
        ("DNSNames", required(DNSNames)),
        ("NotBefore", Time),
        ("NotAfter", Time),
        ("SPKISHA256", Text),
    ]


class Fulfillment(_Model):
    __type_name__ = "Fulfillment"
    _type_info = [
        ("ServerCertificate", OptionalText),
        ("CACertificates", optional(CACertificates)),
        ("PKCS7", OptionalText),
    ]


class CertificateHistoryEntry(_Model):
    __type_name__ = "CertificateHistoryEntry"
    _type_info = [
        ("SerialNumber", Text),
        ("CertificateStatus", Text),
        ("NotBefore", Time),
        ("NotAfter", Time),
        ("DNSNames", required(DNSNames)),
        ("SPKISHA256", Text),
        ("ReplacesSerialNumber", OptionalText),
        ("RevokedAt", OptionalTime),
        ("RevocationReason", OptionalText),
    ]


class CertificateHistory(_Model):
    __type_name__ = "CertificateHistory"
    _type_info = [("Certificate", items(CertificateHistoryEntry))]


class OrderDetail(_Model):
    __type_name__ = "OrderDetail"
    _type_info = [
        ("OrderInfo", required(OrderInfo)),
        ("Organization", optional(Organization)),
        ("Contacts", required(Contacts)),
        ("CertificateInfo", optional(CertificateInfo)),
        ("Fulfillment", optional(Fulfillment)),
        ("CertificateHistory", optional(CertificateHistory)),
    ]


# ------------------------------------------------------------------------------ revocation


class SerialNumbers(_Model):
    __type_name__ = "SerialNumbers"
    _type_info = [("SerialNumber", Unicode(**LIST_ITEM))]


class OrderChange(_Model):
    """One change of an order in GetModifiedOrders' feed."""

    __type_name__ = "OrderChange"
    _type_info = [
        ("ChangeID", Int),
        ("OrderID", Text),
        ("PartnerOrderID", Text),
        ("ChangedAt", Time),
        ("Change", Text),
        ("SerialNumber", OptionalText),
        ("Detail", OptionalText),
    ]


class OrderChanges(_Model):
    __type_name__ = "OrderChanges"
    _type_info = [("OrderChange", items(OrderChange))]


# --------------------------------------------------------------------------------- results


class ReissueResult(_Model):
    __type_name__ = "ReissueResult"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("OrderID", OptionalText),
        ("Certificate", optional(CertificateModel)),
    ]


class ValidateOrderParametersResult(_Model):
    __type_name__ = "ValidateOrderParametersResult"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("OrderID", OptionalText),
        ("ParsedCSR", optional(ParsedCSRModel)),
        ("CertificateDNSNames", optional(DNSNames)),
        ("ReturnsCurrentCertificate", Flag),
    ]


class ParseCSRResult(_Model):
    __type_name__ = "ParseCSRResult"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("ParsedCSR", optional(ParsedCSRModel)),
    ]


class GetOrderByPartnerOrderIDResult(_Model):
    __type_name__ = "GetOrderByPartnerOrderIDResult"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderDetail", optional(OrderDetail)),
    ]


class RevokeResult(_Model):
    __type_name__ = "RevokeResult"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("OrderID", OptionalText),
        ("SerialNumber", OptionalText),
        ("RevokedAt", OptionalTime),
        ("RevokeReason", OptionalText),
        ("AlsoRevoked", optional(SerialNumbers)),
    ]


class ModifyOrderResult(_Model):
    __type_name__ = "ModifyOrderResult"
    _type_info = [
        ("OrderResponseHeader", required(OrderResponseHeader)),
        ("OrderID", OptionalText),
        ("CancelledAt", OptionalTime),
        ("Revoked", optional(SerialNumbers)),
    ]


class GetModifiedOrdersResult(_Model):
    __type_name__ = "GetModifiedOrdersResult"
    _type_info = [
        ("QueryResponseHeader", required(QueryResponseHeader)),
        ("OrderChanges", optional(OrderChanges)),
        ("More", Flag),
        ("CoveredUntil", OptionalTime),
    ]
