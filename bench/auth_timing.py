"""What a failed login costs on each path, so an account oracle shows (issue 6, defect 3).

    .venv/bin/python bench/auth_timing.py [--samples 15] [--database-url URL] [--http]

Every failure of ``Authenticator.authenticate`` must do the same work (one argon2
verification, against the user's hash or an equal-cost dummy; see docs/design.md), so
the medians of the paths below must be alike. The paths are measured interleaved (one
of each per round) so a change of the machine's load hits them all alike. The
credential cache is off, so the right password pays its hash too.

In process (the RA's ``Authenticator``, no HTTP): unknown partner, unknown user, wrong
password, a locked account, a suspended partner, an over-long password, and the right
password. Then the two short write transactions of an uncached login (the attempt's
reservation and its settlement), timed within those logins and then alone, back to
back. With ``--http``, the first three paths again through a real ``soap-service
serve`` (one worker) on a loopback port, as a stranger would time them.

Makes a throw-away SQLite installation in a temporary directory unless a database URL
is given (it must be an empty database).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update

from soap_service.config import Secret, load_settings
from soap_service.errors import ServiceError
from soap_service.ra.auth import Authenticator, Credentials
from soap_service.ra.installation import initialize
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import Partner
from soap_service.storage.schema import upgrade_to_head

TNS = "urn:soap-service:order:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def attempt(authenticator: Authenticator, credentials: Credentials) -> str:
    try:
        authenticator.authenticate(credentials, channel="api")
    except ServiceError as refusal:
        return str(refusal.code)
    return "ok"


def time_paths(paths: dict[str, Callable[[], object]], samples: int) -> dict[str, list[float]]:
    """Milliseconds per call of each path, the paths interleaved round by round."""
    figures: dict[str, list[float]] = {name: [] for name in paths}
    for call in paths.values():  # warm-up: connections, statement caches
        call()
    for _ in range(samples):
        for name, call in paths.items():
            start = time.perf_counter()
            call()
            figures[name].append((time.perf_counter() - start) * 1000)
    return figures


def report(title: str, figures: dict[str, list[float]], reference: str) -> None:
    print(title)
    base = statistics.median(figures[reference])
    for name, ms in figures.items():
        ordered = sorted(ms)
        median = statistics.median(ordered)
        low, high = ordered[len(ordered) // 10], ordered[-1 - len(ordered) // 10]
        print(f"  {name:<22} median {median:7.1f} ms  p10 {low:7.1f}  p90 {high:7.1f}  "
              f"x{median / base:.2f} of {reference}")


def in_process(ra: RegistrationAuthority, code: str, password: str, samples: int) -> None:
    settings = dataclasses.replace(ra.settings, auth_cache_seconds=0, lockout_threshold=10**9)
    authenticator = Authenticator(ra.sessions, ra.readers, settings, ra.clock)
    locking = Authenticator(ra.sessions, ra.readers, dataclasses.replace(settings, lockout_threshold=1),
                            ra.clock)
    locked_password = secrets.token_urlsafe(16)
    create_partner(ra, code="BENCHLOCKED", name="Locked", username="api", password=Secret(locked_password))
    attempt(locking, Credentials("BENCHLOCKED", "api", Secret("wrong-" + locked_password)))
    suspended_password = secrets.token_urlsafe(16)
    create_partner(ra, code="BENCHSUSPENDED", name="Suspended", username="api",
                   password=Secret(suspended_password))
    with ra.sessions() as session, session.begin():
        session.execute(update(Partner).where(Partner.code == "BENCHSUSPENDED").values(status="suspended"))

    def login(authenticator: Authenticator, partner: str, user: str, secret: str) -> Callable[[], str]:
        return lambda: attempt(authenticator, Credentials(partner, user, Secret(secret)))

    paths = {
        "unknown partner": login(authenticator, "NOSUCHPARTNER", "api", password),
        "unknown user": login(authenticator, code, "nobody", password),
        "wrong password": login(authenticator, code, "api", "wrong-" + password),
        "locked account": login(locking, "BENCHLOCKED", "api", locked_password),
        "suspended partner": login(authenticator, "BENCHSUSPENDED", "api", suspended_password),
        "over-long password": login(authenticator, code, "api", "p" * 100_000),
        "right password": login(authenticator, code, "api", password),
    }
    outcomes = {name: call() for name, call in paths.items()}
    print("outcomes: " + ", ".join(f"{name} {outcome}" for name, outcome in outcomes.items()))
    report(f"in process, {samples} rounds, cache off:", time_paths(paths, samples), "wrong password")
    write_transactions(authenticator, code, password, samples)


def write_transactions(authenticator: Authenticator, code: str, password: str, samples: int) -> None:
    """The reservation and the settlement of an uncached login, timed where they run."""
    timed: dict[str, list[float]] = {"reserve": [], "settle": []}
    originals = {name: getattr(authenticator, "_" + name, None) for name in timed}
    if None in originals.values():
        print("write transactions: this Authenticator has no _reserve/_settle to time")
        return

    def timing(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                timed[name].append((time.perf_counter() - start) * 1000)
        return timed_call

    for name, method in originals.items():
        setattr(authenticator, "_" + name, timing(name, method))
    for secret in [password, "wrong-" + password] * max(1, samples // 2):
        attempt(authenticator, Credentials(code, "api", Secret(secret)))
    for name, ms in timed.items():
        print(f"  write transaction {name:<8} median {statistics.median(ms):6.2f} ms  max {max(ms):6.2f} ms "
              f"({len(ms)} logins)")
    for name, method in originals.items():
        setattr(authenticator, "_" + name, method)
    isolated_transactions(authenticator, code, samples * 20)


def isolated_transactions(authenticator: Authenticator, code: str, count: int) -> None:
    """The same two transactions back to back, no hash between them (so no argon2 competing
    for the cores): a failed attempt reserved, then settled with its audit event."""
    from soap_service.errors import AuthenticationFailed
    from soap_service.ra.auth import _Login

    reserve: list[float] = []
    settle: list[float] = []
    for n in range(count):
        login = _Login.read(Credentials(code, f"bench-{n % 50}", Secret("wrong")))
        now = authenticator._clock()
        start = time.perf_counter()
        reservation = authenticator._reserve(login, now)
        middle = time.perf_counter()
        authenticator._settle(login, reservation, AuthenticationFailed(), "api", now)
        reserve.append((middle - start) * 1000)
        settle.append((time.perf_counter() - middle) * 1000)
    for name, ms in (("reserve", reserve), ("settle", settle)):
        ordered = sorted(ms)
        print(f"  {name} alone: median {statistics.median(ordered):5.2f} ms  "
              f"p95 {ordered[int(len(ordered) * 0.95)]:5.2f} ms ({count} in a row, no hash)")


def envelope(code: str, user: str, password: str) -> bytes:
    header = (f"<o:QueryRequestHeader><o:PartnerCode>{code}</o:PartnerCode><o:AuthToken><o:UserName>{user}"
              f"</o:UserName><o:Password>{password}</o:Password></o:AuthToken></o:QueryRequestHeader>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:o="{TNS}">'
        f"<soapenv:Body><o:GetOrderByPartnerOrderID><o:Request>{header}<o:PartnerOrderID>B-1</o:PartnerOrderID>"
        "</o:Request></o:GetOrderByPartnerOrderID></soapenv:Body></soapenv:Envelope>"
    ).encode()


def post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/api/order", body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def over_http(environ: dict[str, str], workdir: Path, code: str, password: str, samples: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")}
    env.update(environ, SOAP_SERVICE_AUTH_CACHE_SECONDS="0", SOAP_SERVICE_LOCKOUT_THRESHOLD=str(10**9))
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "soap_service.main", "serve", "--quiet", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                post(port, envelope("X", "u", "p"))
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start: see " + str(workdir / "server.log")) from None
                time.sleep(0.3)
        paths = {
            "unknown partner": lambda: post(port, envelope("NOSUCHPARTNER", "api", password)),
            "unknown user": lambda: post(port, envelope(code, "nobody", password)),
            "wrong password": lambda: post(port, envelope(code, "api", "wrong-" + password)),
        }
        report(f"over HTTP (one worker), {samples} rounds, cache off:", time_paths(paths, samples),
               "wrong password")
    finally:
        server.terminate()
        server.wait(60)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--database-url")
    parser.add_argument("--http", action="store_true", help="also time the paths through a real server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        environ = {"SOAP_SERVICE_DATA_DIR": data_dir, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_hex(16)}
        if args.database_url:
            environ["SOAP_SERVICE_DATABASE_URL"] = args.database_url
        ra = RegistrationAuthority.from_settings(load_settings(environ))
        if args.http:
            initialize(ra)  # the server refuses an uninitialized database
        else:
            upgrade_to_head(ra.engine)
        password = secrets.token_urlsafe(16)
        create_partner(ra, code="BENCH", name="Bench", username="api", password=Secret(password))
        print(f"backend: {'given URL' if args.database_url else 'SQLite'}")
        in_process(ra, "BENCH", password, args.samples)
        ra.close()
        if args.http:
            over_http(environ, Path(data_dir), "BENCH", password, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
