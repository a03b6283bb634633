"""What the audit chain costs (issue 10; docs/design.md, "Audit chain"): one audit event
appended with its link (the chain's lock on PostgreSQL, the head read, the SHA-256, the
INSERT) against the same row inserted without one (as before migration 0007), each in a
transaction of its own, and ``audit verify``'s walk of the chain.

    .venv/bin/python bench/audit_append.py [--events 1000] [--postgres-url URL]

Makes a throw-away SQLite database in a temporary directory and, with ``--postgres-url``
(a server URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres), a throw-away
PostgreSQL database on that server, dropped afterwards. The two ways alternate in rounds of
ten so that a change of the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from soap_service.storage import audit, audit_chain
from soap_service.storage.db import SessionFactory, create_database_engine, create_session_factory
from soap_service.storage.models import AuditEvent
from soap_service.storage.schema import alembic_config

ROUND = 10


def chained(sessions: SessionFactory, number: int) -> None:
    with sessions() as session, session.begin():
        audit.append_event(session, at=datetime.now(UTC), channel="api", action="reissue", outcome="success", code=0,
                           partner_code="BENCH", username="api", order_id=f"{number:010d}",
                           partner_order_id=f"A-{number}", certificate_serial=f"{number:040x}",
                           detail="names=example.com,www.example.com")


def unchained(sessions: SessionFactory, number: int) -> None:
    """The same row, as ``append_event`` wrote it before the chain (its link fields a constant,
    its seq drawn from a separate range so that the unique constraint holds)."""
    with sessions() as session, session.begin():
        session.add(AuditEvent(at=datetime.now(UTC), channel="api", action="reissue", outcome="success", code=0,
                               partner_code="BENCH", username="api", order_id=f"{number:010d}",
                               partner_order_id=f"A-{number}", certificate_serial=f"{number:040x}",
                               detail="names=example.com,www.example.com",
                               chain_seq=-number, chain_prev=audit_chain.GENESIS, chain_hash=audit_chain.GENESIS))


def measure(engine: Engine, events: int) -> dict[str, float]:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    sessions = create_session_factory(engine)
    timings: dict[str, list[float]] = {"chained": [], "unchained": []}
    ways: dict[str, Callable[[SessionFactory, int], None]] = {"chained": chained, "unchained": unchained}
    for start in range(1, events + 1, ROUND):
        for name, way in ways.items():
            for number in range(start, min(start + ROUND, events + 1)):
                began = time.perf_counter()
                way(sessions, number)
                timings[name].append(time.perf_counter() - began)
    began = time.perf_counter()
    with sessions() as session:
        verdict = audit_chain.walk(session)
    walked = time.perf_counter() - began
    assert verdict.broken is None and verdict.checked == events, verdict
    return {
        "chained_median_ms": statistics.median(timings["chained"]) * 1000,
        "unchained_median_ms": statistics.median(timings["unchained"]) * 1000,
        "chained_total_s": sum(timings["chained"]),
        "unchained_total_s": sum(timings["unchained"]),
        "verify_s": walked,
    }


@contextmanager
def sqlite_engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def postgres_engine(server_url: str) -> Iterator[Engine]:
    server = make_url(server_url)
    name = f"soap_service_bench_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_database_engine(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    backends: list[tuple[str, Callable[[], AbstractContextManager[Engine]]]] = [("sqlite", sqlite_engine)]
    if args.postgres_url:
        backends.append(("postgresql", lambda: postgres_engine(args.postgres_url)))
    for backend, engine_of in backends:
        with engine_of() as engine:
            figures = measure(engine, args.events)
        print(f"{backend}: {args.events} appends, one transaction each: with the chain median "
              f"{figures['chained_median_ms']:.3f} ms (total {figures['chained_total_s']:.2f} s), without "
              f"{figures['unchained_median_ms']:.3f} ms (total {figures['unchained_total_s']:.2f} s); "
              f"audit verify of {args.events} events {figures['verify_s']:.3f} s")


if __name__ == "__main__":
    main()
