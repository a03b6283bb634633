"""Certificates, their serials and the blocked-key list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from soap_service.storage.db import lock_digest
from soap_service.storage.errors import SerialCollision
from soap_service.storage.models import BlockedKey, Certificate, IssuedSerial, Order
from soap_service.vocabulary import CertificateStatus


def reserve_serial(session: Session, *, ca_id: int, serial: str, at: datetime) -> None:
    """Record a serial before it is signed (docs/design.md, "Concurrency and failures").

    :class:`SerialCollision` when the CA already has it (the unique constraint, whoever
    wrote it first, committed or not yet); the caller's transaction goes on without it. One
    statement, ``INSERT ... ON CONFLICT (ca_id, serial) DO NOTHING RETURNING id``, with no
    savepoint around it (two statements more on the hot path). Any other integrity error (a CA
    that does not exist) is the driver's, raised as it is.
    """
    values = {"ca_id": ca_id, "serial": serial, "reserved_at": at}
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)
    statement = (insert(IssuedSerial).values(**values)
                 .on_conflict_do_nothing(index_elements=["ca_id", "serial"]).returning(IssuedSerial.id))
    if session.scalar(statement) is None:  # nothing inserted, nothing returned: the serial is taken
        raise SerialCollision()


def add_certificate(session: Session, certificate: Certificate) -> Certificate:
    session.add(certificate)
    session.flush()
    return certificate


def get_certificate(session: Session, certificate_id: int) -> Certificate | None:
    return session.get(Certificate, certificate_id)


def serial_of(session: Session, certificate_id: int) -> str | None:
    """The serial of one certificate, without loading its row."""
    return session.scalar(select(Certificate.serial).where(Certificate.id == certificate_id))


def order_history(session: Session, order_pk: int) -> list[Certificate]:
    """Every certificate of an order, oldest first."""
    return list(
        session.scalars(select(Certificate).where(Certificate.order_pk == order_pk).order_by(Certificate.id))
    )


def is_key_blocked(session: Session, spki_sha256: str) -> bool:
    """Whether the key is blocked, as of now; on PostgreSQL under the key's lock, exclusive.

    The lock (:func:`lock_key`) is held to the end of the caller's transaction: a revocation for
    keyCompromise blocking this key waits for the certificate this transaction may issue with it,
    and then revokes it too; and two issuances of one key by two partners take turns, so the
    second's rule 7 question sees the first's certificate (with a shared lock each, neither saw
    the other's; docs/design.md, "Revocation"). SQLite needs none: its writers are serialized by
    ``BEGIN IMMEDIATE``.
    """
    lock_key(session, spki_sha256)
    return session.get(BlockedKey, spki_sha256) is not None


def is_key_held_by_another_partner(session: Session, spki_sha256: str, *, partner_id: int, now: datetime) -> bool:
    """Whether a valid, unexpired certificate of another partner's order has this key."""
    held = (
        select(Certificate.id)
        .join(Order, Order.id == Certificate.order_pk)
        .where(Certificate.spki_sha256 == spki_sha256, Order.partner_id != partner_id, *_in_force(now))
        .limit(1)
    )
    return session.scalar(held) is not None


def block_key(
    session: Session, *, spki_sha256: str, reason: str, at: datetime, certificate_id: int | None
) -> None:
    """Block the key forever; a key already blocked stays as it was blocked (not an error).

    On PostgreSQL takes the key's exclusive lock first (held to the commit): the issuances
    that asked about the key before end first, the ones after see it blocked.
    """
    lock_key(session, spki_sha256, shared=False)
    if session.get(BlockedKey, spki_sha256) is not None:
        return
    try:
        with session.begin_nested():
            session.add(
                BlockedKey(spki_sha256=spki_sha256, reason=reason, blocked_at=at, certificate_id=certificate_id)
            )
    except IntegrityError:
        if session.get(BlockedKey, spki_sha256) is None:
            raise


def lock_key(session: Session, spki_sha256: str, *, shared: bool = False) -> None:
    """A transaction-scoped advisory lock on one key (PostgreSQL only), named by its SPKI SHA-256."""
    lock_digest(session, spki_sha256, shared=shared)


def certificate_of_order(session: Session, *, order_pk: int, serial: str) -> Certificate | None:
    """The certificate of this order with this serial (lowercase hex, no leading zeros)."""
    return session.scalar(select(Certificate).where(Certificate.order_pk == order_pk, Certificate.serial == serial))


def partner_certificates_with_serial(session: Session, *, partner_id: int, serial: str) -> list[Certificate]:
    """The certificates of this partner's orders with this serial (one per issuing CA at most)."""
    query = (
        select(Certificate)
        .join(Order, Order.id == Certificate.order_pk)
        .where(Order.partner_id == partner_id, Certificate.serial == serial)
        .order_by(Certificate.id)
    )
    return list(session.scalars(query))


def unrevoked_with_key(session: Session, *, spki_sha256: str, now: datetime) -> list[Certificate]:
    """Every unexpired, unrevoked certificate of this key, of any order of any partner."""
    query = select(Certificate).where(Certificate.spki_sha256 == spki_sha256, *_in_force(now))
    return list(session.scalars(query.order_by(Certificate.id)))


def unrevoked_of_order(session: Session, *, order_pk: int, now: datetime) -> list[Certificate]:
    """The order's unexpired, unrevoked certificates, oldest first."""
    query = select(Certificate).where(Certificate.order_pk == order_pk, *_in_force(now))
    return list(session.scalars(query.order_by(Certificate.id)))


def _in_force(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A certificate neither revoked nor expired at ``now``."""
    return Certificate.status == CertificateStatus.VALID, Certificate.not_after > now


def revoke(session: Session, certificates: Sequence[Certificate], *, at: datetime, reason: str) -> None:
    """Mark each certificate revoked at ``at`` for ``reason``."""
    for certificate in certificates:
        certificate.status = CertificateStatus.REVOKED
        certificate.revoked_at = at
        certificate.revocation_reason = reason
    session.flush()


def change_revocation_reason(session: Session, certificate: Certificate, *, reason: str) -> None:
    """A revoked certificate's new reason; its revocation time stays."""
    certificate.revocation_reason = reason
    session.flush()
