"""The bounds and shapes of the text fields a caller sends (docs/design.md, "Request fields").

Every untrusted text is measured against its bound here *before* any pattern, parser or
normalisation sees it, so that no check of a field costs more than its bound allows. The
shapes are plain string code: no regular expression that could backtrack ever sees request
data, and every check covers the whole value (a trailing newline is not a valid ending).

This module holds the ONE e-mail rule, the ONE PartnerOrderID rule and the partner code
and user name rules; the DNS name syntax is :mod:`soap_service.ra.names`'s, the CSR's size
:mod:`soap_service.ra.csr`'s.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from soap_service.errors import InvalidField
from soap_service.ra.catalogue import PRODUCTS

MAX_EMAIL_CHARS = 254
"""An e-mail address: RFC 5321's 256-octet path less its angle brackets."""
MAX_EMAIL_LOCAL_CHARS = 64
"""The part before the '@' (RFC 5321, 4.5.3.1.1)."""
MAX_DNS_NAME_CHARS = 253
"""A DNS name in presentation form, without a final dot (RFC 1035's 255 octets on the wire)."""
MAX_LABEL_CHARS = 63
"""One label of a DNS name (RFC 1035)."""
MAX_PARTNER_ORDER_ID_CHARS = 64
MAX_SIGNATURE_HASH_CHARS = 16
"""SignatureHashAlgorithm: the longest accepted spelling ("SHA2-256") has 8."""
MAX_PARTNER_CODE_CHARS = 64
MAX_USER_NAME_CHARS = 128
MAX_PARTNER_NAME_CHARS = 200
MAX_PRODUCT_CODE_CHARS = 64
MAX_REQUEST_NAMES = max(product.max_names for product in PRODUCTS)
"""The most DNSNames entries one request may list: the most names any product carries (25)."""

_LETTERS_DIGITS = frozenset(string.ascii_letters + string.digits)
_PARTNER_CODE_CHARS = _LETTERS_DIGITS | frozenset("_.-")
_USER_NAME_CHARS = _LETTERS_DIGITS | frozenset("_.@-")


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0, DEL and C1 controls (Unicode category Cc), and the line and paragraph separators:
Python's ``strip`` and ``splitlines`` take several of them for blanks or line breaks. One
character class: a search is a single linear scan (0.1-0.5 ms for a 64 KiB CSR), nothing
to backtrack."""


def is_clean_text(value: str) -> bool:
    """No control characters (:data:`_CONTROL_CHARACTER`), and storable as UTF-8 (no lone
    surrogates)."""
    if _CONTROL_CHARACTER.search(value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bounded(value: str, limit: int, field: str) -> str:
    """``value`` itself, once it is known to hold at most ``limit`` characters; else -2019 on ``field``."""
    if len(value) > limit:
        raise InvalidField(f"{field} is longer than {limit} characters", field=field)
    return value


def bounded_count(values: Sequence[str], limit: int, field: str) -> Sequence[str]:
    """``values`` itself, once it is known to hold at most ``limit`` entries; else -2019 on ``field``."""
    if len(values) > limit:
        raise InvalidField(f"{field} lists more than {limit} entries", field=field)
    return values


def is_email(value: str) -> bool:
    """An e-mail address as an order's contact or a ReissueEmail needs it.

    At most 254 characters; exactly one '@'; a local part of 1-64 characters; a domain of
    at least two non-empty dot-separated labels of at most 63 characters; no whitespace
    and no control character anywhere. Plain string code, linear in the (bounded) length.
    """
    if len(value) > MAX_EMAIL_CHARS:
        return False
    local, at, domain = value.partition("@")
    if not at or "@" in domain or not 1 <= len(local) <= MAX_EMAIL_LOCAL_CHARS:
        return False
    if any(ch.isspace() for ch in value) or not is_clean_text(value):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(1 <= len(label) <= MAX_LABEL_CHARS for label in labels)


def checked_email(value: str, field: str) -> str:
    """The address without surrounding blanks; -2019 on ``field`` when it is too long or not an address."""
    address = bounded(value, MAX_EMAIL_CHARS, field).strip()
    if not is_email(address):
        raise InvalidField(f"{field} is not an e-mail address", field=field)
    return address


def checked_partner_order_id(value: str) -> str:
    """The PartnerOrderID without surrounding blanks: 1-64 printable characters, else -2019."""
    stripped = bounded(value, MAX_PARTNER_ORDER_ID_CHARS, "PartnerOrderID").strip()
    if not stripped:
        raise InvalidField("PartnerOrderID is missing", field="PartnerOrderID")
    if not is_clean_text(value.strip(" \t\r\n")):  # strip() alone takes some controls for blanks
        raise InvalidField("PartnerOrderID holds control or invalid characters", field="PartnerOrderID")
    return stripped


def is_partner_code(value: str) -> bool:
    """2-64 ASCII letters, digits, '.', '_' or '-', beginning with a letter or digit."""
    return (
        2 <= len(value) <= MAX_PARTNER_CODE_CHARS
        and value[0] in _LETTERS_DIGITS
        and all(ch in _PARTNER_CODE_CHARS for ch in value)
    )


def is_user_name(value: str) -> bool:
    """1-128 ASCII letters, digits, '.', '_', '@' or '-', beginning with a letter or digit."""
    return (
        1 <= len(value) <= MAX_USER_NAME_CHARS
        and value[0] in _LETTERS_DIGITS
        and all(ch in _USER_NAME_CHARS for ch in value)
    )


def is_country_code(value: str) -> bool:
    """Two ASCII capital letters (ISO 3166-1 alpha-2), nothing before or after."""
    return len(value) == 2 and all(ch in string.ascii_uppercase for ch in value)
