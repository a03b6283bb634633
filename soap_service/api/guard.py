"""The WSGI front of the Order API: what reaches spyne is a well-formed SOAP 1.1
request of ours, and every answer is SOAP (or the WSDL), never an HTML page.

Refused before any work, each with a SOAP 1.1 fault (docs/design.md section 4), most of them
``soap:Client.<reason>``: a Content-Type other than ``text/xml`` (multipart, MTOM and
SOAP 1.2's ``application/soap+xml`` included) or a charset this service does not read,
a body over 1 MiB (by its Content-Length, unread, or as it is read), a body that stops
arriving or ends before its Content-Length, XML that is not well-formed, a DOCTYPE or
entity declaration, an envelope that is not SOAP 1.1, a Body that does not hold
exactly one operation of ours, a header block marked ``mustUnderstand`` (answered
``soap:MustUnderstand``: this service understands none), a SOAPAction that names
another operation than the Body's, and an operation element that does not follow the
published schema. An empty or absent SOAPAction is accepted (SOAP 1.1 lets it mean
"the request URI"). The message is parsed here with a parser that resolves no entity,
loads no DTD and touches no network.

A fault's message names the rule and, for the schema, the element (``schema``); it never
quotes a value of the request, nor a name the client chose (a header block is named by its
position), nor spyne's wording: a client fault of spyne's own is answered in ours.

The guard decodes the body once, itself: with the charset of the Content-Type when it
names one (RFC 7303: it overrides the document's own declaration), else as the document
says (byte order mark, XML declaration, UTF-8 by default); either way only UTF-8,
US-ASCII, ISO-8859-1 and UTF-16 are read. The scan for a DOCTYPE or an entity
declaration runs on the decoded text, so no encoding hides one. spyne never sees the client's bytes nor its
Content-Type: it gets a new envelope holding a copy of the operation element that was
checked, serialized as UTF-8 and labelled ``text/xml; charset=utf-8``, so that what
spyne runs is exactly what the guard validated (no second decoding, no MIME unpacking,
no header block, no ``href`` resolution outside the checked element).

Also served here: ``GET /api/order?wsdl`` (the published WSDL) and ``?xsd``.
Every request ends with one log line (see ``requestlog``); the body never reaches
the log. An exception that escapes everything, or a spyne answer that is not the
operation's response, becomes a ``soap:Server`` fault with an incident ID, logged.
"""

from __future__ import annotations

import codecs
import copy
import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from soap_service.api.faults import (
    FAULT_CONTENT_TYPE,
    SOAP11_ENV,
    SOAP12_ENV,
    fault_envelope,
    read_fault,
    server_fault,
)
from soap_service.api.models import TNS
from soap_service.api.requestlog import RECORD_KEY, RequestRecord, log_request
from soap_service.api.schema import OperationSchema
from soap_service.api.service import RA_KEY
from soap_service.ra.incidents import new_incident_id
from soap_service.ra.service import RegistrationAuthority

logger = logging.getLogger(__name__)

SERVICE_PATH = "/api/order"
MAX_BODY_BYTES = 1024 * 1024
"""The largest request body accepted (docs/design.md section 4: more than 1 MiB is refused)."""
SPYNE_MAX_BODY_BYTES = 6 * MAX_BODY_BYTES + 64 * 1024
"""The largest envelope the guard can hand spyne: re-serializing a body of at most
:data:`MAX_BODY_BYTES` writes a character of a CDATA section as an entity reference
of at most five bytes (``&amp;``)."""

MEDIA_TYPE = "text/xml"
SPYNE_CONTENT_TYPE = "text/xml; charset=utf-8"
CHARSETS = {
    "utf-8": "UTF-8",
    "ascii": "US-ASCII",
    "iso8859-1": "ISO-8859-1",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
}
"""The charsets a request may be written in: Python codec name -> its name in messages."""
SOAP_ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XML_SPACE = " \t\r\n"

Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HTTP_OK = "200 OK"
HTTP_FAULT = "500 Internal Server Error"
DECLARATIONS = ("<!DOCTYPE", "<!ENTITY")
"""What no request may hold, in any letter case (see :func:`declares_dtd`)."""
DECLARED_ENCODING_SPAN = 512
_SPYNE_CLIENT_CODE = re.compile(r"Client(?:\.[A-Za-z]{1,40})?")
_DECLARED_ENCODING = re.compile(rb"""\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
"""Matched at the start of a body and never past :data:`DECLARED_ENCODING_SPAN` bytes: whatever it
gives back, it gives back within 512 bytes (the worst body costs microseconds, bench/guard_patterns.py)."""


class Refusal(Exception):
    """A message refused before any work: a ``soap:Client.<subcode>`` fault, or the SOAP 1.1
    fault code given as ``faultcode`` (``MustUnderstand``)."""

    def __init__(self, subcode: str, message: str, *, faultcode: str | None = None) -> None:
        super().__init__(message)
        self.subcode = subcode
        self.message = message
        self.faultcode = faultcode if faultcode is not None else "Client." + subcode


@dataclass(frozen=True)
class SOAPRequest:
    """A request the guard read: its envelope and the operation element in its Body."""

    envelope: etree._Element
    payload: etree._Element

    @property
    def operation(self) -> str:
        return str(etree.QName(self.payload).localname)


def _parser(encoding: str | None = None) -> etree.XMLParser:
    return etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _charset(name: str) -> str | None:
    """The Python codec of a charset name when it is one this service reads, else None."""
    try:
        codec = codecs.lookup(name.strip()).name
    except (LookupError, ValueError):
        return None
    return codec if codec in CHARSETS else None


def _unsupported_charset() -> Refusal:
    return Refusal(
        "UnsupportedCharset",
        "the request must be written in UTF-8 (or US-ASCII, ISO-8859-1, UTF-16): "
        "send Content-Type: text/xml; charset=utf-8",
    )


def request_charset(content_type: str | None) -> str | None:
    """The codec a request's Content-Type names (None when it names no charset, or when
    there is no Content-Type), or a :class:`Refusal` when the type is not ``text/xml``
    or the charset is not one of :data:`CHARSETS`."""
    if content_type is None or not content_type.strip():
        return None
    kind, _, parameters = content_type.partition(";")
    kind = kind.strip().lower()
    if kind.startswith("multipart/"):
        raise Refusal(
            "UnsupportedMediaType",
            "multipart messages (SOAP with attachments, MTOM) are not accepted: "
            "send the envelope alone, as Content-Type: text/xml; charset=utf-8",
        )
    if kind != MEDIA_TYPE:
        raise Refusal(
            "UnsupportedMediaType",
            "SOAP 1.1 requests are sent as Content-Type: text/xml; charset=utf-8",
        )
    charsets: list[str] = []
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charsets.append(value.strip().strip('"').strip())
    if not charsets:
        return None
    codec = _charset(charsets[0])
    if codec is None or any(_charset(other) != codec for other in charsets[1:]):
        raise _unsupported_charset()
    return codec


def document_charset(body: bytes) -> str:
    """The codec a document without a charset in its Content-Type is written in (XML 1.0
    appendix F): its byte order mark, else its XML declaration, else UTF-8; a :class:`Refusal`
    when the declaration names a charset that is not one of :data:`CHARSETS`."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if body.startswith(b"<\x00?\x00"):
        return "utf-16-le"
    if body.startswith(b"\x00<\x00?"):
        return "utf-16-be"
    declared = _DECLARED_ENCODING.match(body, 0, DECLARED_ENCODING_SPAN)
    if declared is None:
        return "utf-8"
    codec = _charset(declared.group(1).decode("ascii"))
    if codec is None:
        raise _unsupported_charset()
    return codec


def declares_dtd(text: str) -> bool:
    """True when ``text`` holds a DOCTYPE or an entity declaration, in any letter case (XML's are
    upper case; the others are refused too). Searches for fixed strings in the upper-cased text,
    no pattern: linear, about 2 ms over 1 MiB whatever it holds (a case-insensitive pattern took
    30 to 70 ms on ``<!`` repeated, bench/guard_patterns.py)."""
    upper = text.upper()
    return any(declaration in upper for declaration in DECLARATIONS)


def read_request(body: bytes, operations: frozenset[str], *, charset: str | None = None) -> SOAPRequest:
    """A SOAP 1.1 request of ours, decoded with ``charset`` (a codec of :data:`CHARSETS`, the one
    the Content-Type names), else as the document says; or a :class:`Refusal` saying why not.

    The guard decodes, not lxml: one decoding, with a codec it chose, so that the scan for a
    DOCTYPE or an entity declaration sees the text whatever it was written in."""
    if not body.strip():
        raise Refusal("EmptyBody", "the request has no body: POST a SOAP 1.1 envelope")
    codec = charset if charset is not None else document_charset(body)
    try:
        text = body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as error:
        said = "the charset its Content-Type names" if charset is not None else "as the document says"
        raise Refusal(
            "MalformedXML", f"the request body is not {CHARSETS[codec]} text (byte {error.start}), {said}"
        ) from None
    if declares_dtd(text):
        raise Refusal("DTDNotAllowed", "a DOCTYPE or entity declaration is not allowed in a request")
    try:
        # The text is handed over in UTF-8, whatever its declaration says (for a Content-Type's
        # charset that is the rule too: it overrides the declaration, RFC 7303).
        root = etree.fromstring(text.encode("utf-8"), _parser("UTF-8"))
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise Refusal(
            "MalformedXML", f"the request is not well-formed XML (line {line}, column {column})"
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # Not reached while the scan above sees every declaration; kept as a second line.
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
    return SOAPRequest(root, children[0])


def request_payload(body: bytes, operations: frozenset[str], *, charset: str | None = None) -> etree._Element:
    """The operation element in the Body of a SOAP 1.1 request, or a :class:`Refusal` saying why not."""
    return read_request(body, operations, charset=charset).payload


def inspect_envelope(body: bytes, operations: frozenset[str], *, charset: str | None = None) -> str:
    """The operation named by a SOAP 1.1 request, or a :class:`Refusal` saying why not."""
    return read_request(body, operations, charset=charset).operation


def refuse_mandatory_headers(envelope: etree._Element) -> None:
    """A :class:`Refusal` (``soap:MustUnderstand``) for a header block that this service must
    understand to go on: it understands none. A block for another actor is not ours to judge."""
    for header in envelope.iterfind(f"{{{SOAP11_ENV}}}Header"):
        for block in header:
            if not isinstance(block.tag, str):
                continue
            if (block.get(f"{{{SOAP11_ENV}}}mustUnderstand") or "").strip() not in ("1", "true"):
                continue
            actor = (block.get(f"{{{SOAP11_ENV}}}actor") or "").strip()
            if actor and actor != SOAP_ACTOR_NEXT:
                continue
            # The block is named by its position only: its name and namespace are the client's.
            position = [child for child in header if isinstance(child.tag, str)].index(block) + 1
            raise Refusal(
                "MustUnderstand",
                f"header block {position} of the SOAP Header is marked mustUnderstand, "
                "and this service understands no header block",
                faultcode="MustUnderstand",
            )


def spyne_envelope(request: SOAPRequest, booleans: frozenset[str] = frozenset()) -> bytes:
    """What spyne reads: a SOAP 1.1 envelope whose Body holds a copy of the checked operation
    element, in UTF-8. The namespaces in scope of the operation element are declared on the
    envelope, so that a QName in a value still resolves.

    The copy carries no ``xsi:type``: the schema accepted each one as the element's own type
    or one derived from it (``xs:token`` for an ``xs:string``), and spyne, which knows only its
    own classes, refused the others with a ``Client.ValidationError`` quoting the attribute.
    spyne reads every element as the type the schema declares for it.

    The value of an element of ours named in ``booleans`` loses the whitespace around it: the
    schema accepts `` true `` (``xs:boolean`` collapses whitespace), which spyne read as false."""
    payload = copy.deepcopy(request.payload)
    boolean_tags = {f"{{{TNS}}}{name}" for name in booleans}
    for element in payload.iter(etree.Element):
        element.attrib.pop(XSI_TYPE, None)
        if element.tag in boolean_tags and element.text:
            element.text = element.text.strip(XML_SPACE)
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap=request.payload.nsmap)
    etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body").append(payload)
    return bytes(etree.tostring(envelope, encoding="UTF-8"))


def soap_action_names(action: str, operation: str) -> bool:
    """True when a SOAPAction value (quotes and all) is empty or names ``operation``."""
    value = action.strip().strip('"').strip()
    if not value:
        return True
    return value == operation or value.endswith(("/" + operation, "#" + operation, ":" + operation))


def answers_operation(body: bytes, operation: str) -> bool:
    """True when a spyne answer is a SOAP 1.1 envelope whose Body holds ``<operation>Response``."""
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError:
        return False
    found = root.find(f"{{{SOAP11_ENV}}}Body/{{{TNS}}}{operation}Response")
    return root.tag == f"{{{SOAP11_ENV}}}Envelope" and found is not None


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Refusal("BadRequest", "the Content-Length header is not a number")
    return int(raw)


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, read whole; a :class:`Refusal` when it is too large, stops arriving
    (the server's socket read timeout) or cannot be read."""
    length = _content_length(environ)
    too_large = Refusal("RequestTooLarge", f"the request body is larger than {limit} bytes")
    if length is not None and length > limit:
        raise too_large
    stream = environ["wsgi.input"]
    try:
        body = bytes(stream.read(length if length is not None else limit + 1))
    except TimeoutError:
        raise Refusal(
            "RequestTimeout", "the request body stopped arriving before its end: send it whole, without pauses"
        ) from None
    except OSError:
        raise Refusal("BadRequest", "the connection failed while the request body was read") from None
    except Exception:  # noqa: BLE001 - the server's reader (gunicorn's: a malformed chunk, a chunked body cut short)
        raise Refusal("BadRequest", "the request body cannot be read: its transfer coding is malformed") from None
    if len(body) > limit:
        raise too_large
    if length is not None and len(body) < length:
        raise Refusal(
            "BadRequest", f"the request body ended after {len(body)} of the {length} bytes its Content-Length announced"
        )
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
        self._schema = OperationSchema(xsd)

    def _validate(self, payload: etree._Element) -> None:
        """The operation element against the published schema; a refusal names the element and
        the rule, never the value (see ``schema``)."""
        breach = self._schema.breach(payload)
        if breach is not None:
            raise Refusal("SchemaValidationError", f"the request does not follow the schema: {breach}")

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
            charset = request_charset(environ.get("CONTENT_TYPE"))
            body = _read_body(environ, self._max_body)
            request = read_request(body, self._operations, charset=charset)
            record.operation = request.operation
            refuse_mandatory_headers(request.envelope)
            action = environ.get("HTTP_SOAPACTION")
            if action is not None and not soap_action_names(action, record.operation):
                raise Refusal(
                    "SOAPActionMismatch",
                    f"the SOAPAction header does not name the operation in the Body ({record.operation})",
                )
            self._validate(request.payload)
        except Refusal as refusal:
            record.faulted(refusal.faultcode)
            return _fault(fault_envelope(refusal.faultcode, refusal.message))
        # spyne reads the checked operation element and nothing else: not the client's bytes,
        # not its Content-Type (a charset to decode with again, a multipart to unpack).
        envelope = spyne_envelope(request, self._schema.boolean_names)
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
        if not answers_operation(body, record.operation):
            # spyne swallows some failures of its own (a value XML cannot carry) and answers
            # HTTP 200 with an envelope that holds no response: that is an internal failure.
            incident = new_incident_id()
            logger.error(
                "spyne answered HTTP %s without a %sResponse, incident %s",
                status.split(" ", 1)[0], record.operation, incident,
            )
            record.faulted("Server", incident)
            return _fault(server_fault(incident))
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
        incident = new_incident_id()
        logger.error("spyne answered a %s fault to %s, incident %s", code, record.operation, incident)
        record.faulted("Server", incident)
        return _fault(server_fault(incident))


SPYNE_REFUSAL = Refusal(
    "SchemaValidationError", "the request does not follow the schema: a value cannot be read as its declared type"
)
"""What answers a client fault of spyne's own (see :meth:`SOAPGuard._spyne_fault`)."""


def _fault(body: bytes) -> Response:
    return HTTP_FAULT, [("Content-Type", FAULT_CONTENT_TYPE)], body

