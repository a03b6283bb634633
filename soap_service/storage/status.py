"""What the status publication reads and writes: a CA's revoked certificates, the cheap
summary that tells a cached CRL is still current, and the CRL numbers
(docs/design.md, "Status publication")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from soap_service.storage.models import Certificate, CRLState
from soap_service.vocabulary import CertificateStatus

KEY_COMPROMISE = "keyCompromise"


@dataclass(frozen=True)
class RevocationState:
    """A CA's revocation state in three numbers: it changes with every revocation (a new row
    raises the count) and every change of a reason (the only one allowed is to keyCompromise,
    which raises the third). Revocations are never undone."""

    revoked: int
    last_revoked_at: datetime | None
    key_compromised: int


@dataclass(frozen=True)
class RevokedRow:
    serial: str  # lowercase hex
    revoked_at: datetime
    reason: str


def revocation_state(session: Session, ca_id: int) -> RevocationState:
    """One aggregate over the CA's revoked certificates, found through the (ca_id, serial)
    unique index."""
    query = select(
        func.count(),
        func.max(Certificate.revoked_at),
        func.coalesce(func.sum(case((Certificate.revocation_reason == KEY_COMPROMISE, 1), else_=0)), 0),
    ).where(Certificate.ca_id == ca_id, Certificate.status == CertificateStatus.REVOKED)
    count, last, compromised = session.execute(query).one()
    return RevocationState(revoked=int(count), last_revoked_at=last, key_compromised=int(compromised))


def revoked_certificates(session: Session, ca_id: int, *, expired_before: datetime) -> list[RevokedRow]:
    """The CA's revoked certificates, but those whose notAfter is before ``expired_before``."""
    query = (
        select(Certificate.serial, Certificate.revoked_at, Certificate.revocation_reason)
        .where(
            Certificate.ca_id == ca_id,
            Certificate.status == CertificateStatus.REVOKED,
            Certificate.not_after >= expired_before,
        )
        .order_by(Certificate.id)
    )
    rows = []
    for serial, revoked_at, reason in session.execute(query):
        if revoked_at is None:
            raise ValueError(f"certificate {serial} is revoked without a revocation time")
        rows.append(RevokedRow(serial=serial, revoked_at=revoked_at, reason=reason or "unspecified"))
    return rows


def next_crl_number(session: Session, ca_id: int, *, at: datetime) -> int:
    """The CA's next CRL number (1 for its first), recorded with ``at``: one atomic upsert, so
    two transactions never get the same number, on either backend."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(CRLState).values(ca_id=ca_id, crl_number=1, updated_at=at)
    upsert = statement.on_conflict_do_update(
        index_elements=[CRLState.ca_id],
        set_={"crl_number": CRLState.crl_number + 1, "updated_at": statement.excluded.updated_at},
    ).returning(CRLState.crl_number)
    return int(session.execute(upsert).scalar_one())
