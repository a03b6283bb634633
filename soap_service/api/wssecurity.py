"""The SOAP header ``wsse:Security`` with one ``wsse:UsernameToken`` (OASIS WSS 1.0, UsernameToken
profile 1.0): the other way to authenticate, instead of the request header's AuthToken
(docs/design.md, "Authentication").

:func:`read_security` finds the header block in an envelope the guard read and turns its token
into a :class:`UsernameToken`: a PasswordText (or a Password without Type) becomes ordinary
credentials, a PasswordDigest a :class:`~soap_service.ra.auth.DigestProof` that the RA checks
against the user's encrypted password copy, its Created against the skew and its nonce against
the ones seen. Every field's length is bounded before anything decodes or parses it; Created is
read by ``datetime.fromisoformat`` after a check of its characters, no pattern. A header that is
not one UsernameToken as the profile writes it raises :class:`MalformedSecurity`, which the
service answers -4001 with its message: the message names the rule, never a value of the token.

A ``wsse:Security`` block meant for another actor is not ours (WS-Security lets a message carry
several) and is left alone.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from soap_service.api.faults import SOAP11_ENV
from soap_service.api.header_blocks import XML_SPACE as _XML_SPACE
from soap_service.api.header_blocks import for_this_node
from soap_service.config import Secret
from soap_service.ra.auth import MAX_PASSWORD_LENGTH, MAX_USERNAME_LENGTH, Credentials, DigestProof

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SECURITY = f"{{{WSSE}}}Security"
USERNAME_TOKEN = f"{{{WSSE}}}UsernameToken"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _PROFILE + "#PasswordText"
PASSWORD_DIGEST = _PROFILE + "#PasswordDigest"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

SECURITY_KEY = "soap_service.ws_security"
"""The WSGI environ key under which the guard hands the service what it read of the header:
a :class:`UsernameToken`, a :class:`MalformedSecurity`, or nothing (no such header)."""

MAX_DIGEST_CHARS = 64
"""A PasswordDigest is the Base64 of 20 bytes (28 characters); room for whitespace."""
DIGEST_BYTES = 20
MAX_NONCE_CHARS = 256
MIN_NONCE_BYTES = 8
"""A nonce shorter than this repeats by chance too often to stop a replay (clients send 16)."""
MAX_CREATED_CHARS = 40
"""``2026-12-03T05:00:00.123456789+00:00`` is 35 characters."""
MAX_URI_CHARS = 256
_CREATED_CHARACTERS = frozenset("0123456789-:.TZ+")
_BASE64_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class MalformedSecurity(Exception):
    """A ``wsse:Security`` header that is not one UsernameToken as the profile writes it; the
    message names the rule broken and never quotes the token."""

    def __init__(self, rule: str) -> None:
        self.message = f"the wsse:Security header cannot be used: {rule}"
        super().__init__(self.message)


@dataclass(frozen=True)
class UsernameToken:
    """A UsernameToken as read: a user name and either a ``password`` (PasswordText) or a
    ``digest`` (PasswordDigest, the password left empty)."""

    username: str
    password: Secret
    digest: DigestProof | None

    def credentials(self, partner_code: str) -> Credentials:
        """The RA's credentials: the request header's PartnerCode with this token."""
        return Credentials(partner_code, self.username, self.password, self.digest)

    def __repr__(self) -> str:
        kind = "PasswordText" if self.digest is None else "PasswordDigest"
        return f"UsernameToken(username={self.username!r}, {kind})"


def read_security(envelope: etree._Element) -> UsernameToken | None:
    """The envelope's UsernameToken, ``None`` when no ``wsse:Security`` block is for this
    service, or :class:`MalformedSecurity`."""
    blocks = [
        block
        for header in envelope.iterfind(f"{{{SOAP11_ENV}}}Header")
        for block in header.iterfind(SECURITY)
        if for_this_node(block)
    ]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise MalformedSecurity("a message may carry one wsse:Security header block for this service")
    tokens = blocks[0].findall(USERNAME_TOKEN)
    if len(tokens) != 1:
        raise MalformedSecurity("it must hold exactly one wsse:UsernameToken")
    return _read_token(tokens[0])


def _read_token(token: etree._Element) -> UsernameToken:
    username = _text(_one(token, "Username"), "Username", MAX_USERNAME_LENGTH)
    password_element = _one(token, "Password")
    kind = _attribute(password_element, "Type") or PASSWORD_TEXT
    if kind == PASSWORD_TEXT:
        password = _text(password_element, "Password", MAX_PASSWORD_LENGTH)
        return UsernameToken(username, Secret(password), None)
    if kind != PASSWORD_DIGEST:
        raise MalformedSecurity("the Password's Type must be the profile's #PasswordText or #PasswordDigest")
    digest = _base64(_text(password_element, "Password", MAX_DIGEST_CHARS), "Password")
    if len(digest) != DIGEST_BYTES:
        raise MalformedSecurity("a PasswordDigest is the Base64 of a 20-byte SHA-1 digest")
    nonce_element = _one(token, "Nonce")
    encoding = _attribute(nonce_element, "EncodingType")
    if encoding and encoding != BASE64_BINARY:
        raise MalformedSecurity("the Nonce's EncodingType must be the profile's #Base64Binary")
    nonce = _base64(_text(nonce_element, "Nonce", MAX_NONCE_CHARS), "Nonce")
    if len(nonce) < MIN_NONCE_BYTES:
        raise MalformedSecurity(f"a Nonce must hold at least {MIN_NONCE_BYTES} bytes")
    created_element = token.find(f"{{{WSU}}}Created")
    if created_element is None or len(token.findall(f"{{{WSU}}}Created")) != 1:
        raise MalformedSecurity("a PasswordDigest token must hold exactly one wsu:Created")
    created_text = _text(created_element, "Created", MAX_CREATED_CHARS)
    created = _created(created_text)
    return UsernameToken(username, Secret(""), DigestProof(nonce, created_text, created, digest))


def _one(token: etree._Element, name: str) -> etree._Element:
    found = token.findall(f"{{{WSSE}}}{name}")
    if len(found) != 1:
        raise MalformedSecurity(f"the UsernameToken must hold exactly one wsse:{name}")
    return found[0]


def _attribute(element: etree._Element, name: str) -> str:
    value = element.get(name) or ""
    if len(value) > MAX_URI_CHARS:
        raise MalformedSecurity(f"the {etree.QName(element).localname}'s {name} is longer than any the profile defines")
    return value.strip(_XML_SPACE)


def _text(element: etree._Element, name: str, limit: int) -> str:
    """The element's text, at most ``limit`` characters, and no child element."""
    if any(isinstance(child.tag, str) for child in element):
        raise MalformedSecurity(f"the UsernameToken's {name} must hold text only")
    value = element.text or ""
    if len(value) > limit:
        raise MalformedSecurity(f"the UsernameToken's {name} is longer than {limit} characters")
    return value


def _base64(value: str, name: str) -> bytes:
    compact = "".join(value.split())
    if not compact or not set(compact) <= _BASE64_CHARACTERS:
        raise MalformedSecurity(f"the UsernameToken's {name} must be Base64")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSecurity(f"the UsernameToken's {name} must be Base64") from None


def _created(value: str) -> datetime:
    """An ``xs:dateTime`` with a time zone (``Z`` or an offset), as UTC-aware datetime."""
    text = value.strip(_XML_SPACE)
    if (
        len(text) < 20
        or not set(text) <= _CREATED_CHARACTERS
        or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":"
    ):
        raise MalformedSecurity("wsu:Created must be an xs:dateTime with a time zone, such as 2026-01-31T12:00:00Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedSecurity(
            "wsu:Created must be an xs:dateTime with a time zone, such as 2026-01-31T12:00:00Z"
        ) from None
    if created.tzinfo is None:
        raise MalformedSecurity("wsu:Created must carry a time zone (Z or an offset)")
    return created
