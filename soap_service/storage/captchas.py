"""The End User Portal's captchas (portal_captchas): written when a page shows one, spent by one
conditional UPDATE when its form comes back, pruned once expired.

Only hashes are stored: of the challenge's token, and of the token with the answer
(soap_service.ra.captcha makes both). Whether a check may pass is decided by the database in one
statement, :func:`spend`: it marks the challenge used only if it is unused and unexpired, and
returns its answer's hash only then. Of two concurrent checks of one token the second finds the
row already used (PostgreSQL re-evaluates the condition on the row the first committed; SQLite
runs writers one at a time), so never do both pass.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from soap_service.storage.models import PortalCaptcha


def add_captcha(
    session: Session, *, challenge_hash: str, answer_hash: str, created_at: datetime, expires_at: datetime
) -> None:
    """Store a challenge shown now, until ``expires_at``."""
    session.add(
        PortalCaptcha(
            challenge_hash=challenge_hash, answer_hash=answer_hash, created_at=created_at, expires_at=expires_at
        )
    )
    session.flush()


def spend(session: Session, *, challenge_hash: str, now: datetime) -> str | None:
    """Mark the challenge used, whatever answer came with it; its answer's hash, or None when no
    unused, unexpired challenge has this hash (unknown, spent or expired alike: one statement)."""
    result = session.execute(
        update(PortalCaptcha)
        .where(
            PortalCaptcha.challenge_hash == challenge_hash,
            PortalCaptcha.used_at.is_(None),
            PortalCaptcha.expires_at > now,
        )
        .values(used_at=now)
        .returning(PortalCaptcha.answer_hash)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


def prune(session: Session, *, before: datetime) -> int:
    """Delete the challenges expired at ``before`` (ix_portal_captchas_expires_at); how many."""
    result = session.execute(
        delete(PortalCaptcha)
        .where(PortalCaptcha.expires_at <= before)
        .execution_options(synchronize_session=False)
    )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count
