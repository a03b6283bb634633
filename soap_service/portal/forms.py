"""The portal's form bodies, read with their size bounded before anything parses them: URL-encoded
forms, and ``multipart/form-data`` for the reissue form's CSR file (docs/design.md, "End User Portal")."""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any
from urllib.parse import parse_qsl

MAX_FORM_BYTES = 256 * 1024
"""A form body at most (a CSR of 64 KiB pasted and uploaded, and the other fields)."""
MAX_FIELDS = 16


class FormError(Exception):
    """A body that is no form of ours: too large, not UTF-8, too many fields, another type."""


def read_form(environ: dict[str, Any]) -> dict[str, str]:
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
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
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


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    if len(content_type) > 256 or "\r" in content_type or "\n" in content_type:
        raise FormError("the form's type cannot be read")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise FormError("the form's parts cannot be read")
    fields: dict[str, str] = {}
    for count, part in enumerate(message.iter_parts()):
        if count >= MAX_FIELDS:
            raise FormError("the form has too many fields")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            fields.setdefault(name, data.decode("utf-8"))
        except UnicodeDecodeError:
            raise FormError(f"the field {name[:40]!r} is not UTF-8 text") from None
    return fields
