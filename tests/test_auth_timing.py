"""Timing does not tell which accounts exist (issue 6, defect 3): an unknown partner, an
unknown user and a wrong password for an existing user cost the same (one argon2
verification each). ``bench/auth_timing.py`` prints the figures; this test only tells
"one hash" from "two hashes", with room for a loaded machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from factory import TestPartner as ApiPartner
from factory import new_partner
from soap_service.config import Secret
from soap_service.errors import AuthenticationFailed
from soap_service.ra.auth import Authenticator, Credentials, DigestProof
from soap_service.ra.partners import set_password

ROUNDS = 15
TOLERANCE = 1.35  # every median within 35% of the others; two hashes against one is ~2x
ATTEMPTS = 2  # a burst of load on a shared machine may spoil one measurement, not two


def medians(paths: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Milliseconds, the median of ROUNDS calls of each path, interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, call in paths.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: round(statistics.median(ms), 1) for name, ms in samples.items()}


@pytest.mark.slow
def test_unknown_partner_unknown_user_and_wrong_password_take_the_same_time(ra):
    settings = dataclasses.replace(ra.settings, auth_cache_seconds=0, lockout_threshold=10**9)
    authenticator = Authenticator(ra.sessions, ra.readers, settings, ra.clock)
    partner = new_partner(ra)

    def failing(credentials: Credentials) -> Callable[[], None]:
        def call() -> None:
            with pytest.raises(AuthenticationFailed):
                authenticator.authenticate(credentials, channel="api")
        return call

    paths = {
        "unknown partner": failing(Credentials("NOSUCH" + partner.code, partner.username, Secret(partner.password))),
        "unknown user": failing(Credentials(partner.code, "nobody", Secret(partner.password))),
        "wrong password": failing(partner.credentials(password="not-the-password")),
    }
    assert_cost_alike(paths)


@pytest.mark.slow
def test_every_password_digest_failure_takes_the_time_of_a_wrong_password(ra):
    """WS-Security PasswordDigest (issue 10): an unknown user, a user without the password copy,
    a wrong digest, a stale Created and a wrong AuthToken password each cost one argon2
    verification (a digest login verifies the dummy hash)."""
    settings = dataclasses.replace(ra.settings, auth_cache_seconds=0, lockout_threshold=10**9)
    authenticator = Authenticator(ra.sessions, ra.readers, settings, ra.clock, ws_password_key=ra.ws_password_key)
    enabled, plain = new_partner(ra), new_partner(ra)
    set_password(ra, code=enabled.code, username=enabled.username, password=Secret(enabled.password), ws_digest=True)

    def digest(partner: ApiPartner, *, username: str | None = None, password: str | None = None,
               created: datetime | None = None) -> Callable[[], Credentials]:
        def make() -> Credentials:
            nonce, moment = secrets.token_bytes(16), created or datetime.now(UTC)
            text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            proof = hashlib.sha1(nonce + text.encode() + (password or partner.password).encode()).digest()
            return Credentials(partner.code, username or partner.username, Secret(""),
                               DigestProof(nonce, text, moment, proof))
        return make

    def failing(make: Callable[[], Credentials]) -> Callable[[], None]:
        def call() -> None:
            credentials = make()
            with pytest.raises(AuthenticationFailed):
                authenticator.authenticate(credentials, channel="api")
        return call

    paths = {
        "digest, unknown user": failing(digest(enabled, username="nobody")),
        "digest, no copy": failing(digest(plain)),
        "digest, wrong digest": failing(digest(enabled, password="not-the-password")),
        "digest, stale Created": failing(digest(enabled, created=datetime.now(UTC) - timedelta(hours=1))),
        "AuthToken, wrong password": failing(lambda: enabled.credentials(password="not-the-password")),
    }
    assert_cost_alike(paths)


def assert_cost_alike(paths: dict[str, Callable[[], None]]) -> None:
    """After a warm-up (connections, statement caches), the paths' medians within :data:`TOLERANCE`
    of each other, in one of :data:`ATTEMPTS` rounds (a loaded machine gets another chance)."""
    for call in paths.values():
        call()
    measured = []
    for _ in range(ATTEMPTS):
        figures = medians(paths)
        measured.append(figures)
        if max(figures.values()) <= TOLERANCE * min(figures.values()):
            return
    pytest.fail(f"the medians (ms) differ by more than {TOLERANCE:.2f}x: {measured}")
