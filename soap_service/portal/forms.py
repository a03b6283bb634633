"""The portal's form bodies, read with their size bounded before anything parses them
(docs/design.md, "End User Portal"): URL-encoded forms everywhere, and ``multipart/form-data`` only
where a signed-in contact uploads a CSR file (``multipart=True``).

The multipart reader is ours, strict and linear: one boundary (1-70 characters of RFC 2046's
alphabet) found by ``bytes.count`` before anything is split; at most :data:`MAX_FIELDS` parts;
each part's header block at most :data:`MAX_PART_HEADER_BYTES`, its only header that matters a
``Content-Disposition: form-data; name="..."`` read with plain string code; no nested multipart, no
transfer encoding. (``email.parser`` took 15 µs a byte, 3.8 s for one 253 KiB form of 52,000
header parameters, and nested parts made it recurse until it failed.)
"""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import parse_qsl

MAX_FORM_BYTES = 256 * 1024
"""A form body at most (a CSR of 64 KiB pasted and uploaded, and the other fields)."""
MAX_FIELDS = 16
MAX_PART_HEADER_BYTES = 1024
MAX_CONTENT_TYPE_CHARS = 256
_BOUNDARY_CHARS = frozenset(string.ascii_letters + string.digits + "'()+_,-./:=? ")
_PLAIN_ENCODINGS = ("", "7bit", "8bit", "binary")


class FormError(Exception):
    """A body that is no form of ours: too large, not UTF-8, too many fields, another type."""


def read_form(environ: dict[str, Any], *, multipart: bool = False) -> dict[str, str]:
    """The first value of each field of a POST body; a FormError when it cannot be one of our forms."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "0")
    except ValueError:
        raise FormError("Content-Length is not a number") from None
    if length < 0 or length > MAX_FORM_BYTES:
        raise FormError("the form is too large")
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    if len(body) != length:
        raise FormError("the form ended early")
    content_type = environ.get("CONTENT_TYPE", "")
    if len(content_type) > MAX_CONTENT_TYPE_CHARS:
        raise FormError("the form's type cannot be read")
    kind, _, parameters = content_type.partition(";")
    kind = kind.strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind == "multipart/form-data" and multipart:
        return _multipart(_boundary(parameters), body)
    raise FormError("not a form")


def _urlencoded(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form is not UTF-8, or has too many fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _boundary(parameters: str) -> bytes:
    """The ``boundary`` parameter of a bounded Content-Type's parameters, checked."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if 1 <= len(value) <= 70 and set(value) <= _BOUNDARY_CHARS and not value.endswith(" "):
                return value.encode("ascii")
            break
    raise FormError("the form's boundary cannot be read")


def _multipart(boundary: bytes, body: bytes) -> dict[str, str]:
    delimiter = b"--" + boundary
    if body.count(delimiter) > MAX_FIELDS + 1:
        raise FormError("the form has too many fields")
    pieces = body.split(b"\r\n" + delimiter)
    first = pieces[0]
    if not first.startswith(delimiter):
        raise FormError("the form does not start with its boundary")
    pieces[0] = first[len(delimiter):]
    fields: dict[str, str] = {}
    for index, piece in enumerate(pieces):
        if piece.startswith(b"--"):  # the closing delimiter
            return fields
        if not piece.startswith(b"\r\n") or index == len(pieces) - 1:
            raise FormError("a part of the form is cut")
        name, value = _part(piece[2:])
        if name is not None:
            fields.setdefault(name, value)
    raise FormError("the form has no closing boundary")


def _part(part: bytes) -> tuple[str | None, str]:
    head, separator, content = part.partition(b"\r\n\r\n")
    if not separator or len(head) > MAX_PART_HEADER_BYTES:
        raise FormError("a part's headers cannot be read")
    try:
        lines = head.decode("utf-8").split("\r\n")
    except UnicodeDecodeError:
        raise FormError("a part's headers are not UTF-8") from None
    name: str | None = None
    for line in lines:
        header, _, value = line.partition(":")
        header = header.strip().lower()
        if header == "content-disposition":
            name = _field_name(value)
        elif header == "content-type" and value.strip().lower().startswith("multipart/"):
            raise FormError("nested parts are not taken")
        elif header == "content-transfer-encoding" and value.strip().lower() not in _PLAIN_ENCODINGS:
            raise FormError("encoded parts are not taken")
    try:
        return name, content.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("a field is not UTF-8 text") from None


def _field_name(disposition: str) -> str | None:
    """The ``name`` of a ``form-data`` Content-Disposition (quoted, without escapes), else None."""
    kind, _, parameters = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise FormError("a part is not form data")
    for parameter in parameters.split(";"):
        key, _, value = parameter.strip().partition("=")
        if key.strip().lower() == "name":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value if value and len(value) <= 64 and '"' not in value else None
    return None
