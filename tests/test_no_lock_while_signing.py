"""No signature, lint or password hash runs while this installation's database holds a write lock
(docs/design.md, "Concurrency and failures"): every issuance signs between two transactions, a
login verifies its hash between its reservation and its settlement, a CRL is signed after its
number's transaction. Each costly call is wrapped here by a spy that looks at the database from a
connection of its own, at the moment of the call:

- SQLite: ``BEGIN IMMEDIATE`` with no busy timeout must succeed (no connection holds the
  database's write lock);
- PostgreSQL: no other backend of this database has a transaction ID (one that wrote or locked a
  row has), and none holds an advisory lock (the account's, the change feed's, the audit chain's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from conftest import build_installation, database_environment
from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import ServiceError
from soap_service.ra import crls, ocsp
from soap_service.ra.crls import CRLPublisher
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.storage.models import IssuedSerial


def _locks_held(url: str) -> list[str]:
    """What holds a write lock on the database at ``url`` now, seen from a new connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database or "", timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.OperationalError as locked:
            return [f"sqlite: {locked}"]
        finally:
            connection.close()
        return []
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        writers = connection.execute(
            "SELECT pid, state, left(query, 80) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL").fetchall()
        advisory = connection.execute(
            "SELECT l.pid, l.mode FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted").fetchall()
    return [f"writer {row}" for row in writers] + [f"advisory {row}" for row in advisory]


class LockSpy:
    """Wraps callables so that each call first records what write locks the database holds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: dict[str, int] = {}
        self.held: list[tuple[str, list[str]]] = []

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def spied(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            held = _locks_held(self.url)
            if held:
                self.held.append((name, held))
            return function(*args, **kwargs)

        return spied


class _SpiedHasher:
    """argon2's PasswordHasher (its methods cannot be replaced on it), with ``verify`` spied on."""

    def __init__(self, hasher: Any, watch: LockSpy) -> None:
        self._hasher = hasher
        self.verify = watch.wrap("argon2 verify", hasher.verify)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hasher, name)


@pytest.fixture
def spy(installation: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LockSpy]:
    ra = installation.ra
    watch = LockSpy(installation.environ["SOAP_SERVICE_DATABASE_URL"])
    monkeypatch.setattr(ra.issuer, "issue", watch.wrap("lint and sign a leaf", ra.issuer.issue))
    monkeypatch.setattr(ra.authenticator, "_hasher", _SpiedHasher(ra.authenticator._hasher, watch))
    monkeypatch.setattr(crls, "build_crl", watch.wrap("sign a CRL", crls.build_crl))
    yield watch


def test_a_reissue_signs_and_lints_with_no_write_lock_held(ra, spy):
    partner = new_partner(ra)  # a new account: its first login verifies its argon2 hash
    created = new_order(ra, partner)  # the order's first certificate, by the operator
    poid = created.order.partner_order_id
    csr = fresh_key_csr()
    first = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
    replay = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
    assert replay.replayed and replay.certificate.serial == first.certificate.serial
    assert spy.calls["lint and sign a leaf"] == 2  # the order's certificate and the reissue; none for the retry
    assert spy.calls["argon2 verify"] >= 1
    assert spy.held == []


def test_a_refused_login_hashes_with_no_write_lock_held(ra, spy):
    partner = new_partner(ra)
    wrong = partner.credentials("not-the-password")
    for _ in range(2):
        with pytest.raises(ServiceError):
            Reissuer(ra).reissue(wrong, ReissueRequest("PO-none", fresh_key_csr()), channel="api")
    assert spy.calls["argon2 verify"] >= 2
    assert spy.held == []


def test_a_crl_is_signed_with_no_write_lock_held(ra, spy):
    CRLPublisher(ra).current_crl(sorted(crls.CA_NAMES)[0])
    assert spy.calls["sign a CRL"] == 1
    assert spy.held == []


def test_the_spy_sees_a_write_lock(installation):
    """The spy is not blind: inside a write transaction it reports the lock."""
    ra = installation.ra
    url = installation.environ["SOAP_SERVICE_DATABASE_URL"]
    with ra.sessions() as session, session.begin():
        session.add(IssuedSerial(ca_id=1, serial="ab" * 10, reserved_at=ra.clock()))
        session.flush()
        assert _locks_held(url) != []
        session.rollback()


def test_an_ocsp_responder_certificate_is_signed_with_no_write_lock_held(installation, monkeypatch, tmp_path):
    """A responder renewal makes its key and signs its certificate before its transaction (in an
    installation of its own: the renewal is dated ahead)."""
    for environ in database_environment(installation.backend, tmp_path, "nolock"):
        fresh = build_installation(environ, installation.backend)
        try:
            watch = LockSpy(environ["SOAP_SERVICE_DATABASE_URL"])
            monkeypatch.setattr(ocsp, "create_responder",
                                watch.wrap("sign a responder certificate", ocsp.create_responder))
            due = fresh.ra.clock() + timedelta(days=400)  # every responder is due then
            assert ocsp.ensure_responders(fresh.ra, due) >= 1
            assert watch.calls["sign a responder certificate"] >= 1
            assert watch.held == []
        finally:
            fresh.ra.close()
