"""Cheap reads for the readiness check and the metrics scrape (docs/operations.md): is the
database there, which migration it is at, how many mails wait in the outbox."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from soap_service.storage.models import MailMessage
from soap_service.storage.schema import alembic_config


def ping(session: Session) -> None:
    """A trivial query: raises when the database cannot answer."""
    session.execute(select(1)).one()


def schema_revisions(session: Session) -> frozenset[str]:
    """The Alembic revisions the database is at (``alembic_version``; empty when it has none)."""
    rows = session.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return frozenset(str(row) for row in rows)


def head_revisions() -> frozenset[str]:
    """The heads of the project's migrations (read from the migration scripts)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def outbox_depth(session: Session) -> int:
    """Mails not yet accepted by the SMTP server (one count over ix_mail_outbox_due)."""
    return int(session.scalar(select(func.count()).select_from(MailMessage).where(MailMessage.sent_at.is_(None)))
               or 0)
