"""Cheap reads for the readiness check and the metrics scrape (docs/operations.md): is the
database there, which migration it is at, how many mails wait in the outbox."""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from soap_service.storage.models import MailMessage


def ping(session: Session) -> None:
    """A trivial query: raises when the database cannot answer."""
    session.execute(select(1)).one()


def schema_revisions(session: Session) -> frozenset[str]:
    """The Alembic revisions the database is at (``alembic_version``; empty when it has none)."""
    rows = session.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return frozenset(str(row) for row in rows)


def head_revisions() -> frozenset[str]:
    """The heads of the project's migrations (read from the migration scripts). Alembic's INFO
    lines as it loads (one per plugin) are not shown unless the ``alembic`` logger's level was set,
    as ``ra.installation.migrate`` keeps them out of a quiet start."""
    alembic_logger = logging.getLogger("alembic")
    level = alembic_logger.level
    if level == logging.NOTSET:
        alembic_logger.setLevel(logging.WARNING)
    try:
        from alembic.script import ScriptDirectory

        from soap_service.storage.schema import alembic_config  # imports Alembic: here, not at start

        return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())
    finally:
        alembic_logger.setLevel(level)


def outbox_depth(session: Session) -> int:
    """Mails not yet accepted by the SMTP server (one count over ix_mail_outbox_due)."""
    return int(session.scalar(select(func.count()).select_from(MailMessage).where(MailMessage.sent_at.is_(None)))
               or 0)
