"""Signing a certificate for an order, in three steps with the signature between two transactions:
:func:`plan_leaf` (validity, CA, a serial reserved in the caller's first transaction),
:func:`sign_leaf` (lint and signature, with no transaction open) and :func:`record_certificate`
(the certificate's row, in the caller's second transaction, after :func:`still_fits` has checked
the order again under its lock). Shared by an order's first certificate and by every reissue; the
caller owns the transactions and applies the rules about who may ask for what
(docs/design.md, "Concurrency and failures").
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from soap_service.ca.profiles import LeafRequest
from soap_service.ca.serials import new_serial
from soap_service.errors import ServiceError
from soap_service.ra.authorities import LoadedCA
from soap_service.ra.catalogue import ProductSpec
from soap_service.ra.csr import ParsedCSR, parse_csr, spki_sha256
from soap_service.ra.keypolicy import KeyPolicy
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.validity import validity_window
from soap_service.ra.views import ChainCertificate, organization_of
from soap_service.storage import certificates, changes
from soap_service.storage.errors import SerialCollision
from soap_service.storage.models import Certificate, Order
from soap_service.vocabulary import CertificateStatus


@dataclass(frozen=True)
class ExaminedCSR:
    """A CSR parsed and its key judged, before any lock is taken.

    The refusal, if any, is kept and raised only when the order has been found and
    checked, so that the order's errors come first whatever the CSR holds.
    """

    parsed: ParsedCSR | None
    refusal: ServiceError | None

    def accepted(self) -> ParsedCSR:
        if self.refusal is not None:
            raise self.refusal
        assert self.parsed is not None
        return self.parsed


def examine_csr(policy: KeyPolicy, text: str) -> ExaminedCSR:
    """The CSR read (-2019, -4007) and its key judged by ``policy`` (-4009): CPU work, no database."""
    try:
        parsed = policy.check_csr(parse_csr(text))
    except ServiceError as refusal:
        return ExaminedCSR(None, refusal)
    return ExaminedCSR(parsed, None)


def refuse_blocked_key(policy: KeyPolicy, session: Session, csr: ParsedCSR) -> None:
    """A key blocked for compromise is refused forever, on every path (docs/design.md, "Reissue rules").

    Asked in the caller's transaction, after the order is locked: :mod:`soap_service.ra.keypolicy`
    says why there and not in a session of its own.
    """
    policy.check_not_blocked(csr.spki_sha256, functools.partial(certificates.is_key_blocked, session))


def refuse_key_of_another_partner(
    policy: KeyPolicy, session: Session, csr: ParsedCSR, *, partner_id: int, now: datetime
) -> None:
    """-4009 when the key is in a valid, unexpired certificate of another partner (docs/design.md,
    "Reissue rules", rule 7). A CSR proves that its key signed it once, not that the sender holds
    the key: a partner who reused another subscriber's CSR would hold a certificate for a key it
    cannot use, and could then revoke it for keyCompromise, which revokes every certificate of
    that key. Asked in the caller's transaction, like the blocked-key table."""
    policy.check_not_held_elsewhere(
        csr.spki_sha256,
        functools.partial(certificates.is_key_held_by_another_partner, session, partner_id=partner_id, now=now),
    )


def csr_pem(parsed: ParsedCSR) -> str:
    body = base64.encodebytes(parsed.der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE REQUEST-----\n"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


MAX_SERIAL_DRAWS = 5
"""Serials drawn before a reservation gives up: each draw collides with a probability
below 2**-100, so a second draw already means a broken random source or database."""


@dataclass(frozen=True)
class PlannedLeaf:
    """A leaf decided and its serial reserved, not signed yet: what the CA signs, and the CA that
    signs it (docs/design.md, "The path of one Reissue")."""

    ca: LoadedCA
    request: LeafRequest


def plan_leaf(
    ra: RegistrationAuthority,
    session: Session,
    *,
    order: Order,
    product: ProductSpec,
    csr: ParsedCSR,
    names: tuple[str, ...],
    now: datetime,
) -> PlannedLeaf:
    """The leaf of ``order`` for the CSR's key and ``names``, with a serial recorded in
    ``session``'s transaction, which the caller commits *before* signing: the database's unique
    constraint on (CA, serial) has then refused any serial used before, and a reserved serial is
    never drawn again, whatever happens to the signature. No signature here: the caller holds a
    write transaction (docs/design.md, "Concurrency and failures")."""
    level = product.validation_level
    not_before, not_after = validity_window(level, now, order.term_end)
    loaded = ra.authorities.issuing_ca(session, order.brand_code, level)
    for _draw in range(MAX_SERIAL_DRAWS):
        serial = new_serial()
        try:
            certificates.reserve_serial(session, ca_id=loaded.id, serial=serial_hex(serial), at=now)
        except SerialCollision:
            continue
        return PlannedLeaf(
            loaded,
            LeafRequest(
                level=level,
                public_key=csr.public_key,
                dns_names=names,
                organization=organization_of(order),
                not_before=not_before,
                not_after=not_after,
                serial=serial,
            ),
        )
    raise RuntimeError(f"no free serial number in {MAX_SERIAL_DRAWS} draws")


def sign_leaf(ra: RegistrationAuthority, planned: PlannedLeaf) -> x509.Certificate:
    """Lint and sign the planned leaf: the costly part of an issuance, called with no
    transaction open (docs/design.md, "Concurrency and failures")."""
    return ra.issuer.issue(planned.ca.issuing, planned.request)


def still_fits(planned: PlannedLeaf, *, order: Order, product: ProductSpec, names: tuple[str, ...],
               loaded: LoadedCA) -> bool:
    """Whether the leaf signed from an earlier look at ``order`` is still the one its rules give
    now: the same CA, level, names and organization, and a validity that still ends within the
    order's term. A reissue of the same order in between changes none of them."""
    request = planned.request
    return (
        loaded.id == planned.ca.id
        and product.validation_level == request.level
        and names == request.dns_names
        and organization_of(order) == request.organization
        and request.not_after <= order.term_end
    )


def record_certificate(
    ra: RegistrationAuthority,
    session: Session,
    *,
    order: Order,
    planned: PlannedLeaf,
    leaf: x509.Certificate,
    csr: ParsedCSR,
    replaces: Certificate | None,
    now: datetime,
) -> Certificate:
    """Record the signed ``leaf`` of ``order``, with the order change a partner's
    GetModifiedOrders reports: "issued" for the order's first certificate, "reissued" for the
    next ones (docs/design.md, "Revocation"). The order's current certificate is the caller's."""
    record = Certificate(
        order_pk=order.id,
        ca_id=planned.ca.id,
        serial=serial_hex(leaf.serial_number),
        subject=leaf.subject.rfc4514_string(),
        names="\n".join(planned.request.dns_names),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
        spki_sha256=spki_sha256(leaf.public_key()),
        csr_pem=csr_pem(csr),
        csr_sha256=csr.sha256,
        status=CertificateStatus.VALID,
        replaces_id=replaces.id if replaces is not None else None,
        issued_at=now,
    )
    certificates.add_certificate(session, record)
    changes.add_change(
        session, order=order, clock=ra.clock, change="issued" if replaces is None else "reissued",
        certificate_serial=record.serial,
    )
    return record


def chain_of(loaded: LoadedCA) -> tuple[ChainCertificate, ...]:
    """The issuing CA and the CAs above it, typed INTERMEDIATE or ROOT."""
    chain = [loaded.issuing.certificate, *loaded.issuing.chain]
    return tuple(
        ChainCertificate(
            kind="ROOT" if _self_signed(cert) else "INTERMEDIATE",
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )
        for cert in chain
    )


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject
