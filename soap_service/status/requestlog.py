"""One log line per status request, in the form of the SOAP requests' line
(``op=... outcome=... http=... ms=... incident=... client=...``), with the CA the path named
instead of a partner and an order. The path is never logged whole: only a CA name of this
installation, or ``-``. The same values are keys of the JSON line (``soap_service.logjson``:
``op``, ``ca``, ``outcome``, ``http``, ``ms``, ``incident``, ``client``). Each request is also
counted (``soap_service.metrics``): OCSP requests by outcome, CRL and CA certificate downloads by
CA and outcome, and every status request by operation and outcome."""

from __future__ import annotations

import json
import logging
import re

from soap_service import metrics
from soap_service.ra.crls import CA_NAMES

logger = logging.getLogger("soap_service.status.requests")

_PLAIN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")


def _field(value: str | None) -> str:
    if not value:
        return "-"
    if len(value) <= 64 and _PLAIN.fullmatch(value):
        return value
    return json.dumps(value[:64], ensure_ascii=True)


def log_status_request(
    *, operation: str, ca: str | None, outcome: str, status: str, duration_ms: float,
    incident: str | None, client: str | None,
) -> None:
    http = status.split(" ", 1)[0]
    operation_label = metrics.bounded(operation, metrics.STATUS_OPERATIONS)
    metrics.count_request("status", operation_label, outcome, duration_ms / 1000)
    metrics.count_status_request(operation_label, ca, outcome, CA_NAMES)
    logger.info(
        "op=%s ca=%s outcome=%s http=%s ms=%.1f incident=%s client=%s",
        operation, ca or "-", outcome, http, duration_ms, incident or "-", _field(client),
        extra={"fields": {
            "op": operation, "ca": ca, "outcome": outcome, "http": int(http) if http.isdigit() else http,
            "ms": round(duration_ms, 1), "incident": incident, "client": client,
        }},
    )
