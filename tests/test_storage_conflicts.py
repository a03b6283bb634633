"""Storage reports a repeated row as a type of its own (issue 7, "Typed storage"):
a serial the CA already has, a PartnerOrderID the partner already used, an order ID
another order has. The refused write is undone and the caller's transaction goes on;
above storage nothing catches a driver's IntegrityError or reads its message."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import InvalidField
from soap_service.ra import issuance
from soap_service.ra import orders as order_use_cases
from soap_service.storage import audit, certificates, orders
from soap_service.storage.errors import DuplicateOrder, OrderIdTaken, SerialCollision, StorageConflict
from soap_service.storage.models import AuditEvent, IssuedSerial, Order, OrderContact, OrderName
from soap_service.vocabulary import ValidationLevel

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)


def _issuing_ca_id(ra) -> int:
    with ra.readers() as session:
        return ra.authorities.issuing_ca(session, "GEOTRUST", ValidationLevel.OV).id


def _copy_of(order: Order, **changes: object) -> Order:
    values = {column: getattr(order, column) for column in (
        "order_id", "partner_id", "partner_order_id", "brand_code", "product_code", "status", "term_start",
        "term_end", "version", "created_at", "updated_at")}
    values.update(changes)
    copy = Order(**values)
    copy.names = [OrderName(name="example.com", position=0)]
    copy.contacts = [OrderContact(role="admin", email="admin@example.com")]
    return copy


def _marker(session, detail: str) -> None:
    """A write after the refused one, to show that the transaction went on."""
    audit.append_event(session, at=NOW, channel="cli", action="test", outcome="success", code=0, detail=detail)


def _marked(ra, detail: str) -> bool:
    with ra.readers() as session:
        return session.scalar(select(AuditEvent.id).where(AuditEvent.detail == detail)) is not None


def test_a_repeated_serial_is_a_serial_collision_and_the_transaction_goes_on(ra):
    ca_id = _issuing_ca_id(ra)
    serial = secrets.token_hex(8)
    detail = f"after the collision {serial}"
    with ra.sessions() as session, session.begin():
        certificates.reserve_serial(session, ca_id=ca_id, serial=serial, at=NOW)
        with pytest.raises(SerialCollision):
            certificates.reserve_serial(session, ca_id=ca_id, serial=serial, at=NOW)
        _marker(session, detail)
    assert _marked(ra, detail)
    with ra.readers() as session:
        assert len(session.scalars(select(IssuedSerial).where(IssuedSerial.serial == serial)).all()) == 1


def test_a_repeated_partner_order_id_is_a_duplicate_order(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    detail = f"after the duplicate {created.order.order_id}"
    with ra.sessions() as session, session.begin():
        existing = orders.find_order(session, partner_id=_partner_id(session, partner.code),
                                     partner_order_id=created.order.partner_order_id)
        assert existing is not None
        with pytest.raises(DuplicateOrder):
            orders.add_order(session, _copy_of(existing, order_id="2" + existing.order_id[1:]))
        _marker(session, detail)
    assert _marked(ra, detail)


def test_a_repeated_order_id_is_order_id_taken(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    with ra.sessions() as session, session.begin():
        existing = orders.find_order(session, partner_id=_partner_id(session, partner.code),
                                     partner_order_id=created.order.partner_order_id)
        assert existing is not None
        with pytest.raises(OrderIdTaken):
            orders.add_order(session, _copy_of(existing, partner_order_id="other-" + existing.partner_order_id))


def test_an_integrity_error_that_is_no_conflict_is_not_disguised_as_one(ra):
    """A broken reference is a bug: it reaches the caller as the driver's error."""
    with ra.sessions() as session, session.begin():
        with pytest.raises(IntegrityError) as caught:
            certificates.reserve_serial(session, ca_id=987654321, serial="abc", at=NOW)
        assert not isinstance(caught.value, StorageConflict)


def test_a_new_order_draws_another_order_id_when_its_first_is_taken(ra, monkeypatch):
    partner = new_partner(ra)
    taken = new_order(ra, partner).order.order_id
    free = str(secrets.randbelow(9 * 10**9) + 10**9)
    drawn = iter([taken, free])
    monkeypatch.setattr(order_use_cases, "_new_order_id", lambda: next(drawn))
    assert new_order(ra, partner).order.order_id == free


def test_a_new_order_entered_meanwhile_by_another_transaction_is_refused(ra, monkeypatch):
    """On PostgreSQL two transactions can both find no order before either inserts it: the
    insert's DuplicateOrder is then the refusal, not an incident."""
    partner = new_partner(ra)
    first = new_order(ra, partner)
    real_find = orders.find_order
    calls: list[dict[str, object]] = []

    def find_order(session, **kwargs):
        calls.append(kwargs)
        return None if len(calls) == 1 else real_find(session, **kwargs)  # the first look misses it

    monkeypatch.setattr(orders, "find_order", find_order)
    with pytest.raises(InvalidField) as caught:
        new_order(ra, partner, partner_order_id=first.order.partner_order_id)
    assert caught.value.field == "PartnerOrderID" and "already has an order" in caught.value.message
    assert len(calls) == 2


def test_a_new_order_draws_another_serial_on_a_collision(ra, monkeypatch):
    partner = new_partner(ra)
    existing = new_order(ra, partner, product="QuickSSLPremium")
    drawn = iter([int(existing.certificate.serial, 16), 2**100 + int(NOW.timestamp())])
    monkeypatch.setattr(issuance, "new_serial", lambda: next(drawn))
    created = new_order(ra, partner, product="QuickSSLPremium", csr=fresh_key_csr(("example.com",)),
                        names=("example.com",))
    assert int(created.certificate.serial, 16) == 2**100 + int(NOW.timestamp())


def test_nothing_above_storage_reads_a_driver_error():
    """IntegrityError and a driver exception's ``.orig`` belong to storage alone."""
    offenders = []
    for path in sorted((ROOT / "soap_service").rglob("*.py")):
        if path.parent.name == "storage":
            continue
        text = path.read_text(encoding="utf-8")
        if "IntegrityError" in text or re.search(r"\.orig\b", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _partner_id(session, code: str) -> int:
    from soap_service.storage.partners import get_partner

    partner = get_partner(session, code)
    assert partner is not None
    return partner.id
