"""The WSGI application that serves the CA certificates and CRLs at the URLs the
certificates carry (``soap_service.ca.locations``; docs/design.md, "Status publication"):

- ``GET /ca/<CA>.crt``: the CA's certificate, DER, ``application/pkix-cert`` (the caIssuers
  URL of the certificates it signed; the root's is ``/ca/ROOT.crt``);
- ``GET /crl/<CA>.crl``: the CA's current CRL, DER, ``application/pkix-crl`` (the CRL
  distribution point of the certificates it signed; ``/crl/ROOT.crl`` for the issuing CAs),
  with ``Cache-Control: max-age`` no later than the CRL's nextUpdate nor the service's own
  refresh of it (``soap_service.ra.crls``).

``<CA>`` is one of the installation's CA names (``ROOT``, ``THAWTE-TLS``, ``THAWTE-CS``...),
exactly. HEAD answers the same headers without the body; another method is 405; any other
path, a path over :data:`MAX_PATH_CHARS` characters, or a name that is no CA of ours is 404
with a short text body. The path is taken apart with ``startswith``/``endswith`` and one set
lookup: no pattern runs on it. A failure is an incident: 500 with its ID, logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from soap_service.client_address import TrustedProxies, client_address
from soap_service.errors import InternalError
from soap_service.ra.crls import CA_NAMES, CRLPublisher, PublishedCRL
from soap_service.ra.incidents import open_incident
from soap_service.status.requestlog import log_status_request

logger = logging.getLogger(__name__)

MAX_PATH_CHARS = 128
CERTIFICATE_MAX_AGE = timedelta(days=1)

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]

_TEXT = "text/plain; charset=utf-8"
_ROUTES = (("/ca/", ".crt", "cacert"), ("/crl/", ".crl", "crl"))


def route(path: str) -> tuple[str, str] | None:
    """(operation, CA name) for a status path of ours, else None."""
    if len(path) > MAX_PATH_CHARS:
        return None
    for prefix, suffix, operation in _ROUTES:
        if path.startswith(prefix) and path.endswith(suffix):
            name = path[len(prefix) : len(path) - len(suffix)]
            if name in CA_NAMES:
                return operation, name
    return None


class StatusApplication:
    """CA certificates and CRLs over HTTP (module docstring)."""

    def __init__(self, publisher: CRLPublisher, *, trusted_proxies: TrustedProxies = ()) -> None:
        self.publisher = publisher
        self._trusted = trusted_proxies

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        found = route(path)
        operation, ca = found if found is not None else ("-", None)
        incident = None
        try:
            status, headers, body, outcome = self._respond(environ, found)
        except InternalError as reported:
            status, headers, body, outcome, incident = _incident(reported)
        except Exception as failure:  # noqa: BLE001 - any failure is an incident, opened here
            status, headers, body, outcome, incident = _incident(
                open_incident(logger, f"status request {operation} failed", failure=failure)
            )
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        log_status_request(
            operation=operation, ca=ca, outcome=outcome, status=status,
            duration_ms=(time.perf_counter() - started) * 1000, incident=incident,
            client=client_address(environ, self._trusted),
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _respond(self, environ: dict[str, Any], found: tuple[str, str] | None) -> tuple[str, Headers, bytes, str]:
        if found is None:
            return "404 Not Found", [("Content-Type", _TEXT)], b"not found\n", "not-found"
        if environ.get("REQUEST_METHOD", "") not in ("GET", "HEAD"):
            headers = [("Content-Type", _TEXT), ("Allow", "GET, HEAD")]
            return "405 Method Not Allowed", headers, b"GET or HEAD only\n", "method-not-allowed"
        operation, name = found
        if operation == "cacert":
            max_age = int(CERTIFICATE_MAX_AGE.total_seconds())
            headers = [("Content-Type", "application/pkix-cert"), ("Cache-Control", f"public, max-age={max_age}")]
            return "200 OK", headers, self.publisher.ca_certificate(name), "0"
        crl = self.publisher.current_crl(name)
        headers = [
            ("Content-Type", "application/pkix-crl"),
            ("Cache-Control", f"public, max-age={self._max_age(crl)}"),
        ]
        return "200 OK", headers, crl.der, f"crl:{crl.number}"

    def _max_age(self, crl: PublishedCRL) -> int:
        """Seconds an HTTP cache may keep ``crl``: until its nextUpdate, and no longer than this
        service keeps it (its refresh interval from thisUpdate)."""
        now = self.publisher.clock()
        until = min(crl.next_update, crl.this_update + self.publisher.refresh_interval)
        return max(0, int((until - now).total_seconds()))


def _incident(incident: InternalError) -> tuple[str, Headers, bytes, str, str]:
    body = f"{incident.message}\n".encode()
    return "500 Internal Server Error", [("Content-Type", _TEXT)], body, "fault:internal", incident.incident_id
