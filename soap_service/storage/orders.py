"""Orders, their validated names and contacts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from soap_service.storage.errors import DuplicateOrder, OrderIdTaken
from soap_service.storage.models import Order
from soap_service.vocabulary import OrderStatus


def find_order(
    session: Session, *, partner_id: int, partner_order_id: str, for_update: bool = False, details: bool = True
) -> Order | None:
    """The order of this partner with this PartnerOrderID; locks its row when asked. Its names are
    loaded with it, and its contacts and product too unless ``details`` is false (a reissue's
    decision needs neither: they load when read).

    ``FOR NO KEY UPDATE`` is what serializes reissues and revocations on PostgreSQL; SQLite
    ignores it and relies on ``BEGIN IMMEDIATE`` (see ``db``). Both also pass the version
    check of :func:`set_current_certificate`. Not ``FOR UPDATE``: that would also block the
    ``FOR KEY SHARE`` lock a foreign key check takes, so a keyCompromise revocation writing
    an order change of another order would wait for that order's reissue while the reissue
    waits for the key (docs/design.md, "Revocation").
    """
    query = select(Order).where(Order.partner_id == partner_id, Order.partner_order_id == partner_order_id)
    query = query.options(selectinload(Order.names))
    if details:
        query = query.options(selectinload(Order.contacts), selectinload(Order.product))
    if for_update:
        query = query.with_for_update(of=Order, key_share=True)
    return session.scalar(query)


def get_order(session: Session, order_pk: int) -> Order | None:
    return session.get(Order, order_pk)


def lock_order(session: Session, order_pk: int) -> Order | None:
    """The order with this primary key, its row locked as :func:`find_order` locks it."""
    query = (
        select(Order)
        .where(Order.id == order_pk)
        .options(selectinload(Order.names), selectinload(Order.contacts), selectinload(Order.product))
        .with_for_update(of=Order, key_share=True)
    )
    return session.scalar(query)


def record_change(session: Session, order_pks: list[int], *, at: datetime, status: OrderStatus | None = None) -> None:
    """Bump the version (and set ``status`` when given) of each order: a revocation or a
    cancellation moves the orders it touches as a reissue does. On PostgreSQL the UPDATE
    waits for, and then holds, each order's row lock."""
    values: dict[str, object] = {"version": Order.version + 1, "updated_at": at}
    if status is not None:
        values["status"] = status
    for order_pk in sorted(set(order_pks)):
        session.execute(
            update(Order).where(Order.id == order_pk).values(**values).execution_options(synchronize_session=False)
        )
    for order in [o for o in session.identity_map.values() if isinstance(o, Order) and o.id in order_pks]:
        session.expire(order, ["version", "updated_at", "status"])


def add_order(session: Session, order: Order) -> Order:
    """Insert ``order`` with its names and contacts.

    :class:`DuplicateOrder` when its partner already has an order with its PartnerOrderID
    (on PostgreSQL, another transaction may have inserted it since the caller looked),
    :class:`OrderIdTaken` when its order ID is another order's; either way nothing of it
    is written, ``order`` is left out of the session, and the caller's transaction goes on.
    """
    partner_id, partner_order_id, order_id = order.partner_id, order.partner_order_id, order.order_id
    try:
        with session.begin_nested():
            session.add(order)
    except IntegrityError:
        if find_order(session, partner_id=partner_id, partner_order_id=partner_order_id) is not None:
            raise DuplicateOrder() from None
        if session.scalar(select(Order.id).where(Order.order_id == order_id)) is not None:
            raise OrderIdTaken() from None
        raise
    return order


def set_current_certificate(
    session: Session, *, order: Order, certificate_id: int, expected_version: int, at: datetime
) -> bool:
    """Compare-and-set of the current certificate; False when another change won."""
    result = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.version == expected_version)
        .values(current_certificate_id=certificate_id, version=expected_version + 1, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.expire(order, ["current_certificate_id", "version", "updated_at"])
    return True
