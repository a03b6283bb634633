"""One certificate's status by (CA, serial), read on a few connections of its own, for the
OCSP responder's hot path (docs/design.md, "OCSP").

The responder reads the status on every request so that a revocation by any process on any host
shows at once. Through a reader session that read cost 0.27 ms on SQLite and 0.71 ms on
PostgreSQL (session, pool checkout, BEGIN, query_only, COMMIT); on a DB-API connection kept open it
costs 6 µs and 0.12 ms (measured in process on a 2-core machine), so the statement alone
runs: on SQLite an implicit transaction of one SELECT, on PostgreSQL one autocommit statement.

The connections cannot write: on SQLite ``PRAGMA query_only`` is on for their whole life, on
PostgreSQL the session's transactions are READ ONLY (only this module's one SELECT ever runs on
them). They are made from the engine's own URL and driver, outside its pool (the pool's connections
stay for the use cases), as reads need them, at most :data:`MAX_CONNECTIONS` per process, each read
taking one for its statement and giving it back; a connection that fails is dropped and the read
tried once more on a new one.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from soap_service.storage.db import SQLITE_BUSY_TIMEOUT_MS
from soap_service.storage.models import Certificate
from soap_service.vocabulary import CertificateStatus

MAX_CONNECTIONS = 16
"""Connections per process at most; a read takes one for its statement alone and gives it back, so
any number of threads share them (a read takes microseconds to a fraction of a millisecond)."""
CHECKOUT_TIMEOUT = 10.0
"""Seconds a read waits for a connection when all are in use; then :class:`StatusReaderBusy`
(the responder answers ``internalError``)."""

_COLUMNS = Certificate.__table__.c
_SQLITE_QUERY = "SELECT status, revoked_at, revocation_reason FROM certificates WHERE ca_id = ? AND serial = ?"
_FORMAT_QUERY = "SELECT status, revoked_at, revocation_reason FROM certificates WHERE ca_id = %s AND serial = %s"


@dataclass(frozen=True)
class StatusRow:
    """What OCSP tells of a certificate: its status, and when and why it was revoked."""

    status: CertificateStatus
    revoked_at: datetime | None
    revocation_reason: str | None


class StatusReaderBusy(Exception):
    """Every connection stayed in use for :data:`CHECKOUT_TIMEOUT`: the read is not made."""


class StatusReader:
    """``read(ca_id, serial)``: the certificate's status row, or None if the CA never issued it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._sql = _SQLITE_QUERY if engine.dialect.paramstyle == "qmark" else _FORMAT_QUERY
        self._revoked_at = _COLUMNS.revoked_at.type.dialect_impl(engine.dialect).result_processor(
            engine.dialect, None
        )
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._open: list[Any] = []  # every connection made and not dropped, idle or in use

    def read(self, *, ca_id: int, serial: str) -> StatusRow | None:
        row = self._read_once(ca_id, serial, retry=True)
        if row is None:
            return None
        revoked_at = self._revoked_at(row[1]) if self._revoked_at is not None else row[1]
        return StatusRow(status=CertificateStatus(row[0]), revoked_at=revoked_at, revocation_reason=row[2])

    def close(self) -> None:
        """Close every connection this reader made (the process is ending)."""
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            self._close(connection)

    def _read_once(self, ca_id: int, serial: str, *, retry: bool) -> Any:
        connection = self._checkout()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, (ca_id, serial))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except self._dialect.loaded_dbapi.Error:
            self._drop(connection)  # broken (a server restart, a network failure): made anew
            if not retry:
                raise
            return self._read_once(ca_id, serial, retry=False)
        except BaseException:
            self._drop(connection)
            raise
        self._idle.put(connection)
        return row

    def _checkout(self) -> Any:
        """An idle connection, or a new one while fewer than MAX_CONNECTIONS exist, or the first one
        given back within CHECKOUT_TIMEOUT."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            may_make = len(self._open) < MAX_CONNECTIONS
            if may_make:
                self._open.append(None)  # the place of the one being made
        if may_make:
            try:
                connection = self._connect()
            except BaseException:
                with self._lock:
                    self._open.remove(None)
                raise
            with self._lock:
                self._open[self._open.index(None)] = connection
            return connection
        try:
            return self._idle.get(timeout=CHECKOUT_TIMEOUT)
        except queue.Empty:
            raise StatusReaderBusy(f"no status connection free within {CHECKOUT_TIMEOUT} s") from None

    def _connect(self) -> Any:
        arguments, options = self._dialect.create_connect_args(self._engine.url)
        if self._sqlite:
            options = {**options, "check_same_thread": False, "isolation_level": None}
            connection = self._dialect.loaded_dbapi.connect(*arguments, **options)
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA query_only=ON")
            return connection
        connection = self._dialect.loaded_dbapi.connect(*arguments, **options)
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        return connection

    def _drop(self, connection: Any) -> None:
        with self._lock:
            if connection in self._open:
                self._open.remove(connection)
        self._close(connection)

    def _close(self, connection: Any) -> None:
        try:
            connection.close()
        except self._dialect.loaded_dbapi.Error:
            pass
