"""Partners, their API users and failed logins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from soap_service.storage.models import ApiUser, AuthenticationFailure, Partner


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


def record_failure(session: Session, *, partner_code: str, username: str, at: datetime) -> None:
    session.add(AuthenticationFailure(partner_code=partner_code[:64], username=username[:128], at=at))


def count_failures_since(session: Session, *, partner_code: str, username: str, since: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AuthenticationFailure)
        .where(
            AuthenticationFailure.partner_code == partner_code[:64],
            AuthenticationFailure.username == username[:128],
            AuthenticationFailure.at >= since,
        )
    ) or 0


def clear_failures(session: Session, *, partner_code: str, username: str) -> None:
    session.execute(
        delete(AuthenticationFailure).where(
            AuthenticationFailure.partner_code == partner_code,
            AuthenticationFailure.username == username,
        )
    )
