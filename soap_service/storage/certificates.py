"""Certificates, their serials and the blocked-key list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from soap_service.storage.errors import SerialCollision
from soap_service.storage.models import BlockedKey, Certificate, IssuedSerial


def reserve_serial(session: Session, *, ca_id: int, serial: str, at: datetime) -> None:
    """Record a serial before it is signed (docs/design.md, "Concurrency and failures").

    :class:`SerialCollision` when the CA already has it (the unique constraint, whoever
    wrote it first, committed or not yet); the caller's transaction goes on without it.
    """
    try:
        with session.begin_nested():
            session.add(IssuedSerial(ca_id=ca_id, serial=serial, reserved_at=at))
    except IntegrityError:
        if _serial_recorded(session, ca_id=ca_id, serial=serial):
            raise SerialCollision() from None
        raise


def _serial_recorded(session: Session, *, ca_id: int, serial: str) -> bool:
    recorded = select(IssuedSerial.id).where(IssuedSerial.ca_id == ca_id, IssuedSerial.serial == serial)
    return session.scalar(recorded) is not None


def add_certificate(session: Session, certificate: Certificate) -> Certificate:
    session.add(certificate)
    session.flush()
    return certificate


def get_certificate(session: Session, certificate_id: int) -> Certificate | None:
    return session.get(Certificate, certificate_id)


def order_history(session: Session, order_pk: int) -> list[Certificate]:
    """Every certificate of an order, oldest first."""
    return list(
        session.scalars(select(Certificate).where(Certificate.order_pk == order_pk).order_by(Certificate.id))
    )


def is_key_blocked(session: Session, spki_sha256: str) -> bool:
    return session.get(BlockedKey, spki_sha256) is not None


def block_key(
    session: Session, *, spki_sha256: str, reason: str, at: datetime, certificate_id: int | None
) -> None:
    if session.get(BlockedKey, spki_sha256) is None:
        session.add(
            BlockedKey(spki_sha256=spki_sha256, reason=reason, blocked_at=at, certificate_id=certificate_id)
        )
