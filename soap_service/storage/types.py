"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def storable(value: str) -> str:
    """``value`` with what no database column takes (NUL, lone surrogates) replaced."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def clip(value: str | None, length: int) -> str | None:
    """``value`` made storable and cut to fit a column of ``length`` characters."""
    return None if value is None else storable(value)[:length]


def enum_column(values: type[StrEnum], name: str, length: int) -> Enum:
    """A column holding one member of ``values``, spelled as the member (its name and its value
    are the same, ``soap_service.vocabulary``), on every backend: a VARCHAR of ``length`` with a
    CHECK constraint ``ck_<table>_<name>`` (not a PostgreSQL ENUM type, so adding a member
    later is a constraint change, not an ``ALTER TYPE``). A string that is not a member is
    refused before it reaches the database, and by the database itself."""
    if any(member.name != member.value for member in values):
        raise ValueError(f"{values.__name__}: each member must be spelled as its value")
    return Enum(
        values,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )
