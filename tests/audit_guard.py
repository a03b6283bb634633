"""A watch, for the whole test run, on the rule of docs/design.md, "Concurrency and failures":
the audit event is the last write of its transaction (on PostgreSQL the audit chain's lock is
the last lock a writer takes). Any write after an audit event in the same transaction is refused
on the spot and recorded; conftest.py fails the run if any was recorded. Two watches: the ORM's
(a flushed row of another table, an ORM UPDATE or DELETE statement), and, below it, every SQL
statement a connection sends, whoever sends it (Core inserts and updates, bulk statements, raw
SQL through ``exec_driver_sql``): after an INSERT INTO audit_events, until the commit or the
rollback, only reads, more audit events and the chain's own lock may follow -- no other write
and no other lock (an advisory lock, ``FOR UPDATE``/``FOR SHARE``). This process only: a real
server the tests start in a process of its own is not watched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from soap_service.storage.audit_chain import CHAIN_LOCK
from soap_service.storage.models import AuditEvent

APPENDED = "test_audit_appended"


class WriteAfterAudit(AssertionError):
    pass


AUDIT_INSERT = re.compile(r"\s*INSERT\s+INTO\s+\"?audit_events\"?[\s(]", re.IGNORECASE)
WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|MERGE|REPLACE|UPSERT|TRUNCATE|CREATE|ALTER|DROP)\b", re.IGNORECASE)
LOCK = re.compile(r"pg_advisory|pg_try_advisory|\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE)\b|\bLOCK\s+TABLE\b",
                  re.IGNORECASE)


def statement_after_audit(statement: str, parameters: Any) -> str | None:
    """What ``statement`` does that may not follow a transaction's audit event, or None."""
    if AUDIT_INSERT.match(statement):
        return None
    if WRITE.match(statement):
        return "a statement that writes (" + statement.split(None, 3)[0].upper() + ")"
    if LOCK.search(statement):
        values = tuple(parameters.values()) if isinstance(parameters, dict) else tuple(parameters or ())
        if "advisory" in statement and values == CHAIN_LOCK:
            return None  # a second event of the transaction takes the chain's lock again
        return "a statement that takes a lock"
    return None


@contextmanager
def watching() -> Iterator[list[str]]:
    violations: list[str] = []

    def refuse(session: Session, what: str) -> None:
        message = f'{what} after the audit event of its transaction (docs/design.md, "Concurrency and failures")'
        violations.append(message)
        session.info.pop(APPENDED, None)  # once per transaction
        raise WriteAfterAudit(message)

    def before_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
        if not session.info.get(APPENDED):
            return
        others = [o for o in (*session.new, *session.deleted) if not isinstance(o, AuditEvent)]
        others += [o for o in session.dirty if not isinstance(o, AuditEvent) and session.is_modified(o)]
        if others:
            refuse(session, "a write of " + ", ".join(sorted({type(o).__name__ for o in others})))

    def after_flush(session: Session, _flush: UOWTransaction) -> None:
        if any(isinstance(o, AuditEvent) for o in session.new):
            session.info[APPENDED] = True

    def on_execute(state: ORMExecuteState) -> None:
        if state.session.info.get(APPENDED) and (state.is_update or state.is_delete or state.is_insert):
            refuse(state.session, "an ORM statement that writes")

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(APPENDED, None)

    def before_cursor_execute(connection: Connection, _cursor: Any, statement: str, parameters: Any,
                              _context: Any, _executemany: bool) -> None:
        if AUDIT_INSERT.match(statement):
            connection.info[APPENDED] = True
        elif connection.info.get(APPENDED):
            what = statement_after_audit(statement, parameters)
            if what is not None:
                connection.info.pop(APPENDED, None)
                message = (f"{what} after the audit event of its transaction "
                           f'(docs/design.md, "Concurrency and failures"): {statement[:120]}')
                violations.append(message)
                raise WriteAfterAudit(message)

    def transaction_end(connection: Connection) -> None:
        connection.info.pop(APPENDED, None)

    listeners = [("before_flush", before_flush), ("after_flush", after_flush), ("do_orm_execute", on_execute),
                 ("after_transaction_end", after_transaction_end)]
    engine_listeners = [("before_cursor_execute", before_cursor_execute), ("commit", transaction_end),
                        ("rollback", transaction_end)]
    for name, listener in listeners:
        event.listen(Session, name, listener)
    for name, listener in engine_listeners:
        event.listen(Engine, name, listener)
    try:
        yield violations
    finally:
        for name, listener in listeners:
            event.remove(Session, name, listener)
        for name, listener in engine_listeners:
            event.remove(Engine, name, listener)
