"""The append-only audit trail.

The database enforces it: triggers refuse UPDATE and DELETE of ``audit_events`` on
every backend and, on PostgreSQL, TRUNCATE (migrations 0001 and 0002; on SQLite a
DELETE without WHERE fires the DELETE trigger). Nothing here prunes events: the
failed-login rows that the lockout counts are pruned past its window, their audit
events stay (docs/security.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

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
    # Callers' values (a hostile user name, say) are cut to the column, never refused here.
    session.add(
        AuditEvent(
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
    )


def list_events(session: Session, *, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))
