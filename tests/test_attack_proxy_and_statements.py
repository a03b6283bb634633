"""Attacks on the client address behind trusted load balancers (``soap_service.client_address``)
and on the statements a signed Reissue saves (the serial's reservation as one
``INSERT ... ON CONFLICT DO NOTHING``, ``PRAGMA query_only`` sent only when a pooled SQLite
connection changes sides); docs/design.md, "End User Portal" and "Concurrency and failures".

The client address: a visitor behind a trusted balancer writes whatever it likes to the left of
the entry the balancer appends; whatever it writes, it is named by that entry -- a long header,
many entries, repeated header lines (joined with commas by the server) give it neither the
balancer's address (another budget, and its own address missing from the logs) nor another
budget of its own. An address read from the header has one form per client.

The storage: a reader session never writes, whatever the connection served before or went through
(a writer, an invalidation, a failed ``PRAGMA``, a rolled-back writer); a serial is reserved once
per CA, also when two transactions race for it on PostgreSQL, and a serial taken in the same
transaction leaves that transaction usable."""

from __future__ import annotations

import http.client
import ipaddress
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from api_support import RunningServer, running_server
from conftest import TestInstallation as Installation
from soap_service.client_address import MAX_FORWARDED_CHARS, MAX_FORWARDED_HOPS, client_address
from soap_service.storage.certificates import reserve_serial
from soap_service.storage.db import QUERY_ONLY, create_database_engine, create_reader_factory, create_session_factory
from soap_service.storage.errors import SerialCollision
from soap_service.storage.models import CertificateAuthority, IssuedSerial, Partner

BALANCERS = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8:ba1::/48"))
BALANCER = "10.0.0.7"
VISITOR = "198.51.100.23"


def _environ(forwarded: str, peer: str = BALANCER) -> dict[str, str]:
    return {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}


# ------------------------------------------------------------------ the client address, as a function


def test_a_long_header_names_the_visitor_the_balancer_appended_not_the_balancer() -> None:
    """Fails on c564332: a header over 1,024 characters named the balancer."""
    padding = ",".join(["192.0.2.1"] * 200)  # the visitor's own part, 2,000 characters
    assert len(padding) > MAX_FORWARDED_CHARS
    assert client_address(_environ(f"{padding}, {VISITOR}"), BALANCERS) == VISITOR
    assert client_address(_environ(f"{padding}, {VISITOR}, 10.0.0.9"), BALANCERS) == VISITOR
    assert client_address(_environ("x" * 5000 + f",{VISITOR}"), BALANCERS) == VISITOR


def test_many_entries_name_the_visitor_the_balancer_appended_not_the_balancer() -> None:
    """Fails on c564332: a header of over 32 entries named the balancer."""
    forwarded = ",".join(["192.0.2.1"] * (MAX_FORWARDED_HOPS + 8) + [VISITOR])
    assert len(forwarded) <= MAX_FORWARDED_CHARS
    assert client_address(_environ(forwarded), BALANCERS) == VISITOR
    assert client_address(_environ(",".join([","] * 100) + VISITOR), BALANCERS) == VISITOR


def test_repeated_header_lines_joined_by_the_server_name_the_last_line() -> None:
    """Fails on c564332: gunicorn joins repeated lines (64 fields of 8,190 characters at most) with
    commas; a visitor's lines before the balancer's must not make the header unreadable."""
    lines = ["192.0.2.1" * 900] * 63 + [VISITOR]
    assert client_address(_environ(",".join(lines)), BALANCERS) == VISITOR


def test_what_a_visitor_prepends_never_changes_its_address() -> None:
    """One budget per visitor whatever it writes to the left. On c564332 the short prefixes held;
    the last two (over 32 entries, over 1,024 characters) named the balancer instead."""
    prefixes = ["", "192.0.2.1", "192.0.2.1, 192.0.2.2", "10.0.0.9", "unknown", "[::1]:80", "1.2.3.4:80",
                "fe80::1%eth0", "::ffff:10.0.0.9", " , ,", "\u0661.\u0662.\u0663.\u0664", "é", "\x00",
                "192.0.2.1," * 31, "10.0.0.9," * 40, "y" * 2000]
    seen = {client_address(_environ(f"{prefix}, {VISITOR}" if prefix else VISITOR), BALANCERS)
            for prefix in prefixes}
    assert seen == {VISITOR}


def test_a_forwarded_address_has_one_form_per_client() -> None:
    """Fails on c564332: an IPv4-mapped address was a budget apart from its IPv4 address, and an
    IPv6 zone (any characters but ``%``, a line break too) went to the logs and the limits."""
    assert client_address(_environ("::ffff:198.51.100.23"), BALANCERS) == VISITOR
    assert client_address(_environ("fe80::1%eth0"), BALANCERS) == "fe80::1"
    assert client_address(_environ('fe80::1%x\ny="forged"'), BALANCERS) == "fe80::1"
    assert client_address(_environ("2001:DB8::77%1"), BALANCERS) == "2001:db8::77"


@pytest.mark.parametrize("forwarded", [
    "198.51.100.023", "\u0661\u0669\u0668.51.100.23", "198.51.100.23:80", "[2001:db8::77]", "[2001:db8::77]:80",
    "198.51.100.23%eth0", "fe80::1%", "0x7f.1", "3325256727", "198.51.100", "198.51.100.23/32", "::ffff:1.2.3",
    "198.51.100.23\u00a0", "\u200b198.51.100.23", "\uff11\uff19\uff18.51.100.23",
])
def test_an_entry_that_is_no_plain_address_names_the_balancer_never_a_forged_client(forwarded: str) -> None:
    """Holds on c564332 as well: what ``ipaddress`` does not read as an address is no client."""
    assert client_address(_environ(forwarded), BALANCERS) == BALANCER


def test_an_untrusted_peer_is_its_own_client_whatever_the_header() -> None:
    """Holds on c564332 as well."""
    for peer in ("192.0.2.9", "::ffff:192.0.2.9", "10.0.1.7", "2001:db8:ba2::1", "fe80::1%eth0"):
        assert client_address(_environ("10.0.0.9, 198.51.100.1", peer=peer), BALANCERS) == peer


# --------------------------------------------------------------------------- the client address over HTTP

PORTAL_FORM = "/portal/symantec/"
FORMS_A_WINDOW = 3  # SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT=1: three lookup forms per client in 10 minutes


@pytest.fixture(scope="module")
def behind_a_balancer(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The test process plays the load balancer: 127.0.0.1 is trusted."""
    extra = {"SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT": "1", "SOAP_SERVICE_TRUSTED_PROXIES": "127.0.0.1"}
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2, extra_env=extra)


def _form(server: RunningServer, *forwarded: str) -> int:
    """GET the lookup form with one ``X-Forwarded-For`` line per value, in this order."""
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.putrequest("GET", PORTAL_FORM)
        for value in forwarded:
            connection.putheader("X-Forwarded-For", value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _visitor() -> str:
    # A /64 of its own (limits count an IPv6 client by its /64), outside the balancers' 2001:db8:ba1::/48.
    network = ((0x8000 | secrets.randbits(15)) << 16) | secrets.randbits(16)
    return str(ipaddress.ip_address("2001:db8::") + (network << 64) + secrets.randbits(64))


def test_a_visitor_with_a_spent_budget_gets_no_other_by_a_long_header(behind_a_balancer: RunningServer) -> None:
    """Fails on c564332: a header too long to read counted as the balancer's request -- a second
    budget for the visitor (shared with whoever else does it) and the balancer in the logs."""
    visitor = _visitor()
    assert [_form(behind_a_balancer, visitor) for _ in range(FORMS_A_WINDOW)] == [200] * FORMS_A_WINDOW
    assert _form(behind_a_balancer, visitor) == 429
    padding = ",".join(["192.0.2.1"] * 150)
    mark = behind_a_balancer.log_mark()
    assert _form(behind_a_balancer, f"{padding},{visitor}") == 429  # one header line, appended to
    assert _form(behind_a_balancer, padding, visitor) == 429  # the balancer's own line after the visitor's
    assert _form(behind_a_balancer, ",".join(["192.0.2.1"] * 40) + f",{visitor}") == 429
    lines = [line for line in behind_a_balancer.log(mark).splitlines() if "soap_service.portal.requests" in line]
    assert len(lines) == 3 and all(f"client={visitor}" in line for line in lines), lines


def test_a_visitor_gets_no_other_budget_from_another_address_of_its_ipv6_64(behind_a_balancer: RunningServer) -> None:
    """Failed on c564332 and f702724: behind a trusted balancer each IPv6 address the balancer forwards
    has a budget of its own, and one subscriber usually holds a whole /64 (2**64 addresses): it
    asks for as many lookup forms as it likes. The portal's limits now count an IPv6 client by its
    /64 (``client_address.limit_key``)."""
    network = ipaddress.ip_network(_visitor()).supernet(new_prefix=64)
    statuses = [_form(behind_a_balancer, str(network[secrets.randbits(64)])) for _ in range(FORMS_A_WINDOW + 1)]
    assert statuses[-1] == 429


# ------------------------------------------------------------------------------ readers never write


@pytest.fixture
def engine(installation: Installation) -> Iterator[Engine]:
    """An engine of its own: while the test uses one session at a time, one pooled connection
    serves every session in turn."""
    engine = create_database_engine(installation.settings.database_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _ca_id(engine: Engine) -> int:
    with create_reader_factory(engine)() as session:
        ca_id = session.scalar(select(CertificateAuthority.id).order_by(CertificateAuthority.id).limit(1))
    assert ca_id is not None
    return ca_id


def _serial() -> str:
    return format(secrets.randbits(120) | 1 << 119, "x")  # lowercase hex, no leading zero


def _reserved(engine: Engine, ca_id: int, serial: str) -> int:
    with create_reader_factory(engine)() as session:
        found = session.scalars(select(IssuedSerial.id).where(IssuedSerial.ca_id == ca_id,
                                                               IssuedSerial.serial == serial))
        return len(list(found))


def _reader_cannot_write(engine: Engine, ca_id: int) -> None:
    serial = _serial()
    with pytest.raises(DBAPIError), create_reader_factory(engine)() as session, session.begin():
        reserve_serial(session, ca_id=ca_id, serial=serial, at=datetime.now(UTC))
    with pytest.raises(DBAPIError), create_reader_factory(engine)() as session, session.begin():
        session.execute(update(Partner).where(Partner.id == -1).values(name="x"))
    assert _reserved(engine, ca_id, serial) == 0


def _write(engine: Engine, ca_id: int) -> None:
    serial = _serial()
    with create_session_factory(engine)() as session, session.begin():
        reserve_serial(session, ca_id=ca_id, serial=serial, at=datetime.now(UTC))
    assert _reserved(engine, ca_id, serial) == 1


def test_a_reader_never_writes_whatever_its_connection_went_through(engine: Engine) -> None:
    """Holds on 96cb44d (and before): writers in a row, an invalidated connection, a writer
    rolled back after an error, a reader rolled back, a disposed pool -- the next reader cannot
    write, the next writer can."""
    ca_id = _ca_id(engine)
    writers, readers = create_session_factory(engine), create_reader_factory(engine)
    _write(engine, ca_id)
    _write(engine, ca_id)
    _reader_cannot_write(engine, ca_id)
    _write(engine, ca_id)
    _invalidate(engine)  # the pooled connection, last a reader's, is replaced: the writer writes
    _write(engine, ca_id)
    _invalidate(engine)  # last a writer's: the reader cannot write
    _reader_cannot_write(engine, ca_id)
    with readers() as session:  # a reader rolled back after an error
        session.begin()
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT no_such_column FROM partners"))
        session.rollback()
    _reader_cannot_write(engine, ca_id)
    with pytest.raises(IntegrityError), writers() as session, session.begin():
        reserve_serial(session, ca_id=-1, serial=_serial(), at=datetime.now(UTC))  # no such CA
    _reader_cannot_write(engine, ca_id)
    engine.dispose()
    _reader_cannot_write(engine, ca_id)
    _write(engine, ca_id)


def _invalidate(engine: Engine) -> None:
    """The pooled connection closed and replaced by a new one at its next checkout."""
    with engine.connect() as connection:
        connection.invalidate()


def test_sqlite_a_failed_query_only_pragma_is_sent_again(engine: Engine) -> None:
    """Holds on 96cb44d (and before): a ``PRAGMA query_only`` that fails leaves the connection's
    flag unknown, so the next reader sends it again and cannot write."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sets the read-only flag through the driver, not with a statement")
    ca_id = _ca_id(engine)
    with create_session_factory(engine)() as session, session.begin():  # the connection a writer's
        session.execute(select(Partner.id).limit(1))
    failures = ["PRAGMA query_only=ON"]

    def fail_once(_conn, _cursor, statement, *_args) -> None:
        if statement in failures:
            failures.remove(statement)
            raise RuntimeError("the PRAGMA failed")

    event.listen(engine, "before_cursor_execute", fail_once)
    try:
        with pytest.raises(RuntimeError), create_reader_factory(engine)() as session, session.begin():
            session.execute(select(Partner.id).limit(1))
    finally:
        event.remove(engine, "before_cursor_execute", fail_once)
    _reader_cannot_write(engine, ca_id)
    with engine.connect() as connection:
        assert connection.connection.info.get(QUERY_ONLY) is not None


# ------------------------------------------------------------------------------ one serial, once


def test_a_serial_taken_in_the_same_transaction_leaves_it_usable(engine: Engine) -> None:
    """Holds on 96cb44d (the savepoint did it before): the collision is reported, nothing is
    rolled back, and the transaction reserves another serial and commits."""
    ca_id = _ca_id(engine)
    first, second = _serial(), _serial()
    with create_session_factory(engine)() as session, session.begin():
        reserve_serial(session, ca_id=ca_id, serial=first, at=datetime.now(UTC))
        with pytest.raises(SerialCollision):
            reserve_serial(session, ca_id=ca_id, serial=first, at=datetime.now(UTC))
        reserve_serial(session, ca_id=ca_id, serial=second, at=datetime.now(UTC))
    assert (_reserved(engine, ca_id, first), _reserved(engine, ca_id, second)) == (1, 1)
    with pytest.raises(SerialCollision), create_session_factory(engine)() as session, session.begin():
        reserve_serial(session, ca_id=ca_id, serial=first, at=datetime.now(UTC))  # committed: taken
    assert _reserved(engine, ca_id, first) == 1


@pytest.mark.parametrize("first_commits", [True, False])
def test_postgresql_two_transactions_racing_for_one_serial(installation: Installation, first_commits: bool) -> None:
    """Holds on 96cb44d: the second waits for the first's uncommitted reservation; the first
    commits -- the second is told the serial is taken; the first rolls back -- the second has it."""
    if installation.backend != "postgresql":
        pytest.skip("SQLite writers take turns from BEGIN IMMEDIATE: no two reserve at once")
    engine = create_database_engine(installation.settings.database_url, pool_size=3)
    try:
        ca_id, serial = _ca_id(engine), _serial()
        writers = create_session_factory(engine)
        outcome: list[str] = []

        def second() -> None:
            try:
                with writers() as session, session.begin():
                    reserve_serial(session, ca_id=ca_id, serial=serial, at=datetime.now(UTC))
                outcome.append("reserved")
            except SerialCollision:
                outcome.append("collision")
            except Exception as error:  # pragma: no cover - reported by the assertion below
                outcome.append(repr(error))

        with writers() as session:
            session.begin()
            reserve_serial(session, ca_id=ca_id, serial=serial, at=datetime.now(UTC))
            racer = threading.Thread(target=second)
            racer.start()
            _wait_for_a_lock_wait(engine)
            assert racer.is_alive() and outcome == []  # waiting for the first transaction
            if first_commits:
                session.commit()
            else:
                session.rollback()
        racer.join(60)
        assert outcome == (["collision"] if first_commits else ["reserved"])
        assert _reserved(engine, ca_id, serial) == 1
    finally:
        engine.dispose()


def _wait_for_a_lock_wait(engine: Engine) -> None:
    """Until a session of this database waits for a lock (the racing INSERT), at most 30 s."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.scalar(query):
                return
        time.sleep(0.05)
    raise AssertionError("the second transaction never waited for the first")
