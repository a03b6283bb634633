"""Scale curve: does the cost of a Reissue, a CRL and a GetModifiedOrders page grow with the database?

    .venv/bin/python bench/scale_curve.py [--sizes 1000,100000,1000000] [--revoked 10000,100000]
    .venv/bin/python bench/scale_curve.py --quick        # sizes 1000,20000; revoked 2000

PostgreSQL only: makes a fresh database per size on the server of ``--server`` (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), installs the schema and the CA hierarchy
in each (``soap-service init``'s ``initialize``), and drops them at the end, whatever happens.
About 10 minutes for the default sizes on a busy 2-CPU machine (the 1M load about 4 of them),
a minute and a half with ``--quick`` (which also measures 100 reissues a size, not 200).

1. **Reissue at each size.** Each database is filled to its size (certificates already in
   it), in bulk, by ``INSERT ... SELECT ... FROM generate_series`` through the raw driver (psycopg),
   with triggers off for the load (``session_replication_role = replica``: the rows are consistent
   by construction, and no foreign-key check per row): partners (about 250 orders each, and one
   large partner with a tenth of all orders) with their API user; orders (four TLS products over
   the four brands, 9 % of them past their term) with two validated names and two contacts each;
   two certificates per order (the first, and a reissue that replaced it and is the order's current
   one), each with a distinct random 159-bit serial, its own key digest, and the PEM of one real
   certificate and CSR reused (realistic row size, TOAST and index shape); the issued serials;
   one change-feed row and one audit event per certificate. Then ``VACUUM ANALYZE``. At each
   size, ``--count`` (200) distinct in-term orders are reissued in process, as the tests use the RA
   (``Reissuer.reissue_by_operator``), each with a new P-256 key's CSR made before the clock starts;
   the median and p95 are printed. One more reissue runs with a SQLAlchemy ``before_cursor_execute``
   listener that records every statement; each is EXPLAINed with its parameters, and a sequential
   scan of a table over 10,000 rows is printed with the query and the plan (a missing index, or
   the planner's choice on a table still small); each plain SELECT is also run under EXPLAIN
   ANALYZE (rolled back), and one that reads over 1,000 rows and ten times the rows it answers is
   printed with its plan (a cost that grows with the data).
   Each size has its own database, all loaded first; the reissues then go round them (one on
   each size, then the next round), so that the machine's other work weighs on every size alike.
2. **Revoked certificates.** On the database of the largest size, ``--revoked`` certificates of the
   issuing CA with the most certificates are revoked (in bulk, with their "revoked" change-feed
   rows, dated over the last 29 days); at each count: the time to make that CA's CRL anew
   (``ra.crls.CRLPublisher.current_crl`` of a new publisher: state, entries, number, signature),
   the time of a cached fetch (the state query alone), and the time of a GetModifiedOrders page
   (``ra.changes.modified_orders``, 500 changes, over the last 30 days, of the large partner;
   authentication cached). Their statements are EXPLAINed as the reissue's are.
3. A table of size -> median / p95 ms, and a last line ``scale_flat=yes`` when the median reissue
   at the largest size is within 1.5 times the median at the smallest, else ``scale_flat=no``.

The machine's other work makes the figures noisy: compare sizes within one run. ``--keep`` leaves
the databases in place (their names printed) to look at them with psql. Not run by the tests.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from soap_service.ca.hierarchy import issuing_ca_name
from soap_service.config import Secret, load_settings
from soap_service.ra.auth import Credentials
from soap_service.ra.changes import modified_orders
from soap_service.ra.crls import CRLPublisher
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.vocabulary import Brand

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LARGE_TABLE_ROWS = 10_000
FLAT_RATIO = 1.5
CRL_TIME_BUDGET = 20.0
PAGE_REPEATS = 12
ORDERS_PER_PARTNER = 250
BIG_PARTNER = "SCALE"
"""The partner made through the RA (its password known): a tenth of every bulk load's orders are its."""

TLS_PRODUCTS = (("RAPIDSSL", "RapidSSL"), ("GEOTRUST", "QuickSSLPremium"), ("THAWTE", "SSL123"),
                ("SYMANTEC", "SecureSite"))
"""(brand, product) of the bulk orders; SecureSite is OV, and its orders carry an organization."""


# --- the data -------------------------------------------------------------------------------------


def new_csr(names: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def bulk_names(order_pk: int) -> list[str]:
    """The validated names of a bulk order (as ``BULK_SQL`` writes them)."""
    return [f"o{order_pk}.example.com", f"www.o{order_pk}.example.com"]


@dataclass(frozen=True)
class Seed:
    """What the bulk rows copy from rows the RA made: a real certificate and CSR, a password hash."""

    certificate_pem: str
    csr_pem: str
    password_hash: str
    password: str
    big_partner_id: int
    ca_ids: dict[str, int]  # brand -> its TLS issuing CA's id


BULK_TABLES = ("partners", "api_users", "orders", "order_names", "order_contacts", "certificates",
               "issued_serials", "order_changes", "audit_events")

BULK_SQL = [
    # Partners, with their API user (the same password hash as the seed's).
    """INSERT INTO partners (id, code, name, status, created_at)
       SELECT %(pb)s + g, 'BULK' || (%(pb)s + g), 'Bulk partner ' || (%(pb)s + g), 'active',
              now() - interval '3 years'
       FROM generate_series(1, %(np)s::bigint) g""",
    """INSERT INTO api_users (partner_id, username, password_hash, status, created_at)
       SELECT %(pb)s + g, 'api', %(password_hash)s, 'active', now() - interval '3 years'
       FROM generate_series(1, %(np)s::bigint) g""",
    # Orders: a tenth of them the large partner's; terms started over the last 400 days (365 long).
    """INSERT INTO orders (id, order_id, partner_id, partner_order_id, brand_code, product_code, status,
                           term_start, term_end, organization_name, country, state, locality,
                           current_certificate_id, version, created_at, updated_at)
       SELECT %(ob)s + g, (10000000000 + %(ob)s + g)::text,
              CASE WHEN g %% 10 = 0 THEN %(big)s ELSE %(pb)s + 1 + g %% %(np)s END,
              'PO-' || (%(ob)s + g), p.brand, p.product, 'COMPLETED', t.start, t.start + interval '365 days',
              CASE WHEN p.ov THEN 'Example Corporation' END, CASE WHEN p.ov THEN 'US' END,
              CASE WHEN p.ov THEN 'California' END, CASE WHEN p.ov THEN 'San Francisco' END,
              %(cb)s + 2 * g, 3, t.start, least(now(), t.start + interval '60 days')
       FROM generate_series(1, %(no)s::bigint) g
       CROSS JOIN LATERAL (SELECT now() - ((g * 7919) %% 400) * interval '1 day'
                                        - (g %% 86400) * interval '1 second' AS start) t
       JOIN (VALUES (0, 'RAPIDSSL', 'RapidSSL', false), (1, 'GEOTRUST', 'QuickSSLPremium', false),
                    (2, 'THAWTE', 'SSL123', false), (3, 'SYMANTEC', 'SecureSite', true))
            p(i, brand, product, ov) ON p.i = (g %% 7) %% 4""",
    """INSERT INTO order_names (order_pk, name, position)
       SELECT %(ob)s + g, n.prefix || 'o' || (%(ob)s + g) || '.example.com', n.pos
       FROM generate_series(1, %(no)s::bigint) g CROSS JOIN (VALUES ('', 0), ('www.', 1)) n(prefix, pos)""",
    """INSERT INTO order_contacts (order_pk, role, email, first_name, last_name, phone)
       SELECT %(ob)s + g, c.role, c.role || (%(ob)s + g) || '@example.com', 'Alex', 'Example', '+1 555 0100'
       FROM generate_series(1, %(no)s::bigint) g CROSS JOIN (VALUES ('admin'), ('technical')) c(role)""",
    # Two certificates per order: the first, and the reissue that replaced it (the current one).
    """INSERT INTO certificates (id, order_pk, ca_id, serial, subject, names, not_before, not_after, pem,
                                 spki_sha256, csr_pem, csr_sha256, status, revoked_at, revocation_reason,
                                 replaces_id, issued_at)
       SELECT %(cb)s + 2 * (o.id - %(ob)s) - 1 + k.k, o.id, ca.id,
              '5' || md5(random()::text || o.id || k.k) || substr(md5(random()::text), 1, 7),
              'CN=o' || o.id || '.example.com', 'o' || o.id || E'.example.com\\nwww.o' || o.id || '.example.com',
              v.nb, least(o.term_end, v.nb + interval '199 days'), %(pem)s,
              encode(sha256(convert_to('spki' || o.id || '/' || k.k || random()::text, 'UTF8')), 'hex'),
              %(csr)s, encode(sha256(convert_to('csr' || o.id || '/' || k.k || random()::text, 'UTF8')), 'hex'),
              'VALID', NULL, NULL, CASE WHEN k.k = 1 THEN %(cb)s + 2 * (o.id - %(ob)s) - 1 END, v.nb
       FROM orders o
       JOIN (VALUES ('RAPIDSSL', %(ca_RAPIDSSL)s::bigint), ('GEOTRUST', %(ca_GEOTRUST)s::bigint),
                    ('THAWTE', %(ca_THAWTE)s::bigint), ('SYMANTEC', %(ca_SYMANTEC)s::bigint)) ca(brand, id)
            ON ca.brand = o.brand_code
       CROSS JOIN (VALUES (0), (1)) k(k)
       CROSS JOIN LATERAL (SELECT o.term_start + k.k * least(interval '120 days', (now() - o.term_start) / 2)
                           AS nb) v
       WHERE o.id > %(ob)s AND o.id <= %(ob)s + %(no)s""",
    """INSERT INTO issued_serials (ca_id, serial, reserved_at)
       SELECT ca_id, serial, issued_at FROM certificates WHERE id > %(cb)s ORDER BY id""",
    """INSERT INTO order_changes (partner_id, order_pk, at, change, certificate_serial)
       SELECT o.partner_id, c.order_pk, c.issued_at,
              CASE WHEN c.replaces_id IS NULL THEN 'issued' ELSE 'reissued' END, c.serial
       FROM certificates c JOIN orders o ON o.id = c.order_pk
       WHERE c.id > %(cb)s ORDER BY c.issued_at, c.id""",
    # One audit event per certificate, chained on fake hashes (nothing here verifies the chain).
    """INSERT INTO audit_events (at, channel, action, outcome, code, partner_code, username, order_id,
                                 partner_order_id, certificate_serial, incident_id, detail, chain_seq,
                                 chain_prev, chain_hash)
       SELECT c.issued_at, 'api', CASE WHEN c.replaces_id IS NULL THEN 'order.create' ELSE 'reissue' END,
              'success', 0, p.code, 'api', o.order_id, o.partner_order_id, c.serial, NULL,
              'names=' || replace(c.names, E'\\n', ','),
              %(seq)s + row_number() OVER (ORDER BY c.issued_at, c.id), md5(c.serial), md5(c.serial || 'h')
       FROM certificates c JOIN orders o ON o.id = c.order_pk JOIN partners p ON p.id = o.partner_id
       WHERE c.id > %(cb)s""",
]


class Database:
    """The benchmark's database through the raw driver (autocommit; one transaction per load)."""

    def __init__(self, url: URL, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.connection = psycopg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        )

    def value(self, query: str, params: dict[str, Any] | None = None) -> Any:
        row = self.connection.execute(query, params).fetchone()
        return None if row is None else row[0]

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.connection.execute(query, params).fetchall()

    def count(self, table: str) -> int:
        return int(self.value(f"SELECT count(*) FROM {table}"))

    def grow(self, seed: Seed, certificates: int) -> float:
        """Add bulk orders until the database holds ``certificates`` certificates (two per order)."""
        orders = max(0, certificates - self.count("certificates") + 1) // 2
        if orders == 0:
            return 0.0
        start = time.perf_counter()
        params: dict[str, Any] = {
            "pb": self.value("SELECT coalesce(max(id), 0) FROM partners"),
            "np": max(1, orders // ORDERS_PER_PARTNER),
            "ob": self.value("SELECT coalesce(max(id), 0) FROM orders"),
            "cb": self.value("SELECT coalesce(max(id), 0) FROM certificates"),
            "seq": self.value("SELECT coalesce(max(chain_seq), 0) FROM audit_events"),
            "no": orders,
            "big": seed.big_partner_id,
            "password_hash": seed.password_hash,
            "pem": seed.certificate_pem,
            "csr": seed.csr_pem,
            **{f"ca_{brand}": ca_id for brand, ca_id in seed.ca_ids.items()},
        }
        with self.connection.transaction():
            self.connection.execute("SET LOCAL session_replication_role = replica")
            self.connection.execute("SET LOCAL maintenance_work_mem = '256MB'")
            # The plain indexes (not those of a constraint) are dropped and made again after the load:
            # a sort instead of a million random B-tree inserts each; the same definitions.
            indexes = self.rows(
                """SELECT i.indexname, i.indexdef FROM pg_indexes i
                   WHERE i.schemaname = 'public' AND i.tablename = ANY(%(tables)s)
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
                {"tables": list(BULK_TABLES)},
            )
            # So are the unique constraints that no foreign key refers to (their random keys above all).
            uniques = self.rows(
                """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
                   WHERE c.contype = 'u' AND c.conrelid::regclass::text = ANY(%(tables)s)
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                                     WHERE f.contype = 'f' AND f.conindid = c.conindid)""",
                {"tables": list(BULK_TABLES)},
            )
            for name, _definition in indexes:
                self.connection.execute(f'DROP INDEX "{name}"')
            for table, name, _definition in uniques:
                self.connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for statement in BULK_SQL:
                began = time.perf_counter()
                self.connection.execute(statement, params)
                if self.verbose:
                    print(f"#     {time.perf_counter() - began:6.1f} s  {' '.join(statement.split())[:60]}")
            remade = [(name, definition) for name, definition in indexes] + [
                (name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                for table, name, definition in uniques
            ]
            for name, definition in remade:
                began = time.perf_counter()
                self.connection.execute(definition)
                if self.verbose:
                    print(f"#     {time.perf_counter() - began:6.1f} s  index {name}")
            for table in ("partners", "orders", "certificates"):
                self.connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
        for table in BULK_TABLES:
            began = time.perf_counter()
            self.connection.execute(f"VACUUM ANALYZE {table}")
            if self.verbose:
                print(f"#     {time.perf_counter() - began:6.1f} s  VACUUM ANALYZE {table}")
        return time.perf_counter() - start

    def revoke(self, ca_id: int, count: int) -> int:
        """Revoke (in bulk) certificates of the CA that its CRL lists, until ``count`` are; the
        "revoked" change-feed rows with them. Returns how many are revoked."""
        revoked = int(self.value(
            "SELECT count(*) FROM certificates WHERE ca_id = %(ca)s AND status = 'REVOKED'", {"ca": ca_id}
        ))
        more = count - revoked
        if more > 0:
            with self.connection.transaction():
                self.connection.execute(
                    """WITH chosen AS (
                           SELECT id FROM certificates
                           WHERE ca_id = %(ca)s AND status = 'VALID' AND not_after > now()
                           ORDER BY (id * 2654435761) %% 1000003 LIMIT %(more)s),
                       revoked AS (
                           UPDATE certificates c SET status = 'REVOKED',
                                  revoked_at = date_trunc('second', now() - random() * interval '29 days'),
                                  revocation_reason = (ARRAY['unspecified', 'keyCompromise', 'superseded',
                                                             'cessationOfOperation'])[1 + c.id %% 4]
                           FROM chosen WHERE c.id = chosen.id
                           RETURNING c.id, c.order_pk, c.serial, c.revoked_at, c.revocation_reason)
                       INSERT INTO order_changes (partner_id, order_pk, at, change, certificate_serial, detail)
                       SELECT o.partner_id, r.order_pk, r.revoked_at, 'revoked', r.serial, r.revocation_reason
                       FROM revoked r JOIN orders o ON o.id = r.order_pk ORDER BY r.revoked_at, r.id""",
                    {"ca": ca_id, "more": more},
                )
            self.connection.execute("VACUUM ANALYZE certificates")
            self.connection.execute("VACUUM ANALYZE order_changes")
        return int(self.value(
            "SELECT count(*) FROM certificates WHERE ca_id = %(ca)s AND status = 'REVOKED'", {"ca": ca_id}
        ))

    def reissuable_orders(self, count: int) -> list[tuple[str, str, int]]:
        """(partner code, PartnerOrderID, order pk) of ``count`` random in-term bulk orders."""
        rows = self.rows(
            """SELECT p.code, o.partner_order_id, o.id FROM orders o JOIN partners p ON p.id = o.partner_id
               WHERE o.partner_order_id LIKE 'PO-%%' AND o.status = 'COMPLETED'
                 AND o.term_start < now() - interval '1 day' AND o.term_end > now() + interval '1 day'
               ORDER BY random() LIMIT %(n)s""",
            {"n": count},
        )
        return [(code, poid, pk) for code, poid, pk in rows]

    def large_tables(self) -> set[str]:
        return {
            name for name, tuples in self.rows("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")
            if tuples > LARGE_TABLE_ROWS
        }

    def close(self) -> None:
        self.connection.close()


# --- the installation ------------------------------------------------------------------------------


@contextmanager
def fresh_database(server: str, *, keep: bool = False) -> Iterator[URL]:
    """A new database on the server, dropped at the end (with its connections) unless ``keep``."""
    server_url = make_url(server)
    if server_url.get_backend_name() != "postgresql":
        raise SystemExit("bench/scale_curve.py measures PostgreSQL only: give a postgresql+psycopg:// URL")
    name = f"soap_service_scale_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name)
    finally:
        if keep:
            print(f"# kept: {server_url.set(database=name).render_as_string()}", flush=True)
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_installation(ra: RegistrationAuthority, database: Database) -> Seed:
    """The large partner and one real order, made by the RA; what the bulk rows copy."""
    password = secrets.token_urlsafe(16)
    create_partner(ra, code=BIG_PARTNER, name="Scale curve", username="api", password=Secret(password))
    names = ["seed.example.com", "www.seed.example.com"]
    outcome = create_order(ra, NewOrder(
        partner_code=BIG_PARTNER, partner_order_id="SEED-1", product="QuickSSLPremium", names=tuple(names),
        csr=new_csr(names), contacts=(Contact("admin", "a@example.com"), Contact("technical", "t@example.com")),
    ))
    row = database.rows(
        """SELECT c.csr_pem, u.password_hash, p.id FROM certificates c JOIN orders o ON o.id = c.order_pk
           JOIN partners p ON p.id = o.partner_id JOIN api_users u ON u.partner_id = p.id
           WHERE c.serial = %(serial)s""",
        {"serial": outcome.certificate.serial},
    )[0]
    ca_ids = {
        brand.value: int(database.value(
            "SELECT id FROM certificate_authorities WHERE name = %(name)s", {"name": issuing_ca_name(brand, "tls")}
        ))
        for brand in Brand
    }
    return Seed(certificate_pem=outcome.certificate.pem, csr_pem=row[0], password_hash=row[1],
                password=password, big_partner_id=int(row[2]), ca_ids=ca_ids)


# --- what a use case asks the database -----------------------------------------------------------


@dataclass
class Statements:
    """The statements an engine ran while :meth:`recording` (SQLAlchemy's before_cursor_execute)."""

    engine: Engine
    seen: list[tuple[str, Any]] = field(default_factory=list)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                executemany: bool) -> None:
        self.seen.append((statement, parameters[0] if executemany and parameters else parameters))

    @contextmanager
    def recording(self) -> Iterator[None]:
        self.seen = []
        event.listen(self.engine, "before_cursor_execute", self._record)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", self._record)


@dataclass(frozen=True)
class SeqScan:
    """A statement whose plan scans a large table sequentially, or (``table`` empty) a read-only
    statement that, run, read far more rows than it answered: a cost that grows with the data."""

    where: str
    table: str
    statement: str
    plan: str
    rows_read: int = 0
    rows_answered: int = 0


EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")
MANY_ROWS = 1000
"""A read-only statement that reads more rows than this, and ten times more than it answers, is shown."""


def seq_scans(database: Database, where: str, seen: list[tuple[str, Any]]) -> tuple[int, list[SeqScan]]:
    """EXPLAIN each statement with its parameters: the sequential scans of a large table; and
    EXPLAIN ANALYZE each read-only one (a plain SELECT, rolled back): those that read many rows."""
    large = database.large_tables()
    found: list[SeqScan] = []
    explained = 0
    shown: set[str] = set()
    for statement, parameters in seen:
        flat = " ".join(statement.split())
        if not flat.upper().startswith(EXPLAINABLE) or flat in shown:
            continue  # SAVEPOINT, RELEASE, ...; a statement run twice is shown once
        shown.add(flat)
        with database.connection.transaction(force_rollback=True):
            plan = database.value("EXPLAIN (FORMAT JSON) " + statement, parameters)[0]["Plan"]
            plan_text = "\n".join(r[0] for r in database.rows("EXPLAIN " + statement, parameters))
        explained += 1
        for table in sorted(set(_seq_scanned(plan)) & large):
            found.append(SeqScan(where, table, flat, plan_text))
        read_only = flat.upper().startswith("SELECT") and " FOR " not in flat.upper() and "advisory" not in flat
        if not read_only:
            continue
        with database.connection.transaction(force_rollback=True):
            analyzed = database.value("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)[0]["Plan"]
            analyzed_text = "\n".join(r[0] for r in database.rows("EXPLAIN (ANALYZE, BUFFERS) " + statement,
                                                                   parameters))
        read, answered = sum(_rows_read(analyzed)), int(analyzed["Actual Rows"])
        if read > MANY_ROWS and read > 10 * (answered + 1):
            found.append(SeqScan(where, "", flat, analyzed_text, read, answered))
    return explained, found


def _seq_scanned(node: dict[str, Any]) -> Iterator[str]:
    if node.get("Node Type") == "Seq Scan":
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _seq_scanned(child)


def _rows_read(node: dict[str, Any]) -> Iterator[int]:
    """The rows each scan of the plan read: kept and filtered out, over all its loops."""
    if node.get("Node Type") in SCANS:
        loops = int(node.get("Actual Loops", 1))
        yield (int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))) * loops
    for child in node.get("Plans", []):
        yield from _rows_read(child)


# --- the measurements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    label: str
    median_ms: float
    p95_ms: float
    runs: int
    note: str = ""


def figures(label: str, seconds: list[float], note: str = "") -> Figures:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, max(0, int(len(ms) * 0.95 + 0.5) - 1))]
    return Figures(label, statistics.median(ms), p95, len(ms), note)


@dataclass
class Installation:
    """One database of the run, grown to ``size`` certificates, with its RA."""

    size: int
    ra: RegistrationAuthority
    database: Database
    seed: Seed
    statements: Statements
    load_seconds: float = 0.0
    seconds: list[float] = field(default_factory=list)


def measure_reissues(installations: list[Installation], count: int) -> tuple[list[Figures], list[SeqScan], int]:
    """``count`` reissues of distinct in-term orders on each installation, taken in turns (one on
    each, then the next round), so that the machine's other work weighs on every size alike."""
    rounds: list[list[tuple[Reissuer, str, ReissueRequest]]] = []
    for inst in installations:
        chosen = inst.database.reissuable_orders(count + 2)
        if len(chosen) < count + 2:
            raise SystemExit(f"only {len(chosen)} in-term orders to reissue at {inst.size:,} certificates")
        reissuer = Reissuer(inst.ra)
        rounds.append([(reissuer, code, ReissueRequest(poid, new_csr(bulk_names(pk)))) for code, poid, pk in chosen])
    scans: list[SeqScan] = []
    explained = 0
    for inst, requests in zip(installations, rounds, strict=True):
        (reissuer, warm_code, warm), (_, traced_code, traced) = requests[0], requests[1]
        reissuer.reissue_by_operator(warm_code, warm)
        with inst.statements.recording():
            reissuer.reissue_by_operator(traced_code, traced)
        count_explained, found = seq_scans(inst.database, f"reissue at {inst.size:,}", inst.statements.seen)
        explained += count_explained
        scans += found
    for i in range(2, count + 2):
        for inst, requests in zip(installations, rounds, strict=True):
            reissuer, code, request = requests[i]
            start = time.perf_counter()
            reissuer.reissue_by_operator(code, request)
            inst.seconds.append(time.perf_counter() - start)
    results = [figures(f"reissue, {inst.size:,} certificates", inst.seconds,
                       f"bulk load {inst.load_seconds:.0f} s") for inst in installations]
    return results, scans, explained


def measure_revoked(inst: Installation, revoked: int, repeats: int) -> tuple[list[Figures], list[SeqScan], int]:
    """The CRL and GetModifiedOrders figures once ``revoked`` certificates of one CA are revoked.
    CRLs are made ``repeats`` times, fewer when they take over :data:`CRL_TIME_BUDGET` seconds in all."""
    ra, database, statements, seed = inst.ra, inst.database, inst.statements, inst.seed
    counts = database.rows(
        "SELECT ca_id, count(*) FROM certificates WHERE ca_id = ANY(%(ids)s) GROUP BY ca_id ORDER BY 2 DESC",
        {"ids": list(seed.ca_ids.values())},
    )
    ca_id = counts[0][0]
    brand = next(b for b, i in seed.ca_ids.items() if i == ca_id)
    ca_name = issuing_ca_name(Brand(brand), "tls")
    actual = database.revoke(ca_id, revoked)
    note = "" if actual >= revoked else f"only {actual:,} unexpired certificates of {ca_name} to revoke"
    made, cached, entries = [], [], 0
    seen: list[tuple[str, Any]] = []
    for i in range(repeats):
        publisher = CRLPublisher(ra)
        publisher.ca_certificate(ca_name)  # the CA records, loaded once per publisher
        with statements.recording() if i == 0 else _nothing():
            start = time.perf_counter()
            crl = publisher.current_crl(ca_name)
            made.append(time.perf_counter() - start)
        if i == 0:
            seen += statements.seen
            entries = len(x509.load_der_x509_crl(crl.der))
        for _ in range(5):
            start = time.perf_counter()
            publisher.current_crl(ca_name)
            cached.append(time.perf_counter() - start)
        if sum(made) > CRL_TIME_BUDGET:
            break
    credentials = Credentials(BIG_PARTNER, "api", Secret(seed.password))
    now = datetime.now(UTC)
    window = (now - timedelta(days=30), now)
    first = modified_orders(ra, credentials, *window, channel="api", page_size=500)  # authenticates, cached after
    in_window = int(database.value(
        "SELECT count(*) FROM order_changes WHERE partner_id = %(p)s AND at >= %(f)s AND at < %(t)s",
        {"p": seed.big_partner_id, "f": window[0], "t": window[1]},
    ))
    after = first.changes[-1].change_id if first.more and first.changes else None
    pages, later = [], []
    for i in range(PAGE_REPEATS):
        with statements.recording() if i == 0 else _nothing():
            start = time.perf_counter()
            modified_orders(ra, credentials, *window, channel="api", page_size=500)
            pages.append(time.perf_counter() - start)
        if i == 0:
            seen += statements.seen
        if after is not None:
            with statements.recording() if i == 0 else _nothing():
                start = time.perf_counter()
                modified_orders(ra, credentials, *window, channel="api", page_size=500, after_change_id=after)
                later.append(time.perf_counter() - start)
            if i == 0:
                seen += statements.seen
    explained, scans = seq_scans(database, f"CRL / GetModifiedOrders at {actual:,} revoked", seen)
    results = [
        figures(f"CRL made, {actual:,} revoked", made, f"{entries:,} entries; {note}".rstrip("; ")),
        figures(f"CRL cached fetch, {actual:,} revoked", cached),
        figures(f"GetModifiedOrders page 1, {actual:,} revoked", pages,
                f"{len(first.changes)} changes of {in_window:,} in the window"),
    ]
    if later:
        results.append(figures(f"GetModifiedOrders page 2, {actual:,} revoked", later))
    return results, scans, explained


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# --- the run ---------------------------------------------------------------------------------------


def sizes_of(text_value: str) -> list[int]:
    return sorted({int(part.replace("_", "")) for part in text_value.split(",") if part.strip()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="certificates in the database")
    parser.add_argument("--revoked", default="10000,100000", help="revoked certificates of one CA")
    parser.add_argument("--count", type=int, default=200, help="reissues measured at each size")
    parser.add_argument("--repeats", type=int, default=3, help="CRLs made at each revoked count (at most)")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,20000; revoked 2000; 100 reissues")
    parser.add_argument("--verbose", action="store_true", help="the time of each bulk statement")
    parser.add_argument("--keep", action="store_true", help="keep the databases (to look at them), not drop them")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server (SQLAlchemy URL)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.revoked, args.count = "1000,20000", "2000", 100
    sizes, revoked_counts = sizes_of(args.sizes), sizes_of(args.revoked)
    results: list[Figures] = []
    scans: list[SeqScan] = []
    began = time.perf_counter()
    installations: list[Installation] = []
    with ExitStack() as stack:
        for size in sizes:
            installations.append(
                stack.enter_context(installation(args.server, size, verbose=args.verbose, keep=args.keep))
            )
        found_figures, found, explained = measure_reissues(installations, args.count)
        results += found_figures
        scans += found
        print(f"# {explained} statements of a reissue EXPLAINed", flush=True)
        largest = installations[-1]
        for revoked in revoked_counts:
            found_figures, found, explained = measure_revoked(largest, revoked, args.repeats)
            results += found_figures
            scans += found
            for item in found_figures:
                print(f"#   {item.label}: median {item.median_ms:.1f} ms, p95 {item.p95_ms:.1f} ms", flush=True)
    print()
    print(f"{'measurement':<48} {'runs':>5} {'median ms':>10} {'p95 ms':>10}  note")
    for item in results:
        print(f"{item.label:<48} {item.runs:>5} {item.median_ms:>10.1f} {item.p95_ms:>10.1f}  {item.note}")
    print()
    for scan in scans:
        what = (f"SEQUENTIAL SCAN of {scan.table}" if scan.table
                else f"MANY ROWS READ: {scan.rows_read:,} read for {scan.rows_answered:,} answered")
        print(f"{what} ({scan.where}):\n  {scan.statement}\n{scan.plan}\n")
    if not [scan for scan in scans if scan.table]:
        print("no statement of a reissue, a CRL or a GetModifiedOrders page scans a large table sequentially")
    reissue = [item for item in results if item.label.startswith("reissue")]
    ratio = reissue[-1].median_ms / reissue[0].median_ms
    print(f"reissue median at {sizes[-1]:,} / at {sizes[0]:,}: {ratio:.2f} (flat if <= {FLAT_RATIO}); "
          f"run took {time.perf_counter() - began:.0f} s")
    print(f"scale_flat={'yes' if ratio <= FLAT_RATIO else 'no'}")
    return 0


@contextmanager
def installation(server: str, size: int, *, verbose: bool, keep: bool) -> Iterator[Installation]:
    """A fresh database with the schema, the CA hierarchy and ``size`` certificates; dropped at the end."""
    with fresh_database(server, keep=keep) as url, tempfile.TemporaryDirectory() as data_dir:
        environ = {
            "SOAP_SERVICE_DATA_DIR": data_dir,
            "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_hex(16),
            "SOAP_SERVICE_DATABASE_URL": url.render_as_string(hide_password=False),
            "SOAP_SERVICE_AUTH_CACHE_SECONDS": "600",
        }
        ra = RegistrationAuthority.from_settings(load_settings(environ))
        database = Database(url, verbose=verbose)
        try:
            initialize(ra)
            ra.prepare()
            seed = seed_installation(ra, database)
            loaded = database.grow(seed, size)
            print(f"# {database.count('certificates'):,} certificates ({database.count('orders'):,} orders, "
                  f"{database.count('partners'):,} partners); bulk load {loaded:.1f} s", flush=True)
            yield Installation(size, ra, database, seed, Statements(ra.engine), loaded)
        finally:
            database.close()
            ra.close()


if __name__ == "__main__":
    sys.exit(main())
