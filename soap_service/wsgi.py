"""Composition root: settings -> registration authority -> the WSGI application, a
:class:`Dispatcher` that sends ``/ca/``, ``/crl/`` and ``/ocsp`` to the status front end
(docs/design.md, "Status publication"), ``/webtrust/...`` to the drop-in services
(``soap_service.webtrust``: each behind its own SOAP guard), ``/healthz``, ``/readyz`` and ``/metrics`` to the
operations endpoints (``soap_service.health``), and everything else to the SOAP guard, as before.
Every request first gets its request ID (``X-Request-ID``, see :meth:`Dispatcher.__call__`).

``application`` is what gunicorn loads (``soap_service.wsgi:application``). It is
built lazily, once per process, on :meth:`LazyApplication.load`; the gunicorn
configuration (``soap_service.gunicorn_conf``) calls that in each worker as it
boots, so the first request does not pay for it, and closes it when the worker
exits. Importing this module reads no setting and opens nothing.

The server runs *without* ``--preload``: each worker builds its own registration
authority after the fork, so no database connection, pool, lock or key handle is
ever shared between processes (SQLAlchemy engines and psycopg connections are not
fork-safe), a worker that gunicorn recycles (``max_requests``) or replaces after a
crash or ``kill -HUP`` starts clean, and a failure to build the RA (database
unreachable) shows in the worker that met it. The price is a second or two of
start-up per worker (the pre-issuance linter's validators are built before the
worker serves) and no copy-on-write sharing of them.
``soap-service serve`` checks the settings in the master first, so a bad setting
fails there with a plain message rather than in every worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from soap_service.api.application import create_wsgi_app
from soap_service.config import Settings, load_settings
from soap_service.health import PATHS as OPERATIONS_PATHS
from soap_service.health import HealthApplication
from soap_service.logjson import REQUEST_ID_ENVIRON, REQUEST_ID_HEADER, current_request_id, request_id_from
from soap_service.portal.app import PortalApplication
from soap_service.ra.crls import CRLPublisher
from soap_service.ra.mail import start_delivery
from soap_service.ra.portal import PortalDesk
from soap_service.ra.service import RegistrationAuthority
from soap_service.status.application import StatusApplication
from soap_service.status.ocsp import create_ocsp_application
from soap_service.webtrust.application import PREFIX as WEBTRUST_PREFIX
from soap_service.webtrust.application import DropInApplication

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

STATUS_PREFIXES = ("/ca/", "/crl/")
OCSP_PATH = "/ocsp"
PORTAL_PREFIX = "/portal/"


class Dispatcher:
    """Sends each request by its path: ``/ca/...`` and ``/crl/...`` to the status application,
    ``/ocsp`` and ``/ocsp/...`` to the OCSP responder, ``/portal/...`` to the End User Portal,
    ``/webtrust/...`` to the drop-in services,
    exactly ``/healthz``, ``/readyz`` and ``/metrics`` to the operations endpoints, anything else
    (``/api/order`` and the 404s of other paths) to the SOAP guard. Prefix tests and one set
    lookup only, nothing that reads the path twice."""

    def __init__(
        self, ra: RegistrationAuthority, *, soap: WSGIApp, status: WSGIApp, ocsp: WSGIApp,
        portal: WSGIApp | None = None, health: WSGIApp | None = None, webtrust: WSGIApp | None = None,
    ) -> None:
        self.webtrust = webtrust
        self.ra = ra
        self.soap = soap
        self.status = status
        self.ocsp = ocsp
        self.portal = portal
        self.health = health

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The request's ID: the client's ``X-Request-ID`` when valid (``logjson.request_id_from``:
        1 to 64 characters of ``[A-Za-z0-9._-]``), else a new one; set for every log line written
        while the request is served, and sent back as ``X-Request-ID`` on its answer, whatever
        front end answers (a header of that name already there is replaced)."""
        request_id = request_id_from(environ.get(REQUEST_ID_ENVIRON))
        environ[REQUEST_ID_ENVIRON] = request_id

        def with_request_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
            headers.append((REQUEST_ID_HEADER, request_id))
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        token = current_request_id.set(request_id)
        try:
            return self._route(environ, with_request_id)
        finally:
            current_request_id.reset(token)

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.health is not None and path in OPERATIONS_PATHS:
            return self.health(environ, start_response)
        if path.startswith(STATUS_PREFIXES):
            return self.status(environ, start_response)
        if path == OCSP_PATH or path.startswith(OCSP_PATH + "/"):
            return self.ocsp(environ, start_response)
        if self.portal is not None and path.startswith(PORTAL_PREFIX):
            return self.portal(environ, start_response)
        if self.webtrust is not None and path.startswith(WEBTRUST_PREFIX):
            return self.webtrust(environ, start_response)
        return self.soap(environ, start_response)


def create_application(settings: Settings | None = None) -> Dispatcher:
    """The WSGI application for ``settings`` (read from the environment by default)."""
    settings = settings if settings is not None else load_settings()
    ra = RegistrationAuthority.from_settings(settings)
    try:
        ra.prepare()
        ocsp: WSGIApp = create_ocsp_application(ra)  # the OCSP responder (soap_service.status.ocsp)
        # The portal's mail goes out from a thread of each worker (soap_service.ra.mail).
        trusted = settings.trusted_proxies  # whose X-Forwarded-For names the client (soap_service.client_address)
        portal = PortalApplication(PortalDesk(ra, start_delivery(ra)), settings.public_url, trusted_proxies=trusted)
        status = StatusApplication(CRLPublisher(ra), trusted_proxies=trusted)
        soap = create_wsgi_app(ra)
        return Dispatcher(ra, soap=soap, status=status, ocsp=ocsp, portal=portal, health=HealthApplication(ra),
                          webtrust=DropInApplication(ra, fallback=soap))
    except BaseException:
        ra.close()
        raise


class LazyApplication:
    """A WSGI application built on first use, once, from a factory; thread-safe."""

    def __init__(self, factory: Callable[[], Dispatcher]) -> None:
        self._factory = factory
        self._app: Dispatcher | None = None
        self._lock = threading.Lock()

    def load(self) -> Dispatcher:
        app = self._app
        if app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
                app = self._app
        return app

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.ra.close()
                self._app = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.load()(environ, start_response)


application = LazyApplication(create_application)
