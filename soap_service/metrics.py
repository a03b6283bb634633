"""The service's Prometheus metrics (docs/operations.md has the list; docs/design.md, "Serving").

Under gunicorn every worker counts in files of its own in ``PROMETHEUS_MULTIPROC_DIR`` (the
client library's multiprocess mode), which the master sets to a fresh directory before it forks
(``gunicorn_conf.on_starting`` calls :func:`use_multiprocess_directory`); a scrape of any worker
sums every worker's files, dead workers' counts included. Outside gunicorn (tests in process,
the CLI) the metrics live in this process's registry.

The metrics are built on first use, never at import: the library chooses between the two modes
when a value is made, and the master must have chosen before any is.

Every label value is bounded: operation names from fixed lists, outcomes as the service answers
them (a pattern that admits only its own codes), brands from the vocabulary; anything else is
counted under ``other``. No value a client sent is a label value.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector

from soap_service.vocabulary import Brand

logger = logging.getLogger(__name__)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"

FRONT_ENDS = frozenset({"soap", "status", "portal", "health"})
STATUS_OPERATIONS = frozenset({"cacert", "crl", "ocsp", "-"})
HEALTH_OPERATIONS = frozenset({"healthz", "readyz", "metrics"})
_WORD_OUTCOMES = frozenset({
    "not-found", "method-not-allowed", "fault:internal", "good", "revoked", "unknown", "malformed_request",
    "internal_error", "try_later", "sig_required", "unauthorized", "ok", "unready", "-",
})
_CODE = re.compile(r"-?[0-9]{1,6}")
_FAULT = re.compile(r"fault:[A-Za-z]{1,40}(?:\.[A-Za-z]{1,40})?")
_BRANDS = frozenset(str(brand) for brand in Brand)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    request_seconds: Histogram
    issuance_seconds: Histogram
    lint_seconds: Histogram
    issued: Counter
    revoked: Counter
    lockouts: Counter
    ocsp: Counter
    crl: Counter


_built: _Metrics | None = None
_build_lock = threading.Lock()
_registry = CollectorRegistry(auto_describe=True)
"""This process's registry when not under gunicorn's multiprocess mode."""


def _metrics() -> _Metrics:
    global _built
    built = _built
    if built is not None:
        return built
    with _build_lock:
        if _built is None:
            registry = None if multiprocess_directory() is not None else _registry
            _built = _Metrics(
                requests=Counter("soap_service_requests", "Requests answered, by front end, operation and outcome",
                                 ["front_end", "operation", "outcome"], registry=registry),
                request_seconds=Histogram("soap_service_request_duration_seconds",
                                          "Time from a request's arrival at the application to its answer",
                                          ["front_end"], buckets=_LATENCY_BUCKETS, registry=registry),
                issuance_seconds=Histogram("soap_service_issuance_duration_seconds",
                                           "Time to build, lint and sign one certificate (ca.issuer)",
                                           buckets=_LATENCY_BUCKETS, registry=registry),
                lint_seconds=Histogram("soap_service_lint_duration_seconds",
                                       "Time the pre-issuance linter takes on one certificate",
                                       buckets=_LATENCY_BUCKETS, registry=registry),
                issued=Counter("soap_service_certificates_issued", "Certificates issued and recorded, by brand",
                               ["brand"], registry=registry),
                revoked=Counter("soap_service_certificates_revoked",
                                "Certificates revoked (Revoke, keyCompromise of the same key, Cancel), by brand",
                                ["brand"], registry=registry),
                lockouts=Counter("soap_service_lockout_refusals",
                                 "Logins refused because the account is locked out", registry=registry),
                ocsp=Counter("soap_service_ocsp_requests", "OCSP requests answered, by outcome", ["outcome"],
                             registry=registry),
                crl=Counter("soap_service_crl_requests", "CRL and CA certificate downloads, by CA and outcome",
                            ["operation", "ca", "outcome"], registry=registry),
            )
        return _built


# -- multiprocess mode (gunicorn) ----------------------------------------------------------------


def multiprocess_directory() -> Path | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (multiprocess mode), else None."""
    value = os.environ.get(MULTIPROC_VARIABLE)
    return Path(value) if value else None


def use_multiprocess_directory(directory: Path) -> None:
    """For gunicorn's master, before it forks: count in files under ``directory``, emptied of
    any earlier server's files, from now on in this process and every worker it forks."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _refuse_a_shared_directory(directory)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_VARIABLE] = str(directory)
    # The library chose its value class when it was imported (the environment did not say yet).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class SharedMetricsDirectory(RuntimeError):
    """``PROMETHEUS_MULTIPROC_DIR`` names a directory another user owns or may write."""


def _refuse_a_shared_directory(directory: Path) -> None:
    """The workers open ``<type>_<pid>.db`` there for writing (and the master deletes ``*.db``): in a
    directory another local user owns or may write (``/tmp/metrics``), that user could plant links
    to this user's files, which the service would then write into or delete."""
    found = os.lstat(directory)
    if stat.S_ISLNK(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        raise SharedMetricsDirectory(
            f"{MULTIPROC_VARIABLE}={directory} is a link, belongs to another user or may be written by "
            f"others: give the server a directory of its own (or leave the variable unset)"
        )


ARCHIVE = "archive"
"""The ``<type>_archive.db`` files that hold the counts of every worker that has left."""
_LOCK_NAME = ".scrape-lock"
_FOLDED_TYPES = ("counter", "histogram")
_unfolded: list[int] = []
"""In the master: workers gone whose files are not folded yet (a scrape held the lock)."""


def worker_exited(pid: int) -> None:
    """For gunicorn's ``child_exit``: drop the live gauges of a worker that left, and fold its
    counter and histogram files into the archive files (its counts stay in the sums). Without the
    fold every replaced worker (``max_requests``, which clients' requests drive, or a crash) left
    two files that every scrape reads again: a scrape's cost grew with the server's age."""
    directory = multiprocess_directory()
    if directory is None:
        return
    prometheus_multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    _unfolded.append(pid)
    try:
        _fold_into_archive(directory)
    except Exception as failure:  # noqa: BLE001 - the master goes on; the files stay and are summed as they are
        logger.warning("metric files of worker %d not folded: %s", pid, type(failure).__name__)


def _fold_into_archive(directory: Path) -> None:
    """Fold the gone workers' files, under the directory's lock taken exclusive; a scrape takes it
    shared, so that no scrape reads a count in both the archive and the file it came from, or in
    neither. The master never waits for it (scrapes one after another must not hang it): when a
    scrape holds it, the files wait for the next worker's exit."""
    descriptor = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        while _unfolded:
            pid = _unfolded.pop()
            for kind in _FOLDED_TYPES:
                _fold_file(directory / f"{kind}_{pid}.db", directory / f"{kind}_{ARCHIVE}.db")
    finally:
        os.close(descriptor)


def _fold_file(gone: Path, archive_path: Path) -> None:
    if not gone.exists():
        return
    # Read whole first: a file that cannot be read (a full disk cut it short) changes no archive.
    counts = [(key, value) for key, value, _timestamp, _position
              in MmapedDict.read_all_values_from_file(str(gone))]  # type: ignore[no-untyped-call]
    archive = MmapedDict(str(archive_path))  # type: ignore[no-untyped-call]
    try:
        for key, value in counts:
            archived, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
            archive.write_value(key, archived + value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        archive.close()  # type: ignore[no-untyped-call]
    gone.unlink()


@contextmanager
def _scrape_lock(directory: Path) -> Iterator[None]:
    """The directory's lock, shared, for one scrape's reading of the files."""
    descriptor = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


# -- what the service counts -------------------------------------------------------------------------

_P = ParamSpec("_P")


def _never_fails(count: Callable[_P, None]) -> Callable[_P, None]:
    """A count that cannot fail what it counts (a request, a revocation already committed): a
    failure to count (``PROMETHEUS_MULTIPROC_DIR`` naming a directory that is gone, a full disk)
    is logged at WARNING by its class and the count is lost."""

    @functools.wraps(count)
    def counting(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            count(*args, **kwargs)
        except Exception as failure:  # noqa: BLE001 - a lost count, never a failed request
            logger.warning("metric %s not counted: %s", count.__name__, type(failure).__name__)

    return counting



def bounded(value: str | None, allowed: frozenset[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``other``."""
    return value if value is not None and value in allowed else OTHER


def outcome_label(outcome: str | None) -> str:
    """An outcome as the service answers it: a SuccessCode (``0``, ``-4003``), ``fault:<faultcode>``,
    an HTTP status or one of the front ends' words; ``crl:<number>`` counts as ``0``; else ``other``.
    The length is checked before a pattern sees the value."""
    if outcome is None:
        return "-"
    if outcome in _WORD_OUTCOMES:
        return outcome
    if outcome.startswith("crl:"):
        return "0"
    if len(outcome) <= 88 and (_CODE.fullmatch(outcome) or _FAULT.fullmatch(outcome)):
        return outcome
    return OTHER


@_never_fails
def count_request(front_end: str, operation: str, outcome: str | None, seconds: float) -> None:
    """One answered request; ``operation`` must come from a fixed list of the front end's."""
    metrics = _metrics()
    front = bounded(front_end, FRONT_ENDS)
    metrics.requests.labels(front, operation, outcome_label(outcome)).inc()
    metrics.request_seconds.labels(front).observe(max(seconds, 0.0))


@_never_fails
def count_status_request(operation: str, ca: str | None, outcome: str, known_cas: frozenset[str]) -> None:
    """An OCSP request, or a CRL or CA certificate download (the status front end)."""
    metrics = _metrics()
    if operation == "ocsp":
        metrics.ocsp.labels(outcome_label(outcome)).inc()
    elif operation in ("crl", "cacert"):
        metrics.crl.labels(operation, bounded(ca, known_cas), outcome_label(outcome)).inc()


@_never_fails
def certificate_issued(brand: str) -> None:
    """A certificate issued and recorded (the RA calls this after the issuance's transaction commits)."""
    _metrics().issued.labels(bounded(str(brand), _BRANDS)).inc()


@_never_fails
def certificates_revoked(brands: Iterable[str]) -> None:
    """Certificates revoked, one brand each (after the revocation's transaction commits)."""
    counter = _metrics().revoked
    for brand in brands:
        counter.labels(bounded(str(brand), _BRANDS)).inc()


@_never_fails
def login_locked_out() -> None:
    """A login refused because its account is locked out."""
    _metrics().lockouts.inc()


@_never_fails
def _observe(what: str, seconds: float) -> None:
    metrics = _metrics()
    (metrics.issuance_seconds if what == "issuance" else metrics.lint_seconds).observe(seconds)


@contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _observe(what, time.perf_counter() - started)


def timed_issuance() -> AbstractContextManager[None]:
    """Times one certificate's issuance (build, lint, sign), whether it ends signed or refused."""
    return _timed("issuance")


def timed_lint() -> AbstractContextManager[None]:
    """Times one run of the pre-issuance linter."""
    return _timed("lint")


# -- the scrape ----------------------------------------------------------------------------------------


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()


class _OutboxDepth(Collector):
    def __init__(self, depth: Callable[[], int | None]) -> None:
        self._depth = depth

    def collect(self) -> Iterable[Metric]:
        depth = self._depth()
        if depth is None:
            return []
        return [GaugeMetricFamily("soap_service_mail_outbox_depth",
                                  "Mails in the outbox not yet accepted by the SMTP server", value=depth)]


def exposition(outbox_depth: Callable[[], int | None]) -> bytes:
    """The Prometheus text of every metric: all workers' sums under gunicorn, this process's
    otherwise, and the outbox depth read now (``outbox_depth``: None when it cannot be read)."""
    _metrics()  # every metric family shows, at zero, from the first scrape
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_directory()
    if directory is None:
        registry.register(_Forward(_registry))
        registry.register(_OutboxDepth(outbox_depth))
        return generate_latest(registry)
    prometheus_multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    depth = outbox_depth()  # the database is asked before the files' lock is taken, not under it
    registry.register(_OutboxDepth(lambda: depth))
    with _scrape_lock(directory):
        return generate_latest(registry)
