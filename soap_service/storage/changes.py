"""The order changes a partner polls for (GetModifiedOrders): written with each change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from soap_service.storage.models import Order, OrderChange


def add_change(
    session: Session,
    *,
    order: Order,
    at: datetime,
    change: str,
    certificate_serial: str | None = None,
    detail: str | None = None,
) -> None:
    """One change of ``order`` (issued, reissued, revoked, cancelled), for the order's partner."""
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


def changes_between(
    session: Session, *, partner_id: int, from_at: datetime, to_at: datetime, limit: int
) -> list[tuple[OrderChange, str, str]]:
    """At most ``limit`` changes of the partner's orders with ``from_at <= at < to_at``, ordered
    by (at, id), each with its order's order ID and PartnerOrderID (ix_order_changes_partner_at)."""
    query = (
        select(OrderChange, Order.order_id, Order.partner_order_id)
        .join(Order, Order.id == OrderChange.order_pk)
        .where(OrderChange.partner_id == partner_id, OrderChange.at >= from_at, OrderChange.at < to_at)
        .order_by(OrderChange.at, OrderChange.id)
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]
