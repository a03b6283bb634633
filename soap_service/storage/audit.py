"""The append-only audit trail.

The database enforces it: triggers refuse UPDATE and DELETE of ``audit_events`` on
every backend and, on PostgreSQL, TRUNCATE (migrations 0001 and 0002; on SQLite a
DELETE without WHERE fires the DELETE trigger). Nothing here prunes events: the
failed-login rows that the lockout counts are pruned past its window, their audit
events stay (docs/security.md).

Each event is a link of a hash chain (``storage.audit_chain``; docs/design.md, "Audit chain"),
appended in the caller's transaction: :func:`append_event` is the last write of a transaction.
On PostgreSQL it takes the chain's lock, which must come after every other lock the transaction
takes (the change feed's too), or writers and a settling reader could wait for each other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from soap_service.storage import audit_chain
from soap_service.storage.models import AuditEvent
from soap_service.storage.types import clip


def append_event(
    session: Session,
    *,
    at: datetime,
    channel: str,
    action: str,
    outcome: str,
    code: int,
    partner_code: str | None = None,
    username: str | None = None,
    order_id: str | None = None,
    partner_order_id: str | None = None,
    certificate_serial: str | None = None,
    incident_id: str | None = None,
    detail: str = "",
) -> None:
    """Append one event to the chain, in the caller's transaction, as its last write (on
    PostgreSQL the chain's lock is held from here to the commit; docs/design.md, "Audit chain")."""
    # Callers' values (a hostile user name, say) are cut to the column, never refused here.
    event = AuditEvent(
        at=at,
        channel=channel,
        action=action,
        outcome=outcome,
        code=code,
        partner_code=clip(partner_code, 64),
        username=clip(username, 128),
        order_id=clip(order_id, 32),
        partner_order_id=clip(partner_order_id, 64),
        certificate_serial=certificate_serial,
        incident_id=incident_id,
        detail=clip(detail, 2000) or "",
    )
    # The link is computed before the INSERT: the append-only trigger would refuse an UPDATE.
    audit_chain.lock_chain(session)
    audit_chain.chain(session, event)
    session.flush()


def list_events(session: Session, *, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.chain_seq)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))
