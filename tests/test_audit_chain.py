"""The audit trail as a hash chain (issue 10; docs/design.md, "Audit chain"), on SQLite and
PostgreSQL: rows changed, deleted, inserted, reordered or cut off in the database are found by
``audit verify`` at the right event; concurrent writers keep one chain without gaps or forks.

The tampering tests run on a fresh database of their own (they drop the append-only triggers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from audit_guard import WriteAfterAudit
from conftest import database_environment
from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import ServiceError
from soap_service.main import run
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.views import IssuanceOutcome
from soap_service.storage import audit, audit_chain, changes
from soap_service.storage.db import SessionFactory, create_database_engine, create_session_factory
from soap_service.storage.models import AuditEvent, Brand
from soap_service.storage.schema import alembic_config

EVENTS = 10
START = datetime(2026, 12, 3, 4, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Trail:
    backend: str
    environ: dict[str, str]
    engine: Engine
    sessions: SessionFactory

    def append(self, count: int, *, first: int = 1) -> None:
        for number in range(first, first + count):
            with self.sessions() as session, session.begin():
                audit.append_event(
                    session, at=START + timedelta(seconds=number, microseconds=number), channel="cli",
                    action="order.create", outcome="success", code=0, partner_code="P1", username="operator",
                    order_id=f"10000000{number:02d}", partner_order_id=f"A-{number}",
                    detail=f"event {number}: \"quoted\", ünïcode, \\ and \u2028",
                )

    def sql(self, statement: str, **values: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(statement), values)

    def verdict(self, anchor: tuple[int, str] | None = None) -> audit_chain.Verdict:
        with self.sessions() as session:
            return audit_chain.walk(session, anchor=anchor, page=3)  # small pages: links across pages too

    def event(self, seq: int) -> AuditEvent:
        with self.sessions() as session:
            found = session.scalar(select(AuditEvent).where(AuditEvent.chain_seq == seq))
            assert found is not None
            return found

    def drop_triggers(self) -> None:
        if self.backend == "postgresql":
            self.sql("DROP TRIGGER audit_events_append_only ON audit_events")
        else:
            self.sql("DROP TRIGGER audit_events_no_update")
            self.sql("DROP TRIGGER audit_events_no_delete")


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture
def trail(installation, tmp_path) -> Iterator[Trail]:
    """A fresh database on the installation's backend, migrated, with EVENTS events chained."""
    for environ in database_environment(installation.backend, tmp_path, "audit"):
        engine = create_database_engine(environ["SOAP_SERVICE_DATABASE_URL"])
        try:
            migrate(engine, "head")
            made = Trail(installation.backend, environ, engine, create_session_factory(engine))
            made.append(EVENTS)
            yield made
        finally:
            engine.dispose()


def test_a_chain_verifies_and_is_numbered_without_gaps(trail):
    verdict = trail.verdict()
    assert verdict.broken is None
    assert verdict.checked == EVENTS
    with trail.sessions() as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.chain_seq)))
    assert [r.chain_seq for r in rows] == list(range(1, EVENTS + 1))
    assert rows[0].chain_prev == audit_chain.GENESIS
    assert [r.chain_prev for r in rows[1:]] == [r.chain_hash for r in rows[:-1]]
    assert verdict.head == audit_chain.Head(EVENTS, rows[-1].chain_hash, rows[-1].at)
    # what the database gives back hashes as what was written: microseconds and text round-trip
    assert rows[4].at == START + timedelta(seconds=5, microseconds=5)


def test_the_encoding_keeps_field_boundaries():
    """Moving text from one field to the next changes the hash (JSON quoting, not concatenation)."""
    one = AuditEvent(at=START, channel="cli", action="a", outcome="success", code=0, username="ab", order_id="c",
                     detail="")
    other = AuditEvent(at=START, channel="cli", action="a", outcome="success", code=0, username="a", order_id="bc",
                       detail="")
    assert audit_chain.link_hash(one, seq=1, prev=audit_chain.GENESIS) != audit_chain.link_hash(
        other, seq=1, prev=audit_chain.GENESIS)
    assert b'"v":1' in audit_chain.link_encoding(one, seq=1, prev=audit_chain.GENESIS)


@pytest.mark.parametrize(("statement", "seq", "problem"), [
    ("UPDATE audit_events SET detail = 'rewritten' WHERE chain_seq = 5", 5, "hash mismatch"),
    ("UPDATE audit_events SET username = 'someone else' WHERE chain_seq = 1", 1, "hash mismatch"),
    ("UPDATE audit_events SET order_id = NULL WHERE chain_seq = 10", 10, "hash mismatch"),
    ("DELETE FROM audit_events WHERE chain_seq = 5", 5, "gap"),
    ("DELETE FROM audit_events WHERE chain_seq = 1", 1, "gap"),
])
def test_a_changed_or_deleted_row_breaks_the_chain_there(trail, statement, seq, problem):
    trail.drop_triggers()
    trail.sql(statement)
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (seq, problem)


def test_a_changed_time_breaks_the_chain_there(trail):
    trail.drop_triggers()
    trail.sql("UPDATE audit_events SET at = :at WHERE chain_seq = 7", at=START + timedelta(seconds=7, microseconds=8))
    broken = trail.verdict().broken
    assert broken is not None and (broken.seq, broken.problem) == (7, "hash mismatch")


def forge(trail: Trail, *, seq: int, prev: str) -> AuditEvent:
    """An event whose hash is computed as the service would, as link ``seq`` after ``prev``."""
    forged = AuditEvent(at=START + timedelta(seconds=seq), channel="cli", action="order.cancel", outcome="success",
                        code=0, partner_code="P1", username="operator", order_id="1000000099", detail="forged")
    forged.chain_seq, forged.chain_prev = seq, prev
    forged.chain_hash = audit_chain.link_hash(forged, seq=seq, prev=prev)
    return forged


def insert(trail: Trail, event: AuditEvent) -> int:
    with trail.sessions() as session, session.begin():
        session.add(event)
        session.flush()
        return event.id


def test_a_forged_row_with_a_wrong_prev_is_found(trail):
    forged_id = insert(trail, forge(trail, seq=EVENTS + 1, prev="ab" * 32))
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (EVENTS + 1, forged_id, "prev mismatch")


def test_a_row_inserted_in_the_middle_is_found_after_it(trail):
    """Spliced in at 5 with a correct hash after 4: the event after it no longer follows."""
    trail.drop_triggers()
    original_five = trail.event(5)
    for seq in range(EVENTS, 4, -1):  # make room, from the end (chain_seq is unique)
        trail.sql("UPDATE audit_events SET chain_seq = chain_seq + 1 WHERE chain_seq = :seq", seq=seq)
    insert(trail, forge(trail, seq=5, prev=trail.event(4).chain_hash))
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (6, original_five.id, "prev mismatch")


def test_a_chain_recomputed_after_a_splice_verifies_alone_but_not_against_its_anchor(trail):
    anchor = (EVENTS, trail.event(EVENTS).chain_hash)  # what `audit head` exported before the rewrite
    trail.drop_triggers()
    for seq in range(EVENTS, 4, -1):
        trail.sql("UPDATE audit_events SET chain_seq = chain_seq + 1 WHERE chain_seq = :seq", seq=seq)
    insert(trail, forge(trail, seq=5, prev=trail.event(4).chain_hash))
    prev = trail.event(5).chain_hash
    for seq in range(6, EVENTS + 2):  # recompute every link after the forged one, as a forger would
        event = trail.event(seq)
        link = audit_chain.link_hash(event, seq=seq, prev=prev)
        trail.sql("UPDATE audit_events SET chain_prev = :prev, chain_hash = :link WHERE chain_seq = :seq",
                  prev=prev, link=link, seq=seq)
        prev = link
    assert trail.verdict().broken is None
    broken = trail.verdict(anchor).broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (EVENTS, "anchor mismatch")


def test_two_rows_swapped_are_found_at_the_first(trail):
    trail.drop_triggers()
    third, fourth = trail.event(3), trail.event(4)
    trail.sql("UPDATE audit_events SET chain_seq = -1 WHERE chain_seq = 3")
    trail.sql("UPDATE audit_events SET chain_seq = 3 WHERE chain_seq = 4")
    trail.sql("UPDATE audit_events SET chain_seq = 4 WHERE chain_seq = -1")
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (3, fourth.id, "prev mismatch")
    assert third.id != fourth.id


def test_a_cut_off_tail_is_found_by_the_anchor(trail):
    anchor = (EVENTS, trail.event(EVENTS).chain_hash)
    trail.drop_triggers()
    trail.sql("DELETE FROM audit_events WHERE chain_seq > 7")
    assert trail.verdict().broken is None  # a shorter chain holds together...
    broken = trail.verdict(anchor).broken  # ...but no longer reaches the exported head
    assert broken is not None
    assert (broken.seq, broken.problem) == (EVENTS, "anchor missing")
    verdict = trail.verdict((7, trail.event(7).chain_hash))
    assert verdict.broken is None and verdict.anchor_checked


def test_appends_after_a_verify_continue_the_chain(trail):
    head = trail.verdict().head
    trail.append(3, first=EVENTS + 1)
    verdict = trail.verdict((head.seq, head.hash))
    assert verdict.broken is None
    assert verdict.checked == EVENTS + 3
    assert trail.event(EVENTS + 1).chain_prev == head.hash


def test_migration_0007_chains_the_events_already_written(installation, tmp_path):
    """Events written before 0007, in id order, with an up and down and up again."""
    for environ in database_environment(installation.backend, tmp_path, "audit0007"):
        engine = create_database_engine(environ["SOAP_SERVICE_DATABASE_URL"])
        try:
            migrate(engine, "0006")
            with engine.begin() as connection:
                for number in range(1, 8):
                    connection.execute(text(
                        "INSERT INTO audit_events (at, channel, action, outcome, code, partner_code, username, "
                        "order_id, partner_order_id, certificate_serial, incident_id, detail) VALUES "
                        "(:at, 'api', 'reissue', 'success', 0, 'P1', 'api', '1000000001', 'A-1', :serial, NULL, "
                        ":detail)"),
                        {"at": (START + timedelta(microseconds=number * 7)).replace(tzinfo=None)
                         if installation.backend == "sqlite" else START + timedelta(microseconds=number * 7),
                         "serial": f"{number:x}0", "detail": f"before 0007 «{number}» \\ \""})
            migrate(engine, "head")
            sessions = create_session_factory(engine)
            with sessions() as session:
                verdict = audit_chain.walk(session)
            assert verdict.broken is None and verdict.checked == 7
            with sessions() as session, session.begin():
                audit.append_event(session, at=START, channel="cli", action="init", outcome="success", code=0)
            with sessions() as session:
                verdict = audit_chain.walk(session)
                assert verdict.broken is None and verdict.checked == 8
                with pytest.raises(Exception, match="append-only"):  # the trigger is back
                    session.execute(text("UPDATE audit_events SET detail = 'x' WHERE chain_seq = 1"))
            migrate(engine, "0006", down=True)
            migrate(engine, "head")
            with sessions() as session:
                verdict = audit_chain.walk(session)
            assert verdict.broken is None and verdict.checked == 8
        finally:
            engine.dispose()


def test_sixteen_concurrent_reissues_leave_one_chain_without_gaps(ra, installation):
    """With a settle of the change feed polling meanwhile on PostgreSQL: the chain's lock comes
    after the feed's, so no writer and no settle wait for each other in a cycle."""
    partner = new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    reissuer = Reissuer(ra)
    with ra.readers() as session:
        before = audit_chain.read_head(session).seq
    done = threading.Event()

    def settle_meanwhile() -> int:
        settled = 0
        while not done.is_set():
            with ra.sessions() as session, session.begin():
                changes.settle(session, ra.clock)
            settled += 1
        return settled

    def one(csr: str) -> IssuanceOutcome | ServiceError:
        try:
            return reissuer.reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
        except ServiceError as error:
            return error

    with ThreadPoolExecutor(17) as pool:
        settling = pool.submit(settle_meanwhile)
        try:
            results = list(pool.map(one, [fresh_key_csr() for _ in range(16)]))
        finally:
            done.set()
        assert settling.result() >= 1
    assert all(isinstance(r, IssuanceOutcome) for r in results), results
    with ra.readers() as session:
        verdict = audit_chain.walk(session)
        mine = list(session.scalars(select(AuditEvent).where(AuditEvent.partner_code == partner.code,
                                                             AuditEvent.action == "reissue")))
    assert verdict.broken is None
    assert verdict.head.seq == verdict.checked  # 1..N, no gap
    assert verdict.head.seq >= before + 16
    assert len(mine) == 16 and len({e.chain_seq for e in mine}) == 16


def soap_service_cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``soap-service audit ...`` as a real process."""
    return subprocess.run([sys.executable, "-m", "soap_service.main", "audit", *args], text=True, timeout=120,
                          capture_output=True, env={**os.environ, **environ},
                          cwd=Path(environ["SOAP_SERVICE_DATA_DIR"]))


def in_process(trail: Trail, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``soap-service audit ...`` in this process (a process start costs seconds), with the trail's settings."""
    for name, value in trail.environ.items():
        monkeypatch.setenv(name, value)
    try:
        status = run(["audit", *args])
    except SystemExit as usage:  # argparse
        status = int(usage.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_the_audit_commands(trail, monkeypatch, capsys):
    status, out, _ = in_process(trail, monkeypatch, capsys, "head")
    assert status == 0
    exported = json.loads(out)
    assert exported["seq"] == EVENTS and exported["hash"] == trail.event(EVENTS).chain_hash
    anchor = f"{exported['seq']}:{exported['hash']}"

    verified = soap_service_cli(trail.environ, "verify", "--anchor", anchor)
    assert verified.returncode == 0, verified.stderr
    summary = json.loads(verified.stdout)
    assert summary["verified"] is True and summary["events_checked"] == EVENTS
    assert summary["head"] == exported and summary["anchor"]["found"] is True

    status, out, _ = in_process(trail, monkeypatch, capsys, "tail", "-n", "3")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in lines] == [EVENTS - 2, EVENTS - 1, EVENTS]
    assert set(lines[0]) == {"seq", "at", "channel", "action", "outcome", "code", "partner_code", "username",
                             "order_id", "partner_order_id", "certificate_serial", "incident_id", "detail", "hash"}
    _, out, _ = in_process(trail, monkeypatch, capsys, "tail", "--order", "1000000004")
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [4]
    _, out, _ = in_process(trail, monkeypatch, capsys, "tail", "--partner", "P1", "-n", "100")
    assert len(out.splitlines()) == EVENTS
    assert in_process(trail, monkeypatch, capsys, "tail", "--partner", "P2")[1] == ""

    trail.drop_triggers()
    trail.sql("UPDATE audit_events SET outcome = 'refused' WHERE chain_seq = 6")
    broken = soap_service_cli(trail.environ, "verify")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["verified"] is False
    assert report["broken"]["seq"] == 6 and report["broken"]["problem"] == "hash mismatch"
    assert report["broken"]["id"] == trail.event(6).id
    assert report["events_checked"] == 5

    status, _, err = in_process(trail, monkeypatch, capsys, "verify", "--anchor", "5:xyz")
    assert status == 2 and "SEQ:HASH" in err
    status, _, err = in_process(trail, monkeypatch, capsys, "tail", "--order", "1" * 33)
    assert status == 2 and "at most 32" in err


def test_a_write_after_the_audit_event_is_refused_in_the_tests(trail, audit_is_the_last_write):
    """The run-wide watch of tests/audit_guard.py catches a transaction that writes after its audit event."""
    with trail.sessions() as session:
        audit.append_event(session, at=START, channel="cli", action="init", outcome="success", code=0)
        session.add(Brand(code="LATE", name="written after the audit event"))
        with pytest.raises(WriteAfterAudit):
            session.flush()
        session.rollback()
    assert audit_is_the_last_write.pop().startswith("a write of Brand after the audit event")


def test_tail_follow_prints_new_events(trail):
    environ = {**os.environ, **trail.environ}
    with subprocess.Popen([sys.executable, "-m", "soap_service.main", "audit", "tail", "-n", "1", "--follow"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ) as follower:
        try:
            assert follower.stdout is not None
            assert json.loads(follower.stdout.readline())["seq"] == EVENTS
            trail.append(2, first=EVENTS + 1)
            assert json.loads(follower.stdout.readline())["seq"] == EVENTS + 1
            assert json.loads(follower.stdout.readline())["seq"] == EVENTS + 2
        finally:
            follower.terminate()


def forge_at(trail: Trail, *, seq: int, prev: str) -> AuditEvent:
    """:func:`forge`, numbered ``seq`` whatever it is (its time stays in range)."""
    forged = forge(trail, seq=1, prev=prev)
    forged.chain_seq, forged.chain_hash = seq, audit_chain.link_hash(forged, seq=seq, prev=prev)
    return forged


@pytest.mark.parametrize("seq", [-3, 0, -(2**62)])
def test_a_row_with_a_seq_below_one_is_not_skipped_by_the_walk(trail, seq):
    """An INSERT (the triggers allow it) with a seq no append gives: the walk starts from the lowest
    seq in the table, not from 1, so the row is named rather than hidden below the chain."""
    forged_id = insert(trail, forge_at(trail, seq=seq, prev=audit_chain.GENESIS))
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (seq, forged_id, "seq out of range")


def test_a_row_with_a_huge_seq_is_a_gap(trail):
    insert(trail, forge_at(trail, seq=2**62, prev=trail.event(EVENTS).chain_hash))
    broken = trail.verdict().broken
    assert broken is not None and (broken.seq, broken.problem) == (EVENTS + 1, "gap")


def test_an_unreadable_row_is_named_not_raised(trail, monkeypatch, capsys):
    """SQLite keeps any value in any column: a time that is no time, text for a seq. verify names
    the row (exit 1 with its JSON), it does not die with a traceback."""
    if trail.backend != "sqlite":
        pytest.skip("PostgreSQL's column types refuse such values")
    trail.drop_triggers()
    fourth = trail.event(4)
    trail.sql("UPDATE audit_events SET at = 'not a time' WHERE chain_seq = 4")
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (4, fourth.id, "unreadable")
    status, out, _ = in_process(trail, monkeypatch, capsys, "verify")
    assert status == 1 and json.loads(out)["broken"]["problem"] == "unreadable"

    trail.sql("UPDATE audit_events SET at = :at WHERE chain_seq = 4", at=fourth.at.replace(tzinfo=None).isoformat(" "))
    assert trail.verdict().broken is None
    sixth = trail.event(6)
    trail.sql("UPDATE audit_events SET detail = CAST(x'ff' AS TEXT) WHERE chain_seq = 6")  # no UTF-8
    broken = trail.verdict().broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (6, sixth.id, "unreadable")
    trail.sql("UPDATE audit_events SET detail = :detail WHERE chain_seq = 6", detail=sixth.detail)
    trail.sql("UPDATE audit_events SET chain_seq = 'eleven' WHERE chain_seq = 10")
    broken = trail.verdict().broken
    assert broken is not None and broken.problem in {"gap", "unreadable"}


@pytest.mark.parametrize(("statement", "what"), [
    ("INSERT INTO brands (code, name) VALUES ('LATE', 'raw SQL after the audit event')", "a statement that writes"),
    ("UPDATE brands SET name = name WHERE code = 'none'", "a statement that writes"),
    ("SELECT id FROM orders WHERE id = 0 FOR UPDATE", "a statement that takes a lock"),
    ("SELECT pg_advisory_xact_lock(12345)", "a statement that takes a lock"),
])
def test_a_raw_write_or_lock_after_the_audit_event_is_refused_in_the_tests(trail, audit_is_the_last_write,
                                                                            statement, what):
    """The run-wide watch sees every statement a connection sends, not only the ORM's flushes."""
    with trail.sessions() as session:
        audit.append_event(session, at=START, channel="cli", action="init", outcome="success", code=0)
        with pytest.raises(WriteAfterAudit):
            session.connection().exec_driver_sql(statement)
        session.rollback()
    assert audit_is_the_last_write.pop().startswith(what)


def test_two_events_and_reads_after_the_audit_event_pass_the_watch(trail, audit_is_the_last_write):
    with trail.sessions() as session, session.begin():
        for number in (1, 2):
            audit.append_event(session, at=START, channel="cli", action="init", outcome="success", code=number)
        session.execute(select(AuditEvent.id)).all()
    assert audit_is_the_last_write == []
    assert trail.verdict().broken is None and trail.verdict().checked == EVENTS + 2


@pytest.mark.parametrize("anchor", [
    "5:" + "ab" * 32 + " " * 40 + "junk",  # past the bound: refused whole, not cut to the valid part
    "0:" + "ab" * 32, "5:" + "ab" * 31, "5:" + "g" * 64, "-5:" + "ab" * 32, "5" * 20 + ":" + "ab" * 32,
])
def test_a_malformed_anchor_is_a_usage_error(trail, monkeypatch, capsys, anchor):
    status, out, err = in_process(trail, monkeypatch, capsys, "verify", "--anchor", anchor)
    assert (status, out) == (2, "") and "SEQ:HASH" in err


def test_an_append_from_a_stale_snapshot_is_an_error_never_a_fork(trail):
    """No transaction of the service runs above READ COMMITTED; if one did (REPEATABLE READ on
    PostgreSQL, whose snapshot predates the chain's lock), its head would be stale and the unique
    chain_seq refuses the link: an error, never two links with one seq."""
    if trail.backend != "postgresql":
        pytest.skip("SQLite's writers hold the write lock from BEGIN IMMEDIATE: no stale head")
    stale_factory = create_session_factory(trail.engine.execution_options(isolation_level="REPEATABLE READ"))
    with stale_factory() as stale:
        stale.begin()
        stale.execute(select(AuditEvent.id).limit(1)).all()  # the snapshot is taken here
        trail.append(1, first=EVENTS + 1)  # another writer commits seq EVENTS + 1
        with pytest.raises(DBAPIError) as refused:
            audit.append_event(stale, at=START, channel="cli", action="init", outcome="success", code=0)
        assert refused.value.orig is not None and refused.value.orig.sqlstate in {"23505", "40001"}
        stale.rollback()
    verdict = trail.verdict()
    assert verdict.broken is None and verdict.checked == EVENTS + 1


def test_tail_follow_reads_a_burst_of_events_in_one_poll(trail, monkeypatch, capsys):
    """More new events than a page between two polls are all printed at the next poll, page after
    page, not one page a poll (which fell behind for good past 500 events a second); a filter that
    matches none of them moves the follower past them too."""
    burst = audit_chain.PAGE * 2 + 7
    polls: list[int] = []

    def poll(_seconds: float) -> None:
        polls.append(len(polls))
        if len(polls) == 1:
            with trail.sessions() as session, session.begin():
                for number in range(burst):
                    audit.append_event(session, at=START, channel="api", action="reissue", outcome="success",
                                       code=0, partner_code="P1" if number < burst - 1 else "P2", detail=str(number))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr("soap_service.audit_commands.time.sleep", poll)
    status, out, _ = in_process(trail, monkeypatch, capsys, "tail", "-n", "0", "--follow")
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert status == 0 and seqs == list(range(EVENTS + 1, EVENTS + burst + 1))
    polls.clear()
    status, out, _ = in_process(trail, monkeypatch, capsys, "tail", "-n", "0", "--partner", "P2", "--follow")
    assert status == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [EVENTS + 2 * burst]


def test_an_empty_detail_made_null_breaks_the_chain(trail):
    """NULL and "" are two values: the encoding does not fold one into the other (PostgreSQL: the
    NOT NULL constraint dropped by whoever could drop the triggers)."""
    if trail.backend != "postgresql":
        pytest.skip("SQLite cannot drop a NOT NULL constraint without rebuilding the table")
    with trail.sessions() as session, session.begin():
        audit.append_event(session, at=START, channel="cli", action="init", outcome="success", code=0)
    assert trail.event(EVENTS + 1).detail == "" and trail.verdict().broken is None
    trail.drop_triggers()
    trail.sql("ALTER TABLE audit_events ALTER COLUMN detail DROP NOT NULL")
    trail.sql("UPDATE audit_events SET detail = NULL WHERE chain_seq = :seq", seq=EVENTS + 1)
    broken = trail.verdict().broken
    assert broken is not None and (broken.seq, broken.problem) == (EVENTS + 1, "hash mismatch")


def test_an_event_without_a_detail_is_chained_as_it_is_stored(trail):
    with trail.sessions() as session, session.begin():
        audit_chain.lock_chain(session)
        audit_chain.chain(session, AuditEvent(at=START, channel="cli", action="init", outcome="success", code=0))
    assert trail.event(EVENTS + 1).detail == "" and trail.verdict().broken is None
