"""Composition root: settings -> registration authority -> the SOAP WSGI application.

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
from soap_service.api.guard import SOAPGuard
from soap_service.config import Settings, load_settings
from soap_service.ra.service import RegistrationAuthority

StartResponse = Callable[..., Any]


def create_application(settings: Settings | None = None) -> SOAPGuard:
    """The SOAP WSGI application for ``settings`` (read from the environment by default)."""
    settings = settings if settings is not None else load_settings()
    ra = RegistrationAuthority.from_settings(settings)
    try:
        ra.prepare()
        return create_wsgi_app(ra)
    except BaseException:
        ra.close()
        raise


class LazyApplication:
    """A WSGI application built on first use, once, from a factory; thread-safe."""

    def __init__(self, factory: Callable[[], SOAPGuard]) -> None:
        self._factory = factory
        self._app: SOAPGuard | None = None
        self._lock = threading.Lock()

    def load(self) -> SOAPGuard:
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
