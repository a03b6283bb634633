"""WS-Security UsernameToken nonces that authenticated, each kept until its token's Created falls
out of the accepted skew and a margin more (the caller's ``expires_at``; docs/design.md,
"Authentication").

The primary key decides: of two requests with the same nonce, on any worker or host, one insert
wins and the other finds the row (committed or not yet; PostgreSQL makes the second wait for the
first's outcome, SQLite's write lock serializes them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from soap_service.storage.db import delete_oldest
from soap_service.storage.models import WsNonce

PRUNED_PER_NONCE = 4
"""Expired nonces deleted per nonce recorded at most: more than the one row each adds, so the table
shrinks back to the nonces still in their window, and the delete stays short."""


def record_nonce(session: Session, *, nonce_digest: str, expires_at: datetime, now: datetime) -> bool:
    """Record a nonce in the caller's transaction: ``False`` when it is there already (a replay).
    Also deletes up to :data:`PRUNED_PER_NONCE` nonces expired before ``now``, any account's."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(WsNonce)
        .values(nonce_digest=nonce_digest, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[WsNonce.nonce_digest])
        .returning(WsNonce.nonce_digest)
    )
    recorded = session.execute(statement).scalar_one_or_none() is not None
    if recorded:
        delete_oldest(session, WsNonce.nonce_digest, WsNonce.expires_at, before=now, limit=PRUNED_PER_NONCE)
    return recorded

