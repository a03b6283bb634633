"""One log line per request: operation, partner, order, outcome, duration, incident.

The line holds what the caller *claimed* (partner code, PartnerOrderID), cut to a
safe length and escaped, so that a hostile value cannot forge a line; it never
holds a password, a CSR or any other part of the body.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

logger = logging.getLogger("soap_service.api.requests")

RECORD_KEY = "soap_service.request_record"
"""The WSGI environ key under which the guard leaves the request's record for the service."""

MAX_FIELD_CHARS = 64
_PLAIN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")


@dataclass
class RequestRecord:
    """Filled in as the request goes: the guard sets the operation, the service the rest."""

    operation: str = "-"
    partner_code: str | None = None
    partner_order_id: str | None = None
    order_id: str | None = None
    outcome: str | None = None
    """The SuccessCode answered ("0", "1", "-4003"...), or "fault:<faultcode>"."""
    incident_id: str | None = None

    def answered(self, code: int) -> None:
        self.outcome = str(code)

    def faulted(self, faultcode: str, incident_id: str | None = None) -> None:
        self.outcome = "fault:" + faultcode
        if incident_id is not None:
            self.incident_id = incident_id


def field(value: str | None) -> str:
    """A value for the log line: plain tokens as they are, anything else JSON-quoted and cut."""
    if value is None or value == "":
        return "-"
    if len(value) <= MAX_FIELD_CHARS and _PLAIN.fullmatch(value):  # measured before the pattern sees it
        return value
    cut = value[:MAX_FIELD_CHARS]
    return json.dumps(cut + ("..." if len(value) > MAX_FIELD_CHARS else ""), ensure_ascii=True)


def log_request(record: RequestRecord, *, status: str, duration_ms: float, client: str | None) -> None:
    logger.info(
        "op=%s partner=%s partner_order_id=%s order_id=%s outcome=%s http=%s ms=%.1f incident=%s client=%s",
        record.operation,
        field(record.partner_code),
        field(record.partner_order_id),
        field(record.order_id),
        record.outcome or "-",
        status.split(" ", 1)[0],
        duration_ms,
        record.incident_id or "-",
        field(client),
    )
