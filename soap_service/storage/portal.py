"""What the End User Portal reads and writes (docs/design.md, "End User Portal"): orders found by
name or order ID for a contact address, the access links e-mailed to contacts, the contacts'
sessions, and the events its rate limits count. Tokens are stored as their SHA-256, never as
given: a copy of the database opens no order."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Exists

from soap_service.storage.db import lock_digest
from soap_service.storage.models import (
    Order,
    OrderContact,
    OrderName,
    PortalAccessToken,
    PortalRateEvent,
    PortalSession,
)

CONTACT_ROLES = ("admin", "technical")
"""The contacts who may reach an order through the portal (the product document's two)."""


def _is_contact(email: str) -> Exists:
    return exists().where(
        OrderContact.order_pk == Order.id,
        OrderContact.role.in_(CONTACT_ROLES),
        func.lower(OrderContact.email) == email.lower(),
    )


def find_orders(
    session: Session, *, brands: Collection[str], name: str, order_id: str, email: str, limit: int
) -> list[Order]:
    """The orders of ``brands`` whose order ID is ``order_id``, or with ``name`` among their names
    (any case), or with ``name`` as their organization's name (code signing), that list ``email``
    (any case) as an admin or technical contact; at most ``limit``, newest first. One query, the
    same whether nothing matched or the address is no contact."""
    matches = or_(
        Order.order_id == order_id,
        exists().where(OrderName.order_pk == Order.id, OrderName.name == name.lower()),
        func.lower(Order.organization_name) == name.lower(),
    )
    query = (
        select(Order)
        .where(Order.brand_code.in_(list(brands)), matches, _is_contact(email))
        .order_by(Order.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def contact_order(session: Session, *, brands: Collection[str], order_id: str, email: str) -> Order | None:
    """The order ``order_id`` of ``brands`` if ``email`` is its admin or technical contact."""
    return session.scalars(
        select(Order).where(Order.order_id == order_id, Order.brand_code.in_(list(brands)), _is_contact(email))
    ).first()


def contact_address(session: Session, *, order_pk: int, email: str) -> str | None:
    """The order's admin or technical contact address that ``email`` names (any case), as the order
    holds it: the one address mail may go to."""
    return session.scalars(
        select(OrderContact.email)
        .where(OrderContact.order_pk == order_pk, OrderContact.role.in_(CONTACT_ROLES),
               func.lower(OrderContact.email) == email.lower())
        .order_by(OrderContact.id)
    ).first()


def is_contact(session: Session, *, order_pk: int, email: str) -> bool:
    """Whether ``email`` is (still) an admin or technical contact of the order."""
    return bool(session.scalar(select(_is_contact(email)).where(Order.id == order_pk)))


def add_access_token(
    session: Session, *, token_hash: str, order_pk: int, email: str, at: datetime, expires_at: datetime
) -> None:
    session.add(PortalAccessToken(token_hash=token_hash, order_pk=order_pk, email=email, created_at=at,
                                  expires_at=expires_at))
    session.flush()


def spend_access_token(session: Session, *, token_hash: str, at: datetime) -> PortalAccessToken | None:
    """The link's row, spent now, if it was unspent and unexpired; else None. One conditional
    UPDATE decides, so that a link followed twice at once opens one session."""
    spent = session.execute(
        update(PortalAccessToken)
        .where(
            PortalAccessToken.token_hash == token_hash,
            PortalAccessToken.used_at.is_(None),
            PortalAccessToken.expires_at > at,
        )
        .values(used_at=at)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.scalars(select(PortalAccessToken).where(PortalAccessToken.token_hash == token_hash)).one()


def add_session(
    session: Session, *, token_hash: str, csrf_token: str, order_pk: int, email: str, at: datetime
) -> None:
    session.add(PortalSession(token_hash=token_hash, csrf_token=csrf_token, order_pk=order_pk, email=email,
                              created_at=at, last_seen_at=at))
    session.flush()


def live_session(session: Session, *, token_hash: str, idle_since: datetime) -> PortalSession | None:
    """The session with this token if it was neither ended nor idle since ``idle_since``."""
    return session.scalars(
        select(PortalSession).where(
            PortalSession.token_hash == token_hash,
            PortalSession.ended_at.is_(None),
            PortalSession.last_seen_at > idle_since,
        )
    ).first()


def touch_session(session: Session, *, session_id: int, at: datetime) -> None:
    session.execute(
        update(PortalSession).where(PortalSession.id == session_id).values(last_seen_at=at)
        .execution_options(synchronize_session=False)
    )


def end_session(session: Session, *, token_hash: str, at: datetime) -> bool:
    ended = session.execute(
        update(PortalSession)
        .where(PortalSession.token_hash == token_hash, PortalSession.ended_at.is_(None))
        .values(ended_at=at)
        .execution_options(synchronize_session=False)
    )
    return ended.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def lock_subject(session: Session, subject: str) -> None:
    """Until the transaction ends, the rate events of ``subject`` (a SHA-256 hex) are this
    transaction's to count and add (PostgreSQL: an advisory lock on its first 60 bits; SQLite's
    writer transactions already hold the database's write lock)."""
    lock_digest(session, subject)


def count_events(session: Session, *, kind: str, subject: str, since: datetime) -> int:
    return int(session.scalar(
        select(func.count()).select_from(PortalRateEvent).where(
            PortalRateEvent.kind == kind, PortalRateEvent.subject == subject, PortalRateEvent.at > since
        )
    ) or 0)


def add_event(session: Session, *, kind: str, subject: str, at: datetime) -> None:
    session.add(PortalRateEvent(kind=kind, subject=subject, at=at))
    session.flush()


def prune(session: Session, *, events_before: datetime, tokens_before: datetime, sessions_before: datetime) -> None:
    """Drop rate events, expired links and ended or idle sessions older than the given times."""
    session.execute(delete(PortalRateEvent).where(PortalRateEvent.at < events_before))
    session.execute(delete(PortalAccessToken).where(PortalAccessToken.expires_at < tokens_before))
    session.execute(delete(PortalSession).where(PortalSession.last_seen_at < sessions_before))
