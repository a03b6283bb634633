"""From the RA's answers to the message types: headers, errors, certificates, orders.

Translation only: every value comes from an RA view; nothing here decides. Text that
comes from a CSR (subject attributes, names, and the error messages that quote them)
may hold characters that XML 1.0 cannot carry (``\\x01``, ``\\x1b``...): they are
written as ``\\xNN`` or ``\\uNNNN`` (see :func:`xml_text`), never handed to spyne as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from soap_service.api import models as m
from soap_service.errors import ServiceError
from soap_service.ra.changes import OrderChangeView
from soap_service.ra.csr import ParsedCSR
from soap_service.ra.queries import OrderAnswer
from soap_service.ra.revocation import CancelledOrder, RevokedCertificate
from soap_service.ra.views import CertificateView, ChainCertificate, IssuanceOutcome, Notice, OrderView

SUCCESS = 0
SUCCESS_WITH_WARNINGS = 1

# Subject attributes of a CSR that ParsedCSR names in fields of their own.
_SUBJECT_FIELDS = {
    "CN": "CommonName",
    "O": "Organization",
    "OU": "OrganizationalUnit",
    "L": "Locality",
    "ST": "State",
    "C": "Country",
}


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_text(value: str) -> str:
    """``value`` with every character that XML 1.0 cannot carry written as ``\\xNN``
    (``\\uNNNN`` above U+00FF): control characters, lone surrogates, U+FFFE and U+FFFF."""
    return _NOT_XML.sub(_escaped, value)


def _optional_text(value: str | None) -> str | None:
    return None if value is None else xml_text(value)


def success_code(warnings: Sequence[Notice]) -> int:
    return SUCCESS_WITH_WARNINGS if warnings else SUCCESS


def errors(error: ServiceError) -> m.Errors:
    return m.Errors(Error=[m.ErrorModel(
        ErrorCode=error.code, ErrorField=_optional_text(error.field), ErrorMessage=xml_text(error.message)
    )])


def warnings(notices: Sequence[Notice]) -> m.Warnings | None:
    if not notices:
        return None
    return m.Warnings(Warning=[m.WarningModel(WarningCode=n.code, WarningMessage=xml_text(n.message)) for n in notices])


def order_header(
    partner_order_id: str, now: datetime, *, error: ServiceError | None = None, notices: Sequence[Notice] = ()
) -> m.OrderResponseHeader:
    return m.OrderResponseHeader(
        PartnerOrderID=partner_order_id,
        SuccessCode=error.code if error is not None else success_code(notices),
        Errors=errors(error) if error is not None else None,
        Warnings=warnings(notices),
        Timestamp=_second(now),
    )


def query_header(now: datetime, *, error: ServiceError | None = None) -> m.QueryResponseHeader:
    return m.QueryResponseHeader(
        SuccessCode=error.code if error is not None else SUCCESS,
        Errors=errors(error) if error is not None else None,
        Timestamp=_second(now),
    )


def dns_names(names: Sequence[str]) -> m.DNSNames:
    return m.DNSNames(DNSName=[xml_text(name) for name in names])


def ca_certificates(chain: Sequence[ChainCertificate]) -> m.CACertificates:
    return m.CACertificates(CACertificate=[m.CACertificate(Type=c.kind, CACert=c.pem) for c in chain])


def pkcs7_pem(leaf_pem: str, chain: Sequence[ChainCertificate]) -> str:
    """A PEM PKCS#7 (certs-only SignedData) holding the leaf, then the chain upward."""
    certificates = [x509.load_pem_x509_certificate(pem.encode()) for pem in (leaf_pem, *(c.pem for c in chain))]
    return pkcs7.serialize_certificates(certificates, serialization.Encoding.PEM).decode()


def issued_certificate(outcome: IssuanceOutcome) -> m.CertificateModel:
    certificate = outcome.certificate
    return m.CertificateModel(
        SerialNumber=certificate.serial,
        NotBefore=certificate.not_before,
        NotAfter=certificate.not_after,
        ServerCertificate=certificate.pem,
        CACertificates=ca_certificates(outcome.chain),
        PKCS7=pkcs7_pem(certificate.pem, outcome.chain),
    )


def parsed_csr(csr: ParsedCSR) -> m.ParsedCSRModel:
    fields: dict[str, str] = {}
    for name, value in csr.subject:
        key = _SUBJECT_FIELDS.get(name)
        if key is not None and key not in fields:
            fields[key] = xml_text(value)
    return m.ParsedCSRModel(
        SubjectAttributes=m.SubjectAttributes(
            SubjectAttribute=[
                m.SubjectAttribute(Name=xml_text(name), Value=xml_text(value)) for name, value in csr.subject
            ]
        ),
        DNSNames=dns_names(csr.san_dns_names),
        KeyAlgorithm=xml_text(csr.key_algorithm),
        KeySize=csr.key_size,
        Curve=_optional_text(csr.curve),
        SignatureAlgorithm=xml_text(csr.signature_algorithm),
        SPKISHA256=csr.spki_sha256,
        CSRSHA256=csr.sha256,
        **fields,
    )


def _status(status: str) -> str:
    return status.upper()


def _order_info(order: OrderView) -> m.OrderInfo:
    return m.OrderInfo(
        OrderID=order.order_id,
        PartnerOrderID=order.partner_order_id,
        Brand=order.brand,
        ProductCode=order.product,
        ValidationLevel=order.validation_level,
        OrderStatus=order.status,
        TermStart=order.term_start,
        TermEnd=order.term_end,
        DNSNames=dns_names(order.names),
    )


def _organization(order: OrderView) -> m.Organization | None:
    org = order.organization
    if org is None:
        return None
    return m.Organization(
        Name=org.name,
        Country=org.country,
        State=org.state,
        Locality=org.locality,
        BusinessCategory=org.business_category,
        JurisdictionCountry=org.jurisdiction_country,
        RegistrationNumber=org.registration_number,
    )


def _certificate_info(certificate: CertificateView) -> m.CertificateInfo:
    return m.CertificateInfo(
        SerialNumber=certificate.serial,
        CertificateStatus=_status(certificate.status),
        Issuer=xml_text(certificate.issuer),
        Subject=xml_text(certificate.subject),
        DNSNames=dns_names(certificate.names),
        NotBefore=certificate.not_before,
        NotAfter=certificate.not_after,
        SPKISHA256=certificate.spki_sha256,
    )


def _history_entry(certificate: CertificateView) -> m.CertificateHistoryEntry:
    return m.CertificateHistoryEntry(
        SerialNumber=certificate.serial,
        CertificateStatus=_status(certificate.status),
        NotBefore=certificate.not_before,
        NotAfter=certificate.not_after,
        DNSNames=dns_names(certificate.names),
        SPKISHA256=certificate.spki_sha256,
        ReplacesSerialNumber=certificate.replaces,
        RevokedAt=certificate.revoked_at,
        RevocationReason=certificate.revocation_reason,
    )


def _fulfillment(
    answer: OrderAnswer, *, server_certificate: bool, ca_certs: bool, pkcs7_cert: bool
) -> m.Fulfillment | None:
    current = answer.order.certificate
    if current is None or not (server_certificate or ca_certs or pkcs7_cert):
        return None
    return m.Fulfillment(
        ServerCertificate=current.pem if server_certificate else None,
        CACertificates=ca_certificates(answer.chain) if ca_certs else None,
        PKCS7=pkcs7_pem(current.pem, answer.chain) if pkcs7_cert else None,
    )


def order_detail(answer: OrderAnswer, options: m.OrderQueryOptions | None) -> m.OrderDetail:
    order = answer.order

    def wanted(name: str) -> bool:
        return bool(options is not None and getattr(options, name, None))

    current = order.certificate
    return m.OrderDetail(
        OrderInfo=_order_info(order),
        Organization=_organization(order),
        Contacts=m.Contacts(
            Contact=[
                m.Contact(Role=c.role, Email=c.email, FirstName=c.first_name, LastName=c.last_name, Phone=c.phone)
                for c in order.contacts
            ]
        ),
        CertificateInfo=_certificate_info(current)
        if current is not None and wanted("ReturnCertificateInfo")
        else None,
        Fulfillment=_fulfillment(
            answer,
            server_certificate=wanted("ReturnFulfillment"),
            ca_certs=wanted("ReturnCACerts"),
            pkcs7_cert=wanted("ReturnPKCS7Cert"),
        ),
        CertificateHistory=m.CertificateHistory(Certificate=[_history_entry(c) for c in order.certificates])
        if wanted("ReturnCertificateHistory")
        else None,
    )


def _serial_numbers(serials: Sequence[str]) -> m.SerialNumbers | None:
    """The list, or None (the element left out) when it is empty."""
    return m.SerialNumbers(SerialNumber=list(serials)) if serials else None


def revoked_certificate(revoked: RevokedCertificate, now: datetime) -> m.RevokeResult:
    return m.RevokeResult(
        OrderResponseHeader=order_header(revoked.partner_order_id, now),
        OrderID=revoked.order_id,
        SerialNumber=revoked.serial_number,
        RevokedAt=revoked.revoked_at,
        RevokeReason=revoked.reason,
        AlsoRevoked=_serial_numbers(revoked.also_revoked),
    )


def cancelled_order(cancelled: CancelledOrder, now: datetime) -> m.ModifyOrderResult:
    return m.ModifyOrderResult(
        OrderResponseHeader=order_header(cancelled.partner_order_id, now),
        OrderID=cancelled.order_id,
        CancelledAt=cancelled.cancelled_at,
        Revoked=_serial_numbers(cancelled.revoked),
    )


def order_changes(changes: Sequence[OrderChangeView]) -> m.OrderChanges:
    return m.OrderChanges(OrderChange=[
        m.OrderChange(
            ChangeID=change.change_id,
            OrderID=change.order_id,
            PartnerOrderID=change.partner_order_id,
            ChangedAt=change.at,
            Change=change.change,
            SerialNumber=change.serial_number,
            Detail=_optional_text(change.detail),
        )
        for change in changes
    ])


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
