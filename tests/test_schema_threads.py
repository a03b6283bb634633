"""The guard's schema validators in a new worker (docs/design.md, "The path of one Reissue"): the
threads of a new worker build their validators at once on their first requests. libxml2 sets up its
built-in schema types on the first parse of a process; two threads doing that at once broke it, and
every later parse in that process failed, so the worker answered every request with an incident
(seen in CI: a worker replaced after a SIGKILL). ``api.schema`` parses one schema at a time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "order.xsd"
PROCESSES = 60
THREADS = 12

DRIVER = textwrap.dedent(f"""
    import os, sys, threading, time
    from lxml import etree
    from soap_service.api.schema import OperationSchema  # parses nothing yet
    from soap_service.api.models import TNS

    xsd = open({str(SCHEMA)!r}, "rb").read()
    broken = 0
    for _ in range({PROCESSES}):
        pid = os.fork()
        if pid == 0:  # a new process whose libxml2 has parsed no schema yet, as a new worker
            schema = OperationSchema(xsd)  # as the worker builds its guard, before its threads serve
            barrier = threading.Barrier({THREADS})
            failed = []

            def first_request():
                barrier.wait()
                try:
                    schema.breach(etree.fromstring(f"<Hello xmlns='{{TNS}}'><Input>x</Input></Hello>".encode()))
                except Exception as error:
                    failed.append(error)

            threads = [threading.Thread(target=first_request) for _ in range({THREADS})]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            try:
                OperationSchema(xsd)  # and the process can still parse a schema afterwards
            except Exception as error:
                failed.append(error)
            os._exit(1 if failed else 0)
        deadline = time.monotonic() + 10  # a child that hangs in the race counts as broken, and is killed
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                broken += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                broken += 1
                break
            time.sleep(0.01)
        if broken:
            break  # one is enough to fail: no need to break more
    print(broken)
""")


def test_threads_of_a_new_process_building_their_validators_at_once_break_nothing() -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        out, err = driver.communicate(timeout=300)
    finally:  # whatever happens, no process of the driver's is left spinning (a hung child would)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == 0, err[-2000:]
    assert out.strip() == "0", f"a process broke (of at most {PROCESSES}): {out.strip()}"
