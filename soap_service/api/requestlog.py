"""One log line per request: operation, partner, order, outcome, duration, incident; and the
request counted in the metrics (``soap_service.metrics``) by operation and outcome.

The line holds what the caller *claimed* (partner code, PartnerOrderID), cut to a
safe length and escaped, so that a hostile value cannot forge a line; it never
holds a password, a CSR or any other part of the body. Its message reads
``op=... partner=... outcome=...``; the same values are keys of the JSON line
(``soap_service.logjson``: ``op``, ``partner``, ``partner_order_id``, ``order_id``,
``outcome``, ``http``, ``ms``, ``incident``, ``client``, ``service``), cut to 64 characters.
``service`` names the SOAP service that answered: ``api`` (``/api/order``), ``webtrust-order`` or
``webtrust-query`` (the drop-in services, ``soap_service.webtrust``), set by its guard.

The metrics' operation label is one of the service's operations, ``wsdl``, ``xsd`` or ``-``: as
it is for ``api``, prefixed with the service for a drop-in one (``webtrust-order.Reissue``,
``webtrust-query.hello``), so that the two APIs' requests are told apart. Every value comes
from those fixed lists; anything else is ``other``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass

from soap_service import metrics

logger = logging.getLogger("soap_service.api.requests")

RECORD_KEY = "soap_service.request_record"
"""The WSGI environ key under which the guard leaves the request's record for the service."""

MAX_FIELD_CHARS = 64

API = "api"
WEBTRUST_ORDER = "webtrust-order"
WEBTRUST_QUERY = "webtrust-query"
SERVICES = frozenset({API, WEBTRUST_ORDER, WEBTRUST_QUERY})
"""The SOAP services a request line names (``service``)."""
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
    service: str = API
    """The SOAP service that answered (one of :data:`SERVICES`): set by its guard."""

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


@functools.cache
def _api_operations() -> frozenset[str]:
    """The Order API's operations (read once: ``api.service`` imports this module)."""
    from soap_service.api.service import OPERATIONS

    return frozenset(OPERATIONS)


def operation_label(service: str, operation: str, operations: frozenset[str]) -> str:
    """The metrics' operation label: the operation for ``api``, ``<service>.<operation>`` for a
    drop-in service; ``other`` for a service outside :data:`SERVICES` or an operation outside
    ``operations`` (the service's fixed list, from its guard), ``wsdl``, ``xsd`` and ``-``."""
    if service not in SERVICES or (operation not in operations and operation not in _PAGES):
        return metrics.OTHER
    return operation if service == API else f"{service}.{operation}"


_PAGES = frozenset({"wsdl", "xsd", "-"})


def log_request(record: RequestRecord, *, status: str, duration_ms: float, client: str | None,
                operations: frozenset[str] | None = None) -> None:
    """Log and count one request; ``operations``: the answering service's (its guard's fixed
    list), the Order API's when left out."""
    http = status.split(" ", 1)[0]
    service = metrics.bounded(record.service, SERVICES)
    known = _api_operations() if operations is None else operations
    metrics.count_request("soap", operation_label(service, record.operation, known), record.outcome,
                          duration_ms / 1000)
    logger.info(
        "op=%s partner=%s partner_order_id=%s order_id=%s outcome=%s http=%s ms=%.1f incident=%s client=%s "
        "service=%s",
        record.operation,
        field(record.partner_code),
        field(record.partner_order_id),
        field(record.order_id),
        record.outcome or "-",
        http,
        duration_ms,
        record.incident_id or "-",
        field(client),
        service,
        extra={"fields": {
            "op": record.operation,
            "partner": record.partner_code,
            "partner_order_id": record.partner_order_id,
            "order_id": record.order_id,
            "outcome": record.outcome,
            "http": int(http) if http.isdigit() else http,
            "ms": round(duration_ms, 1),
            "incident": record.incident_id,
            "client": client,
            "service": service,
        }},
    )
