"""Engine and sessions.

SQLite runs in WAL mode with foreign keys on, and every transaction that may write
starts with ``BEGIN IMMEDIATE``: SQLite ignores ``SELECT ... FOR UPDATE``, so writers
are serialized by taking the write lock up front instead of failing on upgrade.
PostgreSQL uses row locks (see the order queries) and the order's version
compare-and-set.

Sessions that only read (:func:`create_reader_factory`) cannot write: the database
refuses it (docs/design.md, "Concurrency and failures"). On SQLite their transaction is
a deferred ``BEGIN`` under ``PRAGMA query_only``, on PostgreSQL a ``READ ONLY``
transaction; a write in one fails at its statement, before any lock is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SessionFactory = sessionmaker[Session]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_database_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def create_database_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``. Its errors never carry the statement's parameters (a CSR,
    a password hash): they reach logs through tracebacks."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_database_path(url)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            hide_parameters=True,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        # query_only is the connection's, not the transaction's: a pooled connection that served a
        # reader serves a writer next. The flag it holds is noted in the DBAPI connection's info
        # (dropped with the connection when the pool invalidates it), and set only when it changes:
        # a writer after a writer, the usual case on the hot path, sends one statement fewer.
        read_only = bool(connection.get_execution_options().get(READ_ONLY))
        info = connection.connection.info
        if info.get(QUERY_ONLY) is not read_only:
            info.pop(QUERY_ONLY, None)  # unknown until the PRAGMA has gone through
            connection.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            info[QUERY_ONLY] = read_only
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


QUERY_ONLY = "soap_service_query_only"
"""Key of the DBAPI connection's info: the ``PRAGMA query_only`` it last set (SQLite)."""


READ_ONLY = "soap_service_read_only"


def create_session_factory(engine: Engine) -> SessionFactory:
    """Sessions for use cases that write: on SQLite they take the write lock at BEGIN."""
    return sessionmaker(engine, expire_on_commit=False)


def create_reader_factory(engine: Engine) -> SessionFactory:
    """Sessions that only read, and cannot write: on SQLite a plain (deferred) BEGIN with
    ``PRAGMA query_only`` on, so readers never wait for the write lock nor hold it; on
    PostgreSQL a READ ONLY transaction (the connection's read-only flag, put back when it
    returns to the pool). Same pool as the writers."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return sessionmaker(engine.execution_options(**options), expire_on_commit=False)


def advisory_lock(session: Session, key: tuple[int, int], *, shared: bool = False) -> None:
    """On PostgreSQL, a transaction-scoped advisory lock in the two-integer key space (the change
    feed's, the audit chain's), taken after a flush: the rows the transaction wrote so far are
    locked before it, never after. SQLite needs none (the writer holds the write lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.flush()
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    session.execute(select(lock(*key)))


def delete_oldest(session: Session, key: Any, at: Any, *, before: datetime, limit: int) -> None:
    """Delete up to ``limit`` rows whose ``at`` column is before ``before``, oldest first, by their
    ``key`` column: a bounded prune of expired rows. On PostgreSQL, rows another transaction is
    pruning are skipped, not waited for (SQLite renders no locking clause, its writers take turns)."""
    oldest = select(key).where(at < before).order_by(at).limit(limit).with_for_update(skip_locked=True)
    session.execute(delete(key.class_).where(key.in_(oldest)))


def lock_digest(session: Session, sha256_hex: str, *, shared: bool = False) -> None:
    """A transaction-scoped advisory lock named by the first 60 bits of a SHA-256 (hex), on
    PostgreSQL; taken again in the same transaction, it is already held. SQLite needs none: its
    writer transactions hold the database's write lock from BEGIN IMMEDIATE."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int(sha256_hex[:15], 16)
    session.execute(select(func.pg_advisory_xact_lock_shared(key) if shared else func.pg_advisory_xact_lock(key)))


INSTALLATION_LOCK = (0x6F63_6667, 3)
"""The advisory lock that ``soap-service init`` holds on PostgreSQL, next to the change feed's (1)
and the audit chain's (2)."""


@contextmanager
def installation_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, a session-level advisory lock held by a connection of its own while the block
    runs: hosts that start at once on one database (each container runs ``init``) take turns, and
    the later ones find the schema migrated and the hierarchy made. SQLite: nothing (one host)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(*INSTALLATION_LOCK)))
        connection.commit()
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(*INSTALLATION_LOCK)))
            connection.commit()
