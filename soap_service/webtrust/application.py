"""The two drop-in services as WSGI applications: each a spyne application behind its own
:class:`~soap_service.api.guard.SOAPGuard` (bounds, DOCTYPE refusal, body limit, the schema
before spyne, SOAPAction, one log line, faults with incident IDs), at its path.

==========  ======================  =========================================
service     endpoint (POST)         WSDL (GET)
==========  ======================  =========================================
order       ``/webtrust/order``     ``/webtrust/order.jws?WSDL`` (also ``/webtrust/order?wsdl``)
query       ``/webtrust/query``     ``/webtrust/query.jws?WSDL``
==========  ======================  =========================================

The WSDLs' ``soap:address`` is ``SOAP_SERVICE_PUBLIC_URL`` + the endpoint; they are checked in
as ``wsdl/webtrust-order.wsdl`` and ``wsdl/webtrust-query.wsdl`` (``make wsdl``). They declare
no ``wsse:Security`` header (the earlier API's clients send an AuthToken), though one is read
as on ``/api/order``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from soap_service.api.application import (
    SOAP_HTTP_TRANSPORT,
    message_schema,
    published_wsdl,
    silence_spyne_logging,
    stop_spyne_collecting,
)
from soap_service.api.guard import SPYNE_MAX_BODY_BYTES, SOAPGuard
from soap_service.api.models import TNS
from soap_service.api.spyne_loader import Application, Soap11, WsgiApplication
from soap_service.ra.service import RegistrationAuthority
from soap_service.webtrust.service import (
    ORDER_OPERATIONS,
    QUERY_OPERATIONS,
    WebtrustOrderService,
    WebtrustQueryService,
)

PREFIX = "/webtrust/"
WEBTRUST = "webtrust-"
"""A drop-in service's name in the request log and the metrics: ``webtrust-order``, ``webtrust-query``."""
DOCUMENT_SUFFIX = ".jws"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class DropInService:
    name: str  # order, query
    service: Any  # the spyne ServiceBase
    spyne_name: str  # the WSDL's service name
    operations: frozenset[str]

    @property
    def path(self) -> str:
        return PREFIX + self.name

    @property
    def document_path(self) -> str:
        return self.path + DOCUMENT_SUFFIX


SERVICES = {
    "order": DropInService("order", WebtrustOrderService, "orderService", ORDER_OPERATIONS),
    "query": DropInService("query", WebtrustQueryService, "queryService", QUERY_OPERATIONS),
}


@functools.cache
def spyne_application(name: str) -> Any:
    silence_spyne_logging()
    stop_spyne_collecting()
    service = SERVICES[name]
    app = Application([service.service], tns=TNS, name=service.spyne_name, in_protocol=Soap11(),
                      out_protocol=Soap11())
    app.transport = SOAP_HTTP_TRANSPORT
    return app


@functools.cache
def wsdl_document(name: str, public_url: str) -> bytes:
    """The WSDL of the drop-in service ``name`` (order, query), its soap:address ``public_url``
    + ``/webtrust/<name>``."""
    return published_wsdl(spyne_application(name), public_url.rstrip("/") + SERVICES[name].path,
                          security_header=False)


@functools.cache
def xsd_document(name: str) -> bytes:
    return message_schema(wsdl_document(name, "http://127.0.0.1"))


def create_guard(name: str, ra: RegistrationAuthority) -> SOAPGuard:
    service = SERVICES[name]
    spyne_wsgi = WsgiApplication(spyne_application(name), chunked=True, max_content_length=SPYNE_MAX_BODY_BYTES)
    return SOAPGuard(
        spyne_wsgi,
        ra=ra,
        wsdl=wsdl_document(name, ra.settings.public_url),
        xsd=xsd_document(name),
        operations=service.operations,
        trusted_proxies=ra.settings.trusted_proxies,
        path=service.path,
        aliases=frozenset({service.document_path}),
        service=WEBTRUST + name,
    )


class DropInApplication:
    """``/webtrust/<service>[.jws]`` to that service's guard; any other path under ``/webtrust/``
    to ``fallback`` (the Order API's guard, which answers 404)."""

    def __init__(self, ra: RegistrationAuthority, fallback: WSGIApp) -> None:
        self._guards: dict[str, WSGIApp] = {}
        for name, service in SERVICES.items():
            guard = create_guard(name, ra)
            self._guards[service.path] = guard
            self._guards[service.document_path] = guard
        self._fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        guard = self._guards.get(environ.get("PATH_INFO", ""), self._fallback)
        return guard(environ, start_response)
