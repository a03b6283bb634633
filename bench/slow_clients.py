"""Benchmark: the head-buffering worker against gunicorn's gthread worker.

For each worker class, starts plain gunicorn with the package's configuration
(``-c python:soap_service.gunicorn_conf --worker-class ...``) on a throw-away SQLite
installation and prints:

- Hello, a replayed Reissue (no signature) and a Reissue with a new key, from
  ``--concurrency`` keep-alive clients (the series of bench/reissue_load.py): what the
  worker costs on a plain load;
- Hello latency, one client, new connection per call, first with no other client, then
  while ``--stalled`` connections hold half a request head each, then while
  ``--trickling`` connections send a valid head announcing 100,000 bytes and one byte of
  body every ``--trickle-interval`` seconds, then while each of ``--non-reading``
  connections (8, then 40) sends 300 pipelined ``GET /api/order?wsdl`` (about 11 KB up,
  7.5 MB of answers) and never reads, the connections reopened every ``--reopen``
  seconds as the attack of the review did (a call that takes longer than ``--hang``
  seconds counts as timed out), with the workers' memory meanwhile;
- the workers' resident memory (VmRSS, summed) before and while ``--held-bodies``
  connections each hold a body of 1 MiB less one byte (the body limit) unfinished.

    .venv/bin/python bench/slow_clients.py --requests 400 --concurrency 4

``--source DIR`` measures the ``soap_service`` of another checkout (the server runs there)
under the name ``head-buffering``, for a before/after:
``git archive <commit> soap_service | tar -x -C /tmp/before``, then ``--source /tmp/before``.
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

from reissue_load import envelope, free_listener, new_csr, reissue_body, run, seed

REPO = Path(__file__).resolve().parent.parent
WORKERS = {"head-buffering": "soap_service.worker.HeadBufferingWorker", "gthread": "gthread"}
HALF_HEAD = b"POST /api/order HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
WSDL_GET = b"GET /api/order?wsdl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PIPELINED = 300
HELLO = envelope("Hello", "<o:Input>ping</o:Input>")
ONE_MIB = 1024 * 1024


def body_head(length: int) -> bytes:
    return (b"POST /api/order HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            b'SOAPAction: "Hello"\r\nContent-Length: %d\r\n\r\n' % length)


class Trickle:
    """Sends one byte of body on each of ``socks`` every ``interval`` seconds, until stopped."""

    def __init__(self, socks: list[socket.socket], interval: float) -> None:
        self.socks, self.interval = socks, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.socks:
                try:
                    sock.sendall(b"<")
                except OSError:
                    pass


class NonReaders:
    """``count`` connections that each send ``PIPELINED`` GET ?wsdl and never read (a small
    receive buffer), all reopened every ``reopen`` seconds until stopped."""

    def __init__(self, port: int, count: int, reopen: float) -> None:
        self.port, self.count, self.reopen = port, count, reopen
        self.socks = self.open_all()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def open_all(self) -> list[socket.socket]:
        socks = []
        for _ in range(self.count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(30)
            try:
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(WSDL_GET * PIPELINED)
            except OSError:
                sock.close()
                continue
            socks.append(sock)
        return socks

    def run(self) -> None:
        while not self.stop.wait(self.reopen):
            old, self.socks = self.socks, self.open_all()
            for sock in old:
                sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def workers_rss_mib(server: subprocess.Popen[bytes]) -> float:
    """The resident memory of the server's workers (its child processes), in MiB."""
    total = 0
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def hello(port: int, timeout: float) -> float:
    """One Hello on a new connection; its latency in seconds (raises on a timeout)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/api/order", body=HELLO,
                           headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Hello"'})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"Hello: HTTP {response.status}")
    finally:
        connection.close()
    return time.perf_counter() - started


def hello_series(label: str, port: int, count: int, hang: float) -> None:
    latencies: list[float] = []
    timed_out = 0
    for _ in range(count):
        try:
            latencies.append(hello(port, hang))
        except TimeoutError:
            timed_out += 1
            if timed_out >= 3:
                break
    if not latencies:
        print(f"{label:<44} every Hello timed out (> {hang:g} s); {timed_out} tried")
        return
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    print(f"{label:<44} n={len(ms):<4} p50={q[49]:7.2f} ms  p95={q[94]:7.2f} ms  max={ms[-1]:7.2f} ms"
          f"  timed out: {timed_out}")


def start(
    worker_class: str, environ: dict[str, str], workers: int, threads: int, source: Path = REPO
) -> tuple[subprocess.Popen[bytes], int]:
    listener = free_listener()
    port = listener.getsockname()[1]
    command = [sys.executable, "-m", "gunicorn", "-c", "python:soap_service.gunicorn_conf",
               "--bind", f"fd://{listener.fileno()}", "--workers", str(workers), "--threads", str(threads),
               "--worker-class", worker_class, "soap_service.wsgi:application"]
    environ = environ | {"PYTHONPATH": str(source)}
    server = subprocess.Popen(command, env=environ, cwd=source, pass_fds=[listener.fileno()])
    listener.close()
    deadline = time.monotonic() + 90
    while True:
        try:
            hello(port, 5)
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


def held_memory(port: int, server: subprocess.Popen[bytes], count: int) -> None:
    """The workers' memory before and while ``count`` connections hold 1 MiB - 1 byte of a 1 MiB body."""
    if not count:
        return
    before = workers_rss_mib(server)
    message = body_head(ONE_MIB) + b"x" * (ONE_MIB - 1)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    senders = [threading.Thread(target=_send_quietly, args=(sock, message), daemon=True) for sock in socks]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 5
    for sender in senders:
        sender.join(max(0.0, deadline - time.monotonic()))
    time.sleep(0.5)
    during = workers_rss_mib(server)
    whole = sum(not sender.is_alive() for sender in senders)
    print(f"{'workers RSS, idle':<44} {before:8.1f} MiB")
    print(f"{f'workers RSS, {count} x (1 MiB - 1) bodies held':<44} {during:8.1f} MiB"
          f"  (+{during - before:.1f} MiB; {whole} of {count} sent whole)")
    for sock in socks:
        sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="calls per load series (default 400)")
    parser.add_argument("--concurrency", type=int, default=4, help="load clients, one order each (default 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stalled", type=int, default=50, help="connections holding half a head (default 50)")
    parser.add_argument("--hellos", type=int, default=200, help="Hellos per latency series (default 200)")
    parser.add_argument("--trickling", type=int, default=40,
                        help="connections trickling a body, a byte every --trickle-interval (default 40)")
    parser.add_argument("--trickle-interval", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--non-reading", default="8,40",
                        help="counts of connections that never read their answers, one series each (default 8,40)")
    parser.add_argument("--reopen", type=float, default=9.0,
                        help="seconds between reopenings of the non-reading connections (default 9)")
    parser.add_argument("--source", type=Path, default=REPO,
                        help="the checkout whose soap_service the server runs (default: this one)")
    parser.add_argument("--held-bodies", type=int, default=100,
                        help="connections holding an unfinished 1 MiB body for the memory figure (default 100)")
    parser.add_argument("--hang", type=float, default=5.0, help="a Hello slower than this times out (default 5 s)")
    parser.add_argument("--only", choices=sorted(WORKERS), help="measure one worker class only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soap-bench-") as directory:
        environ = {"SOAP_SERVICE_DATA_DIR": directory, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_urlsafe(16),
                   "SOAP_SERVICE_LOG_LEVEL": "WARNING"}
        code, password, orders = seed(environ, args.concurrency)
        per_thread = max(1, args.requests // args.concurrency)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")} | environ
        chosen = [args.only] if args.only else list(WORKERS)
        for name in chosen:
            csrs = [[new_csr("ec") for _ in range(per_thread + 1)] for _ in orders]
            plan = list(zip(orders, csrs, strict=True))

            def each(make: Callable[[str, list[str]], list[tuple[str, bytes]]],
                     plan: list[tuple[str, list[str]]] = plan) -> list[list[tuple[str, bytes]]]:
                return [make(order, order_csrs) for order, order_csrs in plan]

            print(f"--- {name} ({WORKERS[name]}), {args.workers} workers x {args.threads} threads", flush=True)
            server, port = start(WORKERS[name], env, args.workers, args.threads, args.source)
            try:
                warm = args.workers * args.threads * 2
                run("warm-up", port,
                    each(lambda o, c, warm=warm: [("Reissue", reissue_body(code, password, o, c[0]))] * warm))
                run("Hello (keep-alive load)", port, each(lambda o, c: [("Hello", HELLO)] * per_thread))
                run("Reissue, replayed (no signature)", port,
                    each(lambda o, c: [("Reissue", reissue_body(code, password, o, c[0]))] * per_thread))
                run("Reissue, new EC key (signed, linted)", port,
                    each(lambda o, c: [("Reissue", reissue_body(code, password, o, csr)) for csr in c[1:]]))
                hello_series("Hello, new connection, alone", port, args.hellos, args.hang)
                stalled = []
                for _ in range(args.stalled):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                    sock.sendall(HALF_HEAD)
                    stalled.append(sock)
                time.sleep(0.3)
                hello_series(f"Hello, new connection, {args.stalled} stalled heads", port, args.hellos, args.hang)
                for sock in stalled:
                    sock.close()
                trickling = []
                for _ in range(args.trickling):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                    sock.sendall(body_head(100_000))
                    trickling.append(sock)
                trickle = Trickle(trickling, args.trickle_interval)
                trickle.thread.start()
                time.sleep(0.3 + args.trickle_interval)
                hello_series(f"Hello, new connection, {args.trickling} trickling bodies", port, args.hellos,
                             args.hang)
                trickle.stop.set()
                trickle.thread.join()
                for sock in trickling:
                    sock.close()
                for count in (int(n) for n in args.non_reading.split(",") if n.strip()):
                    time.sleep(0.5)
                    non_reading = NonReaders(port, count, args.reopen)
                    time.sleep(0.5)
                    hello_series(f"Hello, new connection, {count} non-reading", port, args.hellos, args.hang)
                    print(f"{f'workers RSS, {count} non-reading':<44} {workers_rss_mib(server):8.1f} MiB", flush=True)
                    non_reading.close()
                time.sleep(0.5)
                held_memory(port, server, args.held_bodies)
            finally:
                server.terminate()
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
