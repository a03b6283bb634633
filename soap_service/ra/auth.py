"""Partner credentials: argon2id hashes, a lockout counted in the database, and a
short in-memory cache of verified credentials so steady traffic skips the hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from soap_service.config import Secret, Settings
from soap_service.errors import AccountLocked, AuthenticationFailed, InvalidField, ServiceError
from soap_service.ra.clock import Clock
from soap_service.storage import audit, partners
from soap_service.storage.db import SessionFactory

MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Credentials:
    partner_code: str
    username: str
    password: Secret

    def __repr__(self) -> str:
        return f"Credentials(partner_code={self.partner_code!r}, username={self.username!r})"


@dataclass(frozen=True)
class AuthenticatedUser:
    partner_id: int
    partner_code: str
    username: str


@dataclass(frozen=True)
class _CachedCredential:
    password_digest: bytes
    password_hash: str
    expires: float


def hash_password(password: Secret) -> str:
    value = password.reveal()
    if len(value) < MIN_PASSWORD_LENGTH:
        raise InvalidField(f"a password needs at least {MIN_PASSWORD_LENGTH} characters", field="Password")
    return PasswordHasher().hash(value)


def is_clean_text(value: str) -> bool:
    """No control characters, and storable as UTF-8 (no lone surrogates)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_STRIPES = 64


class Authenticator:
    """Checks partner code, user name and password; one error for any wrong part.

    The failure count, the verification and the record of a failure happen under a
    per-account lock (a lock stripe in this process, an advisory lock on PostgreSQL),
    so parallel guesses cannot overrun the lockout. The argon2 hash is never computed
    while SQLite's write lock is held.
    """

    def __init__(self, sessions: SessionFactory, readers: SessionFactory, settings: Settings, clock: Clock) -> None:
        self._sessions = sessions
        self._readers = readers
        self._settings = settings
        self._clock = clock
        self._hasher = PasswordHasher()
        # Verifying against this when the user does not exist keeps the timing alike.
        self._decoy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._cache: dict[tuple[str, str], _CachedCredential] = {}
        self._cache_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def authenticate(self, credentials: Credentials, *, channel: str) -> AuthenticatedUser:
        code, username = credentials.partner_code.strip(), credentials.username.strip()
        password = credentials.password.reveal()
        acceptable = bool(code and username and password) and all(
            is_clean_text(value) for value in (code, username, password)
        )
        now = self._clock()
        since = now - timedelta(seconds=self._settings.lockout_window_seconds)
        threshold = self._settings.lockout_threshold
        failure: ServiceError | None = None
        user: AuthenticatedUser | None = None
        stripe = self._stripes[hash((code, username)) % _STRIPES]
        with stripe:
            with self._readers() as session, session.begin():
                found = partners.get_api_user(session, code, username) if acceptable else None
                active = found is not None and found[0].status == "active" and found[1].status == "active"
                if found is not None and active and self._cached(code, username, password, found[1].password_hash):
                    if partners.count_failures_since(session, partner_code=code, username=username,
                                                     since=since) < threshold:
                        return AuthenticatedUser(partner_id=found[0].id, partner_code=code, username=username)
                partners.lock_account(session, partner_code=code, username=username)
                recent = partners.count_failures_since(session, partner_code=code, username=username, since=since)
                if recent >= threshold:
                    failure = AccountLocked()
                elif found is not None and active and self._verify(code, username, password, found[1].password_hash):
                    user = AuthenticatedUser(partner_id=found[0].id, partner_code=code, username=username)
                else:
                    self._verify_decoy(password if acceptable else "-")
                    failure = AuthenticationFailed()
                if failure is not None and not self._settings.is_sqlite:
                    self._record(session, failure, code, username, channel, now)
            if failure is not None and self._settings.is_sqlite:
                # SQLite: a separate write transaction; its write lock is never held over a hash.
                with self._sessions() as session, session.begin():
                    self._record(session, failure, code, username, channel, now)
        if failure is not None:
            raise failure
        assert user is not None
        return user

    @staticmethod
    def _record(
        session: Session, failure: ServiceError, code: str, username: str, channel: str, now: datetime
    ) -> None:
        if isinstance(failure, AuthenticationFailed):
            partners.record_failure(session, partner_code=code, username=username, at=now)
        audit.append_event(
            session,
            at=now,
            channel=channel,
            action="authenticate",
            outcome="refused",
            code=failure.code,
            partner_code=code or None,
            username=username or None,
            detail=failure.message,
        )

    def _digest(self, code: str, username: str, password: str) -> bytes:
        message = "\x00".join((code, username, password)).encode()
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _cached(self, code: str, username: str, password: str, password_hash: str) -> bool:
        with self._lock:
            cached = self._cache.get((code, username))
        return (
            cached is not None
            and cached.expires > time.monotonic()
            and cached.password_hash == password_hash
            and hmac.compare_digest(cached.password_digest, self._digest(code, username, password))
        )

    def _verify(self, code: str, username: str, password: str, password_hash: str) -> bool:
        try:
            self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if self._settings.auth_cache_seconds > 0:
            digest = self._digest(code, username, password)
            with self._lock:
                self._cache[(code, username)] = _CachedCredential(
                    digest, password_hash, time.monotonic() + self._settings.auth_cache_seconds
                )
        return True

    def _verify_decoy(self, password: str) -> None:
        try:
            self._hasher.verify(self._decoy_hash, password or "-")
        except VerificationError:
            pass
