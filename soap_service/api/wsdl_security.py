"""The ``wsse:Security`` header in the WSDL, so that generated clients offer it
(docs/design.md, "Authentication").

spyne knows nothing of the header (the guard reads it, ``wssecurity``); :func:`declare_security_header`
adds to spyne's WSDL:

- two schemas in ``wsdl:types``: a minimal ``wsse:Security`` / ``wsse:UsernameToken`` (OASIS WSS
  1.0, its element and type names) and ``wsu:Created``, open to the other content and attributes
  the specification allows (``xs:any`` / ``xs:anyAttribute``, ``##other``);
- a ``wsdl:message`` ``Security`` with one part, ``element="wsse:Security"``;
- a ``soap:header`` referring to it in the input of every operation's binding but Hello's (which
  authenticates nobody).

WSDL 1.1's ``soap:header`` has no "optional": a declared header is one the binding uses, and
each client decides whether to send one it was not given. zeep, suds, PHP's SoapClient,
node-soap and Mono's ``wsdl`` proxies send none unless the program sets it (tests/test_interop.py,
test_interop_suds.py and test_interop_dotnet.py run them all without it, with the AuthToken, as
before); zeep offers it as ``_soapheaders`` (tests/test_ws_security_clients.py).
"""

from __future__ import annotations

from lxml import etree

from soap_service.api.schema import XS
from soap_service.api.wsdl_parts import SOAP_BINDING, WSDL
from soap_service.api.wssecurity import WSSE, WSU

MESSAGE = "Security"
PART = "Security"
UNAUTHENTICATED_OPERATIONS = frozenset({"Hello"})

_SCHEMAS = f"""\
<wsdl:types xmlns:wsdl="{WSDL}" xmlns:xs="{XS}" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}">
  <xs:schema targetNamespace="{WSSE}" elementFormDefault="qualified">
    <xs:import namespace="{WSU}"/>
    <xs:complexType name="AttributedString">
      <xs:simpleContent>
        <xs:extension base="xs:string">
          <xs:anyAttribute namespace="##other" processContents="lax"/>
        </xs:extension>
      </xs:simpleContent>
    </xs:complexType>
    <xs:complexType name="PasswordString">
      <xs:simpleContent>
        <xs:extension base="wsse:AttributedString">
          <xs:attribute name="Type" type="xs:anyURI"/>
        </xs:extension>
      </xs:simpleContent>
    </xs:complexType>
    <xs:complexType name="EncodedString">
      <xs:simpleContent>
        <xs:extension base="wsse:AttributedString">
          <xs:attribute name="EncodingType" type="xs:anyURI"/>
        </xs:extension>
      </xs:simpleContent>
    </xs:complexType>
    <xs:complexType name="UsernameTokenType">
      <xs:sequence>
        <xs:element name="Username" type="wsse:AttributedString"/>
        <xs:element name="Password" type="wsse:PasswordString" minOccurs="0"/>
        <xs:element name="Nonce" type="wsse:EncodedString" minOccurs="0"/>
        <xs:element ref="wsu:Created" minOccurs="0"/>
      </xs:sequence>
      <xs:anyAttribute namespace="##other" processContents="lax"/>
    </xs:complexType>
    <xs:complexType name="SecurityHeaderType">
      <xs:sequence>
        <xs:element name="UsernameToken" type="wsse:UsernameTokenType" minOccurs="0"/>
        <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:anyAttribute namespace="##other" processContents="lax"/>
    </xs:complexType>
    <xs:element name="Security" type="wsse:SecurityHeaderType"/>
  </xs:schema>
  <xs:schema targetNamespace="{WSU}" elementFormDefault="qualified">
    <xs:element name="Created" type="xs:string"/>
  </xs:schema>
</wsdl:types>
"""


def declare_security_header(definitions: etree._Element) -> etree._Element:
    """``definitions`` (spyne's WSDL, parsed) with the ``wsse:Security`` header declared: a new root
    element (the prefixes ``wsse`` and ``wsu`` are declared on it, where QName values find them),
    holding the same children."""
    root = etree.Element(definitions.tag, dict(definitions.attrib),
                         nsmap={**definitions.nsmap, "wsse": WSSE, "wsu": WSU})
    for child in list(definitions):
        root.append(child)
    types = root.find(f"{{{WSDL}}}types")
    if types is None:
        raise RuntimeError("spyne's WSDL has no wsdl:types")
    types.extend(list(etree.fromstring(_SCHEMAS)))
    messages = root.findall(f"{{{WSDL}}}message")
    message = etree.Element(f"{{{WSDL}}}message", name=MESSAGE)
    etree.SubElement(message, f"{{{WSDL}}}part", name=PART, element="wsse:Security")
    messages[-1].addnext(message)
    for operation in root.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        if operation.get("name") in UNAUTHENTICATED_OPERATIONS:
            continue
        body_input = operation.find(f"{{{WSDL}}}input")
        if body_input is None:
            raise RuntimeError(f"the binding of {operation.get('name')} has no input")
        etree.SubElement(body_input, f"{{{SOAP_BINDING}}}header", message=f"tns:{MESSAGE}", part=PART,
                         use="literal")
    return root
