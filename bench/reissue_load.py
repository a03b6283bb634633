"""Load benchmark: Reissue over loopback HTTP against a real ``soap-service serve``.

Makes a throw-away installation (SQLite in a temporary directory by default, or a new
database on the PostgreSQL server of ``--postgres``, dropped at the end), a partner and
one order per client thread, starts
gunicorn on a free loopback port and sends ``--requests`` Reissue calls, each with a
new key's CSR (made before the clock starts), from ``--concurrency`` threads over
keep-alive connections. Prints latency percentiles and throughput for Hello (the
SOAP stack alone), a replayed Reissue (same CSR: no signature) and a full Reissue.

    .venv/bin/python bench/reissue_load.py --requests 300 --concurrency 4 --workers 2

Not run by the tests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from soap_service.config import Secret, load_settings
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority

REPO = Path(__file__).resolve().parent.parent
NAMES = ("example.com", "www.example.com")
TNS = "urn:soap-service:order:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def new_csr(kind: str) -> str:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAMES[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def envelope(operation: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV}" xmlns:o="{TNS}">'
        f"<s:Body><o:{operation}>{inner}</o:{operation}></s:Body></s:Envelope>"
    ).encode()


def reissue_body(code: str, password: str, partner_order_id: str, csr: str) -> bytes:
    return envelope(
        "Reissue",
        f"<o:Request><o:OrderRequestHeader><o:PartnerCode>{code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>api</o:UserName><o:Password>{escape(password)}</o:Password></o:AuthToken>"
        f"<o:PartnerOrderID>{partner_order_id}</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters></o:Request>",
    )


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, action: str, body: bytes) -> float:
        started = time.perf_counter()
        self.connection.request("POST", "/api/order", body=body,
                                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
        response = self.connection.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200 or (action != "Hello" and b"<tns:SuccessCode>0<" not in answer):
            raise RuntimeError(f"{action} failed: HTTP {response.status}: {answer[:400]!r}")
        return elapsed


def run(label: str, port: int, bodies: list[list[tuple[str, bytes]]]) -> None:
    """Send each thread's list of (action, body); print percentiles and throughput."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[Exception] = []

    def worker(items: list[tuple[str, bytes]]) -> None:
        client = Client(port)
        mine: list[float] = []
        try:
            for action, body in items:
                mine.append(client.call(action, body))
        except (OSError, RuntimeError, http.client.HTTPException) as error:  # reported below
            errors.append(error)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(items,)) for items in bodies]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{label}: {errors[0]}")
    ms = sorted(x * 1000 for x in latencies)
    quantiles = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"{label:<34} n={len(ms):<5} p50={quantiles[49]:7.1f} ms  p95={quantiles[94]:7.1f} ms  "
          f"p99={quantiles[98]:7.1f} ms  max={ms[-1]:7.1f} ms  {len(ms) / wall:7.1f} req/s")


def free_listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    listener.set_inheritable(True)
    return listener


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="Reissue calls in all (default 200)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads, one order each (default 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec", help="the subscriber key of each CSR")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL server (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) "
                             "on which to create the benchmark's own database instead of a SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soap-bench-") as directory:
        environ = {
            "SOAP_SERVICE_DATA_DIR": directory,
            "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_urlsafe(16),
            "SOAP_SERVICE_LOG_LEVEL": "WARNING",
        }
        if args.postgres:
            environ["SOAP_SERVICE_DATABASE_URL"] = create_database(args.postgres)
        try:
            return bench(args, environ)
        finally:
            if args.postgres:
                drop_database(args.postgres, environ["SOAP_SERVICE_DATABASE_URL"])


def create_database(server_url: str) -> str:
    name = "soap_bench_" + secrets.token_hex(4)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(environ: dict[str, str], order_count: int) -> tuple[str, str, list[str]]:
    """A new installation with a bench partner and ``order_count`` DV orders:
    (partner code, password, PartnerOrderIDs)."""
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    initialize(ra)
    code, password = "BENCH" + secrets.token_hex(3).upper(), secrets.token_urlsafe(18)
    create_partner(ra, code=code, name="Bench", username="api", password=Secret(password))
    orders = []
    for _ in range(order_count):
        partner_order_id = "BENCH-" + secrets.token_hex(4)
        contacts = (Contact("admin", "a@example.com"), Contact("technical", "t@example.com"))
        create_order(ra, NewOrder(partner_code=code, partner_order_id=partner_order_id, product="QuickSSLPremium",
                                  names=NAMES, csr=new_csr("ec"), contacts=contacts))
        orders.append(partner_order_id)
    ra.close()
    return code, password, orders


def bench(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Set up the installation, start the server, run the four series."""
    code, password, orders = seed(environ, args.concurrency)

    per_thread = max(1, args.requests // args.concurrency)
    print(f"making {per_thread * args.concurrency} {args.key.upper()} CSRs ...", flush=True)
    csrs = [[new_csr(args.key) for _ in range(per_thread + 1)] for _ in orders]

    listener = free_listener()
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")} | environ
    command = [sys.executable, "-m", "soap_service.main", "serve", "--quiet", "--bind", f"fd://{listener.fileno()}",
               "--workers", str(args.workers), "--threads", str(args.threads)]
    server = subprocess.Popen(command, env=env, cwd=REPO, pass_fds=[listener.fileno()])
    listener.close()
    try:
        Client(port).call("Hello", envelope("Hello", "<o:Input>up</o:Input>"))
        plan = list(zip(orders, csrs, strict=True))

        def each(make: Callable[[str, list[str]], list[tuple[str, bytes]]]) -> list[list[tuple[str, bytes]]]:
            return [make(order, order_csrs) for order, order_csrs in plan]

        def replay(order: str, order_csrs: list[str], times: int) -> list[tuple[str, bytes]]:
            return [("Reissue", reissue_body(code, password, order, order_csrs[0]))] * times

        # Authenticates every worker (argon2 costs ~0.2 s once; the credential cache answers after).
        warm_up = args.workers * args.threads * 2
        run("warm-up (first reissue, replays)", port, each(lambda o, c: replay(o, c, warm_up)))
        hello = ("Hello", envelope("Hello", "<o:Input>ping</o:Input>"))
        run("Hello (SOAP stack only)", port, each(lambda o, c: [hello] * per_thread))
        run("Reissue, replayed (no signature)", port, each(lambda o, c: replay(o, c, per_thread)))
        run(f"Reissue, new {args.key.upper()} key (signed, linted)", port,
            each(lambda o, c: [("Reissue", reissue_body(code, password, o, csr)) for csr in c[1:]]))
    finally:
        server.terminate()
        server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
