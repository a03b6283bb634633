"""Fuzzing the request reader (tracker issue 10): valid envelopes of the Order API, mutated byte
by byte and element by element, go through the whole WSGI application (``SOAPGuard``: the body,
the envelope, the schema, then spyne and the RA) in-process. Every answer is clean: HTTP 200
with the operation's response and a documented SuccessCode, or HTTP 500 with a SOAP 1.1 fault
whose faultcode is one of docs/soap-api.md's client faults; never an incident (``Server``),
never anything but SOAP. Profiles: tests/fuzz_support.py.
"""

from __future__ import annotations

import copy
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from api_support import SOAP_ENV, TNS, envelope, hello_envelope
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from fuzz_support import fuzz_settings, mutated
from inprocess_api import assert_clean, call
from soap_service.api.application import create_wsgi_app
from soap_service.api.guard import SOAPGuard


@pytest.fixture(scope="module")
def app(installation: Installation) -> SOAPGuard:
    return create_wsgi_app(installation.ra)


def _auth(code: str, username: str, password: str) -> str:
    return (f"<o:PartnerCode>{escape(code)}</o:PartnerCode><o:AuthToken><o:UserName>{escape(username)}</o:UserName>"
            f"<o:Password>{escape(password)}</o:Password></o:AuthToken>")


@pytest.fixture(scope="module")
def seeds(installation: Installation) -> list[bytes]:
    """Valid requests: read-only ones of a real partner, and writing ones of a partner that does not exist."""
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    mine = _auth(partner.code, partner.username, partner.password)
    nobody = _auth("NOBODY", "api", "not-the-password")
    csr = fresh_key_csr(("example.com", "www.example.com"))
    return [
        hello_envelope("fuzz"),
        envelope("ParseCSR", f"<o:Request><o:QueryRequestHeader>{mine}</o:QueryRequestHeader>"
                             f"<o:CSR>{csr}</o:CSR></o:Request>"),
        envelope("GetOrderByPartnerOrderID",
                 f"<o:Request><o:QueryRequestHeader>{mine}</o:QueryRequestHeader>"
                 f"<o:PartnerOrderID>{order.partner_order_id}</o:PartnerOrderID><o:OrderQueryOptions>"
                 "<o:ReturnCertificateInfo>true</o:ReturnCertificateInfo><o:ReturnFulfillment>true"
                 "</o:ReturnFulfillment></o:OrderQueryOptions></o:Request>"),
        envelope("GetModifiedOrders",
                 f"<o:Request><o:QueryRequestHeader>{mine}</o:QueryRequestHeader>"
                 "<o:FromDate>2026-01-01T00:00:00Z</o:FromDate><o:ToDate>2026-01-02T00:00:00Z</o:ToDate>"
                 "</o:Request>"),
        envelope("Reissue", f"<o:Request><o:OrderRequestHeader>{nobody}<o:PartnerOrderID>PO-1</o:PartnerOrderID>"
                            f"</o:OrderRequestHeader><o:OrderParameters><o:CSR>{csr}</o:CSR>"
                            "<o:DNSNames><o:DNSName>example.com</o:DNSName></o:DNSNames>"
                            "</o:OrderParameters></o:Request>"),
    ]


def test_every_seed_is_answered(app: SOAPGuard, seeds: list[bytes]) -> None:
    for seed in seeds:
        status, answer = call(app, seed)
        assert status.startswith("200"), answer[:500]
        assert_clean(status, answer)


@fuzz_settings(200)
@given(st.data())
def test_byte_mutations(app: SOAPGuard, seeds: list[bytes], data: st.DataObject) -> None:
    body = data.draw(mutated(seeds))
    assert_clean(*call(app, body))


def _tree_mutation(data: st.DataObject, seed: bytes) -> bytes:
    """One to three edits of the XML tree: an element removed, repeated, renamed, moved to another
    namespace, given an attribute or xsi:type or nil, or its text replaced by random or hostile text."""
    root = etree.fromstring(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        elements = [element for element in root.iter() if isinstance(element.tag, str)]
        element = data.draw(st.sampled_from(elements))
        kind = data.draw(st.sampled_from(
            ["remove", "repeat", "rename", "namespace", "attribute", "xsi", "text", "child"]))
        parent = element.getparent()
        if kind == "remove" and parent is not None:
            parent.remove(element)
        elif kind == "repeat" and parent is not None:
            for _ in range(data.draw(st.integers(1, 30))):
                parent.append(copy.deepcopy(element))
        elif kind == "rename":
            name = data.draw(st.sampled_from(
                ["Hello", "Input", "Request", "CSR", "Password", "DNSName", "Body", "Header", "Envelope", "X"]))
            element.tag = f"{{{etree.QName(element).namespace or TNS}}}{name}"
        elif kind == "namespace":
            namespace = data.draw(st.sampled_from([SOAP_ENV, TNS, "urn:x"]))
            element.tag = f"{{{namespace}}}{etree.QName(element).localname}"
        elif kind == "attribute":
            element.set(data.draw(st.sampled_from(
                ["href", "id", f"{{{SOAP_ENV}}}mustUnderstand", f"{{{SOAP_ENV}}}encodingStyle", "x"])),
                data.draw(st.text(alphabet="#01abc ", max_size=8)))
        elif kind == "xsi":
            xsi = "http://www.w3.org/2001/XMLSchema-instance"
            element.set(data.draw(st.sampled_from([f"{{{xsi}}}type", f"{{{xsi}}}nil"])),
                        data.draw(st.sampled_from(["xs:string", "xs:int", "true", "o:Request", "x:y", ""])))
        elif kind == "text":
            text = data.draw(st.one_of(
                st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300),
                st.sampled_from(["", " ", "-1", "99999999999999999999", "1e9", "NaN", "true", "2026-13-40T25:61:00Z",
                                 "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+14:00", "x" * 5000]),
            ))
            # What XML 1.0 can carry: lxml refuses to write anything else.
            element.text = "".join(ch for ch in text if ch in "\t\n\r" or " " <= ch < "\ufffe")
        elif kind == "child":
            etree.SubElement(element, f"{{{TNS}}}{data.draw(st.sampled_from(['Input', 'X', 'Request']))}").text = "c"
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


@fuzz_settings(150)
@given(st.data())
def test_tree_mutations(app: SOAPGuard, seeds: list[bytes], data: st.DataObject) -> None:
    body = _tree_mutation(data, data.draw(st.sampled_from(seeds)))
    assert_clean(*call(app, body))


@fuzz_settings(60)
@given(st.binary(max_size=2000), st.sampled_from(["text/xml; charset=utf-8", "text/xml", "text/xml; charset=utf-16",
                                                  "application/soap+xml", "text/xml; charset=iso-8859-1"]))
def test_random_bodies(app: SOAPGuard, body: bytes, content_type: str) -> None:
    status, answer = call(app, body, content_type)
    assert status.startswith("500")
    assert_clean(status, answer)


