"""What storage refuses, as types of its own (docs/design.md, "Error model").

A write that a uniqueness rule of the database refuses is reported as one of these,
told apart by looking the conflicting row up, never by reading the driver's message.
The refused write is undone up to a savepoint, so the caller's transaction goes on: it
may draw another value and write again, or give up. Nothing above storage catches a
driver's ``IntegrityError``; one that is none of these (a broken reference, say) is a
bug and travels up as it is, to become an incident.
"""

from __future__ import annotations


class StorageConflict(Exception):
    """A row that would repeat another one where the schema allows one only."""


class SerialCollision(StorageConflict):
    """The serial number is already recorded for this CA: draw another."""

    def __init__(self) -> None:
        super().__init__("the serial number is already recorded for this CA")


class DuplicateOrder(StorageConflict):
    """The partner already has an order with this PartnerOrderID."""

    def __init__(self) -> None:
        super().__init__("the partner already has an order with this PartnerOrderID")


class OrderIdTaken(StorageConflict):
    """The order ID drawn for a new order is another order's: draw another."""

    def __init__(self) -> None:
        super().__init__("the order ID is another order's")
