"""Partner credentials: argon2id hashes, a lockout counted in the database, and a
short in-memory cache of verified credentials so steady traffic skips the hash.

Two rules hold here (docs/design.md, "Authentication"; issue 6):

- Every failure does the same work as a wrong password: exactly one argon2
  verification, against the user's hash or an equal-cost dummy, whatever failed
  (unknown partner or user, wrong or over-long password, inactive or locked account,
  unclean fields). Timing does not tell which accounts exist.
- The lockout is strict on every backend and across processes, and no database lock is
  held through a hash: an attempt is reserved in one short write transaction (counted
  with the account's failures; refused at the threshold), the password verified outside
  any transaction, and the attempt settled in a second short write transaction. An
  attempt whose worker dies in between stays pending and counts as a failure.

A WS-Security UsernameToken with a PasswordText is ordinary credentials. One with a
PasswordDigest (:class:`DigestProof`) is checked against the user's encrypted password copy
(``wspassword``) instead of the hash, still at the cost of one argon2 verification (the dummy),
refused when its Created is outside :data:`WS_CREATED_SKEW` or its nonce was used before
(``storage.wsnonces``, recorded in the settling transaction); every refusal counts for the
lockout as a wrong password does.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from soap_service import metrics
from soap_service.config import Secret, Settings
from soap_service.errors import AccountLocked, AuthenticationFailed, InvalidField, ServiceError
from soap_service.ra.clock import Clock
from soap_service.ra.fields import MAX_PARTNER_CODE_CHARS, MAX_USER_NAME_CHARS, is_clean_text
from soap_service.ra.wspassword import decrypt_password, encrypt_password
from soap_service.storage import audit, partners, wsnonces
from soap_service.storage.db import SessionFactory

MIN_PASSWORD_LENGTH = 12
# Bounds checked before anything else looks at a credential: the columns' widths (ra.fields),
# and a password length no partner needs (a longer one fails like a wrong password).
MAX_PARTNER_CODE_LENGTH = MAX_PARTNER_CODE_CHARS
MAX_USERNAME_LENGTH = MAX_USER_NAME_CHARS
MAX_PASSWORD_LENGTH = 1024
WS_CREATED_SKEW = timedelta(minutes=5)
"""How far a UsernameToken's Created may be from this host's clock, either way; its nonce is
remembered until Created + this skew + :data:`WS_NONCE_MARGIN`, so a nonce is accepted once."""
WS_NONCE_MARGIN = timedelta(minutes=5)
"""How long a nonce is kept past the last instant its Created is accepted. A login reads the clock
before it reserves, verifies argon2 and settles (seconds under load, up to the database's busy
timeout), and another host's clock may be behind this one's; without the margin, a replay whose
clock was read just before Created + skew could reach its insert after some other login had pruned
the nonce (any digest login prunes expired rows), and be accepted a second time."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestProof:
    """What a WS-Security PasswordDigest proves: ``digest`` is Base64-decoded
    SHA-1(nonce + created_text + password), ``created_text`` exactly as sent."""

    nonce: bytes
    created_text: str
    created: datetime
    digest: bytes

    def __repr__(self) -> str:
        return f"DigestProof(created={self.created_text!r})"


@dataclass(frozen=True)
class Credentials:
    """A partner code, a user name, and a password (AuthToken, or a UsernameToken's
    PasswordText) or a ``digest`` (a UsernameToken's PasswordDigest; the password is empty)."""

    partner_code: str
    username: str
    password: Secret
    digest: DigestProof | None = None

    def __repr__(self) -> str:
        return f"Credentials(partner_code={self.partner_code!r}, username={self.username!r})"


@dataclass(frozen=True)
class AuthenticatedUser:
    partner_id: int
    partner_code: str
    username: str


@dataclass(frozen=True)
class _Login:
    """The credentials as read, bounded first. Not ``acceptable`` (empty, over-long or
    unclean): it fails, after the same work as a wrong password."""

    code: str
    username: str
    password: str
    acceptable: bool
    digest: DigestProof | None = None

    @classmethod
    def read(cls, credentials: Credentials) -> _Login:
        code, username = credentials.partner_code, credentials.username
        password = credentials.password.reveal()
        bounded = (
            len(code) <= MAX_PARTNER_CODE_LENGTH
            and len(username) <= MAX_USERNAME_LENGTH
            and len(password) <= MAX_PASSWORD_LENGTH
        )
        code, username = code[:MAX_PARTNER_CODE_LENGTH], username[:MAX_USERNAME_LENGTH]
        clean = all(is_clean_text(value) for value in (code, username, password))  # before strip() drops any
        code, username = code.strip(), username.strip()
        digest = credentials.digest
        acceptable = bounded and bool(code and username and (digest or password)) and clean
        return cls(code, username, password if acceptable and digest is None else "", acceptable, digest)

    def __repr__(self) -> str:
        return f"_Login(code={self.code!r}, username={self.username!r}, acceptable={self.acceptable})"


@dataclass(frozen=True)
class _Reservation:
    """What the reservation found: the attempt's id (``None``: the account is locked) and
    the hash to verify (``None``: no such active user, the dummy is verified instead)."""

    attempt_id: int | None
    user: AuthenticatedUser | None
    password_hash: str | None
    password_copy: str | None = None


@dataclass(frozen=True)
class _CachedCredential:
    password_digest: bytes
    password_hash: str
    expires: float


def hash_password(password: Secret) -> str:
    value = password.reveal()
    if len(value) < MIN_PASSWORD_LENGTH:
        raise InvalidField(f"a password needs at least {MIN_PASSWORD_LENGTH} characters", field="Password")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise InvalidField(f"a password has at most {MAX_PASSWORD_LENGTH} characters", field="Password")
    return PasswordHasher().hash(value)


def password_matches(password_hash: str, password: Secret) -> bool:
    """Whether ``password`` is the one :func:`hash_password` made ``password_hash`` of: one argon2
    verification and nothing else (no login: nothing counted, audited or cached)."""
    try:
        return bool(PasswordHasher().verify(password_hash, password.reveal()))
    except (VerificationError, InvalidHashError):
        return False


_STRIPES = 64


@dataclass(frozen=True)
class _NonceRecord:
    """A digest login's token as recorded: the SHA-256 of its digest and nonce, and until when
    (the last instant its Created is accepted, and :data:`WS_NONCE_MARGIN`).

    Not scoped by account: the digest does not cover the user name, so a captured token
    authenticates every account whose password is the same (another user of the partner, or of
    another partner, given the same password); scoped by account, it was accepted once more for
    each of them. The digest is in the key so that no one can spend another user's nonce without
    that user's password: a nonce of someone else's, predicted or seen, denies them nothing."""

    digest: str
    accepted_until: datetime
    """Created + :data:`WS_CREATED_SKEW`: checked again when the nonce is recorded."""

    @property
    def expires_at(self) -> datetime:
        return self.accepted_until + WS_NONCE_MARGIN

    @classmethod
    def of(cls, proof: DigestProof) -> _NonceRecord:
        token = proof.digest + proof.nonce  # the digest has a fixed length (20 bytes)
        return cls(hashlib.sha256(token).hexdigest(), proof.created + WS_CREATED_SKEW)


class Authenticator:
    """Checks partner code, user name and password; one error for any wrong part.

    An uncached login: reserve the attempt (a short write transaction that counts the
    account's failures and pending attempts in the window, under SQLite's write lock or
    PostgreSQL's advisory lock on the account), verify one hash with no transaction
    open, settle the attempt (a second short write transaction: a success deletes it, a
    failure keeps it and is audited). Within a process, the uncached logins of one
    account (a lock stripe) wait for each other, so a burst of right passwords costs one
    hash and cannot lock itself out with its own pending attempts. A cached login is a
    read (``readers``) that still honours the lockout; every write goes through
    ``sessions``.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        readers: SessionFactory,
        settings: Settings,
        clock: Clock,
        *,
        ws_password_key: bytes | None = None,
    ) -> None:
        self._sessions = sessions
        self._readers = readers
        self._settings = settings
        self._clock = clock
        self._hasher = PasswordHasher()
        # Verified when there is no user's hash to verify: the same argon2 parameters as the
        # hashes hash_password makes, so the same cost.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        # Without the installation's key (a test's Authenticator) no password copy decrypts.
        self._ws_key = ws_password_key or secrets.token_bytes(32)
        # Decrypted when there is no copy to decrypt, so every digest login does the same work.
        self._dummy_copy = encrypt_password(self._ws_key, partner_code="", username="",
                                            password=Secret(secrets.token_urlsafe(16)))
        self._cache: dict[tuple[str, str], _CachedCredential] = {}
        self._cache_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def authenticate(self, credentials: Credentials, *, channel: str) -> AuthenticatedUser:
        login = _Login.read(credentials)
        if login.digest is not None:
            return self._authenticate_digest(login, login.digest, channel)
        user = self._from_cache(login)
        if user is not None:
            return user
        with self._stripes[hash((login.code, login.username)) % _STRIPES]:
            user = self._from_cache(login)  # verified by another thread while this one waited
            if user is not None:
                return user
            now = self._clock()
            reservation = self._reserve(login, now)
            verified = self._verify_once(login, reservation.password_hash)
            failure: ServiceError | None = None
            if reservation.attempt_id is None:
                failure = AccountLocked()
            elif not verified or reservation.user is None:
                failure = AuthenticationFailed()
            self._settle(login, reservation, failure, channel, now)
        if failure is not None:
            raise failure
        assert reservation.user is not None and reservation.password_hash is not None
        self._remember(login, reservation.password_hash)
        return reservation.user

    def _authenticate_digest(self, login: _Login, proof: DigestProof, channel: str) -> AuthenticatedUser:
        """A PasswordDigest login: reserve, check the digest (one argon2 verification of the dummy
        too), settle, recording the nonce when all else passed. Never cached: each is new."""
        with self._stripes[hash((login.code, login.username)) % _STRIPES]:
            now = self._clock()
            reservation = self._reserve(login, now)
            refused = self._check_digest(login, proof, reservation, now)
            failure: ServiceError | None = None
            if reservation.attempt_id is None:
                failure = AccountLocked()
            elif refused is not None or reservation.user is None:
                failure = AuthenticationFailed()
            nonce = _NonceRecord.of(proof) if failure is None else None
            failure = self._settle(login, reservation, failure, channel, now, nonce=nonce, detail=refused)
        if failure is not None:
            raise failure
        assert reservation.user is not None
        return reservation.user

    def _check_digest(
        self, login: _Login, proof: DigestProof, reservation: _Reservation, now: datetime
    ) -> str | None:
        """Why the digest does not authenticate (for the audit trail, never the answer), or ``None``.
        The same work whatever fails: one argon2 verification (the dummy: there is no password to
        verify against the hash), one decryption (the dummy copy when the user has none), one SHA-1."""
        self._verify_once(login, None)
        copy = reservation.password_copy
        if copy is not None:
            password = decrypt_password(self._ws_key, copy, partner_code=login.code, username=login.username)
        else:
            password = decrypt_password(self._ws_key, self._dummy_copy, partner_code="", username="")
        # SHA-1 is what the UsernameToken profile defines the digest with.
        expected = hashlib.sha1(proof.nonce + proof.created_text.encode() + (password or b"")).digest()  # noqa: S324
        matches = hmac.compare_digest(expected, proof.digest)
        if reservation.user is None:
            return "no such active partner and user"
        if copy is None:
            return "the user has no password copy for PasswordDigest (partner set-password --ws-digest)"
        if password is None:
            logger.error("the WS-Security password copy of user %s of partner %s cannot be decrypted with this "
                         "installation's key: set the password again", login.username, login.code)
            return "the user's password copy cannot be decrypted"
        if not matches:
            return "the UsernameToken's PasswordDigest does not match"
        if not now - WS_CREATED_SKEW <= proof.created <= now + WS_CREATED_SKEW:
            return "the UsernameToken's Created is outside the accepted skew"
        return None

    def _reserve(self, login: _Login, now: datetime) -> _Reservation:
        """The first short write transaction: the attempt reserved (or refused) and the user read."""
        since = now - timedelta(seconds=self._settings.lockout_window_seconds)
        with self._sessions() as session, session.begin():
            attempt_id = partners.reserve_attempt(
                session, partner_code=login.code, username=login.username, at=now, since=since,
                threshold=self._settings.lockout_threshold,
            )
            found = partners.get_api_user(session, login.code, login.username) if login.acceptable else None
            if found is None or found[0].status != "active" or found[1].status != "active":
                return _Reservation(attempt_id, None, None)
            user = AuthenticatedUser(partner_id=found[0].id, partner_code=login.code, username=login.username)
            return _Reservation(attempt_id, user, found[1].password_hash, found[1].ws_password_copy)

    def _settle(
        self,
        login: _Login,
        reservation: _Reservation,
        failure: ServiceError | None,
        channel: str,
        now: datetime,
        *,
        nonce: _NonceRecord | None = None,
        detail: str | None = None,
    ) -> ServiceError | None:
        """The second short write transaction: a digest login's nonce (a replay fails here), the
        attempt's outcome, and the audit of a refusal (the last write). Returns the failure.

        The nonce's Created is checked again against the clock read in this transaction: a login
        that took longer than :data:`WS_NONCE_MARGIN` from its first reading to here (waiting for
        locks, or argon2 on a loaded host) could otherwise find its nonce pruned by a login on a
        later clock, and be a replay accepted."""
        with self._sessions() as session, session.begin():
            if failure is None and nonce is not None:
                if self._clock() > nonce.accepted_until:
                    failure, detail = AuthenticationFailed(), "the UsernameToken's Created is outside the accepted skew"
                elif not wsnonces.record_nonce(session, nonce_digest=nonce.digest, expires_at=nonce.expires_at,
                                               now=now):
                    failure, detail = AuthenticationFailed(), "the UsernameToken's nonce was used before"
            if reservation.attempt_id is not None:
                partners.settle_attempt(session, reservation.attempt_id, failed=failure is not None)
            if failure is not None:
                audit.append_event(
                    session,
                    at=now,
                    channel=channel,
                    action="authenticate",
                    outcome="refused",
                    code=failure.code,
                    partner_code=login.code or None,
                    username=login.username or None,
                    detail=failure.message if detail is None else f"{failure.message}: {detail}",
                )
        if isinstance(failure, AccountLocked):
            metrics.login_locked_out()  # after the commit: a rolled-back refusal is not counted
        return failure

    def _verify_once(self, login: _Login, password_hash: str | None) -> bool:
        """Exactly one argon2 verification: the user's hash, or the dummy when there is none
        (which never verifies). A stored hash argon2 cannot read costs the dummy too."""
        try:
            self._hasher.verify(password_hash or self._dummy_hash, login.password or "-")
        except VerificationError:
            return False
        except InvalidHashError:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, "-")
            # The partner is answered as for a wrong password (the same answer, the same cost);
            # the operator has to know which account cannot log in at all.
            logger.error("the stored password hash of user %s of partner %s cannot be read by argon2: "
                         "set a new password for this user", login.username, login.code)
            return False
        return password_hash is not None

    def _from_cache(self, login: _Login) -> AuthenticatedUser | None:
        """The user, when these exact credentials were verified lately, the stored hash is
        the one verified, the account is active and not locked. A read, no hash."""
        if not login.acceptable:
            return None
        with self._lock:
            cached = self._cache.get((login.code, login.username))
        if (
            cached is None
            or cached.expires <= time.monotonic()
            or not hmac.compare_digest(cached.password_digest, self._digest(login))
        ):
            return None
        since = self._clock() - timedelta(seconds=self._settings.lockout_window_seconds)
        with self._readers() as session, session.begin():
            found = partners.get_api_user(session, login.code, login.username)
            if (
                found is None
                or found[0].status != "active"
                or found[1].status != "active"
                or found[1].password_hash != cached.password_hash
                or partners.count_failures_since(session, partner_code=login.code, username=login.username,
                                                 since=since) >= self._settings.lockout_threshold
            ):
                return None
            return AuthenticatedUser(partner_id=found[0].id, partner_code=login.code, username=login.username)

    def _remember(self, login: _Login, password_hash: str) -> None:
        if self._settings.auth_cache_seconds <= 0:
            return
        entry = _CachedCredential(
            self._digest(login), password_hash, time.monotonic() + self._settings.auth_cache_seconds
        )
        with self._lock:
            self._cache[(login.code, login.username)] = entry

    def _digest(self, login: _Login) -> bytes:
        message = "\x00".join((login.code, login.username, login.password)).encode()
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()
