"""The order changes a partner polls for (GetModifiedOrders): written with each change, read
in windows of time that no later commit can reach into (docs/design.md, "Revocation": the change feed).

A change is stamped with the clock *inside* its transaction, and a reader first waits for every
transaction that stamped a change and has not committed yet (:func:`settle`), then takes its
horizon: no change with an earlier stamp can commit after that. On SQLite the writer's
``BEGIN IMMEDIATE`` already holds the database's write lock from before the stamp to the commit,
and :func:`settle` runs in a writer transaction too: it starts once the writer in flight is done.
On PostgreSQL, where writers of different orders commit concurrently, a writer takes
:data:`FEED_LOCK` shared before it stamps (held to its commit, writers never wait for each other)
and :func:`settle` takes it exclusive: it waits for those in flight, and those after it stamp later.

On PostgreSQL the feed's lock is the *last* lock a writer takes: a writer adds its changes after
every row it writes is written (and so locked), and writes none after. Otherwise a writer holding
it shared could wait for a row held by a second writer that waits for the lock behind a queued
:func:`settle`: a cycle PostgreSQL breaks only after ``deadlock_timeout`` (1 s), every writer
waiting meanwhile (tests/test_order_changes.py builds it).

The one lock taken after it is the audit chain's (``storage.audit_chain``, exclusive): a writer
appends its audit event after its changes, as its last write, and writes nothing after it.
A writer holding the chain's lock and waiting for the feed's behind a queued :func:`settle`,
while the settle waits for a writer that waits for the chain's lock, would be a cycle too
(docs/design.md, "Concurrency and failures").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from soap_service.storage.db import advisory_lock
from soap_service.storage.models import Order, OrderChange

FEED_LOCK = (0x6F63_6667, 1)
"""The advisory lock of the feed, in PostgreSQL's two-integer key space (which never meets the
one-bigint key space of the key and account locks)."""


def _lock_feed(session: Session, *, shared: bool) -> None:
    # SQLite: the transaction already holds the database's write lock; PostgreSQL: the rows written
    # so far are locked before the feed's lock, never after.
    advisory_lock(session, FEED_LOCK, shared=shared)


def add_change(
    session: Session,
    *,
    order: Order,
    clock: Callable[[], datetime],
    change: str,
    certificate_serial: str | None = None,
    detail: str | None = None,
) -> datetime:
    """One change of ``order`` (issued, reissued, revoked, cancelled), for the order's partner,
    stamped now (after the feed's lock, so that :func:`settle` waits for it); returns the stamp."""
    _lock_feed(session, shared=True)
    at = clock()
    session.add(
        OrderChange(
            partner_id=order.partner_id,
            order_pk=order.id,
            at=at,
            change=change,
            certificate_serial=certificate_serial,
            detail=detail,
        )
    )
    session.flush()
    return at


def settle(session: Session, clock: Callable[[], datetime]) -> datetime:
    """In a writer transaction: wait until every change stamped so far is committed, and return the
    horizon: a change stamped from now on is stamped later (on one clock; hosts keep theirs in sync)."""
    session.connection()  # SQLite: BEGIN IMMEDIATE, which waits for the writer in flight
    _lock_feed(session, shared=False)
    return clock()


def change_position(session: Session, *, partner_id: int, change_id: int) -> datetime | None:
    """The stamp of the partner's change ``change_id``; None if it is no change of this partner's."""
    return session.scalar(
        select(OrderChange.at).where(OrderChange.id == change_id, OrderChange.partner_id == partner_id)
    )


def changes_between(
    session: Session,
    *,
    partner_id: int,
    from_at: datetime,
    to_at: datetime,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> list[tuple[OrderChange, str, str]]:
    """At most ``limit`` changes of the partner's orders with ``from_at <= at < to_at``, ordered
    by (at, id), and past ``after`` (an (at, id) position) when given; each with its order's order
    ID and PartnerOrderID (ix_order_changes_partner_at)."""
    query = (
        select(OrderChange, Order.order_id, Order.partner_order_id)
        .join(Order, Order.id == OrderChange.order_pk)
        .where(OrderChange.partner_id == partner_id, OrderChange.at >= from_at, OrderChange.at < to_at)
        .order_by(OrderChange.at, OrderChange.id)
        .limit(limit)
    )
    if after is not None:
        after_at, after_id = after
        query = query.where(or_(OrderChange.at > after_at, and_(OrderChange.at == after_at, OrderChange.id > after_id)))
    return [(row[0], row[1], row[2]) for row in session.execute(query)]
