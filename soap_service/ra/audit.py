"""Recording what the RA decided, in the append-only audit trail."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import audit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """Who asked, about which order, through which front end."""

    channel: str
    action: str
    partner_code: str | None = None
    username: str | None = None
    partner_order_id: str | None = None
    order_id: str | None = None


def record_outcome(
    ra: RegistrationAuthority,
    subject: Subject,
    *,
    outcome: str,
    code: int,
    detail: str,
    incident_id: str | None = None,
    certificate_serial: str | None = None,
) -> None:
    """Record a refusal or failure in its own transaction (the use case's rolled back)."""
    try:
        with ra.sessions() as session, session.begin():
            audit.append_event(
                session,
                at=ra.clock(),
                channel=subject.channel,
                action=subject.action,
                outcome=outcome,
                code=code,
                partner_code=subject.partner_code,
                username=subject.username,
                order_id=subject.order_id,
                partner_order_id=subject.partner_order_id,
                certificate_serial=certificate_serial,
                incident_id=incident_id,
                detail=detail,
            )
    except SQLAlchemyError:
        logger.exception("could not record the audit event of %s %s (%s)", subject.action, outcome, incident_id)
        raise
