"""Partners, their API users, and the login attempts the lockout counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from soap_service.storage.db import delete_oldest
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
    """Serialize the login attempts of one account until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on the account's name (existing or
    not), so parallel reservations cannot all read the count before any is written.
    SQLite has no such lock: its writers are serialized by BEGIN IMMEDIATE instead (a
    write session holds the database's write lock from its first statement).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:account, 0))"),
            {"account": f"{clip(partner_code, 64)}\x1f{clip(username, 128)}"},
        )


def reserve_attempt(
    session: Session, *, partner_code: str, username: str, at: datetime, since: datetime, threshold: int
) -> int | None:
    """Reserve one login attempt of the account, in the caller's short write transaction.

    Under the account's lock: prune old rows, count the account's failures and pending
    attempts since ``since``, and, below ``threshold``, add a pending attempt and return
    its id. ``None`` means the account is locked. The password is verified after the
    transaction ends, and the attempt settled by :func:`settle_attempt` in another one, so
    no lock is held through a hash (docs/design.md, "Authentication"). An attempt never
    settled (its worker died) stays pending and counts as a failure until it ages out.
    """
    lock_account(session, partner_code=partner_code, username=username)
    prune_failures(session, before=since)
    if count_failures_since(session, partner_code=partner_code, username=username, since=since) >= threshold:
        return None
    attempt = AuthenticationFailure(
        partner_code=clip(partner_code, 64), username=clip(username, 128), at=at, pending=True
    )
    session.add(attempt)
    session.flush()
    return attempt.id


def settle_attempt(session: Session, attempt_id: int, *, failed: bool) -> None:
    """A reserved attempt's outcome: a failure stays (no longer pending), a success goes."""
    if failed:
        session.execute(
            update(AuthenticationFailure).where(AuthenticationFailure.id == attempt_id).values(pending=False)
        )
    else:
        session.execute(delete(AuthenticationFailure).where(AuthenticationFailure.id == attempt_id))


PRUNED_PER_ATTEMPT = 64
"""Old rows deleted per reservation at most: more than the one row a reservation adds, so
the table shrinks back to the window's rows, and the delete stays short."""


def prune_failures(session: Session, *, before: datetime, limit: int = PRUNED_PER_ATTEMPT) -> None:
    """Delete up to ``limit`` rows older than ``before`` (the lockout window's start), any
    account's. They count for nothing; the audit trail keeps its own record of each failure.
    On PostgreSQL, rows another transaction is pruning are skipped, not waited for."""
    delete_oldest(session, AuthenticationFailure.id, AuthenticationFailure.at, before=before, limit=limit)


def count_failures_since(session: Session, *, partner_code: str, username: str, since: datetime) -> int:
    """The account's failures and pending attempts since ``since``: what the lockout counts."""
    return session.scalar(
        select(func.count())
        .select_from(AuthenticationFailure)
        .where(
            AuthenticationFailure.partner_code == clip(partner_code, 64),
            AuthenticationFailure.username == clip(username, 128),
            AuthenticationFailure.at >= since,
        )
    ) or 0
