"""Reading a request's HTTP body in the guard: its Content-Type, its bytes, and its text (where
the body ends on the connection is the worker's concern, ``soap_service.request_body``).

Refused before any work, each with a :class:`~soap_service.api.refusal.Refusal`
(docs/design.md, "Error model"): a Content-Type other than ``text/xml`` (multipart, MTOM and
SOAP 1.2's ``application/soap+xml`` included) or a charset this service does not read, a
compressed body (any Content-Encoding but ``identity``: nothing is decompressed), a body
over 1 MiB (by its Content-Length, unread, or as it is read), a body that stops arriving,
ends before its Content-Length or whose transfer coding is malformed, an empty body, and
bytes that are not text in their charset.

The body is decoded once, here: with the charset of the Content-Type when it names one
(RFC 7303: it overrides the document's own declaration), else as the document says (byte
order mark, XML declaration, UTF-8 by default); either way only UTF-8, US-ASCII,
ISO-8859-1 and UTF-16 are read (:data:`CHARSETS`). What the text holds is the envelope
reader's concern (``envelope``).
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from soap_service.api.refusal import Refusal

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body accepted (docs/design.md, "Request fields": more than 1 MiB is refused)."""

MEDIA_TYPE = "text/xml"
CHARSETS = {
    "utf-8": "UTF-8",
    "ascii": "US-ASCII",
    "iso8859-1": "ISO-8859-1",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
}
"""The charsets a request may be written in: Python codec name -> its name in messages."""
DECLARED_ENCODING_SPAN = 512
_DECLARED_ENCODING = re.compile(rb"""\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
"""Matched at the start of a body and never past :data:`DECLARED_ENCODING_SPAN` bytes: whatever it
gives back, it gives back within 512 bytes (the worst body costs microseconds, bench/guard_patterns.py)."""


def _charset(name: str) -> str | None:
    """The Python codec of a charset name when it is one this service reads, else None."""
    try:
        codec = codecs.lookup(name.strip()).name
    except (LookupError, ValueError):
        return None
    return codec if codec in CHARSETS else None


def _unsupported_charset() -> Refusal:
    return Refusal(
        "UnsupportedCharset",
        "the request must be written in UTF-8 (or US-ASCII, ISO-8859-1, UTF-16): "
        "send Content-Type: text/xml; charset=utf-8",
    )


def request_charset(content_type: str | None) -> str | None:
    """The codec a request's Content-Type names (None when it names no charset, or when
    there is no Content-Type), or a :class:`Refusal` when the type is not ``text/xml``
    or the charset is not one of :data:`CHARSETS`."""
    if content_type is None or not content_type.strip():
        return None
    kind, _, parameters = content_type.partition(";")
    kind = kind.strip().lower()
    if kind.startswith("multipart/"):
        raise Refusal(
            "UnsupportedMediaType",
            "multipart messages (SOAP with attachments, MTOM) are not accepted: "
            "send the envelope alone, as Content-Type: text/xml; charset=utf-8",
        )
    if kind != MEDIA_TYPE:
        raise Refusal(
            "UnsupportedMediaType",
            "SOAP 1.1 requests are sent as Content-Type: text/xml; charset=utf-8",
        )
    charsets: list[str] = []
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charsets.append(value.strip().strip('"').strip())
    if not charsets:
        return None
    codec = _charset(charsets[0])
    if codec is None or any(_charset(other) != codec for other in charsets[1:]):
        raise _unsupported_charset()
    return codec


def document_charset(body: bytes) -> str:
    """The codec a document without a charset in its Content-Type is written in (XML 1.0
    appendix F): its byte order mark, else its XML declaration, else UTF-8; a :class:`Refusal`
    when the declaration names a charset that is not one of :data:`CHARSETS`."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if body.startswith(b"<\x00?\x00"):
        return "utf-16-le"
    if body.startswith(b"\x00<\x00?"):
        return "utf-16-be"
    declared = _DECLARED_ENCODING.match(body, 0, DECLARED_ENCODING_SPAN)
    if declared is None:
        return "utf-8"
    codec = _charset(declared.group(1).decode("ascii"))
    if codec is None:
        raise _unsupported_charset()
    return codec


def body_text(body: bytes, *, charset: str | None = None) -> str:
    """The text of a request body, decoded with ``charset`` (a codec of :data:`CHARSETS`, the
    one the Content-Type names), else as the document says; a :class:`Refusal` for an empty
    body or bytes that are not text in that charset."""
    if not body.strip():
        raise Refusal("EmptyBody", "the request has no body: POST a SOAP 1.1 envelope")
    codec = charset if charset is not None else document_charset(body)
    try:
        return body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as error:
        said = "the charset its Content-Type names" if charset is not None else "as the document says"
        raise Refusal(
            "MalformedXML", f"the request body is not {CHARSETS[codec]} text (byte {error.start}), {said}"
        ) from None


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Refusal("BadRequest", "the Content-Length header is not a number")
    return int(raw)


def refuse_content_coding(content_encoding: str | None) -> None:
    """A :class:`Refusal` (``Client.UnsupportedMediaType``, RFC 9110 section 15.5.16) when a
    request's Content-Encoding names a coding other than ``identity``: a compressed body (gzip,
    deflate, br...) is never decompressed, so that a body's size on the wire is its size in
    memory (a 1 MiB gzip body could inflate to a gigabyte)."""
    if content_encoding is None:
        return
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    if any(coding not in ("", "identity") for coding in codings):
        raise Refusal(
            "UnsupportedMediaType",
            "a compressed request body (Content-Encoding gzip, deflate...) is not accepted: "
            "send the envelope uncompressed",
        )


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body of a WSGI ``environ``, read whole; a :class:`Refusal` when it has a
    Content-Encoding (:func:`refuse_content_coding`, unread), is larger than ``limit`` bytes,
    stops arriving (the server's socket read timeout) or cannot be read."""
    refuse_content_coding(environ.get("HTTP_CONTENT_ENCODING"))
    length = _content_length(environ)
    too_large = Refusal("RequestTooLarge", f"the request body is larger than {limit} bytes")
    if length is not None and length > limit:
        raise too_large
    stream = environ["wsgi.input"]
    try:
        body = bytes(stream.read(length if length is not None else limit + 1))
    except TimeoutError:
        raise Refusal(
            "RequestTimeout", "the request body stopped arriving before its end: send it whole, without pauses"
        ) from None
    except OSError:
        raise Refusal("BadRequest", "the connection failed while the request body was read") from None
    except Exception:  # noqa: BLE001 - the server's reader (gunicorn's: a malformed chunk, a chunked body cut short)
        raise Refusal("BadRequest", "the request body cannot be read: its transfer coding is malformed") from None
    if len(body) > limit:
        raise too_large
    if length is not None and len(body) < length:
        raise Refusal(
            "BadRequest", f"the request body ended after {len(body)} of the {length} bytes its Content-Length announced"
        )
    return body
