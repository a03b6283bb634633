"""The Revoke and Cancel use cases (docs/design.md, "Revocation").

Revoke ends one certificate of an order: named by its serial within the order, by its PEM
(then the order is the certificate's own), or, with neither, the order's current one.
Cancel ends the order and every unexpired certificate of it still valid. Both lock the
order's row exactly as a reissue does (docs/design.md, "Concurrency and failures"), so
that the revocations and reissues of one order take turns; both write the changes a
partner's GetModifiedOrders reports in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy.orm import Session

from soap_service import metrics
from soap_service.errors import AlreadyRevoked, CertificateExpired, InvalidField, OrderNotFound, OrderStateInvalid
from soap_service.ra.audit import Subject
from soap_service.ra.auth import Credentials
from soap_service.ra.fields import (
    MAX_PARTNER_CODE_CHARS,
    MAX_PARTNER_ORDER_ID_CHARS,
    bounded,
    checked_partner_order_id,
    is_clean_text,
)
from soap_service.ra.reissue import PartnerRef, run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import audit, certificates, changes, orders, partners
from soap_service.storage.models import Certificate, Order
from soap_service.vocabulary import CertificateStatus, OrderStatus

REVOCATION_REASONS: tuple[str, ...] = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
)
"""The RFC 5280 reasons the Baseline Requirements (4.9.1.1) let a subscriber give, spelled as
they travel on the wire."""

KEY_COMPROMISE = "keyCompromise"
CESSATION_OF_OPERATION = "cessationOfOperation"

MAX_SERIAL_CHARS = 40
"""A serial number in hex: 20 octets at most (RFC 5280, 4.1.2.2)."""
MAX_CERTIFICATE_PEM_CHARS = 64 * 1024
MAX_REASON_CHARS = 32
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class RevokeRequest:
    partner_order_id: str | None
    serial_number: str | None
    certificate_pem: str | None
    reason: str


@dataclass(frozen=True)
class RevokedCertificate:
    order_id: str
    partner_order_id: str
    serial_number: str  # lowercase hex
    revoked_at: datetime
    reason: str
    also_revoked: tuple[str, ...]  # keyCompromise: this partner's other certificates of the key


@dataclass(frozen=True)
class CancelledOrder:
    order_id: str
    partner_order_id: str
    cancelled_at: datetime
    revoked: tuple[str, ...]  # serials


@dataclass(frozen=True)
class _Target:
    """What a revocation request names, once its fields are checked."""

    partner_order_id: str | None
    serial: str | None
    certificate: x509.Certificate | None
    reason: str


def _optional(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def check_revoke_fields(request: RevokeRequest) -> _Target:
    """Revocation rule 2: every field's length first, then control characters, then shapes (-2019)."""
    for field_name, value, limit in (
        ("PartnerOrderID", request.partner_order_id, MAX_PARTNER_ORDER_ID_CHARS),
        ("SerialNumber", request.serial_number, MAX_SERIAL_CHARS + 4),  # blanks around it and a 0x
        ("Certificate", request.certificate_pem, MAX_CERTIFICATE_PEM_CHARS),
        ("RevokeReason", request.reason, MAX_REASON_CHARS),
    ):
        bounded(value or "", limit, field_name)
    poid = _optional(request.partner_order_id)
    serial = _optional(request.serial_number)
    pem = _optional(request.certificate_pem)
    for field_name, text in (("SerialNumber", serial), ("Certificate", pem), ("RevokeReason", request.reason)):
        if text is not None and not is_clean_text(text.replace("\n", "").replace("\r", "").replace("\t", "")):
            raise InvalidField(f"{field_name} holds control or invalid characters", field=field_name)
    reason = request.reason.strip()
    if reason not in REVOCATION_REASONS:
        raise InvalidField("RevokeReason is not one of " + ", ".join(REVOCATION_REASONS), field="RevokeReason")
    if poid is not None:
        poid = checked_partner_order_id(poid)
    if serial is not None and pem is not None:
        raise InvalidField("name the certificate by SerialNumber or by Certificate, not both", field="SerialNumber")
    if poid is None and pem is None:
        raise InvalidField("PartnerOrderID is missing", field="PartnerOrderID")
    return _Target(
        partner_order_id=poid,
        serial=_checked_serial(serial) if serial is not None else None,
        certificate=_read_certificate(pem) if pem is not None else None,
        reason=reason,
    )


def _checked_serial(text: str) -> str:
    """The serial as stored: lowercase hex without leading zeros (an optional 0x and colons allowed)."""
    digits = text.strip().replace(":", "")
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    if not digits or len(digits) > MAX_SERIAL_CHARS or not all(ch in _HEX_DIGITS for ch in digits):
        raise InvalidField(f"SerialNumber is 1 to {MAX_SERIAL_CHARS} hexadecimal digits", field="SerialNumber")
    return format(int(digits, 16), "x")


def _read_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidField("Certificate is not a PEM certificate", field="Certificate") from None


class Revoker:
    """Runs Revoke and Cancel for the API and the operator alike."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self._ra = ra

    # -- Revoke ---------------------------------------------------------------------------

    def revoke(self, credentials: Credentials, request: RevokeRequest, *, channel: str) -> RevokedCertificate:
        user = self._ra.authenticator.authenticate(credentials, channel=channel)
        partner = PartnerRef(id=user.partner_id, code=user.partner_code, actor=user.username)
        return self.revoke_for(partner, request, channel=channel)

    def revoke_by_operator(self, partner_code: str, request: RevokeRequest) -> RevokedCertificate:
        return self.revoke_for(self._operator_partner(partner_code), request, channel="cli")

    def revoke_for(self, partner: PartnerRef, request: RevokeRequest, *, channel: str) -> RevokedCertificate:
        subject = Subject(channel=channel, action="revoke", partner_code=partner.code, username=partner.actor,
                          partner_order_id=request.partner_order_id)
        return run_audited(self._ra, subject, lambda: self._revoke(partner, request, subject))

    def _revoke(self, partner: PartnerRef, request: RevokeRequest, subject: Subject) -> RevokedCertificate:
        target = check_revoke_fields(request)
        now = self._ra.clock()
        with self._ra.sessions() as session, session.begin():
            order, certificate = self._locate(session, partner, target)
            if target.reason == KEY_COMPROMISE:
                # Every keyCompromise of this key takes turns on the key's lock (PostgreSQL), and
                # decides on the certificate as the one before it left it.
                certificates.lock_key(session, certificate.spki_sha256)
                session.refresh(certificate)
            if order.status == OrderStatus.CANCELLED:
                raise OrderStateInvalid("the order is cancelled")
            newly_revoked: list[str] = []  # the brands of the certificates this revokes, for the metrics
            if certificate.status == CertificateStatus.REVOKED:
                if target.reason != KEY_COMPROMISE or certificate.revocation_reason == KEY_COMPROMISE:
                    raise AlreadyRevoked()
                certificates.change_revocation_reason(session, certificate, reason=KEY_COMPROMISE)
            elif certificate.not_after < now and target.reason != KEY_COMPROMISE:
                raise CertificateExpired()
            else:
                certificates.revoke(session, [certificate], at=now, reason=target.reason)
                newly_revoked.append(order.brand_code)
            revoked = [(order, certificate, target.reason)]
            if target.reason == KEY_COMPROMISE:
                revoked += [(o, c, KEY_COMPROMISE) for o, c in self._revoke_key(session, certificate, now)]
                newly_revoked += [o.brand_code for o, _, _ in revoked[1:]]
            orders.record_change(session, [order.id], at=now)
            # The feed's lock last, after every row this transaction writes is locked (storage.changes).
            for changed_order, changed, reason in revoked:
                changes.add_change(session, order=changed_order, clock=self._ra.clock, change="revoked",
                                   certificate_serial=changed.serial, detail=reason)
            also = [c.serial for o, c, _ in revoked[1:] if o.partner_id == partner.id]
            assert certificate.revoked_at is not None
            audit.append_event(
                session, at=now, channel=subject.channel, action=subject.action, outcome="success", code=0,
                partner_code=partner.code, username=partner.actor, order_id=order.order_id,
                partner_order_id=order.partner_order_id, certificate_serial=certificate.serial,
                detail=f"reason={target.reason}" + (f"; also revoked {len(also)}" if also else ""),
            )
            result = RevokedCertificate(
                order_id=order.order_id, partner_order_id=order.partner_order_id, serial_number=certificate.serial,
                revoked_at=certificate.revoked_at, reason=target.reason, also_revoked=tuple(also),
            )
        metrics.certificates_revoked(newly_revoked)  # committed
        return result

    def _locate(self, session: Session, partner: PartnerRef, target: _Target) -> tuple[Order, Certificate]:
        """Revocation rules 3 and 4: the order, locked, and the certificate; -4003 for anything not
        this partner's, exactly as for a missing order."""
        if target.certificate is not None:
            found = self._by_pem(session, partner, target.certificate)
            if found is None:
                raise OrderNotFound()
            order = orders.lock_order(session, found.order_pk)
            if order is None or (target.partner_order_id is not None
                                 and order.partner_order_id != target.partner_order_id):
                raise OrderNotFound()
            session.refresh(found)  # as of the lock
            return order, found
        assert target.partner_order_id is not None
        order = orders.find_order(session, partner_id=partner.id, partner_order_id=target.partner_order_id,
                                  for_update=True)
        if order is None:
            raise OrderNotFound()
        if target.serial is not None:
            certificate = certificates.certificate_of_order(session, order_pk=order.id, serial=target.serial)
        elif order.current_certificate_id is not None:
            certificate = certificates.get_certificate(session, order.current_certificate_id)
        else:
            raise OrderStateInvalid("the order has no certificate")
        if certificate is None:
            raise OrderNotFound()
        return order, certificate

    @staticmethod
    def _by_pem(session: Session, partner: PartnerRef, wanted: x509.Certificate) -> Certificate | None:
        serial = format(wanted.serial_number, "x")
        for candidate in certificates.partner_certificates_with_serial(session, partner_id=partner.id, serial=serial):
            if x509.load_pem_x509_certificate(candidate.pem.encode()) == wanted:
                return candidate
        return None

    @staticmethod
    def _revoke_key(session: Session, compromised: Certificate, now: datetime) -> list[tuple[Order, Certificate]]:
        """keyCompromise: block the key and revoke every other unexpired, unrevoked certificate of it,
        whatever its order and partner; returns them with their orders (whose changes the caller writes)."""
        certificates.block_key(session, spki_sha256=compromised.spki_sha256, reason=KEY_COMPROMISE, at=now,
                               certificate_id=compromised.id)
        others = [c for c in certificates.unrevoked_with_key(session, spki_sha256=compromised.spki_sha256, now=now)
                  if c.id != compromised.id]
        certificates.revoke(session, others, at=now, reason=KEY_COMPROMISE)
        revoked: list[tuple[Order, Certificate]] = []
        for certificate in others:
            order = orders.get_order(session, certificate.order_pk)
            assert order is not None
            revoked.append((order, certificate))
        return revoked

    # -- Cancel ---------------------------------------------------------------------------

    def cancel(self, credentials: Credentials, partner_order_id: str, *, channel: str) -> CancelledOrder:
        user = self._ra.authenticator.authenticate(credentials, channel=channel)
        partner = PartnerRef(id=user.partner_id, code=user.partner_code, actor=user.username)
        return self.cancel_for(partner, partner_order_id, channel=channel)

    def cancel_by_operator(self, partner_code: str, partner_order_id: str) -> CancelledOrder:
        return self.cancel_for(self._operator_partner(partner_code), partner_order_id, channel="cli")

    def cancel_for(self, partner: PartnerRef, partner_order_id: str, *, channel: str) -> CancelledOrder:
        subject = Subject(channel=channel, action="cancel", partner_code=partner.code, username=partner.actor,
                          partner_order_id=partner_order_id)
        return run_audited(self._ra, subject, lambda: self._cancel(partner, partner_order_id, subject))

    def _cancel(self, partner: PartnerRef, partner_order_id: str, subject: Subject) -> CancelledOrder:
        poid = checked_partner_order_id(partner_order_id)
        now = self._ra.clock()
        with self._ra.sessions() as session, session.begin():
            order = orders.find_order(session, partner_id=partner.id, partner_order_id=poid, for_update=True)
            if order is None:
                raise OrderNotFound()
            if order.status == OrderStatus.CANCELLED:
                raise OrderStateInvalid("the order is already cancelled")
            ending = certificates.unrevoked_of_order(session, order_pk=order.id, now=now)
            certificates.revoke(session, ending, at=now, reason=CESSATION_OF_OPERATION)
            for certificate in ending:
                changes.add_change(session, order=order, clock=self._ra.clock, change="revoked",
                                   certificate_serial=certificate.serial, detail=CESSATION_OF_OPERATION)
            changes.add_change(session, order=order, clock=self._ra.clock, change="cancelled")
            orders.record_change(session, [order.id], at=now, status=OrderStatus.CANCELLED)
            revoked = tuple(c.serial for c in ending)
            audit.append_event(
                session, at=now, channel=subject.channel, action=subject.action, outcome="success", code=0,
                partner_code=partner.code, username=partner.actor, order_id=order.order_id,
                partner_order_id=order.partner_order_id, detail=f"revoked {len(revoked)}",
            )
            result = CancelledOrder(order_id=order.order_id, partner_order_id=order.partner_order_id,
                                    cancelled_at=now, revoked=revoked)
            brands = [order.brand_code] * len(ending)
        metrics.certificates_revoked(brands)  # committed
        return result

    def _operator_partner(self, partner_code: str) -> PartnerRef:
        bounded(partner_code, MAX_PARTNER_CODE_CHARS, "PartnerCode")
        with self._ra.readers() as session:
            partner = partners.get_partner(session, partner_code)
        if partner is None:
            raise InvalidField(f"no partner with code {partner_code!r}", field="PartnerCode")
        return PartnerRef(partner.id, partner.code, "operator")
