"""The WSGI application of the Order API: what reaches spyne is a well-formed SOAP 1.1
request of ours, and every answer is SOAP (or the WSDL), never an HTML page.

A POST to :data:`SERVICE_PATH` goes through, in order: its body (``http_body``: the
Content-Type, the bytes within 1 MiB, their text), its envelope (``envelope``: well-formed
XML without a DOCTYPE, SOAP 1.1, one operation of ours, no ``mustUnderstand`` header block
but ``wsse:Security``, a SOAPAction that names the operation) and the published schema
(``schema``). A ``wsse:Security`` header's UsernameToken is read here (``wssecurity``) and
handed to the service in the environ, read or malformed: spyne sees no header. Each refusal
is a SOAP 1.1 fault (docs/design.md, "Error model"), most of them ``soap:Client.<subcode>``, whose
message names the rule and never quotes the request; a client fault of spyne's own is
answered in our words. spyne gets the envelope ``envelope.spyne_envelope`` writes, labelled
``text/xml; charset=utf-8``, never the client's bytes nor its Content-Type.

One guard serves one SOAP service at its path (``path``, :data:`SERVICE_PATH` for the Order
API; ``soap_service.webtrust`` builds one per drop-in service, each with its own WSDL, schema
and operations, and ``wsgi.Dispatcher`` sends each path to its guard); ``aliases`` are further
paths that answer the same (``/webtrust/order.jws``).

Also served here: ``GET /api/order?wsdl`` (the published WSDL) and ``?xsd``; any other
method, or a GET of anything else, is answered 405. Every request ends with one log line
(see ``requestlog``); the body never reaches the log. An exception that escapes
everything, or a spyne answer that is not the operation's response, becomes a
``soap:Server`` fault with an incident ID, logged.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from soap_service.api.envelope import (
    answers_operation,
    read_request,
    refuse_mandatory_headers,
    refuse_other_action,
    spyne_envelope,
)
from soap_service.api.faults import FAULT_CONTENT_TYPE, fault_envelope, read_fault, server_fault
from soap_service.api.http_body import MAX_BODY_BYTES, read_body, request_charset
from soap_service.api.refusal import Refusal
from soap_service.api.requestlog import API, RECORD_KEY, RequestRecord, log_request
from soap_service.api.schema import OperationSchema
from soap_service.api.service import RA_KEY
from soap_service.api.wssecurity import SECURITY_KEY, MalformedSecurity, read_security
from soap_service.client_address import TrustedProxies, client_address
from soap_service.errors import InternalError
from soap_service.ra.incidents import open_incident
from soap_service.ra.service import RegistrationAuthority

logger = logging.getLogger(__name__)

SERVICE_PATH = "/api/order"
SPYNE_MAX_BODY_BYTES = 6 * MAX_BODY_BYTES + 64 * 1024
"""The largest envelope the guard can hand spyne: re-serializing a body of at most
:data:`~soap_service.api.http_body.MAX_BODY_BYTES` writes a character of a CDATA section
as an entity reference of at most five bytes (``&amp;``)."""

SPYNE_CONTENT_TYPE = "text/xml; charset=utf-8"

Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HTTP_OK = "200 OK"
HTTP_FAULT = "500 Internal Server Error"
_SPYNE_CLIENT_CODE = re.compile(r"Client(?:\.[A-Za-z]{1,40})?")


class SOAPGuard:
    """The WSGI application: guard, WSDL, request log, then spyne."""

    def __init__(
        self,
        soap_app: WSGIApp,
        *,
        ra: RegistrationAuthority,
        wsdl: bytes,
        xsd: bytes,
        operations: frozenset[str],
        max_body: int = MAX_BODY_BYTES,
        trusted_proxies: TrustedProxies = (),
        path: str = SERVICE_PATH,
        aliases: frozenset[str] = frozenset(),
        service: str = API,
    ) -> None:
        self._soap_app = soap_app
        self._service = service
        self._paths = frozenset({path}) | aliases
        self._trusted = trusted_proxies
        self.ra = ra
        self._wsdl = wsdl
        self._xsd = xsd
        self._operations = operations
        self._max_body = max_body
        self._schema = OperationSchema(xsd)

    def _validate(self, payload: etree._Element) -> None:
        """The operation element against the published schema; a refusal names the element and
        the rule, never the value (see ``schema``)."""
        breach = self._schema.breach(payload)
        if breach is not None:
            raise Refusal("SchemaValidationError", f"the request does not follow the schema: {breach}")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        record = RequestRecord(service=self._service)
        try:
            status, headers, body = self._respond(environ, record)
        except InternalError as reported:  # an incident opened (and logged) where it failed
            status, headers, body = _incident_answer(record, reported)
        except Exception as failure:  # noqa: BLE001 - any other failure is an incident, opened here
            status, headers, body = _incident_answer(record, open_incident(logger, "request failed", failure=failure))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        log_request(
            record,
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000,
            client=client_address(environ, self._trusted),
            operations=self._operations,
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _respond(self, environ: dict[str, Any], record: RequestRecord) -> Response:
        if environ.get("PATH_INFO", "") not in self._paths:
            record.operation = "-"
            record.outcome = "not-found"
            return "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"not found\n"
        method = environ.get("REQUEST_METHOD", "")
        if method in ("GET", "HEAD"):
            return self._document(environ, record)
        if method != "POST":
            return _method_not_allowed(record)
        try:
            charset = request_charset(environ.get("CONTENT_TYPE"))
            body = read_body(environ, self._max_body)
            request = read_request(body, self._operations, charset=charset)
            record.operation = request.operation
            refuse_mandatory_headers(request.envelope)
            refuse_other_action(environ.get("HTTP_SOAPACTION"), record.operation)
            self._validate(request.payload)
            try:
                environ[SECURITY_KEY] = read_security(request.envelope)
            except MalformedSecurity as malformed:  # answered -4001 by the operation (service)
                environ[SECURITY_KEY] = malformed
        except Refusal as refusal:
            record.faulted(refusal.faultcode)
            return _fault(fault_envelope(refusal.faultcode, refusal.message))
        # spyne reads the checked operation element and nothing else: not the client's bytes,
        # not its Content-Type (a charset to decode with again, a multipart to unpack).
        envelope = spyne_envelope(request, self._schema.boolean_names, self._schema.datetime_names)
        environ["wsgi.input"] = io.BytesIO(envelope)
        environ["CONTENT_LENGTH"] = str(len(envelope))
        environ["CONTENT_TYPE"] = SPYNE_CONTENT_TYPE
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ[RECORD_KEY] = record
        environ[RA_KEY] = self.ra
        return self._call_spyne(environ, record)

    def _document(self, environ: dict[str, Any], record: RequestRecord) -> Response:
        query = environ.get("QUERY_STRING", "").split("=", 1)[0].lower()
        documents = {"wsdl": self._wsdl, "xsd": self._xsd}
        if query not in documents:
            return _method_not_allowed(record)
        record.operation = query
        record.outcome = "0"
        return HTTP_OK, [("Content-Type", "text/xml; charset=utf-8")], documents[query]

    def _call_spyne(self, environ: dict[str, Any], record: RequestRecord) -> Response:
        captured: list[tuple[str, Headers]] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, list(headers)))
            return lambda _data: None

        result = self._soap_app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = captured[0]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        if int(status.split(" ", 1)[0]) >= 400:
            return self._spyne_fault(body, record, status, headers)
        if not answers_operation(body, record.operation):
            # spyne swallows some failures of its own (a value XML cannot carry) and answers
            # HTTP 200 with an envelope that holds no response: that is an internal failure.
            return _incident_answer(record, open_incident(
                logger, f"spyne answered HTTP {status.split(' ', 1)[0]} without a {record.operation}Response"
            ))
        return status, headers, body

    def _spyne_fault(self, body: bytes, record: RequestRecord, status: str, headers: Headers) -> Response:
        """A fault from spyne: a client's is answered in our words (spyne's quote the values it
        refused and its schema details); a server fault that is not our own (already logged,
        with its incident) is replaced by one with an incident."""
        fault = read_fault(body)
        code = fault[0] if fault is not None else "Server"
        if code.startswith("Client"):
            # Not reached while the guard's schema check and spyne agree (spyne_envelope): kept
            # as a second line. spyne's faultstring is neither answered nor logged.
            logger.warning(
                "spyne refused a %s request the schema accepted (%s)",
                record.operation, code if _SPYNE_CLIENT_CODE.fullmatch(code) else "Client",
            )
            record.faulted(SPYNE_REFUSAL.faultcode)
            return _fault(fault_envelope(SPYNE_REFUSAL.faultcode, f"{SPYNE_REFUSAL.message} ({record.operation})"))
        if record.incident_id is not None:
            return status, headers, body
        return _incident_answer(record, open_incident(logger, f"spyne answered a {code} fault to {record.operation}"))


SPYNE_REFUSAL = Refusal(
    "SchemaValidationError", "the request does not follow the schema: a value cannot be read as its declared type"
)
"""What answers a client fault of spyne's own (see :meth:`SOAPGuard._spyne_fault`)."""


def _fault(body: bytes) -> Response:
    return HTTP_FAULT, [("Content-Type", FAULT_CONTENT_TYPE)], body


def _incident_answer(record: RequestRecord, incident: InternalError) -> Response:
    """The ``soap:Server`` fault of an incident, noted in the request's log line."""
    record.faulted("Server", incident.incident_id)
    return _fault(server_fault(incident.incident_id))


def _method_not_allowed(record: RequestRecord) -> Response:
    """The answer to a method other than GET, HEAD and POST, and to a GET or HEAD of anything
    but ``?wsdl`` and ``?xsd``."""
    record.outcome = "method-not-allowed"
    return (
        "405 Method Not Allowed",
        [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD, POST")],
        b"POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n",
    )

