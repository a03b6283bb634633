"""Real processes for what must hold across processes (the lockout, concurrent revocations):
each is spawned (a fresh interpreter, as a gunicorn worker has its own), waits on one barrier so
that their work overlaps, and puts a list of results on one queue."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

START_TIMEOUT = 120
"""Seconds a process may take to start and reach the barrier (a spawned interpreter imports everything)."""


def results_of_processes(target: Callable[..., None], args_per_process: Sequence[tuple[Any, ...]], *,
                         work_timeout: float) -> list[Any]:
    """Run ``target(*args, start, results)`` in one spawned process per ``args_per_process``;
    ``start`` is a barrier of all of them, and each puts one list on ``results``. Returns the
    lists joined, once every process has put its own and exited cleanly."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(args_per_process))
    results = context.Queue()
    workers = [context.Process(target=target, args=(*args, start, results)) for args in args_per_process]
    for worker in workers:
        worker.start()
    try:
        joined = [item for _ in workers for item in results.get(timeout=START_TIMEOUT + work_timeout)]
    finally:
        for worker in workers:
            worker.join(60)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)
    return joined
