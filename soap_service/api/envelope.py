"""Reading a request's SOAP 1.1 envelope, writing the one spyne reads, and checking spyne's
answer.

Refused before any work, each with a :class:`~soap_service.api.refusal.Refusal`
(docs/design.md, "Error model"): XML that is not well-formed, a DOCTYPE or entity declaration,
an envelope that is not SOAP 1.1, a Body that does not hold exactly one operation of ours,
a header block marked ``mustUnderstand`` (answered ``soap:MustUnderstand``: this service
understands ``wsse:Security`` and no other, see ``wssecurity``), and a SOAPAction that names
another operation than the Body's (an empty or absent SOAPAction is accepted: SOAP 1.1 lets it
mean "the request URI"). Whether the operation element follows the published schema is
``schema``'s check.

The text comes from ``http_body`` (decoded once, with a charset it chose); the scan for a
DOCTYPE or an entity declaration runs on that text, so no encoding hides one, and the text is
parsed with a parser that resolves no entity, loads no DTD and touches no network. A refusal
never quotes a value of the request nor a name the client chose (a header block is named by
its position).

spyne never sees the client's bytes: :func:`spyne_envelope` writes a new envelope holding a
copy of the operation element that was checked, in UTF-8, so that what spyne runs is exactly
what the guard validated (no second decoding, no header block, no ``href`` resolution outside
the checked element); :func:`answers_operation` tells whether spyne's answer is the operation's
response.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from soap_service.api.faults import SOAP11_ENV, SOAP12_ENV
from soap_service.api.header_blocks import for_this_node
from soap_service.api.http_body import body_text
from soap_service.api.models import TNS
from soap_service.api.refusal import Refusal
from soap_service.api.wssecurity import SECURITY

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XML_SPACE = " \t\r\n"
DECLARATIONS = ("<!DOCTYPE", "<!ENTITY")
"""What no request may hold, in any letter case (see :func:`declares_dtd`)."""


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


def declares_dtd(text: str) -> bool:
    """True when ``text`` holds a DOCTYPE or an entity declaration, in any letter case (XML's are
    upper case; the others are refused too). Searches for fixed strings in the upper-cased text,
    no pattern: linear, about 2 ms over 1 MiB whatever it holds (a case-insensitive pattern took
    30 to 70 ms on ``<!`` repeated, bench/guard_patterns.py)."""
    upper = text.upper()
    return any(declaration in upper for declaration in DECLARATIONS)


def read_request(body: bytes, operations: frozenset[str], *, charset: str | None = None) -> SOAPRequest:
    """A SOAP 1.1 request of ours, decoded with ``charset`` (a codec of ``http_body.CHARSETS``,
    the one the Content-Type names), else as the document says; or a :class:`Refusal` saying why not.

    The guard decodes, not lxml: one decoding, with a codec it chose, so that the scan for a
    DOCTYPE or an entity declaration sees the text whatever it was written in."""
    text = body_text(body, charset=charset)
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
        # SOAP 1.1 section 4.4.1: an envelope in another namespace is a VersionMismatch fault.
        raise Refusal(
            "VersionMismatch", "SOAP 1.2 is not supported: send a SOAP 1.1 envelope", faultcode="VersionMismatch"
        )
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


def refuse_mandatory_headers(envelope: etree._Element) -> None:
    """A :class:`Refusal` (``soap:MustUnderstand``) for a header block that this service must
    understand to go on: it understands ``wsse:Security`` (``wssecurity`` reads it) and no other.
    A block for another actor is not ours to judge."""
    for header in envelope.iterfind(f"{{{SOAP11_ENV}}}Header"):
        for block in header:
            if not isinstance(block.tag, str) or block.tag == SECURITY:
                continue
            if (block.get(f"{{{SOAP11_ENV}}}mustUnderstand") or "").strip() not in ("1", "true"):
                continue
            if not for_this_node(block):
                continue
            # The block is named by its position only: its name and namespace are the client's.
            position = [child for child in header if isinstance(child.tag, str)].index(block) + 1
            raise Refusal(
                "MustUnderstand",
                f"header block {position} of the SOAP Header is marked mustUnderstand, "
                "and this service understands no header block but the WSS 1.0 UsernameToken one",
                faultcode="MustUnderstand",
            )


def soap_action_names(action: str, operation: str) -> bool:
    """True when a SOAPAction value (quotes and all) is empty or names ``operation``."""
    value = action.strip().strip('"').strip()
    if not value:
        return True
    return value == operation or value.endswith(("/" + operation, "#" + operation, ":" + operation))


def refuse_other_action(action: str | None, operation: str) -> None:
    """A :class:`Refusal` when a SOAPAction header (None: absent) names another operation than
    the Body's ``operation``."""
    if action is not None and not soap_action_names(action, operation):
        raise Refusal(
            "SOAPActionMismatch",
            f"the SOAPAction header does not name the operation in the Body ({operation})",
        )


def _utc_if_spyne_misreads(text: str) -> str:
    """``text`` (an ``xs:dateTime`` the schema accepted, whitespace collapsed) as the same instant
    in UTC when its zone is a negative offset with minutes, which spyne 2.14 misreads: it reads
    ``-05:30`` as ``-04:30`` and ``-00:30`` as ``+00:30`` (minutes added to a negative hour).
    Any other text is returned as it is; so is one whose instant in UTC is past what a datetime
    holds (years 1 to 9999), which the RA refuses by its year anyway."""
    if len(text) < 6 or text[-6] != "-" or text[-3] != ":" or text[-2:] == "00":
        return text
    try:
        return datetime.fromisoformat(text).astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError):
        return text


def spyne_envelope(
    request: SOAPRequest, booleans: frozenset[str] = frozenset(), datetimes: frozenset[str] = frozenset()
) -> bytes:
    """What spyne reads: a SOAP 1.1 envelope whose Body holds a copy of the checked operation
    element, in UTF-8. The namespaces in scope of the operation element are declared on the
    envelope, so that a QName in a value still resolves.

    The copy carries no ``xsi:type``: the schema accepted each one as the element's own type
    or one derived from it (``xs:token`` for an ``xs:string``), and spyne, which knows only its
    own classes, refused the others with a ``Client.ValidationError`` quoting the attribute.
    spyne reads every element as the type the schema declares for it.

    The value of an element of ours named in ``booleans`` loses the whitespace around it: the
    schema accepts `` true `` (``xs:boolean`` collapses whitespace), which spyne read as false.
    The value of an element named in ``datetimes`` loses it too, and one in a negative time zone
    with minutes (``-03:30``) is written as the same instant in UTC (spyne misreads that zone)."""
    payload = copy.deepcopy(request.payload)
    boolean_tags = {f"{{{TNS}}}{name}" for name in booleans}
    datetime_tags = {f"{{{TNS}}}{name}" for name in datetimes}
    for element in payload.iter(etree.Element):
        element.attrib.pop(XSI_TYPE, None)
        if element.tag in boolean_tags and element.text:
            element.text = element.text.strip(XML_SPACE)
        elif element.tag in datetime_tags and element.text:
            element.text = _utc_if_spyne_misreads(element.text.strip(XML_SPACE))
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap=request.payload.nsmap)
    etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body").append(payload)
    return bytes(etree.tostring(envelope, encoding="UTF-8"))


def answers_operation(body: bytes, operation: str) -> bool:
    """True when a spyne answer is a SOAP 1.1 envelope whose Body holds ``<operation>Response``."""
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError:
        return False
    found = root.find(f"{{{SOAP11_ENV}}}Body/{{{TNS}}}{operation}Response")
    return root.tag == f"{{{SOAP11_ENV}}}Envelope" and found is not None
