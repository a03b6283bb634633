"""The rows that hold something encrypted under the CA passphrase, locked for a re-encryption
(``ra.passphrase_rotation``): the CA keys, the OCSP responder keys, the WS-Security password copies.

Each query locks its rows (``FOR UPDATE`` on PostgreSQL; SQLite's writer already holds the
database's write lock from ``BEGIN IMMEDIATE``), so no other transaction writes one of them
between its reading and its rewriting.
"""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from soap_service.storage.models import ApiUser, CertificateAuthority, OCSPResponder, Partner


def authorities_for_update(session: Session) -> list[CertificateAuthority]:
    return list(session.scalars(select(CertificateAuthority).order_by(CertificateAuthority.id).with_for_update()))


def responders_for_update(session: Session) -> list[OCSPResponder]:
    return list(session.scalars(select(OCSPResponder).order_by(OCSPResponder.id).with_for_update()))


def password_copies_for_update(session: Session) -> list[tuple[str, ApiUser]]:
    """Each API user that has a WS-Security password copy, with its partner's code."""
    rows = session.execute(
        select(Partner.code, ApiUser)
        .join(ApiUser, ApiUser.partner_id == Partner.id)
        .where(ApiUser.ws_password_copy.is_not(None))
        .order_by(ApiUser.id)
        .with_for_update(of=ApiUser)
    )
    return [(code, user) for code, user in rows]


def first_authority(session: Session) -> tuple[str, bytes] | None:
    """The first CA's name and stored key (any one tells which passphrase the database is under);
    None when there is none or no schema yet. A database that cannot be reached raises."""
    if not inspect(session.connection()).has_table(CertificateAuthority.__tablename__):
        return None
    row = session.execute(
        select(CertificateAuthority.name, CertificateAuthority.protected_key).order_by(CertificateAuthority.id).limit(1)
    ).first()
    return None if row is None else (row[0], row[1])
