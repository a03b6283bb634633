"""What the OCSP responder reads and writes of its delegated responder certificates (docs/design.md,
"OCSP"); a certificate's status is read by ``storage.status_reader``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from soap_service.storage.models import CertificateAuthority, OCSPResponder


def newest_responders(session: Session) -> dict[int, OCSPResponder]:
    """Each CA's responder with the latest notAfter, by CA id."""
    latest = (
        select(OCSPResponder.ca_id, func.max(OCSPResponder.not_after).label("not_after"))
        .group_by(OCSPResponder.ca_id)
        .subquery()
    )
    rows = session.scalars(
        select(OCSPResponder)
        .join(latest, (OCSPResponder.ca_id == latest.c.ca_id) & (OCSPResponder.not_after == latest.c.not_after))
        .order_by(OCSPResponder.id)
    )
    return {row.ca_id: row for row in rows}


def newest_responder(session: Session, ca_id: int) -> OCSPResponder | None:
    return session.scalars(
        select(OCSPResponder)
        .where(OCSPResponder.ca_id == ca_id)
        .order_by(OCSPResponder.not_after.desc(), OCSPResponder.id.desc())
        .limit(1)
    ).first()


def lock_authority(session: Session, ca_id: int) -> None:
    """Lock the CA's row until the transaction ends (PostgreSQL: FOR UPDATE; SQLite's writer
    transactions already hold the database's write lock from BEGIN IMMEDIATE)."""
    session.execute(
        select(CertificateAuthority.id).where(CertificateAuthority.id == ca_id).with_for_update()
    ).first()


def add_responder(
    session: Session,
    *,
    ca_id: int,
    certificate_pem: str,
    protected_key: bytes,
    not_before: datetime,
    not_after: datetime,
    created_at: datetime,
) -> OCSPResponder:
    responder = OCSPResponder(
        ca_id=ca_id,
        certificate_pem=certificate_pem,
        protected_key=protected_key,
        not_before=not_before,
        not_after=not_after,
        created_at=created_at,
    )
    session.add(responder)
    session.flush()
    return responder
