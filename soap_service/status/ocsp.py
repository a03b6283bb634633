"""The OCSP responder over HTTP (RFC 6960, appendix A; docs/design.md, "OCSP").

``POST /ocsp`` with ``Content-Type: application/ocsp-request`` and the DER request as the body, or
``GET /ocsp/<base64 of the DER request>`` (standard or URL-safe alphabet, padding optional; the
server has percent-decoded the path). Every answer is ``application/ocsp-response``: a signed
response, or an OCSPResponse with an error status (``malformedRequest``, ``unauthorized``,
``internalError``) for a request that cannot be answered; never an HTML page, never a 500: a
failure that escapes everything else is an incident (``ra.incidents``) answered ``internalError``.
A GET answer about a good or revoked certificate may be kept by HTTP caches
(``Cache-Control: public, max-age``) for at most :data:`MAX_HTTP_CACHE` and never past its nextUpdate.

Each request ends with one line on ``soap_service.status.requests``: ``op=ocsp``, the issuing CA
the request named (when it is ours), the outcome (good, revoked, unknown, or the error status),
the HTTP status, the duration, the incident of an internalError, the client.

Bounds, checked before anything is parsed: a body of at most ``ca.ocsp.MAX_REQUEST_BYTES`` (4 KiB),
a GET path's base64 of at most :data:`MAX_GET_CHARS` characters.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from soap_service.ca.ocsp import MAX_REQUEST_BYTES, CertificateState, ErrorStatus
from soap_service.client_address import TrustedProxies, client_address
from soap_service.ra.incidents import open_incident
from soap_service.ra.ocsp import OCSPAnswer, OCSPResponderService
from soap_service.ra.service import RegistrationAuthority
from soap_service.status.requestlog import log_status_request

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

OCSP_PATH = "/ocsp"
REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"
MAX_GET_CHARS = 6 * 1024
"""The base64 of a 4 KiB request is 5,464 characters; a path longer than this is refused unread."""
MAX_HTTP_CACHE = 3600
"""Seconds an HTTP cache may keep a GET answer: a revocation reaches cached relying parties within an hour."""


class OCSPApplication:
    """The WSGI callable for ``/ocsp`` and ``/ocsp/...``; one per process, over one responder service."""

    def __init__(self, service: OCSPResponderService, clock: Callable[[], datetime], *,
                 trusted_proxies: TrustedProxies = ()) -> None:
        self._service = service
        self._clock = clock
        self._trusted = trusted_proxies

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        captured: list[str] = []

        def record(status: str, headers: list[tuple[str, str]]) -> Any:
            captured.append(status)
            return start_response(status, headers)

        try:
            answer, body = self._route(environ, record)
        except Exception as failure:  # noqa: BLE001 - the last resort: never an HTML page or a 500
            incident = open_incident(logger, "OCSP request failed", failure=failure)
            answer = OCSPAnswer.failed(ErrorStatus.INTERNAL_ERROR, incident=incident.incident_id)
            if captured:  # headers already given: replace them (PEP 3333, exc_info)
                start_response("200 OK", _headers(answer), sys.exc_info())
                captured.append("200 OK")
                body = [answer.der]
            else:
                body = _respond(record, "200 OK", answer)
        log_status_request(
            operation="ocsp", ca=answer.ca, outcome=answer.outcome, status=captured[0] if captured else "-",
            duration_ms=(time.perf_counter() - started) * 1000, incident=answer.incident,
            client=client_address(environ, self._trusted),
        )
        return body

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> tuple[OCSPAnswer, Iterable[bytes]]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        rest = _after_ocsp(path)
        if rest is None:
            answer = OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
            return answer, _respond(start_response, "404 Not Found", answer)
        if method == "POST" and rest in ("", "/"):
            answer = self._post(environ)
            return answer, _respond(start_response, "200 OK", answer)
        if method in ("GET", "HEAD") and rest.startswith("/") and len(rest) > 1:
            answer = self._get(rest[1:])
            return answer, _respond(start_response, "200 OK", answer, self._cache_control(answer),
                                    head=method == "HEAD")
        answer = OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        return answer, _respond(start_response, "405 Method Not Allowed", answer, extra=[("Allow", "GET, POST")])

    def _post(self, environ: dict[str, Any]) -> OCSPAnswer:
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if content_type != REQUEST_TYPE:
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        try:
            length = int(environ.get("CONTENT_LENGTH") or "-1")
        except ValueError:
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        if length > MAX_REQUEST_BYTES:
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        stream = environ["wsgi.input"]
        body: bytes = stream.read(length if length >= 0 else MAX_REQUEST_BYTES + 1)
        if len(body) > MAX_REQUEST_BYTES:
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        return self._service.answer(body)

    def _get(self, encoded: str) -> OCSPAnswer:
        if len(encoded) > MAX_GET_CHARS:
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        text = encoded.replace("-", "+").replace("_", "/").rstrip("=")
        try:
            request = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
        return self._service.answer(request)

    def _cache_control(self, answer: OCSPAnswer) -> list[tuple[str, str]]:
        if answer.cache_until is None or answer.state not in (CertificateState.GOOD, CertificateState.REVOKED):
            return [("Cache-Control", "no-cache")]
        now = self._clock()
        seconds = int(min((answer.cache_until - now).total_seconds(), MAX_HTTP_CACHE))
        if seconds <= 0:
            return [("Cache-Control", "no-cache")]
        return [
            ("Cache-Control", f"public, max-age={seconds}, no-transform, must-revalidate"),
            ("Expires", format_datetime(answer.cache_until, usegmt=True)),
        ]


def _after_ocsp(path: str) -> str | None:
    """What follows ``/ocsp`` in ``path`` ("" for ``/ocsp`` itself), or None for another path."""
    if path == OCSP_PATH:
        return ""
    if path.startswith(OCSP_PATH + "/"):
        return path[len(OCSP_PATH):]
    return None


def _respond(
    start_response: StartResponse,
    status: str,
    answer: OCSPAnswer,
    extra: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> Iterable[bytes]:
    start_response(status, _headers(answer, extra))
    return [] if head else [answer.der]


def _headers(answer: OCSPAnswer, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", RESPONSE_TYPE), ("Content-Length", str(len(answer.der)))]
    return headers + (extra or [("Cache-Control", "no-cache")])


def create_ocsp_application(ra: RegistrationAuthority) -> OCSPApplication:
    """The OCSP responder of a worker: its issuers and responder keys loaded before it serves."""
    service = OCSPResponderService(ra)
    service.prepare()
    return OCSPApplication(service, ra.clock, trusted_proxies=ra.settings.trusted_proxies)
