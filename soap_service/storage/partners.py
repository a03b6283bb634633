"""Partners, their API users and failed logins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from soap_service.storage.models import ApiUser, AuthenticationFailure, Partner
from soap_service.storage.types import clip


def get_partner(session: Session, code: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.code == code))


def get_api_user(session: Session, partner_code: str, username: str) -> tuple[Partner, ApiUser] | None:
    row = session.execute(
        select(Partner, ApiUser)
        .join(ApiUser, ApiUser.partner_id == Partner.id)
        .where(Partner.code == partner_code, ApiUser.username == username)
    ).first()
    return None if row is None else (row[0], row[1])


def add_partner(session: Session, *, code: str, name: str, created_at: datetime) -> Partner:
    partner = Partner(code=code, name=name, status="active", created_at=created_at)
    session.add(partner)
    session.flush()
    return partner


def add_api_user(
    session: Session, *, partner: Partner, username: str, password_hash: str, created_at: datetime
) -> ApiUser:
    user = ApiUser(
        partner_id=partner.id,
        username=username,
        password_hash=password_hash,
        status="active",
        created_at=created_at,
    )
    session.add(user)
    session.flush()
    return user


def lock_account(session: Session, *, partner_code: str, username: str) -> None:
    """Serialize the credential checks of one account until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on the account's name (existing or
    not), so parallel guesses cannot all read the failure count before any is written.
    SQLite has no such lock; its writers are serialized by BEGIN IMMEDIATE instead.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:account, 0))"),
            {"account": f"{clip(partner_code, 64)}\x1f{clip(username, 128)}"},
        )


def record_failure(session: Session, *, partner_code: str, username: str, at: datetime) -> None:
    session.add(AuthenticationFailure(partner_code=clip(partner_code, 64), username=clip(username, 128), at=at))


def count_failures_since(session: Session, *, partner_code: str, username: str, since: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AuthenticationFailure)
        .where(
            AuthenticationFailure.partner_code == clip(partner_code, 64),
            AuthenticationFailure.username == clip(username, 128),
            AuthenticationFailure.at >= since,
        )
    ) or 0
