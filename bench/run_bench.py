"""``make bench``: the reissue floor, the end-to-end load on SQLite and PostgreSQL, and their ratios.

    make bench                  # about 6-10 minutes
    make bench BENCH_QUICK=1    # a smoke run of 1-2 minutes (shorter series, fewer orders, one floor)
    .venv/bin/python bench/run_bench.py [--quick] [--postgres-server URL] [--skip-postgres]

1. The floor (``bench/reissue_floor.py``): ms per signed reissue in process on one core (CSR
   read and verified, key judged, leaf built, linted, signed, its rows written with the raw
   driver), for every CA key algorithm of the settings on SQLite and for the default one
   (``rsa-2048``, the one ``soap-service serve`` uses below) on PostgreSQL, with and without lint;
   the floor's throughput on this machine's cores is cores / ms per reissue.
2. End to end (``bench/reissue_wrk.py``): ``soap-service serve`` with its default workers and
   threads on loopback, wrk with 8 requests in flight: Hello, the WSDL, replayed Reissues,
   signed Reissues (each a new CSR), signed Reissues paced at half the signed peak (p99 from
   each request's scheduled start), and signed Reissues with the lint off. PostgreSQL: a new
   database on 127.0.0.1:5432, created and dropped here.
3. The ratios, each against its target, as the last lines of the output::

       reissue_efficiency_sqlite=...           e2e signed req/s / floor req/s (lint on)      >= 0.7
       reissue_efficiency_postgres=...
       reissue_efficiency_nolint_sqlite=...    the same, lint off at both ends                 >= 0.5
       reissue_efficiency_nolint_postgres=...
       replay_to_signed_sqlite=...             replayed req/s / signed req/s                   >= 3
       replay_to_signed_postgres=...
       p99_at_half_peak_over_floor_sqlite=...  p99 at half the peak / floor ms per reissue     < 4
       p99_at_half_peak_over_floor_postgres=...

The machine's other load changes every figure: compare runs on a quiet machine only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reissue_floor import DEFAULT_ALGORITHM, Floor, cores, format_floor, measure, postgres_database
from reissue_wrk import POSTGRES_SERVER, Durations, Result, backend, series

from soap_service.keyalgorithms import KEY_ALGORITHM_NAMES

TARGETS = {
    "reissue_efficiency": (">=", 0.7),
    "reissue_efficiency_nolint": (">=", 0.5),
    "replay_to_signed": (">=", 3.0),
    "p99_at_half_peak_over_floor": ("<", 4.0),
}


def postgres_reachable(server: str) -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(server)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def ratios(kind: str, floor: Floor, results: dict[str, Result], n_cores: int) -> dict[str, float]:
    return {
        f"reissue_efficiency_{kind}": results["signed"].rps / floor.throughput(n_cores),
        f"reissue_efficiency_nolint_{kind}": results["nolint"].rps / floor.throughput(n_cores, lint=False),
        f"replay_to_signed_{kind}": results["replay"].rps / results["signed"].rps,
        f"p99_at_half_peak_over_floor_{kind}": results["half"].p99_ms / floor.total_ms,
    }


def verdict(name: str, value: float) -> str:
    for prefix in sorted(TARGETS, key=len, reverse=True):
        if name.startswith(prefix):
            op, target = TARGETS[prefix]
            met = value >= target if op == ">=" else value < target
            return f"target {op} {target:g}: {'met' if met else 'MISSED'}"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                        help="a smoke run of 1-2 minutes (also BENCH_QUICK=1)")
    parser.add_argument("--postgres-server", default=POSTGRES_SERVER)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    started = time.monotonic()
    n_cores = cores()
    kinds = ["sqlite"]
    if not args.skip_postgres:
        if postgres_reachable(args.postgres_server):
            kinds.append("postgres")
        else:
            print(f"PostgreSQL at {args.postgres_server} does not answer: its series are left out", flush=True)
    count = 15 if args.quick else 150
    algorithms = [DEFAULT_ALGORITHM] if args.quick else list(KEY_ALGORITHM_NAMES)
    print(f"== floor: in process, one core, {count} reissues per line; throughput = {n_cores} cores / ms ==",
          flush=True)
    floors: dict[str, Floor] = {}
    for algorithm in algorithms:
        floor = measure(algorithm, count)
        print(format_floor(floor, n_cores), flush=True)
        if algorithm == DEFAULT_ALGORITHM:
            floors["sqlite"] = floor
    if "postgres" in kinds:
        with postgres_database(args.postgres_server) as url:
            floors["postgres"] = measure(DEFAULT_ALGORITHM, count, url)
        print(format_floor(floors["postgres"], n_cores), flush=True)

    durations = Durations.of(args.quick)
    orders = 24 if args.quick else 200
    print(f"\n== end to end: soap-service serve (default workers and threads), CA {DEFAULT_ALGORITHM}, wrk with "
          f"{args.connections} in flight, {orders} orders; {durations.short:g} s per short series, "
          f"{durations.signed:g} s per signed series ==", flush=True)
    all_results: dict[str, dict[str, Result]] = {}
    for kind in kinds:
        with backend(kind, orders, args.postgres_server) as target:
            floor = floors[kind]
            all_results[kind] = series(target, durations, floor.throughput(n_cores),
                                       floor.throughput(n_cores, lint=False), args.connections)

    print("\n== summary (signed: lint on; CPU ms/signed: the server's master and workers, not the database's) ==")
    print(f"{'':<12} {'floor ms':>9} {'floor/s':>8} {'nolint/s':>9} {'signed/s':>9} {'nolint e2e/s':>13} "
          f"{'replay/s':>9} {'Hello/s':>8} {'WSDL/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99 @half':>9} "
          f"{'CPU ms/signed':>13}")
    for kind, results in all_results.items():
        floor = floors[kind]
        print(f"{kind:<12} {floor.total_ms:9.2f} {floor.throughput(n_cores):8.1f} "
              f"{floor.throughput(n_cores, lint=False):9.1f} {results['signed'].rps:9.1f} "
              f"{results['nolint'].rps:13.1f} {results['replay'].rps:9.1f} {results['hello'].rps:8.1f} "
              f"{results['wsdl'].rps:8.1f} {results['signed'].p50_ms:7.1f} {results['signed'].p99_ms:7.1f} "
              f"{results['half'].p99_ms:9.1f} {results['signed'].cpu_ms or 0:13.1f}")
    print("server CPU per signed Reissue against the floor's CPU (this process's; neither counts the database "
          "server's):")
    for kind, results in all_results.items():
        floor = floors[kind]
        signed, nolint = results["signed"].cpu_ms or 0, results["nolint"].cpu_ms or 0
        print(f"  {kind:<10} lint on: {signed:6.1f} ms vs floor {floor.cpu_ms:5.2f} ms (x{signed / floor.cpu_ms:.1f});"
              f"  lint off: {nolint:6.1f} ms vs floor {floor.cpu_nolint_ms:5.2f} ms "
              f"(x{nolint / floor.cpu_nolint_ms:.1f})")
    troubles = [f"{kind} {r.label}: {r.failures} failed, {r.exhausted} past the prepared bodies"
                for kind, results in all_results.items() for r in results.values() if r.failures or r.exhausted]
    for trouble in troubles:
        print("warning:", trouble)
    values: dict[str, float | None] = {}
    for kind in ("sqlite", "postgres"):
        if kind in all_results:
            values |= ratios(kind, floors[kind], all_results[kind], n_cores)
        else:
            values |= dict.fromkeys(ratios(kind, floors["sqlite"], all_results["sqlite"], n_cores))
    print("\n== ratios (targets: efficiency >= 0.7, nolint efficiency >= 0.5, replay/signed >= 3, "
          "p99 at half peak < 4 x floor ms) ==")
    for name, value in values.items():
        print(f"{name:<40} {'n/a' if value is None else f'{value:8.3f}'}  {verdict(name, value or 0) if value else ''}")
    print(f"({time.monotonic() - started:.0f} s in all; {n_cores} cores; figures vary with the machine's other load)")
    order = [f"{prefix}_{kind}" for prefix in TARGETS for kind in ("sqlite", "postgres")]
    for name in order:
        value = values[name]
        print(f"{name}={'n/a' if value is None else f'{value:.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
