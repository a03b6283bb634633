"""Load benchmark: the OCSP responder over loopback HTTP against a real ``soap-service serve``.

Makes a throw-away installation (SQLite in a temporary directory by default, or a new database on
the PostgreSQL server of ``--postgres``, dropped at the end) with ``--certificates`` issued
certificates, starts the server on a free loopback port with ``--workers`` workers, and sends OCSP
requests from ``--clients`` client processes, each over one keep-alive connection:

- cached: POST without nonce, the same few certificates again and again (after a warm-up, each
  answer is a pre-signed response: one indexed status read, no signature);
- cached GET: the same as GET /ocsp/<base64>;
- nonce: POST with a new nonce each time (signed per request);
- and, for comparison, the HTTP floor: a GET refused as malformed before any parsing or database
  read (what the server, the dispatcher and the clients cost alone).

Prints latency percentiles and throughput for each series. The clients run on the same machine
as the server and take CPU from it: on 2 cores the figures are a floor, not the server's ceiling.
When ``wrk`` is installed (Debian's package ``wrk``), the floor, cached POST, cached GET and nonce
series are measured again with it (``--wrk-seconds`` each, ``--wrk-connections`` connections over
1 thread): a compiled load generator takes far less of the machine than Python clients do, so these
lines are the figures to quote.

    .venv/bin/python bench/ocsp_load.py --requests 4000 --clients 4 --workers 2

Not run by the tests.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import multiprocessing
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from reissue_load import create_database, drop_database, free_listener  # bench/ is the script's own directory

from soap_service.config import Secret, load_settings
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority

REPO = Path(__file__).resolve().parent.parent
NAMES = ("example.com", "www.example.com")
FLOOR_PATH = "/ocsp/!"  # refused malformedRequest before any parsing or database read: the HTTP floor


def new_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAMES[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def seed(environ: dict[str, str], count: int) -> list[tuple[x509.Certificate, x509.Certificate]]:
    """A new installation with ``count`` issued certificates: (leaf, issuing CA) each."""
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    initialize(ra)
    code = "BENCH" + secrets.token_hex(3).upper()
    create_partner(ra, code=code, name="Bench", username="api", password=Secret(secrets.token_urlsafe(18)))
    issued = []
    for _ in range(count):
        outcome = create_order(ra, NewOrder(
            partner_code=code, partner_order_id="BENCH-" + secrets.token_hex(4), product="QuickSSLPremium",
            names=NAMES, csr=new_csr(),
            contacts=(Contact("admin", "a@example.com"), Contact("technical", "t@example.com")),
        ))
        issuer_pem = next(c.pem for c in outcome.chain if c.kind == "INTERMEDIATE")
        issued.append((x509.load_pem_x509_certificate(outcome.certificate.pem.encode()),
                       x509.load_pem_x509_certificate(issuer_pem.encode())))
    ra.close()
    return issued


def ocsp_request(leaf: x509.Certificate, issuer: x509.Certificate, nonce: bool) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def client(port: int, requests: list[tuple[str, str, bytes]]) -> list[float]:
    """One keep-alive connection sending (method, path, body) in turn; the latencies in seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    for method, path, body in requests:
        started = time.perf_counter()
        headers = {"Content-Type": "application/ocsp-request"} if method == "POST" else {}
        connection.request(method, path, body=body if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter() - started)
        expected = ocsp.OCSPResponseStatus.MALFORMED_REQUEST if path == FLOOR_PATH else \
            ocsp.OCSPResponseStatus.SUCCESSFUL
        if response.status != 200 or ocsp.load_der_ocsp_response(answer).response_status != expected:
            raise RuntimeError(f"HTTP {response.status}: {answer[:60]!r}")
    connection.close()
    return latencies


def run(label: str, port: int, plans: list[list[tuple[str, str, bytes]]]) -> float:
    with multiprocessing.get_context("fork").Pool(len(plans)) as pool:
        started = time.perf_counter()
        results = pool.starmap(client, [(port, plan) for plan in plans])
        wall = time.perf_counter() - started
    ms = sorted(x * 1000 for latencies in results for x in latencies)
    quantiles = statistics.quantiles(ms, n=100, method="inclusive")
    rate = len(ms) / wall
    print(f"{label:<28} n={len(ms):<6} p50={quantiles[49]:6.2f} ms  p95={quantiles[94]:6.2f} ms  "
          f"p99={quantiles[98]:6.2f} ms  max={ms[-1]:7.2f} ms  {rate:8.1f} req/s", flush=True)
    return rate


def lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in data) + '"'


def run_wrk(label: str, port: int, path: str, seconds: int, connections: int, post: bytes | None = None,
            nonce_requests: list[bytes] | None = None) -> float:
    """One wrk series: keep-alive connections over one thread; POST ``post`` when given, or a POST
    cycling through ``nonce_requests``; else GET ``path``. Prints and returns requests a second."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.headers["Content-Type"] = "application/ocsp-request"\n' if post or nonce_requests else "")
        if post is not None:
            script.write(f'wrk.method = "POST"\nwrk.body = {lua_string(post)}\n')
        if nonce_requests:
            bodies = ", ".join(lua_string(body) for body in nonce_requests)
            script.write(f"local bodies = {{{bodies}}}\nlocal i = 0\n"
                         "request = function()\n  i = i % #bodies + 1\n"
                         '  return wrk.format("POST", nil, nil, bodies[i])\nend\n')
        # every answer is HTTP 200 (malformedRequest too), so a non-2xx count is a failure
        script.write('done = function(summary, latency, requests)\n'
                     '  io.write(string.format("errors=%d\\n", summary.errors.status))\nend\n')
    try:
        output = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"errors=(\d+)", output).group(1)  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    print(f"wrk {label:<24} p50={percentiles.get('50', '?'):>8}  p99={percentiles.get('99', '?'):>8}  "
          f"{rate:8.1f} req/s  non-2xx={errors}", flush=True)
    if errors != "0":
        raise RuntimeError(f"wrk {label}: {errors} answers were not HTTP 200")
    return rate


def bench(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(f"seeding {args.certificates} certificates ...", flush=True)
    issued = seed(environ, args.certificates)
    listener = free_listener()
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")} | environ
    command = [sys.executable, "-m", "soap_service.main", "serve", "--quiet", "--bind", f"fd://{listener.fileno()}",
               "--workers", str(args.workers), "--threads", str(args.threads)]
    server = subprocess.Popen(command, env=env, cwd=REPO, pass_fds=[listener.fileno()])
    listener.close()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                client(port, [("POST", "/ocsp", ocsp_request(*issued[0], nonce=False))])
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        per_client = max(1, args.requests // args.clients)
        cached = [ocsp_request(leaf, issuer, nonce=False) for leaf, issuer in issued]

        def posts(i: int, nonce: bool) -> list[tuple[str, str, bytes]]:
            return [("POST", "/ocsp", ocsp_request(*issued[(i + j) % len(issued)], nonce=True) if nonce
                     else cached[(i + j) % len(cached)]) for j in range(per_client)]

        def gets(i: int) -> list[tuple[str, str, bytes]]:
            return [("GET", "/ocsp/" + base64.b64encode(cached[(i + j) % len(cached)]).decode().replace("/", "%2F"),
                     b"") for j in range(per_client)]

        run("warm-up (fills the caches)", port, [posts(i, False)[: len(issued) * 4] for i in range(args.clients)])
        run("HTTP floor (no DB, no DER)", port, [[("GET", FLOOR_PATH, b"")] * per_client for _ in range(args.clients)])
        run("cached POST (no nonce)", port, [posts(i, False) for i in range(args.clients)])
        run("cached GET (no nonce)", port, [gets(i) for i in range(args.clients)])
        run("nonce POST (signed each)", port, [posts(i, True)[: max(1, per_client // 4)] for i in range(args.clients)])
        if shutil.which("wrk") is None:
            print("wrk is not installed (Debian: apt-get install wrk): no compiled-client series", flush=True)
            return 0
        seconds, connections = args.wrk_seconds, args.wrk_connections
        run_wrk("HTTP floor", port, FLOOR_PATH, seconds, connections)
        run_wrk("cached POST", port, "/ocsp", seconds, connections, post=cached[0])
        get_path = "/ocsp/" + base64.urlsafe_b64encode(cached[0]).decode().rstrip("=")
        run_wrk("cached GET", port, get_path, seconds, connections)
        nonces = [ocsp_request(*issued[i % len(issued)], nonce=True) for i in range(200)]
        run_wrk("nonce POST (200 cycled)", port, "/ocsp", seconds, connections, nonce_requests=nonces)
    finally:
        server.terminate()
        server.wait(60)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="requests per series in all (default 4000)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--certificates", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server on which to make the bench's database")
    parser.add_argument("--wrk-connections", type=int, default=16, help="wrk's keep-alive connections (default 16)")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="seconds per wrk series (default 5)")
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


if __name__ == "__main__":
    sys.exit(main())
