"""The floor of one signed reissue, in process: the work no server can avoid.

    .venv/bin/python bench/reissue_floor.py [--count 150] [--postgres URL] [--algorithms rsa-2048,ecdsa-p256]

For each CA key algorithm the settings offer (``SOAP_SERVICE_CA_KEY_ALGORITHM``, the names of
``soap_service.keyalgorithms``), a CA hierarchy is built with that key type in a temporary data
directory (SQLite), with one partner and one DV order made through the RA. Then ``--count``
reissues are timed, one after the other on one core, each with a new P-256 CSR made before
the clock starts, doing only:

1. the CSR read and its self-signature verified (``ra.csr.parse_csr``) and its key judged
   (``KeyPolicy.check_csr``);
2. the leaf built from the order, its trial certificate, the pre-issuance lint
   (``PreIssuanceLinter.findings``) and the signature (``ca.signing.sign_trial``);
3. one transaction through the raw driver (``sqlite3`` / ``psycopg``, no ORM) holding the reads
   and rows a reissue needs: the order's row (locked on PostgreSQL), the blocked-key and
   key-of-another-partner look-ups, the current certificate (for a retry), then an
   ``issued_serials`` row, a ``certificates`` row, the order's update (compare-and-set on its
   version), an ``order_changes`` row and a chained ``audit_events`` row (head read, SHA-256 of
   the link, under the feed's and the chain's advisory locks on PostgreSQL).

The same is measured again without step 2's lint (the lint-free floor). With ``--postgres`` the
default key algorithm's floor is measured on a new database of that server too (dropped at the
end). Authentication (cached after the first request), the SOAP envelope and the answer's
rendering are not part of the floor.

Prints one line per key algorithm and backend: ms per reissue (median, single core), by phase,
with this process's CPU time per reissue beside it (the database server's is not in it; on a
machine that other work shares, the wall time grows by preemption and the CPU time does not),
and the floor's throughput on this machine's cores (cores / ms per reissue), with and without
lint. ``bench/run_bench.py`` (``make bench``) calls :func:`measure` and uses the default key
algorithm's floor as the denominator of its efficiency ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from soap_service.ca.leaf import leaf_builder
from soap_service.ca.profiles import LeafRequest
from soap_service.ca.serials import new_serial
from soap_service.ca.signing import sign_trial, trial_certificate
from soap_service.config import Secret, load_settings
from soap_service.keyalgorithms import KEY_ALGORITHM_NAMES
from soap_service.ra.csr import parse_csr
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.validity import validity_window
from soap_service.storage.audit_chain import GENESIS, format_at
from soap_service.vocabulary import ValidationLevel

DEFAULT_ALGORITHM = load_settings({}).ca_key_algorithm
NAMES = ("example.com", "www.example.com")
PRODUCT = "QuickSSLPremium"  # DV, GeoTrust
FEED_LOCK = (0x6F63_6667, 1)  # the change feed's and the audit chain's advisory locks (storage/)
CHAIN_LOCK = (0x6F63_6667, 2)


def new_csr(names: tuple[str, ...] = NAMES) -> str:
    """A new P-256 key's CSR for ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Floor:
    """One key algorithm's floor on one backend; times in ms per reissue, medians (a shared machine's
    other load lengthens some reissues by whole scheduler slices: the median is the work's cost)."""

    algorithm: str
    backend: str
    count: int
    parse_ms: float
    build_ms: float
    lint_ms: float
    sign_ms: float
    db_ms: float
    total_ms: float  # with lint
    total_nolint_ms: float  # measured on its own run without lint
    mean_ms: float  # with lint, the mean
    cpu_ms: float = 0.0  # with lint: this thread's CPU time (no wait, no preemption), median
    cpu_nolint_ms: float = 0.0

    def throughput(self, cores: int, *, lint: bool = True) -> float:
        return cores * 1000 / (self.total_ms if lint else self.total_nolint_ms)


# -- the raw driver ---------------------------------------------------------------------------------


class RawStore:
    """The rows of one reissue, written with the DB-API driver and plain SQL."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.postgres = url.get_backend_name() == "postgresql"
        self.mark = "%s" if self.postgres else "?"
        if self.postgres:
            import psycopg

            self.connection: Any = psycopg.connect(
                host=url.host, port=url.port or 5432, user=url.username, password=url.password, dbname=url.database
            )
        else:
            self.connection = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
                self.connection.execute(f"PRAGMA {pragma}")

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.mark)

    def when(self, at: datetime) -> Any:
        """A UTC datetime as the ORM's column type stores it."""
        return at if self.postgres else at.replace(tzinfo=None).isoformat(sep=" ")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        cursor = self.connection.cursor()
        if not self.postgres:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            self.connection.rollback() if self.postgres else cursor.execute("ROLLBACK")
            raise
        self.connection.commit() if self.postgres else cursor.execute("COMMIT")

    def one(self, cursor: Any, statement: str, *params: Any) -> Any:
        cursor.execute(self.sql(statement), params)
        return cursor.fetchone()

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class OrderKey:
    partner_id: int
    partner_code: str
    partner_order_id: str


def write_reissue(store: RawStore, order: OrderKey, ca_id: int, leaf: x509.Certificate, csr_pem: str,
                  csr_sha256: str, spki_sha256: str, now: datetime) -> None:
    """The reissue's transaction, minus the ORM."""
    lock = " FOR UPDATE" if store.postgres else ""
    with store.transaction() as cursor:
        row = store.one(cursor, "SELECT id, order_id, status, term_end, current_certificate_id, version FROM orders "
                                "WHERE partner_id = ? AND partner_order_id = ?" + lock,
                        order.partner_id, order.partner_order_id)
        order_pk, order_id, _status, _term_end, current_id, version = row
        store.one(cursor, "SELECT 1 FROM blocked_keys WHERE spki_sha256 = ?", spki_sha256)
        store.one(cursor, "SELECT 1 FROM certificates c JOIN orders o ON o.id = c.order_pk WHERE c.spki_sha256 = ? "
                          "AND o.partner_id <> ? AND c.status = 'VALID' AND c.not_after > ? LIMIT 1",
                  spki_sha256, order.partner_id, store.when(now))
        store.one(cursor, "SELECT csr_sha256, names, spki_sha256 FROM certificates WHERE id = ?", current_id)
        serial = format(leaf.serial_number, "x")
        cursor.execute(store.sql("INSERT INTO issued_serials (ca_id, serial, reserved_at) VALUES (?, ?, ?)"),
                       (ca_id, serial, store.when(now)))
        pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
        values = (order_pk, ca_id, serial, leaf.subject.rfc4514_string(), "\n".join(NAMES),
                  store.when(leaf.not_valid_before_utc), store.when(leaf.not_valid_after_utc), pem, spki_sha256,
                  csr_pem, csr_sha256, "VALID", current_id, store.when(now))
        insert = ("INSERT INTO certificates (order_pk, ca_id, serial, subject, names, not_before, not_after, pem, "
                  "spki_sha256, csr_pem, csr_sha256, status, replaces_id, issued_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        if store.postgres:
            certificate_id = store.one(cursor, insert + " RETURNING id", *values)[0]
        else:
            cursor.execute(insert, values)
            certificate_id = cursor.lastrowid
        cursor.execute(store.sql("UPDATE orders SET current_certificate_id = ?, version = ?, updated_at = ? "
                                 "WHERE id = ? AND version = ?"),
                       (certificate_id, version + 1, store.when(now), order_pk, version))
        if cursor.rowcount != 1:
            raise RuntimeError("the order's version moved")
        if store.postgres:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", FEED_LOCK)
        cursor.execute(store.sql("INSERT INTO order_changes (partner_id, order_pk, at, change, certificate_serial) "
                                 "VALUES (?, ?, ?, 'reissued', ?)"),
                       (order.partner_id, order_pk, store.when(now), serial))
        if store.postgres:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", CHAIN_LOCK)
        head = store.one(cursor, "SELECT chain_seq, chain_hash FROM audit_events ORDER BY chain_seq DESC LIMIT 1")
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        event = {"channel": "api", "action": "reissue", "outcome": "success", "code": 0,
                 "partner_code": order.partner_code, "username": "api", "order_id": order_id,
                 "partner_order_id": order.partner_order_id, "certificate_serial": serial, "incident_id": None,
                 "detail": ""}
        link = json.dumps({"v": 1, "seq": seq, "prev": prev, "at": format_at(now), **event},
                          sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        columns = ", ".join(event)
        cursor.execute(store.sql(f"INSERT INTO audit_events (at, {columns}, chain_seq, chain_prev, chain_hash) "
                                 f"VALUES ({', '.join('?' * (len(event) + 4))})"),
                       (store.when(now), *event.values(), seq, prev, hashlib.sha256(link).hexdigest()))


# -- one key algorithm ------------------------------------------------------------------------------


@contextmanager
def installation(algorithm: str, database_url: str | None = None) -> Iterator[tuple[RegistrationAuthority, str]]:
    """A new installation whose CAs hold ``algorithm`` keys: (RA, database URL)."""
    with tempfile.TemporaryDirectory(prefix="soap-floor-") as data_dir:
        environ = {"SOAP_SERVICE_DATA_DIR": data_dir, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_hex(16),
                   "SOAP_SERVICE_CA_KEY_ALGORITHM": algorithm, "SOAP_SERVICE_LOG_LEVEL": "WARNING"}
        if database_url:
            environ["SOAP_SERVICE_DATABASE_URL"] = database_url
        settings = load_settings(environ)
        ra = RegistrationAuthority.from_settings(settings)
        try:
            initialize(ra)
            yield ra, settings.database_url
        finally:
            ra.close()


def measure(algorithm: str, count: int, database_url: str | None = None,
            progress: Callable[[str], None] = lambda _: None) -> Floor:
    """``count`` reissues with lint, then ``count`` without, on a new installation of ``algorithm``."""
    with installation(algorithm, database_url) as (ra, url):
        progress(f"floor {algorithm} on {make_url(url).get_backend_name()}: hierarchy built")
        code, password = "FLOOR" + secrets.token_hex(3).upper(), Secret(secrets.token_urlsafe(16))
        create_partner(ra, code=code, name="Floor", username="api", password=password)
        partner_order_id = "FLOOR-1"
        create_order(ra, NewOrder(partner_code=code, partner_order_id=partner_order_id, product=PRODUCT, names=NAMES,
                                  csr=new_csr(), contacts=(Contact("admin", "a@example.com"),
                                                           Contact("technical", "t@example.com"))))
        ra.prepare()
        with ra.sessions() as session:
            loaded = ra.authorities.issuing_ca(session, "GEOTRUST", ValidationLevel.DV)
        store = RawStore(url)
        try:
            with store.transaction() as cursor:
                partner_id = store.one(cursor, "SELECT id FROM partners WHERE code = ?", code)[0]
                term_end = store.one(cursor, "SELECT term_end FROM orders WHERE partner_order_id = ?",
                                     partner_order_id)[0]
            if isinstance(term_end, str):
                term_end = datetime.fromisoformat(term_end)
            term_end = term_end.replace(tzinfo=UTC) if term_end.tzinfo is None else term_end
            order = OrderKey(partner_id, code, partner_order_id)

            def once(csr_pem: str, lint: bool, phases: dict[str, list[float]]) -> float:
                cpu_started = time.thread_time()
                started = time.perf_counter()
                parsed = ra.key_policy.check_csr(parse_csr(csr_pem))
                t_parse = time.perf_counter()
                now = datetime.now(UTC)
                not_before, not_after = validity_window("DV", now, term_end)
                request = LeafRequest(level=ValidationLevel.DV, public_key=parsed.public_key, dns_names=NAMES,
                                      organization=None, not_before=not_before, not_after=not_after,
                                      serial=new_serial())
                ca = loaded.issuing
                trial = trial_certificate(leaf_builder(request, ca.certificate, ca.name, ra.settings.public_url),
                                          ca.signer)
                t_build = time.perf_counter()
                if lint and ra.linter.findings(trial, ValidationLevel.DV):
                    raise RuntimeError("the linter refused the bench's leaf")
                t_lint = time.perf_counter()
                leaf = sign_trial(trial, ca.signer, ca.certificate)
                t_sign = time.perf_counter()
                write_reissue(store, order, loaded.id, leaf, csr_pem, parsed.sha256, parsed.spki_sha256, now)
                ended = time.perf_counter()
                for name, seconds in (("parse", t_parse - started), ("build", t_build - t_parse),
                                      ("lint", t_lint - t_build), ("sign", t_sign - t_lint), ("db", ended - t_sign),
                                      ("cpu", time.thread_time() - cpu_started)):
                    phases[name].append(seconds * 1000)
                return (ended - started) * 1000

            runs: dict[bool, tuple[list[float], dict[str, list[float]]]] = {}
            for lint in (True, False):
                csrs = [new_csr() for _ in range(count + 5)]
                phases: dict[str, list[float]] = {name: [] for name in ("parse", "build", "lint", "sign", "db", "cpu")}
                for csr_pem in csrs[:5]:  # warm-up: caches, the key's first use
                    once(csr_pem, lint, {name: [] for name in phases})
                totals = [once(csr_pem, lint, phases) for csr_pem in csrs[5:]]
                runs[lint] = (totals, phases)
        finally:
            store.close()
    totals, phases = runs[True]
    middle = statistics.median
    return Floor(algorithm=algorithm, backend=make_url(url).get_backend_name(), count=count,
                 parse_ms=middle(phases["parse"]), build_ms=middle(phases["build"]), lint_ms=middle(phases["lint"]),
                 sign_ms=middle(phases["sign"]), db_ms=middle(phases["db"]), total_ms=middle(totals),
                 total_nolint_ms=middle(runs[False][0]), mean_ms=statistics.mean(totals),
                 cpu_ms=middle(phases["cpu"]), cpu_nolint_ms=middle(runs[False][1]["cpu"]))


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def format_floor(floor: Floor, n_cores: int) -> str:
    return (f"{floor.algorithm:<11} {floor.backend:<10} n={floor.count:<4} {floor.total_ms:6.2f} ms "
            f"(parse {floor.parse_ms:4.2f}, build {floor.build_ms:4.2f}, lint {floor.lint_ms:5.2f}, "
            f"sign {floor.sign_ms:5.2f}, db {floor.db_ms:4.2f}; mean {floor.mean_ms:6.2f}; CPU {floor.cpu_ms:5.2f})  "
            f"{floor.throughput(n_cores):6.1f}/s on {n_cores} cores"
            f"  | no lint {floor.total_nolint_ms:6.2f} ms (CPU {floor.cpu_nolint_ms:5.2f}) "
            f"{floor.throughput(n_cores, lint=False):6.1f}/s")


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url``'s server, dropped on exit (as tests/conftest.py does)."""
    from sqlalchemy import create_engine, text

    name = "soap_bench_" + secrets.token_hex(4)
    server = make_url(server_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=150, help="timed reissues per run (default 150)")
    parser.add_argument("--algorithms", default=",".join(KEY_ALGORITHM_NAMES),
                        help=f"CA key algorithms, comma-separated (default all: {', '.join(KEY_ALGORITHM_NAMES)})")
    parser.add_argument("--postgres", metavar="URL", help="also measure the default algorithm on a new database "
                        "of this server, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n_cores = cores()
    for algorithm in args.algorithms.split(","):
        print(format_floor(measure(algorithm, args.count), n_cores), flush=True)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            print(format_floor(measure(DEFAULT_ALGORITHM, args.count, url), n_cores), flush=True)
    print(f"({Path(sys.executable).name}; ms are medians per reissue on one core, phases each their own median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
