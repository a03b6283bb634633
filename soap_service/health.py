"""The operations endpoints (docs/operations.md; docs/design.md, "Serving"):

- ``GET /healthz``: the process is alive and serving: 200 ``{"status": "ok"}``, nothing checked;
- ``GET /readyz``: whether this worker can serve: the database answers a trivial query, the
  issuing CAs' keys are loaded and match their certificates, the database is at the migrations'
  head. 200 when every check passes, else 503; the body names each check and its result in a
  fixed word, never an exception's text (a database URL, a password);
- ``GET /metrics``: the Prometheus text (``soap_service.metrics``), with the outbox depth read now.

HEAD answers the same headers without a body; another method is 405. The readiness check is
cheap: one ``SELECT 1`` a call; the CA keys are unlocked once per process (the registry keeps
them); the migration heads are read from the scripts once per process and the database's
revision at most every :data:`REVISION_TTL_SECONDS`. These answers are logged at DEBUG (a probe
every few seconds would drown the request lines); a failed check is logged at WARNING with the
exception's class only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from soap_service import metrics
from soap_service.ca.hierarchy import BRANDS, CODE_SIGNING_BRANDS, issuing_ca_name
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import probes

logger = logging.getLogger(__name__)
requests_logger = logging.getLogger("soap_service.health.requests")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PATHS = frozenset({HEALTH_PATH, READY_PATH, METRICS_PATH})
REVISION_TTL_SECONDS = 10.0

ISSUING_CA_NAMES = tuple(
    [issuing_ca_name(brand, "tls") for brand in BRANDS]
    + [issuing_ca_name(brand, "codesigning") for brand in CODE_SIGNING_BRANDS]
)

StartResponse = Callable[..., Any]
_JSON = "application/json"


class HealthApplication:
    """The WSGI callable for :data:`PATHS` (module docstring); one per worker."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self.ra = ra
        self._heads = probes.head_revisions()
        self._revision_lock = threading.Lock()
        self._revision_checked: tuple[float, bool] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        operation = path.lstrip("/") if path in PATHS else "-"
        if method not in ("GET", "HEAD"):
            status, content_type, body = "405 Method Not Allowed", _JSON, _json({"error": "GET or HEAD only"})
            extra = [("Allow", "GET, HEAD")]
        else:
            extra = []
            status, content_type, body = self._answer(path)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"), *extra]
        start_response(status, headers)
        code = status.split(" ", 1)[0]
        seconds = time.perf_counter() - started
        metrics.count_request("health", metrics.bounded(operation, metrics.HEALTH_OPERATIONS), code, seconds)
        requests_logger.debug("health %s http=%s", operation, code,
                              extra={"fields": {"op": operation, "http": int(code), "ms": round(seconds * 1000, 1)}})
        return [] if method == "HEAD" else [body]

    def _answer(self, path: str) -> tuple[str, str, bytes]:
        if path == HEALTH_PATH:
            return "200 OK", _JSON, _json({"status": "ok"})
        if path == READY_PATH:
            checks = self.checks()
            ready = all(result == "ok" for result in checks.values())
            body = _json({"status": "ready" if ready else "unready", "checks": checks})
            return ("200 OK" if ready else "503 Service Unavailable"), _JSON, body
        return "200 OK", metrics.CONTENT_TYPE, metrics.exposition(self.outbox_depth)

    def checks(self) -> dict[str, str]:
        """Each readiness check's result: ``ok``, or a fixed word saying what failed."""
        return {
            "database": self._check("database", self._database),
            "ca_keys": self._check("ca_keys", self._ca_keys),
            "migrations": self._check("migrations", self._migrations),
        }

    @staticmethod
    def _check(name: str, check: Callable[[], str]) -> str:
        try:
            return check()
        except Exception as failure:  # noqa: BLE001 - a failed check is an answer, not an incident
            logger.warning("readiness check %s failed: %s", name, type(failure).__name__)
            return "failed"

    def _database(self) -> str:
        with self.ra.readers() as session, session.begin():
            probes.ping(session)
        return "ok"

    def _ca_keys(self) -> str:
        """Every issuing CA loaded (its key unlocked once per process, and matching its certificate)."""
        with self.ra.readers() as session, session.begin():
            for name in ISSUING_CA_NAMES:
                self.ra.authorities.by_name(session, name)
        return "ok"

    def _migrations(self) -> str:
        now = time.monotonic()
        checked = self._revision_checked
        if checked is not None and now - checked[0] < REVISION_TTL_SECONDS:
            return "ok" if checked[1] else "behind"
        with self._revision_lock:
            with self.ra.readers() as session, session.begin():
                at_head = probes.schema_revisions(session) == self._heads
            self._revision_checked = (time.monotonic(), at_head)
        return "ok" if at_head else "behind"

    def outbox_depth(self) -> int | None:
        """Unsent mails now, or None (and a WARNING) when the database cannot say."""
        try:
            with self.ra.readers() as session, session.begin():
                return probes.outbox_depth(session)
        except Exception as failure:  # noqa: BLE001 - a scrape without the gauge, not a failed scrape
            logger.warning("outbox depth not read: %s", type(failure).__name__)
            return None


def _json(value: object) -> bytes:
    return (json.dumps(value, sort_keys=True) + "\n").encode()
