"""Log lines as JSON objects, each carrying the ID of the request it was written for
(docs/design.md, "Serving"; docs/operations.md).

Every record becomes one line, a JSON object: ``ts`` (UTC, milliseconds), ``level``,
``logger``, ``pid``, ``msg``, ``request_id`` (while a request is served, else absent), the
request fields a request line adds (``extra={"fields": {...}}``) as keys of their own, and
``exc`` (the traceback as one string) when the record has one. JSON encoding escapes every
control character and quote, so a value a client chose cannot end the line or forge a key; a
field's value is cut to :data:`MAX_FIELD_CHARS` characters all the same.

The request ID lives in a context variable, set by the WSGI front door (``soap_service.wsgi``)
for the length of one request and read by :class:`RequestIdFilter`: every line written while
the request is served, by any logger, carries it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

MAX_FIELD_CHARS = 64
MAX_REQUEST_ID_CHARS = 64
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]+")  # one character class: no backtracking

current_request_id: ContextVar[str | None] = ContextVar("soap_service_request_id", default=None)
"""The ID of the request this thread serves, or None outside a request."""

_RESERVED = frozenset({"ts", "level", "logger", "pid", "msg", "request_id", "exc"})


def request_id_from(value: object) -> str:
    """The client's ``X-Request-ID`` when it is 1 to 64 characters of ``[A-Za-z0-9._-]`` (its
    length checked before the pattern sees it), else a new one (32 hex digits)."""
    if isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_CHARS and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def cut(value: object) -> object:
    """A field's value for a log line: numbers, booleans and None as they are, anything else as a
    string of at most :data:`MAX_FIELD_CHARS` characters ("..." marks a cut)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if len(text) > MAX_FIELD_CHARS:
        return text[:MAX_FIELD_CHARS] + "..."
    return text


class RequestIdFilter(logging.Filter):
    """Gives each record the current request's ID (``record.request_id``, None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            request_id = current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if isinstance(key, str) and key not in _RESERVED:
                    line[key] = cut(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=True, default=str)


def json_handler(stream: Any, level: int | str) -> logging.Handler:
    """A handler writing JSON lines to ``stream``, with the request ID filter."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(level)
    return handler
