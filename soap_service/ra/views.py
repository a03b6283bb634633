"""What the RA answers: plain, immutable views of orders and certificates that
every front end can render without touching the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from soap_service.ca.profiles import SubjectOrganization
from soap_service.ra.catalogue import PRODUCTS_BY_CODE
from soap_service.storage.models import Certificate, Order
from soap_service.vocabulary import CertificateStatus, OrderStatus, ValidationLevel


@dataclass(frozen=True)
class Notice:
    """A warning attached to a successful answer (e.g. 1001, docs/design.md, "Reissue rules", rule 9)."""

    code: int
    message: str
    field: str | None = None


@dataclass(frozen=True)
class CertificateView:
    serial: str
    status: CertificateStatus
    issuer: str
    subject: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    pem: str
    spki_sha256: str
    replaces: str | None
    revoked_at: datetime | None
    revocation_reason: str | None

    @classmethod
    def of(cls, certificate: Certificate, replaces_serial: str | None, *, issuer: str | None = None) -> CertificateView:
        """``issuer``: the CA's name when the caller knows it (else its row is read)."""
        return cls(
            serial=certificate.serial,
            status=certificate.status,
            issuer=issuer if issuer is not None else certificate.authority.name,
            subject=certificate.subject,
            names=tuple(certificate.name_list),
            not_before=certificate.not_before,
            not_after=certificate.not_after,
            pem=certificate.pem,
            spki_sha256=certificate.spki_sha256,
            replaces=replaces_serial,
            revoked_at=certificate.revoked_at,
            revocation_reason=certificate.revocation_reason,
        )

    def to_json(self, *, with_history_fields: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "serial": self.serial,
            "status": self.status.lower(),  # the commands' JSON has always said "valid", "revoked"
            "issuer": self.issuer,
            "subject": self.subject,
            "names": list(self.names),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "spki_sha256": self.spki_sha256,
            "pem": self.pem,
        }
        if with_history_fields:
            data["replaces"] = self.replaces
            if self.revoked_at is not None:
                data["revoked_at"] = _iso(self.revoked_at)
                data["revocation_reason"] = self.revocation_reason
        return data


@dataclass(frozen=True)
class ContactView:
    role: str
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None


@dataclass(frozen=True)
class OrderView:
    order_id: str
    partner_code: str
    partner_order_id: str
    brand: str
    product: str
    validation_level: ValidationLevel
    status: OrderStatus
    term_start: datetime
    term_end: datetime
    names: tuple[str, ...]
    organization: SubjectOrganization | None
    contacts: tuple[ContactView, ...]
    certificate: CertificateView | None
    certificates: tuple[CertificateView, ...] = ()

    @classmethod
    def of(
        cls,
        order: Order,
        history: list[Certificate],
        current: Certificate | None = None,
        *,
        current_view: CertificateView | None = None,
        partner_code: str | None = None,
    ) -> OrderView:
        """The order with ``history`` (oldest first; may be empty) and its current certificate,
        taken from ``current_view`` or ``current`` when given, else found in ``history``;
        ``partner_code`` when the caller knows it (else the partner's row is read)."""
        serial_by_id = {c.id: c.serial for c in history}
        views = tuple(
            CertificateView.of(c, serial_by_id.get(c.replaces_id) if c.replaces_id else None) for c in history
        )
        if current_view is None:
            current_view = next(
                (v for c, v in zip(history, views, strict=True) if c.id == order.current_certificate_id), None
            )
        if current_view is None and current is not None:
            current_view = CertificateView.of(current, current.replaces.serial if current.replaces else None)
        return cls(
            order_id=order.order_id,
            partner_code=partner_code if partner_code is not None else order.partner.code,
            partner_order_id=order.partner_order_id,
            brand=order.brand_code,
            product=order.product_code,
            validation_level=PRODUCTS_BY_CODE[order.product_code].validation_level,
            status=order.status,
            term_start=order.term_start,
            term_end=order.term_end,
            names=tuple(n.name for n in order.names),
            organization=organization_of(order),
            contacts=tuple(
                ContactView(c.role, c.email, c.first_name, c.last_name, c.phone) for c in order.contacts
            ),
            certificate=current_view,
            certificates=views,
        )

    def to_json(self, *, with_history: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "order_id": self.order_id,
            "partner": self.partner_code,
            "partner_order_id": self.partner_order_id,
            "brand": self.brand,
            "product": self.product,
            "validation_level": self.validation_level.value,
            "status": self.status.value,
            "term_start": _iso(self.term_start),
            "term_end": _iso(self.term_end),
            "names": list(self.names),
            "organization": None if self.organization is None else vars(self.organization).copy(),
            "contacts": [vars(c).copy() for c in self.contacts],
            "certificate": None if self.certificate is None else self.certificate.to_json(),
        }
        if with_history:
            data["certificates"] = [c.to_json(with_history_fields=True) for c in self.certificates]
        return data


@dataclass(frozen=True)
class ChainCertificate:
    kind: str  # INTERMEDIATE or ROOT
    pem: str


@dataclass(frozen=True)
class IssuanceOutcome:
    """The answer to a reissue (or to the first issuance of an order)."""

    order: OrderView
    certificate: CertificateView
    chain: tuple[ChainCertificate, ...]
    warnings: tuple[Notice, ...] = field(default=())
    replayed: bool = False


def organization_of(order: Order) -> SubjectOrganization | None:
    """The organization an order validated: what its certificates' subjects carry."""
    if not order.organization_name or not order.country:
        return None
    return SubjectOrganization(
        name=order.organization_name,
        country=order.country,
        state=order.state,
        locality=order.locality,
        business_category=order.business_category,
        jurisdiction_country=order.jurisdiction_country,
        jurisdiction_state=order.jurisdiction_state,
        jurisdiction_locality=order.jurisdiction_locality,
        registration_number=order.registration_number,
    )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
