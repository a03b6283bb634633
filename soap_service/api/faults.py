"""SOAP 1.1 faults: what a caller gets for a message that is not a valid request of
ours (``Client``) and for an internal failure (``Server``, with an incident ID).

Business refusals are never faults: they are answers with ``Errors`` (see
``answers``). A fault never carries a traceback, SQL or any part of the request.
"""

# mypy: allow-subclassing-any

from __future__ import annotations

from lxml import etree

from soap_service.api.models import TNS, Int, Text
from soap_service.api.spyne_loader import Fault
from soap_service.errors import InternalError

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
FAULT_CONTENT_TYPE = "text/xml; charset=utf-8"


def internal_detail(incident_id: str) -> etree._Element:
    """``<InternalError><ErrorCode>-9000</ErrorCode><IncidentID>..</IncidentID></InternalError>``."""
    detail = etree.Element(f"{{{TNS}}}InternalError", nsmap={"tns": TNS})
    etree.SubElement(detail, f"{{{TNS}}}ErrorCode").text = str(InternalError.code)
    etree.SubElement(detail, f"{{{TNS}}}IncidentID").text = incident_id
    return detail


def internal_message(incident_id: str) -> str:
    return f"internal error, incident {incident_id}"


class InternalErrorDetail(Fault):
    """The WSDL's declaration of the detail of an internal fault: ``tns:InternalError`` with its
    ``ErrorCode`` and ``IncidentID``, and a ``wsdl:fault`` of that message on every operation.
    Declared only, never raised: spyne writes the fields of a Fault subclass outside
    ``<detail>``; :class:`InternalFault` writes this element inside it."""

    __namespace__ = TNS
    __type_name__ = "InternalError"
    _type_info = [("ErrorCode", Int), ("IncidentID", Text)]


class InternalFault(Fault):
    """An internal failure: ``soap:Server``, the incident ID in the message and the detail."""

    __namespace__ = TNS

    def __init__(self, incident_id: str) -> None:
        self.incident_id = incident_id
        super().__init__("Server", internal_message(incident_id), detail=internal_detail(incident_id))


HEADER_AND_ENVELOPE_FAULTS = frozenset({"MustUnderstand", "VersionMismatch"})
"""Faults about the envelope or a header block, which carry no ``<detail>`` (SOAP 1.1, section 4.4)."""


def fault_envelope(faultcode: str, faultstring: str, detail: etree._Element | None = None) -> bytes:
    """A complete SOAP 1.1 fault message, for answers given before spyne sees the request.

    SOAP 1.1 (section 4.4) requires ``<detail>`` when the Body could not be processed and forbids it
    for header errors: every ``Client`` and ``Server`` fault carries one (empty when there is nothing
    to say), ``MustUnderstand`` and ``VersionMismatch`` none. Clients rely on it: .NET's ASMX proxy
    throws a detail-less fault as ``SoapHeaderException``, a header error."""
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap11env": SOAP11_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP11_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap11env:{faultcode}"
    etree.SubElement(fault, "faultstring").text = faultstring
    if detail is not None:
        etree.SubElement(fault, "detail").append(detail)
    elif faultcode not in HEADER_AND_ENVELOPE_FAULTS:
        etree.SubElement(fault, "detail")
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def server_fault(incident_id: str) -> bytes:
    return fault_envelope("Server", internal_message(incident_id), internal_detail(incident_id))


def read_fault(body: bytes) -> tuple[str, str] | None:
    """(faultcode without prefix, faultstring) of a SOAP 1.1 fault message we produced, else None."""
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    if fault is None:
        return None
    code = (fault.findtext("faultcode") or "").strip()
    return code.rpartition(":")[2], fault.findtext("faultstring") or ""
