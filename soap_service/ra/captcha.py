"""The End User Portal's captchas: an image of five digits, made on the server (no third-party
service sees the visitors), checked once.

A challenge is a random token, which the page carries in a hidden form field, and the image of
its answer, embedded in the page as a data URI (no second request, nothing to cache). The
database keeps only hashes: of the token (to find the challenge) and of the token with the answer
(to check it); a stolen table gives no token that could be played.

A check spends the challenge whether the answer is right or wrong, so that each image buys one
guess, and one conditional UPDATE decides it (soap_service.storage.captchas): of two concurrent
checks of one token at most one passes. An unknown, spent or expired token and a wrong answer
cost the same: one hash and that UPDATE, whatever the outcome.

``SOAP_SERVICE_TEST_CAPTCHA`` fixes every answer, for the browser tests; the settings refuse it
unless the public URL is loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import BytesIO

from captcha.image import ImageCaptcha

from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import captchas

CAPTCHA_LIFETIME = timedelta(minutes=10)
"""How long a shown captcha may be answered: time to read a form and fill it in."""

ANSWER_DIGITS = 5
IMAGE_WIDTH = 200
IMAGE_HEIGHT = 70
TOKEN_BYTES = 32

MAX_TOKEN_CHARS = 64
"""A token is 43 characters (32 bytes in URL-safe base64); longer is no token, and is not hashed."""
MAX_ANSWER_CHARS = 16
"""Five digits with room for blanks around them; a longer answer is wrong without being hashed."""

_NO_ANSWER = "-" * 64
"""Compared with when no challenge was spent: no SHA-256 hex digest equals it."""


@dataclass(frozen=True)
class CaptchaChallenge:
    """One captcha to show: ``token`` for the hidden form field, ``png`` (or ``data_uri``) for the image."""

    token: str
    png: bytes = field(repr=False)
    expires_at: datetime

    @property
    def data_uri(self) -> str:
        """The image as a ``data:image/png;base64,...`` URI, for an ``<img src>``."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _sha256(text: str) -> str:
    # surrogatepass: any str a form can produce hashes, none raises
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def challenge_hash(token: str) -> str:
    """What the database keeps of a token."""
    return _sha256(token)


def answer_hash(token: str, answer: str) -> str:
    """What the database keeps of an answer: bound to its token (a token never holds a newline)."""
    return _sha256(token + "\n" + answer)


class Captchas:
    """Makes captchas for the portal's forms and checks the answers."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self._ra = ra
        self._images = threading.local()  # one ImageCaptcha (and its fonts) per thread

    def new(self) -> CaptchaChallenge:
        """A fresh challenge, stored (hashed) until :data:`CAPTCHA_LIFETIME` from now."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        answer = self._ra.settings.test_captcha or "".join(
            secrets.choice("0123456789") for _ in range(ANSWER_DIGITS)
        )
        png = self._draw(answer)
        now = self._ra.clock()
        expires_at = now + CAPTCHA_LIFETIME
        with self._ra.sessions() as session, session.begin():
            captchas.add_captcha(
                session,
                challenge_hash=challenge_hash(token),
                answer_hash=answer_hash(token, answer),
                created_at=now,
                expires_at=expires_at,
            )
        return CaptchaChallenge(token=token, png=png, expires_at=expires_at)

    def check(self, token: str, answer: str) -> bool:
        """True only for the right answer to an unused, unexpired challenge; the challenge is spent
        either way. Never raises for what a form may send."""
        if len(token) > MAX_TOKEN_CHARS:
            return False  # no token is this long: nothing to spend, and nothing this size is hashed
        bounded = len(answer) <= MAX_ANSWER_CHARS
        given = answer_hash(token, answer.strip() if bounded else "")
        now = self._ra.clock()
        with self._ra.sessions() as session, session.begin():
            stored = captchas.spend(session, challenge_hash=challenge_hash(token), now=now)
        right = hmac.compare_digest(stored or _NO_ANSWER, given)
        return right and bounded and stored is not None

    def prune(self, before: datetime | None = None) -> int:
        """Delete the challenges expired at ``before`` (now by default), so that the table does not
        grow; how many were deleted."""
        with self._ra.sessions() as session, session.begin():
            return captchas.prune(session, before=before if before is not None else self._ra.clock())

    def _draw(self, answer: str) -> bytes:
        image: ImageCaptcha | None = getattr(self._images, "image", None)
        if image is None:
            image = ImageCaptcha(width=IMAGE_WIDTH, height=IMAGE_HEIGHT)
            self._images.image = image
        out = BytesIO()
        image.generate_image(answer).save(out, format="PNG", optimize=True)
        return out.getvalue()
