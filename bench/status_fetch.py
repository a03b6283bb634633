"""CRL fetch latency, cached and uncached (docs/design.md, "Status publication").

Makes a throw-away installation (SQLite in a temporary directory, or a new database on the
PostgreSQL server of ``--postgres``, dropped at the end) with ``--revoked`` revoked
certificates under GEOTRUST-TLS, then measures:

- in process (``ra.crls.CRLPublisher``): a fetch that makes a new CRL (the state query, the
  entries, the CRL number's write transaction, the signature) and a cached fetch (the state
  query alone);
- over loopback HTTP against ``soap-service serve`` (1 worker): ``GET /crl/GEOTRUST-TLS.crl``
  served from the cache, and the first fetch after a revocation (regenerated).

    .venv/bin/python bench/status_fetch.py [--revoked 50] [--fetches 300] [--postgres URL]

Not run by the tests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from soap_service.config import Secret, load_settings
from soap_service.ra.crls import CRLPublisher
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import Certificate
from soap_service.vocabulary import CertificateStatus

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from keyfactory import csr_pem, make_csr  # noqa: E402

CA = "GEOTRUST-TLS"
PATH = f"/crl/{CA}.crl"


def report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(f"{label:58s} n={len(samples):4d}  p50 {statistics.median(ordered):7.2f} ms  p95 {p95:7.2f} ms")


def issue(ra: RegistrationAuthority, partner: str, count: int) -> list[str]:
    serials = []
    for _ in range(count):
        csr = csr_pem(make_csr(ec.generate_private_key(ec.SECP256R1()), names=("example.com",)))
        outcome = create_order(ra, NewOrder(
            partner_code=partner, partner_order_id="B-" + secrets.token_hex(5), product="QuickSSLPremium",
            names=("example.com",), csr=csr, contacts=(Contact("admin", "a@example.com"),
                                                       Contact("technical", "t@example.com"))))
        serials.append(outcome.certificate.serial)
    return serials


def revoke(ra: RegistrationAuthority, serials: list[str]) -> None:
    with ra.sessions() as session, session.begin():
        session.execute(update(Certificate).where(Certificate.serial.in_(serials)).values(
            status=CertificateStatus.REVOKED, revoked_at=ra.clock(), revocation_reason="keyCompromise"))


def bench(args: argparse.Namespace, environ: dict[str, str]) -> None:
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    initialize(ra)
    partner = "BENCH" + secrets.token_hex(3).upper()
    create_partner(ra, code=partner, name="Bench", username="api", password=Secret(secrets.token_urlsafe(18)))
    print(f"issuing {args.revoked + args.http_revocations} certificates ...", flush=True)
    revoke(ra, issue(ra, partner, args.revoked))
    spare = issue(ra, partner, args.http_revocations)

    uncached = CRLPublisher(ra, refresh_interval=timedelta(0))
    cached = CRLPublisher(ra)
    cached.current_crl(CA)
    samples = []
    for _ in range(args.fetches // 3):
        started = time.perf_counter()
        uncached.current_crl(CA)
        samples.append((time.perf_counter() - started) * 1000)
    report(f"in process, made anew ({args.revoked} entries, signed)", samples)
    samples = []
    for _ in range(args.fetches):
        started = time.perf_counter()
        cached.current_crl(CA)
        samples.append((time.perf_counter() - started) * 1000)
    report("in process, cached (one state query)", samples)

    listener = __import__("socket").socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")} | environ
    server = subprocess.Popen(
        [sys.executable, "-m", "soap_service.main", "serve", "--quiet", "--bind", f"fd://{listener.fileno()}",
         "--workers", "1", "--threads", "4"], env=env, cwd=REPO, pass_fds=[listener.fileno()])
    listener.close()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(600):
            try:
                connection.request("GET", PATH)
                connection.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def fetch() -> float:
            started = time.perf_counter()
            connection.request("GET", PATH)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            return (time.perf_counter() - started) * 1000

        report("HTTP GET, cached (keep-alive)", [fetch() for _ in range(args.fetches)])
        samples = []
        for serial in spare:
            revoke(ra, [serial])
            samples.append(fetch())
        report("HTTP GET, first fetch after a revocation (made anew)", samples)
    finally:
        server.terminate()
        server.wait(60)
        ra.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revoked", type=int, default=50, help="revoked certificates on the CRL (default 50)")
    parser.add_argument("--fetches", type=int, default=300)
    parser.add_argument("--http-revocations", type=int, default=30)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soap-bench-") as directory:
        environ = {"SOAP_SERVICE_DATA_DIR": directory, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_urlsafe(16),
                   "SOAP_SERVICE_LOG_LEVEL": "WARNING"}
        if args.postgres:
            name = "soap_bench_" + secrets.token_hex(4)
            admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            environ["SOAP_SERVICE_DATABASE_URL"] = make_url(args.postgres).set(database=name).render_as_string(
                hide_password=False)
        try:
            bench(args, environ)
        finally:
            if args.postgres:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
