"""Where a worker spends a signed Reissue: py-spy attached to one worker under wrk's load.

    .venv/bin/pip install -e '.[bench]'      # py-spy
    .venv/bin/python bench/profile_reissue.py [--backend sqlite|postgres|both] [--duration 20] [--replay]
    make profile                            # both backends, 20 s each

For each backend this makes the installation of ``bench/reissue_wrk.py`` (default settings,
``--orders`` DV orders), starts ``soap-service serve`` with its default workers and threads,
warms it up, then loads it with signed Reissues (a new CSR each, ``--connections`` in flight;
``--replay`` loads it with replays instead) and runs

    py-spy record -o /tmp/profile_<backend>.txt --format raw -p <one worker's pid> --duration 20 --threads

(py-spy pauses the worker for each sample, 100 a second: the worker is slower while it is
sampled; the shares are what counts). The raw file holds one line per distinct stack (root
first, frames ``function (file:line)``) and its sample count; this script then prints, for
samples whose stack passes through neither the pre-issuance lint (pkilint,
``soap_service/ca/lint.py``) nor the signature (``soap_service/ca/signing.py``,
``soap_service/ca/keys/``), the top functions by self samples (the innermost frame) and by
cumulative samples (anywhere on the stack), each as a share of *all* the worker's samples,
with the line seen most often; and the share of a few families (lint, signing, SQLAlchemy,
spyne, lxml, argon2, the database driver). Samples in which a thread waits in the database
driver's C code count as busy: SQLite's ``BEGIN IMMEDIATE`` waiting for the write lock (seen as
``_configure_sqlite.<locals>.on_begin``, ``storage/db.py``) and psycopg's ``Connection.wait``
(a round trip, a row or advisory lock, the commit's flush) are in "database execute/commit".
Before the profile, the SQL statements of one replayed and one signed Reissue are counted in
process (:func:`statements`; ``--statements-only`` stops there). The summary is written next to the raw file
(``/tmp/profile_<backend>_summary.txt``). py-spy needs ptrace rights (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reissue_wrk import LUA, POSTGRES_SERVER, backend, run_wrk

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
FAMILIES = {
    "pre-issuance lint": ("pkilint/", "pyasn1", "soap_service/ca/lint.py", "validators/", "publicsuffix"),
    "signing": ("soap_service/ca/signing.py", "soap_service/ca/keys/"),
    "database execute/commit (driver time, lock waits included)": (),
    "SQLAlchemy (ORM and Core, Python side)": ("sqlalchemy/",),
    "CSR read and key checks": ("soap_service/ra/csr.py", "soap_service/ra/keypolicy.py", "badkeys"),
    "argon2 (password check)": ("argon2",),
    "spyne": ("spyne/",),
    "lxml": ("lxml/", "src/lxml"),
    "cryptography (outside signing)": ("cryptography/",),
    "soap_service (own code)": ("soap_service/",),
    "gunicorn and threading": ("gunicorn/", "threading.py", "concurrent/futures", "selectors.py", "socket.py"),
    "other": (),
}
EXCLUDED = ("pre-issuance lint", "signing")
DRIVER_CALLS = ("do_execute", "do_commit", "do_executemany", "do_execute_no_params", "do_rollback", "do_begin")
IDLE = (("select", "selectors.py"), ("wait", "threading.py"), ("_worker", "concurrent/futures/thread.py"),
        ("get", "queue.py"), ("sleep", ""), ("accept", "socket.py"))
PIPELINE = 0.6  # a soap_service frame on more of the busy samples than this wraps the whole request
WRAPPERS = ("threading.py", "concurrent/futures/", "gunicorn/", "soap_service/worker.py", "soap_service/wsgi.py")


def short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1].removeprefix(".11/").removeprefix(".12/").removeprefix(".13/")
    return path


def frames(stack: str) -> list[tuple[str, str, str]]:
    """(function, short file, line) of each frame, root first; thread and process labels dropped."""
    parsed = []
    for frame in stack.split(";"):
        match = FRAME.match(frame)
        if match is None or not match["file"]:
            continue
        parsed.append((match["function"], short(match["file"]), match["line"] or "?"))
    return parsed


def family_of(stack_frames: list[tuple[str, str, str]]) -> str:
    """Lint or signing when the stack passes through either; else the innermost frame's family."""
    for family in EXCLUDED:
        if any(marker in file for _, file, _ in stack_frames for marker in FAMILIES[family]):
            return family
    function, file, _ = stack_frames[-1]
    if function.rsplit(".", 1)[-1] in DRIVER_CALLS or "psycopg" in file or "sqlite3" in file:
        return "database execute/commit (driver time, lock waits included)"
    for _function, file, _ in reversed(stack_frames):
        for family, markers in FAMILIES.items():
            if any(marker in file for marker in markers):
                return family
    return "other"


def is_idle(stack_frames: list[tuple[str, str, str]]) -> bool:
    function, file, _ = stack_frames[-1]
    name = function.rsplit(".", 1)[-1]
    return any(name == idle and idle_file in file for idle, idle_file in IDLE)


def summarize(raw: Path, top: int = 25) -> str:
    """The report of one raw py-spy file (see the module docstring)."""
    total = idle = 0
    families: Counter[str] = Counter()
    self_samples: Counter[tuple[str, str]] = Counter()
    cumulative: Counter[tuple[str, str]] = Counter()
    self_lines: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    call_lines: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for text in raw.read_text().splitlines():
        stack, _, count_text = text.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        stack_frames = frames(stack)
        if not stack_frames or is_idle(stack_frames):
            idle += count
            continue
        total += count
        family = family_of(stack_frames)
        families[family] += count
        if family in EXCLUDED:
            continue
        function, file, line = stack_frames[-1]
        self_samples[(function, file)] += count
        self_lines[(function, file)][line] += count
        seen = set()
        for function, file, line in stack_frames:
            if (function, file) in seen or any(file.startswith(w) or file.endswith(w) for w in WRAPPERS):
                continue
            seen.add((function, file))
            cumulative[(function, file)] += count
            call_lines[(function, file)][line] += count
    if total == 0:
        return f"{raw}: no busy samples\n"
    outside = sum(self_samples.values())
    out = [f"{raw}: {total} busy samples ({idle} idle left out: threads waiting for work or I/O); "
           f"outside lint and signing: {outside} ({outside / total:.0%})", "",
           "where the busy samples go (lint and signing: anywhere on the stack; else the innermost frame's family):"]
    out += [f"  {family:<60} {families[family] / total:6.1%}" for family in FAMILIES]

    def table(title: str, counter: Counter[tuple[str, str]], lines: dict[tuple[str, str], Counter[str]]) -> None:
        out.extend(["", title, f"  {'share':>6}  function (file:line seen most)"])
        for (function, file), count in counter.most_common(top):
            line = lines[(function, file)].most_common(1)[0][0]
            out.append(f"  {count / total:6.1%}  {function} ({file}:{line})")

    table(f"top {top} by self samples (the innermost frame), outside lint and signing:", self_samples, self_lines)
    table(f"top {top} by cumulative samples (anywhere on the stack; thread, gunicorn and WSGI wrappers left out; "
          "the line is the call made from there), outside lint and signing:", cumulative, call_lines)
    own = Counter({key: count for key, count in cumulative.items()
                   if key[1].startswith("soap_service/") and count < PIPELINE * total})
    table(f"top {top} soap_service functions by cumulative samples, outside lint and signing (the request's "
          f"pipeline, on more than {PIPELINE:.0%} of the samples, left out):", own, call_lines)
    return "\n".join(out) + "\n"


def profile(kind: str, args: argparse.Namespace) -> str:
    raw = Path(args.output_dir) / f"profile_{kind}{'_replay' if args.replay else ''}.txt"
    with backend(kind, args.orders) as target:
        target.start()
        replays = target.body_file(target.replay_bodies())
        run_wrk(target, "warm-up", 3, bodies=replays, connections=args.connections, check=True)
        load_seconds = args.duration + 8
        if args.replay:
            bodies = replays
        else:
            bodies = target.body_file(target.signed_bodies(math.ceil(args.ceiling * load_seconds)))
        script = target.directory / "cycle.lua"
        script.write_text(LUA)
        env = {"BENCH_BODIES": str(bodies), "BENCH_ACTION": "Reissue", "BENCH_THREADS": "2", "BENCH_CHECK": "1",
               "BENCH_ONCE": "0" if args.replay else "1", "PATH": "/usr/bin:/bin"}
        load = subprocess.Popen(["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{load_seconds}s",
                                 "--latency", "--timeout", "30s", "-s", str(script),
                                 f"http://127.0.0.1:{target.port}/api/order"],
                                env=env, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(3)
            worker = target.worker_pids()[0]
            print(f"[{kind}] py-spy on worker {worker} for {args.duration} s ...", flush=True)
            subprocess.run([args.py_spy, "record", "-o", str(raw), "--format", "raw", "-p", str(worker),
                            "--duration", str(args.duration), "--threads"], check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            wrk_out, _ = load.communicate()
        rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk_out or "")
        counted = re.search(r"BENCH failures=(\d+) exhausted=(\d+)", wrk_out or "")
        header = (f"[{kind}] load: {'replayed' if args.replay else 'signed'} Reissue, {args.connections} in flight, "
                  f"{rps[1] if rps else '?'} req/s during the profile (sampled worker slowed by py-spy); "
                  f"{counted[0] if counted else ''}\n")
    summary = header + summarize(raw, args.top)
    raw.with_name(raw.stem + "_summary.txt").write_text(summary)
    return summary


def statements(kind: str, postgres_server: str, count: int = 20) -> str:
    """SQL statements per replayed and per signed Reissue, counted in process through the RA's
    public entry point (``Reissuer.reissue``, as ``bench/reissue_core.py`` calls it) with an
    engine event; the statements run more than once per request are listed."""
    import logging
    import secrets

    from reissue_floor import NAMES, PRODUCT, new_csr, postgres_database
    from sqlalchemy import event

    from soap_service.config import Secret, load_settings
    from soap_service.ra.auth import Credentials
    from soap_service.ra.installation import initialize
    from soap_service.ra.orders import Contact, NewOrder, create_order
    from soap_service.ra.partners import create_partner
    from soap_service.ra.reissue import Reissuer, ReissueRequest
    from soap_service.ra.service import RegistrationAuthority

    logging.getLogger().setLevel(logging.ERROR)
    out = []
    with tempfile.TemporaryDirectory(prefix="soap-statements-") as directory, contextlib.ExitStack() as stack:
        environ = {"SOAP_SERVICE_DATA_DIR": directory, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_hex(16)}
        if kind == "postgres":
            environ["SOAP_SERVICE_DATABASE_URL"] = stack.enter_context(postgres_database(postgres_server))
        ra = RegistrationAuthority.from_settings(load_settings(environ))
        stack.callback(ra.close)
        initialize(ra)
        password = Secret(secrets.token_urlsafe(16))
        create_partner(ra, code="COUNT", name="Count", username="api", password=password)
        csr = new_csr()
        create_order(ra, NewOrder(partner_code="COUNT", partner_order_id="C-1", product=PRODUCT, names=NAMES, csr=csr,
                                  contacts=(Contact("admin", "a@example.com"), Contact("technical", "t@example.com"))))
        credentials = Credentials("COUNT", "api", password)
        reissuer = Reissuer(ra)
        reissuer.reissue(credentials, ReissueRequest("C-1", csr), channel="api")  # the credential cached
        seen: list[str] = []
        event.listen(ra.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: seen.append(" ".join(statement.split())))
        for label, make in (("replayed", lambda: csr), ("signed", new_csr)):
            seen.clear()
            for _ in range(count):
                reissuer.reissue(credentials, ReissueRequest("C-1", make()), channel="api")
            out.append(f"[{kind}] SQL statements per {label} Reissue (in process, credential cached): "
                       f"{len(seen) / count:.1f}")
            for text, times in Counter(seen).most_common():
                if times > count:
                    out.append(f"    {times / count:4.1f} x  {text[:150]}")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=int, default=20, help="seconds sampled (default 20)")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--ceiling", type=float, default=300.0, help="req/s the prepared bodies suffice for")
    parser.add_argument("--replay", action="store_true", help="load with replayed Reissues (nothing signed)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output-dir", default="/tmp")
    parser.add_argument("--statements-only", action="store_true", help="only count the SQL statements per request")
    parser.add_argument("--summarize", metavar="RAW", help="only print the summary of an existing raw file")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")))
    args = parser.parse_args()
    if args.summarize:
        print(summarize(Path(args.summarize), args.top))
        return 0
    kinds = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for kind in kinds:
        print(statements(kind, POSTGRES_SERVER), flush=True)
    if args.statements_only:
        return 0
    if not Path(args.py_spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    for kind in kinds:
        print(profile(kind, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
