"""gunicorn settings of the Order API.

``soap-service serve`` applies these (its ``--bind``, ``--workers`` and ``--threads``
override them); plain gunicorn takes them too::

    gunicorn -c python:soap_service.gunicorn_conf soap_service.wsgi:application

- gthread workers: a few threads per process share one registration authority (its
  credential cache, CA keys and linter), and keep-alive connections are served.
- No ``--preload`` (see ``soap_service.wsgi``): each worker builds its own RA after
  the fork, in ``post_worker_init``, before it accepts a request.
- Timeouts: a worker silent for ``timeout`` seconds is killed and replaced; on
  SIGTERM or SIGINT workers finish their requests within ``graceful_timeout``;
  idle keep-alive connections close after ``keepalive`` seconds.
- Limits: request line and header sizes here; the body limit (1 MiB) is enforced
  by the application's guard, which answers a SOAP fault rather than an HTML page.
- ``control_socket_disable``: gunicorn 27 otherwise opens a control socket in the
  user's runtime or home directory, and two servers on one machine collide.
- Logging: one line per request from the application (``soap_service.api.requests``);
  gunicorn's access log is off, spyne's loggers are shut (they log raw requests).
"""

from __future__ import annotations

import gc
import os
from typing import Any

from soap_service.api.guard import SERVICE_PATH

_LOG_LEVEL = (os.environ.get("SOAP_SERVICE_LOG_LEVEL") or "INFO").upper()

wsgi_app = "soap_service.wsgi:application"
bind = ["127.0.0.1:8080"]
worker_class = "gthread"
workers = 2
threads = 4
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 20000
max_requests_jitter = 2000
backlog = 256
limit_request_line = 8190
limit_request_fields = 64
limit_request_field_size = 8190
preload_app = False
control_socket_disable = True
proc_name = "soap-service"
accesslog = None
errorlog = "-"
loglevel = _LOG_LEVEL.lower()

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": _LOG_LEVEL, "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": _LOG_LEVEL, "handlers": [], "propagate": True, "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
        "spyne": {"level": "CRITICAL", "handlers": ["null"], "propagate": False},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        "null": {"class": "logging.NullHandler"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
    },
}


def post_worker_init(worker: Any) -> None:
    """Build the worker's application (settings, RA, linter) before it serves."""
    load = getattr(worker.wsgi, "load", None)
    if load is not None:
        load()
    # What the worker built to serve (validators, schemas, mappers) lives as long as it does:
    # keep it out of the collector's way.
    gc.freeze()
    worker.log.info("worker %s ready: POST %s", worker.pid, SERVICE_PATH)


def worker_exit(server: Any, worker: Any) -> None:
    """Release the worker's database connections as it leaves."""
    close = getattr(worker.wsgi, "close", None)
    if close is not None:
        close()
