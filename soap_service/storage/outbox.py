"""The mail outbox (``mail_outbox``): e-mails kept in the database until the SMTP server accepted
them, so that a message commits or rolls back with the change it tells of, and none is lost
while the server is down.

A message is *claimed* before it is sent: its ``next_attempt_at`` moves one lease ahead and its
``attempts`` up by one, in a short transaction of its own. Until the lease runs out no other
worker, process or host finds it due, and so none sends it too. On PostgreSQL the claim reads
with ``FOR UPDATE SKIP LOCKED``: two claims in flight at once take different messages and never
wait for each other; on SQLite the writer's ``BEGIN IMMEDIATE`` already makes claims take turns
(docs/design.md, "Concurrency and failures"). Sending happens after that transaction, under no
database lock; the outcome is written in a second short transaction (:func:`mark_sent`,
:func:`record_failure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from soap_service.storage.models import MailMessage

MAX_ERROR_CHARS = 200
"""The length of ``mail_outbox.last_error``."""


@dataclass(frozen=True)
class ClaimedMessage:
    """A message taken out of the outbox for one attempt: plain values, usable once the claim's
    transaction is over."""

    id: int
    recipient: str
    subject: str
    body: str
    created_at: datetime
    attempt: int  # 1 for the first attempt


def add_message(session: Session, *, recipient: str, subject: str, body: str, now: datetime) -> MailMessage:
    """Put a message in the outbox, due at once, in the caller's transaction (flushed: it has its ID)."""
    message = MailMessage(
        recipient=recipient,
        subject=subject,
        body=body,
        created_at=now,
        attempts=0,
        next_attempt_at=now,
        sent_at=None,
        last_error=None,
    )
    session.add(message)
    session.flush()
    return message


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether an unsent message is due at ``now`` (one indexed read, ix_mail_outbox_due)."""
    return session.scalar(
        select(MailMessage.id).where(MailMessage.sent_at.is_(None), MailMessage.next_attempt_at <= now).limit(1)
    ) is not None


def claim_due(session: Session, *, now: datetime, lease_until: datetime, limit: int = 1) -> list[ClaimedMessage]:
    """Claim at most ``limit`` unsent messages due at ``now`` (the longest waiting first): each is
    due again only at ``lease_until``, and counts one attempt more. Messages another transaction
    is claiming are skipped (PostgreSQL: ``SKIP LOCKED``; SQLite renders no locking clause and
    needs none, its writers take turns)."""
    query = (
        select(MailMessage)
        .where(MailMessage.sent_at.is_(None), MailMessage.next_attempt_at <= now)
        .order_by(MailMessage.next_attempt_at, MailMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for message in session.scalars(query):
        message.attempts += 1
        message.next_attempt_at = lease_until
        claimed.append(
            ClaimedMessage(
                id=message.id,
                recipient=message.recipient,
                subject=message.subject,
                body=message.body,
                created_at=message.created_at,
                attempt=message.attempts,
            )
        )
    session.flush()
    return claimed


def mark_sent(session: Session, message_id: int, *, now: datetime) -> bool:
    """Record that the SMTP server accepted the message; False if it was recorded sent already."""
    result = session.execute(
        update(MailMessage)
        .where(MailMessage.id == message_id, MailMessage.sent_at.is_(None))
        .values(sent_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_failure(session: Session, message_id: int, *, attempt: int, error: str, retry_at: datetime) -> bool:
    """Record that attempt ``attempt`` failed with ``error`` (cut to its column's length): the
    message is due again at ``retry_at``. Nothing is written, and False returned, if the message
    was sent meanwhile or claimed again (its lease ran out): the later attempt's outcome counts."""
    result = session.execute(
        update(MailMessage)
        .where(MailMessage.id == message_id, MailMessage.sent_at.is_(None), MailMessage.attempts == attempt)
        .values(next_attempt_at=retry_at, last_error=error[:MAX_ERROR_CHARS])
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
