"""Sessions documented as read-only never write (issue 7, "Typed storage"): the database
refuses it, on SQLite (``PRAGMA query_only``) and PostgreSQL (a READ ONLY transaction),
and a pooled connection that served a reader serves a writer next."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError

from soap_service.storage import audit
from soap_service.storage.db import create_database_engine, create_reader_factory, create_session_factory
from soap_service.storage.models import AuditEvent, Partner


@pytest.fixture
def engine(installation) -> Iterator[Engine]:
    """An engine of its own on the installation's database: its first connection is the only
    one it opens while the test uses one session at a time."""
    engine = create_database_engine(installation.settings.database_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _event(session, detail: str) -> None:
    audit.append_event(session, at=datetime.now(UTC), channel="cli", action="test", outcome="success", code=0,
                       detail=detail)


def _written(engine: Engine, detail: str) -> bool:
    with create_reader_factory(engine)() as session:
        return session.scalar(select(AuditEvent.id).where(AuditEvent.detail == detail)) is not None


def test_a_reader_cannot_insert_or_update(ra):
    detail = "written by a reader " + secrets.token_hex(4)
    with pytest.raises(DBAPIError), ra.readers() as session, session.begin():
        _event(session, detail)
        session.flush()
    with pytest.raises(DBAPIError), ra.readers() as session, session.begin():
        session.execute(update(Partner).where(Partner.id == -1).values(name="x"))
    assert not _written(ra.engine, detail)


def test_a_connection_serves_readers_and_writers_in_turn(engine):
    readers, writers = create_reader_factory(engine), create_session_factory(engine)
    seen = set()
    for turn in range(2):
        with readers() as session, session.begin():
            seen.add(id(session.connection().connection.dbapi_connection))
            session.scalar(select(AuditEvent.id).limit(1))
        with pytest.raises(DBAPIError), readers() as session, session.begin():
            seen.add(id(session.connection().connection.dbapi_connection))
            _event(session, f"reader turn {turn}")
            session.flush()
        detail = f"writer turn {turn} " + secrets.token_hex(4)
        with writers() as session, session.begin():
            seen.add(id(session.connection().connection.dbapi_connection))
            _event(session, detail)
        assert _written(engine, detail)
    assert len(seen) == 1  # one connection did all of it


def test_sqlite_sets_query_only_only_when_the_connection_changes_sides(engine):
    """The flag is sent when a connection goes from reader to writer or back, not before every
    transaction: two writers in a row cost one PRAGMA (docs/design.md, "The path of one Reissue")."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sets the read-only flag through the driver, not with a statement")
    from sqlalchemy import event

    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: sent.append(statement))
    readers, writers = create_reader_factory(engine), create_session_factory(engine)
    for turn in range(3):
        with writers() as session, session.begin():
            _event(session, f"writer in a row {turn}")
    with readers() as session, session.begin():
        session.scalar(select(AuditEvent.id).limit(1))
    with writers() as session, session.begin():
        _event(session, "writer after a reader")
    pragmas = [s for s in sent if s.startswith("PRAGMA query_only")]
    assert pragmas == ["PRAGMA query_only=OFF", "PRAGMA query_only=ON", "PRAGMA query_only=OFF"]
    assert _written(engine, "writer after a reader")
