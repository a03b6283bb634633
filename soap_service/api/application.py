"""The SOAP application: spyne's, built once per process, and its published documents.

:func:`create_wsgi_app` gives the WSGI application that a server runs: the guard
(refuses hostile messages, serves the WSDL, logs one line per request) in front of
spyne's WSGI application. :func:`wsdl_document` and :func:`xsd_document` give the
WSDL whose ``soap:address`` is ``public_url + SERVICE_PATH`` and the schema of every
message, both byte-stable, as checked in under ``wsdl/`` and ``schemas/``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from lxml import etree

from soap_service.api.guard import SERVICE_PATH, SPYNE_MAX_BODY_BYTES, SOAPGuard
from soap_service.api.models import TNS
from soap_service.api.schema import XS
from soap_service.api.service import OPERATIONS, OrderService
from soap_service.api.spyne_loader import Application, Soap11, Wsdl11, WsgiApplication, spyne_const
from soap_service.api.wsdl_parts import WSDL, name_parts_parameters
from soap_service.api.wsdl_security import declare_security_header
from soap_service.ra.service import RegistrationAuthority

SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
SERVICE_NAME = "OrderService"

SPYNE_LOGGER = "spyne"


def silence_spyne_logging() -> None:
    """spyne logs whole raw requests (passwords included) on malformed XML, the invalid
    values it met, and a traceback for every client fault. Our own code logs what
    matters, once, without the body; spyne's loggers are shut for good: nothing passes
    their level, and nothing reaches a handler of the root logger (nor Python's last resort)."""
    spyne_logger = logging.getLogger(SPYNE_LOGGER)
    spyne_logger.setLevel(logging.CRITICAL + 10)
    spyne_logger.propagate = False
    if not any(isinstance(handler, logging.NullHandler) for handler in spyne_logger.handlers):
        spyne_logger.addHandler(logging.NullHandler())


def stop_spyne_collecting() -> None:
    """spyne runs a full ``gc.collect()`` when it closes a request's context, at most once a
    second per process: with pkilint's validators and the ORM in the heap that is a pause of
    50-150 ms in the request path, once a second. Python's own collector is enough."""
    spyne_const.MIN_GC_INTERVAL = float("inf")


@functools.cache
def soap_application() -> Any:
    """The spyne application: SOAP 1.1 in and out. The guard has validated the request
    against the published schema before spyne reads it (spyne's own lxml validation shares
    one validator, and its error log, between threads)."""
    silence_spyne_logging()
    stop_spyne_collecting()
    app = Application(
        [OrderService],
        tns=TNS,
        name=SERVICE_NAME,
        in_protocol=Soap11(),
        out_protocol=Soap11(),
    )
    app.transport = SOAP_HTTP_TRANSPORT
    return app


def service_url(public_url: str) -> str:
    return public_url.rstrip("/") + SERVICE_PATH


def _pretty(document: etree._Element) -> bytes:
    etree.indent(document, space="  ")
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8")) + b"\n"


@functools.cache
def wsdl_document(public_url: str) -> bytes:
    """The WSDL 1.1 of the service, its soap:address at ``public_url`` + /api/order."""
    return published_wsdl(soap_application(), service_url(public_url))


def published_wsdl(app: Any, address: str, *, security_header: bool = True) -> bytes:
    """The WSDL 1.1 of the spyne application ``app``, its soap:address ``address``: its schema
    sorted, the ``wsse:Security`` header declared (unless ``security_header`` is false), the
    wrapper parts named ``parameters``. Used for the Order API and for the drop-in services
    (``soap_service.webtrust``)."""
    wsdl = Wsdl11(app.interface)
    wsdl.build_interface_document(address)
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    definitions = etree.fromstring(wsdl.get_interface_document(), parser)
    for schema in definitions.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema"):
        _sort_schema(schema)
    if security_header:
        definitions = declare_security_header(definitions)
    name_parts_parameters(definitions)
    return _pretty(definitions)


def _sort_schema(schema: etree._Element) -> None:
    """Types first, then elements, each by name: the document does not depend on spyne's walk."""
    children = list(schema)
    order = {f"{{{XS}}}import": 0, f"{{{XS}}}simpleType": 1, f"{{{XS}}}complexType": 2, f"{{{XS}}}element": 3}
    children.sort(key=lambda child: (order.get(str(child.tag), 4), child.get("name") or ""))
    schema[:] = children


@functools.cache
def xsd_document() -> bytes:
    """The XML schema of every message (the WSDL's types section as a document of its own)."""
    return message_schema(wsdl_document("http://127.0.0.1"))


def message_schema(wsdl_bytes: bytes) -> bytes:
    """The schema of :data:`TNS` in a WSDL of ours, as a document of its own."""
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    definitions = etree.fromstring(wsdl_bytes, parser)
    schemas = [
        schema for schema in definitions.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema")
        if schema.get("targetNamespace") == TNS  # not the wsse:Security header's (wsdl_security)
    ]
    if len(schemas) != 1:
        raise RuntimeError(f"expected one schema of {TNS} in the WSDL, found {len(schemas)}")
    source = schemas[0]
    schema = etree.Element(source.tag, source.attrib, nsmap={"xs": XS, "tns": TNS})
    for child in list(source):
        schema.append(child)
    return _pretty(schema)


def create_wsgi_app(ra: RegistrationAuthority) -> SOAPGuard:
    """The WSGI application of the Order API for one registration authority."""
    # The guard has refused a body over MAX_BODY_BYTES; what it hands spyne is its re-serialization.
    spyne_wsgi = WsgiApplication(soap_application(), chunked=True, max_content_length=SPYNE_MAX_BODY_BYTES)
    return SOAPGuard(
        spyne_wsgi,
        ra=ra,
        wsdl=wsdl_document(ra.settings.public_url),
        xsd=xsd_document(),
        operations=OPERATIONS,
        trusted_proxies=ra.settings.trusted_proxies,
    )
