"""A watch, for the whole test run, on the rule of docs/design.md, "Concurrency and failures":
the audit event is the last write of its transaction (on PostgreSQL the audit chain's lock is
the last lock a writer takes). Any ORM write after an audit event in the same transaction -- a
flushed row of another table, an UPDATE or DELETE statement -- is refused on the spot and
recorded; conftest.py fails the run if any was recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from soap_service.storage.models import AuditEvent

APPENDED = "test_audit_appended"


class WriteAfterAudit(AssertionError):
    pass


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

    listeners = [("before_flush", before_flush), ("after_flush", after_flush), ("do_orm_execute", on_execute),
                 ("after_transaction_end", after_transaction_end)]
    for name, listener in listeners:
        event.listen(Session, name, listener)
    try:
        yield violations
    finally:
        for name, listener in listeners:
            event.remove(Session, name, listener)
