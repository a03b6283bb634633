"""One log line per status request, in the form of the SOAP requests' line
(``op=... outcome=... http=... ms=... incident=... client=...``), with the CA the path named
instead of a partner and an order. The path is never logged whole: only a CA name of this
installation, or ``-``."""

from __future__ import annotations

import json
import logging
import re

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
    logger.info(
        "op=%s ca=%s outcome=%s http=%s ms=%.1f incident=%s client=%s",
        operation, ca or "-", outcome, status.split(" ", 1)[0], duration_ms, incident or "-", _field(client),
    )
