"""End-to-end load: Reissue through ``soap-service serve`` on loopback, driven by wrk.

    .venv/bin/python bench/reissue_wrk.py [--backend sqlite|postgres] [--quick]

For one backend (SQLite in a temporary data directory, or a new database on the PostgreSQL
server of ``--postgres-server``, created and dropped here) this makes an installation with the
default settings (an ``rsa-2048`` CA hierarchy), one partner and ``--orders`` DV orders (made
through the RA, as ``soap-service order create`` does), then starts ``soap-service serve`` with
its default workers and threads on a free loopback port and loads it with wrk (Debian's
``wrk``; ``--latency`` gives p50 and p99), ``--connections`` requests in flight (8):

- ``Hello`` (the SOAP stack alone) and the WSDL fetch (``GET /api/order?wsdl``);
- Reissue replayed: each order's current CSR again (rule 8 of docs/design.md, "Reissue
  rules": nothing signed), cycling through the orders;
- Reissue signed: every request a new P-256 CSR for one order, the bodies made before the
  clock starts and written to a file that the Lua script (:data:`LUA`) reads and cycles
  through, one order after the other, so that the requests in flight are for different
  orders; each signed series has a quarter of the orders to itself, so that none runs on
  orders with a longer history than another's. Each body is sent once (a run that would
  need more reports ``exhausted``); the certificates the run added are counted in the
  database afterwards;
- Reissue signed at half the peak rate found above, paced by an open-loop Python client
  (wrk2 is not packaged): latency is measured from each request's scheduled start, so a
  late answer delays no later measurement;
- Reissue signed with pre-issuance lint off: the server restarted through
  ``bench/serve_without_lint.py`` (the settings have no switch for the lint: that launcher
  replaces ``PreIssuanceLinter.findings`` with an empty answer before gunicorn forks).

``bench/run_bench.py`` (``make bench``) runs this for both backends, next to the floor of
``bench/reissue_floor.py``; ``bench/profile_reissue.py`` uses :class:`Backend` and
:func:`run_wrk` to profile a worker under the signed load.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from sqlalchemy import create_engine, text

from soap_service.config import Secret, load_settings
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reissue_floor import NAMES, PRODUCT, new_csr, postgres_database

REPO = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TNS = "urn:soap-service:order:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SUCCESS = b"<tns:SuccessCode>0<"

LUA = r"""
-- Cycles through the bodies of BENCH_BODIES (separated by NUL bytes), each wrk thread taking
-- every BENCH_THREADS-th one from its own offset; counts answers that are not HTTP 200 (or,
-- with BENCH_CHECK=1, hold no SuccessCode 0) and, with BENCH_ONCE=1, requests past the last body.
local bodies = {}
local counter, step = 0, 1
local check = os.getenv("BENCH_CHECK") == "1"
local once = os.getenv("BENCH_ONCE") == "1"
failures, exhausted = 0, 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(os.getenv("BENCH_THREADS"))
  counter = id
  local path = os.getenv("BENCH_BODIES") or ""
  if path ~= "" then
    local file = assert(io.open(path, "rb"))
    local data = file:read("*a")
    file:close()
    for body in string.gmatch(data, "[^%z]+") do table.insert(bodies, body) end
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
    wrk.headers["SOAPAction"] = '"' .. os.getenv("BENCH_ACTION") .. '"'
  end
end

function request()
  if #bodies == 0 then return wrk.format() end
  local i = counter
  counter = counter + step
  if once and i >= #bodies then exhausted = exhausted + 1 end
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end

function response(status, headers, body)
  if status ~= 200 or (check and not string.find(body, "<tns:SuccessCode>0<", 1, true)) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local f, e = 0, 0
  for _, thread in ipairs(threads) do
    f = f + thread:get("failures")
    e = e + thread:get("exhausted")
  end
  io.write(string.format("BENCH failures=%d exhausted=%d\n", f, e))
end
"""


# -- request bodies ---------------------------------------------------------------------------------


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


HELLO = envelope("Hello", "<o:Input>ping</o:Input>")


# -- the server -------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int = 0
    exhausted: int = 0
    signed: int | None = None  # certificates the run added, counted in the database
    cpu_ms: float | None = None  # the server's CPU (master and workers) per answered request

    def line(self) -> str:
        notes = []
        if self.cpu_ms is not None:
            notes.append(f"server CPU {self.cpu_ms:.1f} ms/req")
        if self.signed is not None:
            notes.append(f"signed {self.signed}")
        if self.failures:
            notes.append(f"FAILED {self.failures}")
        if self.exhausted:
            notes.append(f"bodies ran out {self.exhausted}")
        return (f"{self.label:<44} {self.rps:8.1f} req/s  p50 {self.p50_ms:7.1f} ms  p99 {self.p99_ms:7.1f} ms  "
                f"n={self.requests}" + (f"  ({', '.join(notes)})" if notes else ""))


class Backend:
    """An installation on one database, its orders, and the server in front of it."""

    def __init__(self, kind: str, directory: Path, database_url: str | None, order_count: int) -> None:
        self.kind = kind
        self.directory = directory
        self.environ = {
            "SOAP_SERVICE_DATA_DIR": str(directory / "data"),
            "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_urlsafe(16),
            "SOAP_SERVICE_LOG_LEVEL": "ERROR",
        }
        if database_url:
            self.environ["SOAP_SERVICE_DATABASE_URL"] = database_url
        settings = load_settings(self.environ)
        self.database_url = settings.database_url
        ra = RegistrationAuthority.from_settings(settings)
        try:
            initialize(ra)
            self.code, self.password = "BENCH" + secrets.token_hex(3).upper(), secrets.token_urlsafe(18)
            create_partner(ra, code=self.code, name="Bench", username="api", password=Secret(self.password))
            self.orders: list[tuple[str, str]] = []  # (PartnerOrderID, the CSR of its current certificate)
            contacts = (Contact("admin", "a@example.com"), Contact("technical", "t@example.com"))
            for number in range(order_count):
                partner_order_id, csr = f"BENCH-{number:05d}", new_csr()
                create_order(ra, NewOrder(partner_code=self.code, partner_order_id=partner_order_id,
                                          product=PRODUCT, names=NAMES, csr=csr, contacts=contacts))
                self.orders.append((partner_order_id, csr))
        finally:
            ra.close()
        self.engine = create_engine(self.database_url)
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._files = 0

    def certificates(self) -> int:
        """The certificates in the database, once the requests wrk left in flight are answered."""
        time.sleep(1.0)
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM certificates")).scalar_one())

    def signed_bodies(self, count: int, group: int = 0, groups: int = 1) -> list[bytes]:
        """``count`` Reissue bodies, each a new CSR, going round the orders of ``group`` (every
        ``groups``-th order): each signed series gets orders of its own, whose history is as long
        as the other series' were."""
        orders = self.orders[group::groups]
        return [reissue_body(self.code, self.password, orders[i % len(orders)][0], new_csr()) for i in range(count)]

    def replay_bodies(self) -> list[bytes]:
        """Each order's current CSR again: a retry (rule 8). Valid until a signed run moves them."""
        return [reissue_body(self.code, self.password, order, csr) for order, csr in self.orders]

    def body_file(self, bodies: list[bytes]) -> Path:
        self._files += 1
        path = self.directory / f"bodies-{self._files}.bin"
        path.write_bytes(b"\0".join(bodies))
        return path

    def start(self, *, lint: bool = True) -> None:
        """``soap-service serve`` with its default workers and threads, on a free loopback port."""
        self.stop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        listener.set_inheritable(True)
        self.port = listener.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")} | self.environ
        env["SOAP_SERVICE_PUBLIC_URL"] = f"http://127.0.0.1:{self.port}"
        launcher = ["-m", "soap_service.main"] if lint else [str(REPO / "bench" / "serve_without_lint.py")]
        command = [sys.executable, *launcher, "serve", "--quiet", "--bind", f"fd://{listener.fileno()}"]
        self.server = subprocess.Popen(command, env=env, cwd=REPO, pass_fds=[listener.fileno()])
        listener.close()
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request("POST", "/api/order", body=HELLO,
                                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Hello"'})
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit(f"{self.kind}: the server did not answer")
            time.sleep(0.3)

    def worker_pids(self) -> list[int]:
        assert self.server is not None
        children = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the server's master and workers so far."""
        if self.server is None:
            return 0.0
        total = 0
        for pid in [self.server.pid, *self.worker_pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(60)
            self.server = None

    def close(self) -> None:
        self.stop()
        self.engine.dispose()


@contextmanager
def backend(kind: str, order_count: int, postgres_server: str = POSTGRES_SERVER) -> Iterator[Backend]:
    with tempfile.TemporaryDirectory(prefix=f"soap-bench-{kind}-") as directory:
        if kind == "sqlite":
            made = Backend(kind, Path(directory), None, order_count)
            try:
                yield made
            finally:
                made.close()
            return
        with postgres_database(postgres_server) as url:
            made = Backend(kind, Path(directory), url, order_count)
            try:
                yield made
            finally:
                made.close()


# -- load -------------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(f"wrk latency {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(target: Backend, label: str, seconds: float, *, bodies: Path | None = None, action: str = "Reissue",
            path: str = "/api/order", connections: int = 8, check: bool = False, once: bool = False) -> Result:
    """wrk against the running server; bodies from ``bodies`` (GET without)."""
    threads = min(2, connections)
    script = target.directory / "cycle.lua"
    script.write_text(LUA)
    env = os.environ | {"BENCH_BODIES": str(bodies or ""), "BENCH_ACTION": action, "BENCH_THREADS": str(threads),
                        "BENCH_CHECK": "1" if check else "0", "BENCH_ONCE": "1" if once else "0"}
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--latency",
               "--timeout", "30s", "-s", str(script), f"http://127.0.0.1:{target.port}{path}"]
    cpu_before = target.cpu_seconds()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    cpu = target.cpu_seconds() - cpu_before
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    counted = re.search(r"BENCH failures=(\d+) exhausted=(\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (requests and counted and rps and p50 and p99):
        raise SystemExit(f"{label}: unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    failures = int(counted[1]) + (int(non_2xx[1]) if non_2xx and not check else 0)
    if errors:
        print(f"  wrk: {errors[0]}", file=sys.stderr)
    answered = int(requests[1])
    return Result(label, answered, float(requests[2]) * _UNITS.get(requests[3], 1000.0) / 1000,
                  float(rps[1]), _ms(p50[1]), _ms(p99[1]), failures, int(counted[2]),
                  cpu_ms=cpu * 1000 / max(1, answered))


def paced(target: Backend, label: str, bodies: list[bytes], rate: float, seconds: float,
          connections: int = 8) -> Result:
    """Open loop: request i is due at ``start + i / rate``; its latency is counted from then."""
    total = min(len(bodies), int(rate * seconds))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[int] = []
    counter = iter(range(total))
    start = time.perf_counter() + 0.2

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Reissue"'}
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            connection.request("POST", "/api/order", body=bodies[index], headers=headers)
            response = connection.getresponse()
            answer = response.read()
            finished = time.perf_counter()
            with lock:
                latencies.append((finished - due) * 1000)
                if response.status != 200 or SUCCESS not in answer:
                    failures.append(index)

    cpu_before = target.cpu_seconds()
    workers = [threading.Thread(target=client) for _ in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    ms = sorted(latencies)
    quantiles = statistics.quantiles(ms, n=100, method="inclusive")
    return Result(label, len(ms), wall, len(ms) / wall, quantiles[49], quantiles[98], len(failures),
                  cpu_ms=(target.cpu_seconds() - cpu_before) * 1000 / max(1, len(ms)))


# -- one backend's series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Durations:
    warm_up: float
    short: float  # Hello, WSDL, replays
    signed: float  # the signed series

    @classmethod
    def of(cls, quick: bool) -> Durations:
        return cls(1, 2, 4) if quick else cls(3, 8, 15)


SIGNED_GROUPS = 4  # the orders are shared out: signed, half peak, lint-off warm-up, lint off


def signed_run(target: Backend, label: str, seconds: float, ceiling: float, connections: int = 8,
               group: int = 0) -> Result:
    """wrk with new CSRs: enough bodies for ``ceiling`` req/s (the floor's), each sent once."""
    bodies = target.body_file(target.signed_bodies(math.ceil(ceiling * seconds * 1.2) + 50, group, SIGNED_GROUPS))
    before = target.certificates()
    result = run_wrk(target, label, seconds, bodies=bodies, connections=connections, check=True, once=True)
    result.signed = target.certificates() - before
    return result


def series(target: Backend, durations: Durations, ceiling: float, ceiling_nolint: float,
           connections: int = 8, progress: bool = True) -> dict[str, Result]:
    """Every measurement of one backend; keys: hello, wsdl, replay, signed, half, nolint."""
    results: dict[str, Result] = {}

    def record(key: str, result: Result) -> None:
        results[key] = result
        if progress:
            print(f"  [{target.kind}] {result.line()}", flush=True)

    target.start()
    replays = target.body_file(target.replay_bodies())
    run_wrk(target, "warm-up", durations.warm_up, bodies=replays, connections=connections, check=True)
    record("hello", run_wrk(target, "Hello", durations.short, bodies=target.body_file([HELLO]), action="Hello",
                            connections=connections))
    record("wsdl", run_wrk(target, "WSDL (GET ?wsdl)", durations.short, path="/api/order?wsdl",
                           connections=connections))
    before = target.certificates()
    replay = run_wrk(target, "Reissue replayed (rule 8, nothing signed)", durations.short, bodies=replays,
                     connections=connections, check=True)
    replay.signed = target.certificates() - before
    record("replay", replay)
    record("signed", signed_run(target, "Reissue signed (new CSR, lint on)", durations.signed, ceiling, connections))
    peak = results["signed"].rps
    half_bodies = target.signed_bodies(math.ceil(peak / 2 * durations.signed) + 10, 1, SIGNED_GROUPS)
    before = target.certificates()
    half = paced(target, f"Reissue signed at half peak ({peak / 2:.1f}/s, paced)", half_bodies, peak / 2,
                 durations.signed, connections)
    half.signed = target.certificates() - before
    record("half", half)
    target.start(lint=False)
    run_wrk(target, "warm-up", durations.warm_up,
            bodies=target.body_file(target.signed_bodies(math.ceil(ceiling_nolint * durations.warm_up) + 20, 2,
                                                         SIGNED_GROUPS)),
            connections=connections, check=True, once=True)
    record("nolint", signed_run(target, "Reissue signed, lint off", durations.signed, ceiling_nolint, connections,
                                group=3))
    target.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-server", default=POSTGRES_SERVER)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a smoke run: short series")
    parser.add_argument("--ceiling", type=float, default=400.0,
                        help="req/s no signed run exceeds (sizes the prepared bodies; default 400)")
    args = parser.parse_args()
    with backend(args.backend, args.orders, args.postgres_server) as target:
        series(target, Durations.of(args.quick), args.ceiling, args.ceiling * 2, args.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
