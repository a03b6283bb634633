"""gunicorn settings of the Order API.

``soap-service serve`` applies these (its ``--bind``, ``--workers`` and ``--threads``
override them); plain gunicorn takes them too::

    gunicorn -c python:soap_service.gunicorn_conf soap_service.wsgi:application

- Workers: :class:`soap_service.worker.HeadBufferingWorker`, gunicorn's gthread worker
  whose threads only get a connection once its request line, headers and body have
  arrived whole (read on the worker's main loop, without blocking): a few threads per process
  share one registration authority (its credential cache, CA keys and linter), and
  keep-alive connections are served. ``worker_connections`` (100) bounds the
  connections a worker holds in any state; at the cap it stops accepting.
- No ``--preload`` (see ``soap_service.wsgi``): each worker builds its own RA after
  the fork, in ``post_worker_init``, before it accepts a request.
- Timeouts: a request's line and headers must arrive whole within
  ``SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS`` (default 10, counted from the accept or
  from the first byte of a kept-alive connection's next request), or the connection is
  closed: a client that sends half a head, or trickles it, holds no thread and is cut at
  the deadline. The whole body (Content-Length up to 1 MiB, or chunked) must then arrive
  within ``SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS`` (default 10, counted from the end of
  the head): a client that announces more body than it sends, or trickles it, holds no
  thread either, and at the deadline gets a ``Client.RequestTimeout`` fault (the
  connection is then shut in ``post_request``). The same setting bounds the *whole*
  answer: the worker's thread writes it to a buffer (at most 16 MiB) and is free at once,
  the main loop sends it as the client reads, and an answer not read whole within that
  long (counted from when it is ready) has its connection reset, logged once at INFO; a
  pipelined request is read only once the answer before it is out. gunicorn's ``timeout``
  does *not* bound a request with these workers (the worker's main loop keeps the arbiter
  informed while its threads wait): it only
  replaces a worker whose main loop hangs. On SIGTERM or SIGINT workers finish their
  requests within ``graceful_timeout``; idle keep-alive connections close after
  ``keepalive`` seconds.
- Limits: request line and header sizes here; the body limit (1 MiB) is enforced
  by the application's guard, which answers a SOAP fault rather than an HTML page.
- ``control_socket_disable``: gunicorn 27 otherwise opens a control socket in the
  user's runtime or home directory, and two servers on one machine collide.
- Logging: every line a JSON object (``soap_service.logjson``: ts, level, logger, pid, msg,
  the request's ``request_id`` and the request line's fields as keys); one line per request
  from the application (``soap_service.api.requests``); gunicorn's access log is off,
  spyne's loggers are shut (they log raw requests), and
  gunicorn's "Invalid request from ip=...: <what it read>" is cut to the address and
  the error's class (:class:`InvalidRequestFilter`): what it read can be the middle of
  a request body, a password.
- ``worker_tmp_dir``: ``/dev/shm`` when there is one (the workers' heartbeat files stay
  off a disk that may stall).
- Metrics (``GET /metrics``, ``soap_service.metrics``): the master gives the server a fresh
  directory for the workers' metric files before it forks (``on_starting``):
  ``PROMETHEUS_MULTIPROC_DIR`` when the operator set it (emptied of its ``*.db`` files), else a
  new temporary directory, removed when the server stops (``on_exit``); ``child_exit`` marks a
  worker that left as dead (its counters stay in the sums).
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soap_service import metrics
from soap_service.api.guard import SERVICE_PATH
from soap_service.config import ConfigurationError
from soap_service.logjson import JsonFormatter, RequestIdFilter

_LOG_LEVEL = (os.environ.get("SOAP_SERVICE_LOG_LEVEL") or "INFO").upper()

BODY_READ_TIMEOUT_VARIABLE = "SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS"
DEFAULT_BODY_READ_TIMEOUT = 10.0
MAX_BODY_READ_TIMEOUT = 300.0
HEADER_READ_TIMEOUT_VARIABLE = "SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS"
DEFAULT_HEADER_READ_TIMEOUT = 10.0
MAX_HEADER_READ_TIMEOUT = 300.0


def _seconds(environ: Mapping[str, str] | None, variable: str, default: float, maximum: float) -> float:
    env = os.environ if environ is None else environ
    raw = (env.get(variable) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= maximum:
        raise ConfigurationError(
            f"{variable} must be a number of seconds above 0 and at most {maximum:g}, got {raw!r}"
        )
    return value


def body_read_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a request's whole body may take to arrive, from the end of its head, and the
    whole answer to be read by the client, from when it is ready:
    ``SOAP_SERVICE_BODY_READ_TIMEOUT_SECONDS``, default 10 (see ``soap_service.worker``)."""
    return _seconds(environ, BODY_READ_TIMEOUT_VARIABLE, DEFAULT_BODY_READ_TIMEOUT, MAX_BODY_READ_TIMEOUT)


def header_read_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a request's line and headers may take to arrive whole, from the connection's
    accept (or the first byte of a kept-alive connection's next request):
    ``SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS``, default 10 (see ``soap_service.worker``)."""
    return _seconds(environ, HEADER_READ_TIMEOUT_VARIABLE, DEFAULT_HEADER_READ_TIMEOUT, MAX_HEADER_READ_TIMEOUT)


@functools.cache
def _worker_body_read_timeout() -> float:
    return body_read_timeout()


wsgi_app = "soap_service.wsgi:application"
bind = ["127.0.0.1:8080"]
worker_class = "soap_service.worker.HeadBufferingWorker"
workers = 2
threads = 4
# Connections a worker holds in any state (head being read, in a thread, kept alive, closing);
# at the cap it stops accepting and the listen backlog holds the rest.
worker_connections = 100
timeout = 30
graceful_timeout = 20
keepalive = 5
# A worker is replaced after this many requests (a bound on what a slow leak could grow to). The
# OCSP responder answers a few thousand a second on 2 workers: at 20,000 each worker restarted every
# 10 s, its pre-signed answers lost and its clients waiting up to 0.7 s (bench/ocsp_load.py).
max_requests = 200_000
max_requests_jitter = 20_000
backlog = 256
limit_request_line = 8190
limit_request_fields = 64
limit_request_field_size = 8190
preload_app = False
control_socket_disable = True
proc_name = "soap-service"
# gunicorn makes its heartbeat file there with mkstemp and unlinks it at once.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
accesslog = None
errorlog = "-"
loglevel = _LOG_LEVEL.lower()

_INVALID_REQUEST = "Invalid request from ip="
_ADDRESS = re.compile(r"[0-9A-Za-z.:%\[\]-]{1,64}")


class InvalidRequestFilter(logging.Filter):
    """For ``gunicorn.error``: a request gunicorn cannot parse is logged as "Invalid request from
    ip=IP: <error>", and the error quotes what gunicorn read, which can be the middle of a body
    (a keep-alive request whose Content-Length stops short of its password: the rest is read as
    the next request's "method"). Such a record keeps the address and the error's class only."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(_INVALID_REQUEST):
            return True
        address = message[len(_INVALID_REQUEST):].partition(": ")[0]
        if not _ADDRESS.fullmatch(address):
            address = "?"
        error = sys.exc_info()[0]  # gunicorn logs this while it handles the error
        record.msg = "Invalid request from ip=%s: %s (what was read is not logged)"
        record.args = (address, error.__name__ if error is not None else "invalid request")
        return True


logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": _LOG_LEVEL, "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": _LOG_LEVEL,
            "handlers": [],
            "propagate": True,
            "qualname": "gunicorn.error",
            "filters": ["invalid_request"],
        },
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
        "spyne": {"level": "CRITICAL", "handlers": ["null"], "propagate": False},
    },
    "filters": {"invalid_request": {"()": InvalidRequestFilter}, "request_id": {"()": RequestIdFilter}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
                    "filters": ["request_id"]},
        "null": {"class": "logging.NullHandler"},
    },
    "formatters": {"json": {"()": JsonFormatter}},
}

_METRICS_TEMPORARY: list[Path] = []
"""The metrics directory ``on_starting`` created, which ``on_exit`` removes."""


def on_starting(server: Any) -> None:
    """In the master, before any worker: a fresh directory for the workers' metric files."""
    chosen = metrics.multiprocess_directory()
    if chosen is None:
        chosen = Path(tempfile.mkdtemp(prefix="soap-service-metrics-"))
        _METRICS_TEMPORARY.append(chosen)
    metrics.use_multiprocess_directory(chosen)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker has left: its live gauges leave the sums."""
    metrics.worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    """In the master, as the server stops: remove the metrics directory it made."""
    while _METRICS_TEMPORARY:
        shutil.rmtree(_METRICS_TEMPORARY.pop(), ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    """Build the worker's application (settings, RA, linter) before it serves."""
    _worker_body_read_timeout()  # a bad setting stops the worker here, not at its first request
    load = getattr(worker.wsgi, "load", None)
    if load is not None:
        load()
    # What the worker built to serve (validators, schemas, mappers) lives as long as it does:
    # keep it out of the collector's way.
    gc.freeze()
    worker.log.info("worker %s ready: POST %s", worker.pid, SERVICE_PATH)


def pre_request(worker: Any, req: Any) -> None:
    """Bound every read of this request's body that the worker left to the thread, and under
    plain gthread every write of its answer (``soap_service.worker`` buffers bodies on its
    main loop and bounds what a thread still reads by the body's whole deadline; its threads
    write answers to a buffer, sent by the main loop within the answer's deadline): a client
    that announces more than it sends, or under gthread does not read, would otherwise hold
    the thread for good (gunicorn's ``timeout`` never fires for it). The guard answers a read
    that times out with ``Client.RequestTimeout``; gunicorn resets the socket to blocking
    before it reads the next request of a keep-alive connection."""
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    settimeout = getattr(sock, "settimeout", None)
    if settimeout is not None:
        settimeout(_worker_body_read_timeout())


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Close a connection whose body could not be read (it stopped arriving, its chunks were
    malformed) as soon as its answer is out: the worker closes it anyway, but "gracefully",
    waiting up to 2 s for the client to close first (gthread did that on its main loop,
    blocking every accept of the worker; ``soap_service.worker`` does it on the poller, but
    the connection still counts against ``worker_connections`` meanwhile). The socket shut is
    the one the answer was written to (``gunicorn.socket``): under gthread the client's, the
    answer already sent; under ``soap_service.worker`` the answer's buffer, which closes the
    connection once the main loop has sent the answer."""
    if getattr(getattr(req, "body", None), "failed", False) is not True:
        return
    sock = environ.get("gunicorn.socket") if isinstance(environ, dict) else None
    if sock is None:
        sock = getattr(getattr(req, "unreader", None), "sock", None)
    shutdown = getattr(sock, "shutdown", None)
    if shutdown is not None:
        try:
            shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def worker_exit(server: Any, worker: Any) -> None:
    """Release the worker's database connections as it leaves."""
    close = getattr(worker.wsgi, "close", None)
    if close is not None:
        close()
