"""ReplayTokens: a partner's idempotent requests and the answers they were given (``ra.replay``;
docs/design.md, "Concurrency and failures").

One row per partner and token, unique: of two requests with the same token, on any worker or host,
one insert wins and the other finds the row (PostgreSQL makes the second insert wait for the first's
transaction; SQLite's write lock serializes them). A row is *claimed* by the request that does the
work, ``pending`` until that request stores its answer (``done``) or gives the token back (deleted).
A claim is named by its row and the instant it was made (``claimed_at``, the row's ``created_at``),
so a request whose row was taken over after it went stale stores nothing over its successor's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from soap_service.storage.db import delete_oldest
from soap_service.storage.models import ReplayToken

PENDING = "pending"
DONE = "done"
PRUNED_PER_TOKEN = 4
"""Expired tokens deleted per token recorded at most: more than the one row each adds, so the table
shrinks back to the tokens still answered from, and the delete stays short."""
CLAIM_ATTEMPTS = 3
"""Inserts a claim tries when the row its insert met is gone by the time it is read (PostgreSQL: given
back or pruned by another transaction in between); each retry sees that delete committed."""


@dataclass(frozen=True)
class Claimed:
    """The token is this request's: do the work, then :func:`store` or :func:`release`."""

    row_id: int
    claimed_at: datetime


@dataclass(frozen=True)
class Found:
    """The token's row as another request left it (not expired, not taken over)."""

    operation: str
    request_sha256: str
    state: str
    answer: str | None
    answer_code: int | None
    created_at: datetime


def claim(
    session: Session,
    *,
    partner_id: int,
    token: str,
    operation: str,
    request_sha256: str,
    now: datetime,
    expired_before: datetime,
    stale_before: datetime,
) -> Claimed | Found:
    """In the caller's (short, write) transaction: insert the token as ``pending``, or take over its
    row when it expired (created before ``expired_before``: it is no longer answered from) or is a
    pending claim made before ``stale_before`` (its request's worker died); else the row as found.
    A new row also prunes up to :data:`PRUNED_PER_TOKEN` expired tokens, any partner's."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ReplayToken)
        .values(partner_id=partner_id, token=token, operation=operation, request_sha256=request_sha256,
                state=PENDING, created_at=now)
        .on_conflict_do_nothing(index_elements=[ReplayToken.partner_id, ReplayToken.token])
        .returning(ReplayToken.id)
    )
    for _attempt in range(CLAIM_ATTEMPTS):
        inserted = session.execute(statement).scalar_one_or_none()
        if inserted is not None:
            delete_oldest(session, ReplayToken.id, ReplayToken.created_at, before=expired_before,
                          limit=PRUNED_PER_TOKEN)
            return Claimed(inserted, now)
        row = session.execute(
            select(ReplayToken)
            .where(ReplayToken.partner_id == partner_id, ReplayToken.token == token)
            .with_for_update()
        ).scalar_one_or_none()
        if row is not None:
            break
        # PostgreSQL: the row the insert met was deleted and committed before it was read (its
        # request gave the token back, or a prune took it as expired): insert again.
    else:
        raise RuntimeError("a ReplayToken's row kept disappearing between its insert and its read")
    expired = row.created_at < expired_before
    stale = row.state == PENDING and row.created_at < stale_before
    if expired or stale:
        session.execute(
            update(ReplayToken)
            .where(ReplayToken.id == row.id)
            .values(operation=operation, request_sha256=request_sha256, state=PENDING, answer=None,
                    answer_code=None, created_at=now, finished_at=None)
        )
        return Claimed(row.id, now)
    return Found(row.operation, row.request_sha256, row.state, row.answer, row.answer_code, row.created_at)


def store(session: Session, claimed: Claimed, *, answer: str, answer_code: int, now: datetime) -> bool:
    """Record the claim's answer (``done``); ``False`` when the claim is no longer the row's."""
    result = session.execute(
        update(ReplayToken)
        .where(ReplayToken.id == claimed.row_id, ReplayToken.created_at == claimed.claimed_at,
               ReplayToken.state == PENDING)
        .values(state=DONE, answer=answer, answer_code=answer_code, finished_at=now)
        .returning(ReplayToken.id)
    )
    return result.scalar_one_or_none() is not None


def release(session: Session, claimed: Claimed) -> None:
    """Give the token back (its request failed inside the service): a retry does the work."""
    session.execute(
        delete(ReplayToken).where(ReplayToken.id == claimed.row_id, ReplayToken.created_at == claimed.claimed_at,
                                  ReplayToken.state == PENDING)
    )
