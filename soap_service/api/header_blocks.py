"""Which SOAP 1.1 header blocks are this service's to process (SOAP 1.1, section 4.2.2): a block
without ``soap:actor`` or with the "next" actor is ours; a block for another actor is not, and
neither its ``mustUnderstand`` nor its content is ours to judge. ``envelope`` (the mandatory-header
check) and ``wssecurity`` (the ``wsse:Security`` block) decide it here, so alike."""

from __future__ import annotations

from lxml import etree

from soap_service.api.faults import SOAP11_ENV

SOAP_ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
XML_SPACE = " \t\r\n"


def for_this_node(block: etree._Element) -> bool:
    """True when the header block is addressed to this service (no actor, or the next one)."""
    return (block.get(f"{{{SOAP11_ENV}}}actor") or "").strip(XML_SPACE) in ("", SOAP_ACTOR_NEXT)
