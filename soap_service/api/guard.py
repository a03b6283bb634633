"""The WSGI front of the Order API: what reaches spyne is a well-formed SOAP 1.1
request of ours, and every answer is SOAP (or the WSDL), never an HTML page.

Refused before any work, each with a ``soap:Client`` fault (DESIGN section 4):
a body over 1 MiB (by its Content-Length, unread, or as it is read), XML that is
not well-formed, a DOCTYPE or entity declaration, an envelope that is not SOAP 1.1,
a Body that does not hold exactly one operation of ours, and a SOAPAction that
names another operation than the Body's. An empty or absent SOAPAction is
accepted (SOAP 1.1 lets it mean "the request URI"). The message is parsed here
with a parser that resolves no entity, loads no DTD and touches no network.

Also served here: ``GET /api/order?wsdl`` (the published WSDL) and ``?xsd``.
Every request ends with one log line (see ``requestlog``); the body never reaches
the log. An exception that escapes everything becomes a ``soap:Server`` fault with
an incident ID, logged with its traceback.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from soap_service.api.faults import (
    FAULT_CONTENT_TYPE,
    SOAP11_ENV,
    SOAP12_ENV,
    client_fault,
    read_fault,
    server_fault,
)
from soap_service.api.models import TNS
from soap_service.api.requestlog import RECORD_KEY, RequestRecord, log_request
from soap_service.api.service import RA_KEY
from soap_service.ra.incidents import new_incident_id
from soap_service.ra.service import RegistrationAuthority

logger = logging.getLogger(__name__)

SERVICE_PATH = "/api/order"
MAX_BODY_BYTES = 1024 * 1024
"""The largest request body accepted (DESIGN section 4: more than 1 MiB is refused)."""

Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HTTP_OK = "200 OK"
HTTP_FAULT = "500 Internal Server Error"
_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")


class Refusal(Exception):
    """A message refused before any work: a ``soap:Client.<subcode>`` fault."""

    def __init__(self, subcode: str, message: str) -> None:
        super().__init__(message)
        self.subcode = subcode
        self.message = message


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def inspect_envelope(body: bytes, operations: frozenset[str]) -> str:
    """The operation named by a SOAP 1.1 request, or a :class:`Refusal` saying why not."""
    return str(etree.QName(request_payload(body, operations)).localname)


def request_payload(body: bytes, operations: frozenset[str]) -> etree._Element:
    """The operation element in the Body of a SOAP 1.1 request, or a :class:`Refusal` saying why not."""
    if not body.strip():
        raise Refusal("EmptyBody", "the request has no body: POST a SOAP 1.1 envelope")
    if any(declaration in body for declaration in _DECLARATIONS):
        raise Refusal("DTDNotAllowed", "a DOCTYPE or entity declaration is not allowed in a request")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise Refusal(
            "MalformedXML", f"the request is not well-formed XML (line {line}, column {column})"
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise Refusal("DTDNotAllowed", "a DOCTYPE or entity declaration is not allowed in a request")
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise Refusal("VersionMismatch", "SOAP 1.2 is not supported: send a SOAP 1.1 envelope")
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise Refusal("NotSOAP", "the request is not a SOAP 1.1 envelope")
    bodies = root.findall(f"{{{SOAP11_ENV}}}Body")
    if len(bodies) != 1:
        raise Refusal("NotSOAP", "the SOAP envelope must hold exactly one Body")
    children = [child for child in bodies[0] if isinstance(child.tag, str)]
    if len(children) != 1:
        raise Refusal("UnknownOperation", "the SOAP Body must hold exactly one operation element")
    name = etree.QName(children[0])
    if name.namespace != TNS or name.localname not in operations:
        raise Refusal(
            "UnknownOperation",
            f"the SOAP Body names no operation of this service (operations are in the namespace {TNS})",
        )
    return children[0]


def soap_action_names(action: str, operation: str) -> bool:
    """True when a SOAPAction value (quotes and all) is empty or names ``operation``."""
    value = action.strip().strip('"').strip()
    if not value:
        return True
    return value == operation or value.endswith(("/" + operation, "#" + operation, ":" + operation))


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Refusal("BadRequest", "the Content-Length header is not a number")
    return int(raw)


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    length = _content_length(environ)
    too_large = Refusal("RequestTooLarge", f"the request body is larger than {limit} bytes")
    if length is not None and length > limit:
        raise too_large
    stream = environ["wsgi.input"]
    body = bytes(stream.read(length if length is not None else limit + 1))
    if len(body) > limit:
        raise too_large
    return body


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
    ) -> None:
        self._soap_app = soap_app
        self.ra = ra
        self._wsdl = wsdl
        self._xsd = xsd
        self._operations = operations
        self._max_body = max_body
        self._schemas = threading.local()

    def _validate(self, payload: etree._Element) -> None:
        """The operation element against the published schema (an XMLSchema per thread:
        lxml's validators keep their error log on the object)."""
        schema = getattr(self._schemas, "schema", None)
        if schema is None:
            schema = self._schemas.schema = etree.XMLSchema(etree.fromstring(self._xsd, _parser()))
        if not schema.validate(payload):
            error = schema.error_log.last_error
            raise Refusal(
                "SchemaValidationError",
                f"the request does not follow the schema (line {error.line}): {error.message}",
            )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        record = RequestRecord()
        try:
            status, headers, body = self._respond(environ, record)
        except Exception:
            incident = new_incident_id()
            logger.exception("request failed, incident %s", incident)
            record.faulted("Server", incident)
            status, headers, body = _fault(server_fault(incident))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        log_request(
            record,
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000,
            client=environ.get("REMOTE_ADDR"),
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _respond(self, environ: dict[str, Any], record: RequestRecord) -> Response:
        if environ.get("PATH_INFO", "") != SERVICE_PATH:
            record.operation = "-"
            record.outcome = "not-found"
            return "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"not found\n"
        method = environ.get("REQUEST_METHOD", "")
        if method in ("GET", "HEAD"):
            return self._document(environ, record)
        if method != "POST":
            record.outcome = "method-not-allowed"
            return (
                "405 Method Not Allowed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD, POST")],
                b"POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n",
            )
        try:
            body = _read_body(environ, self._max_body)
            payload = request_payload(body, self._operations)
            record.operation = str(etree.QName(payload).localname)
            action = environ.get("HTTP_SOAPACTION")
            if action is not None and not soap_action_names(action, record.operation):
                raise Refusal(
                    "SOAPActionMismatch",
                    f"the SOAPAction header does not name the operation in the Body ({record.operation})",
                )
            self._validate(payload)
        except Refusal as refusal:
            record.faulted("Client." + refusal.subcode)
            return _fault(client_fault(refusal.subcode, refusal.message))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if not environ.get("CONTENT_TYPE"):
            environ["CONTENT_TYPE"] = "text/xml; charset=utf-8"  # spyne refuses a POST without one
        environ[RECORD_KEY] = record
        environ[RA_KEY] = self.ra
        return self._call_spyne(environ, record)

    def _document(self, environ: dict[str, Any], record: RequestRecord) -> Response:
        query = environ.get("QUERY_STRING", "").split("=", 1)[0].lower()
        documents = {"wsdl": self._wsdl, "xsd": self._xsd}
        if query not in documents:
            record.outcome = "method-not-allowed"
            return (
                "405 Method Not Allowed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD, POST")],
                b"POST SOAP 1.1 requests here; GET ?wsdl for the WSDL\n",
            )
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
        return status, headers, body

    def _spyne_fault(self, body: bytes, record: RequestRecord, status: str, headers: Headers) -> Response:
        """A fault from spyne: a client's passes (logged by its code only); a server fault that
        is not our own (already logged, with its incident) is replaced by one with an incident."""
        fault = read_fault(body)
        code = fault[0] if fault is not None else "Server"
        if code.startswith("Client"):
            if record.outcome is None:
                record.faulted(code)
            return status, headers, body
        if record.incident_id is not None:
            return status, headers, body
        incident = new_incident_id()
        logger.error("spyne answered a %s fault to %s, incident %s", code, record.operation, incident)
        record.faulted("Server", incident)
        return _fault(server_fault(incident))


def _fault(body: bytes) -> Response:
    return HTTP_FAULT, [("Content-Type", FAULT_CONTENT_TYPE)], body

