"""The lockout is strict on every backend and across processes (issue 6, defect 5), and
the failure rows live no longer than the lockout window needs them.

Each process below is a real one (``spawn``) with its own registration authority on
the installation's database, as two gunicorn workers (or two hosts) are.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from factory import new_partner
from process_support import START_TIMEOUT, results_of_processes
from soap_service.config import Secret, load_settings
from soap_service.errors import AccountLocked, AuthenticationFailed, ServiceError
from soap_service.ra.auth import Authenticator, Credentials
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import partners
from soap_service.storage.models import AuditEvent, AuthenticationFailure

PROCESSES = 2
GUESSES = 16
THRESHOLD = 10


def _guessing_process(environ: dict[str, str], account: tuple[str, str], guesses: int, threshold: int,
                      start: Any, results: Any) -> None:
    """One worker: its own RA, ``guesses`` wrong passwords fired at once from as many threads."""
    settings = dataclasses.replace(load_settings(environ), lockout_threshold=threshold, auth_cache_seconds=0)
    ra = RegistrationAuthority.from_settings(settings)
    together = threading.Barrier(guesses)

    def guess(number: int) -> int:
        together.wait()
        try:
            ra.authenticator.authenticate(Credentials(*account, Secret(f"wrong-guess-{number}")), channel="api")
        except ServiceError as refusal:
            return refusal.code
        return 0

    try:
        start.wait(START_TIMEOUT)  # every process ready: the guesses of all of them overlap
        with ThreadPoolExecutor(guesses) as pool:
            codes = list(pool.map(guess, range(guesses)))
        results.put(codes)
    finally:
        ra.close()


def fire_parallel_guesses(environ: dict[str, str], account: tuple[str, str], *, processes: int = PROCESSES,
                          guesses: int = GUESSES, threshold: int = THRESHOLD) -> list[int]:
    """The codes answered to ``guesses`` wrong passwords split over ``processes`` real processes."""
    return results_of_processes(_guessing_process, [(environ, account, guesses // processes, threshold)] * processes,
                                work_timeout=120)


def failure_rows(ra: RegistrationAuthority, code: str, username: str) -> int:
    with ra.readers() as session:
        return session.scalar(
            select(func.count()).select_from(AuthenticationFailure)
            .where(AuthenticationFailure.partner_code == code, AuthenticationFailure.username == username)
        ) or 0


@pytest.mark.slow
def test_parallel_guesses_from_two_processes_stop_exactly_at_the_threshold(ra, installation):
    partner = new_partner(ra)
    codes = fire_parallel_guesses(installation.environ, (partner.code, partner.username))
    assert sorted(codes) == sorted([AuthenticationFailed.code] * THRESHOLD
                                   + [AccountLocked.code] * (GUESSES - THRESHOLD)), (
        f"{codes.count(AuthenticationFailed.code)} guesses answered -4001, "
        f"{failure_rows(ra, partner.code, partner.username)} failures recorded: {codes}")
    assert failure_rows(ra, partner.code, partner.username) == THRESHOLD
    with ra.readers() as session:
        pending = session.scalar(select(func.count()).select_from(AuthenticationFailure).where(
            AuthenticationFailure.partner_code == partner.code, AuthenticationFailure.pending.is_(True)))
        refusals = list(session.scalars(select(AuditEvent.code).where(
            AuditEvent.partner_code == partner.code, AuditEvent.action == "authenticate")))
    assert pending == 0
    assert sorted(refusals) == sorted(codes)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def drain_earlier_tests_rows(ra: RegistrationAuthority, now: datetime) -> None:
    """The shared installation's rows from before ``now``: once the test's clock has jumped past
    the window they would be a backlog, pruned a bounded slice per login ahead of this test's."""
    with ra.sessions() as session, session.begin():
        partners.prune_failures(session, before=now, limit=1_000_000)


def authenticator_at(ra: RegistrationAuthority, clock: FixedClock, **changes: Any) -> Authenticator:
    return Authenticator(ra.sessions, ra.readers, dataclasses.replace(ra.settings, **changes), clock)


def test_failure_rows_older_than_the_window_are_pruned_and_the_audit_trail_keeps_them(ra):
    window = ra.settings.lockout_window_seconds
    clock = FixedClock(ra.clock())
    authenticator = authenticator_at(ra, clock)
    partner, bystander = new_partner(ra), new_partner(ra)
    drain_earlier_tests_rows(ra, clock.now)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(bystander.credentials(password="a-wrong-password"), channel="api")
    assert failure_rows(ra, bystander.code, bystander.username) == 3
    clock.now += timedelta(seconds=window + 1)
    # Another account's login prunes them: nobody has to come back for the rows to go.
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(partner.credentials(password="a-wrong-password"), channel="api")
    assert failure_rows(ra, bystander.code, bystander.username) == 0
    assert failure_rows(ra, partner.code, partner.username) == 1
    with ra.readers() as session:
        audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.partner_code == bystander.code, AuditEvent.action == "authenticate"))
    assert audited == 3


def test_rows_within_the_window_are_kept_and_still_lock(ra):
    window = ra.settings.lockout_window_seconds
    clock = FixedClock(ra.clock())
    authenticator = authenticator_at(ra, clock, lockout_threshold=3)
    partner, other = new_partner(ra), new_partner(ra)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(partner.credentials(password="a-wrong-password"), channel="api")
    clock.now += timedelta(seconds=window - 1)
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(other.credentials(password="a-wrong-password"), channel="api")
    assert failure_rows(ra, partner.code, partner.username) == 3
    with pytest.raises(AccountLocked):
        authenticator.authenticate(partner.credentials(), channel="api")
    clock.now += timedelta(seconds=2)  # the window has passed: the right password opens again
    assert authenticator.authenticate(partner.credentials(), channel="api").partner_code == partner.code
    assert failure_rows(ra, partner.code, partner.username) == 0


def test_the_failure_table_stays_bounded_under_a_flood_of_made_up_names(ra):
    clock = FixedClock(ra.clock())
    authenticator = authenticator_at(ra, clock)
    made_up = [Credentials(f"NOBODY{secrets.token_hex(6)}", "api", Secret("some-guess")) for _ in range(6)]
    for credentials in made_up:
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(credentials, channel="api")
    clock.now += timedelta(seconds=ra.settings.lockout_window_seconds + 1)
    for credentials in made_up:
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(credentials, channel="api")
    window_start = clock.now - timedelta(seconds=ra.settings.lockout_window_seconds)
    with ra.readers() as session:
        ours = session.scalar(select(func.count()).select_from(AuthenticationFailure).where(
            AuthenticationFailure.partner_code.in_([c.partner_code for c in made_up])))
        stale = session.scalar(select(func.count()).select_from(AuthenticationFailure).where(
            AuthenticationFailure.at < window_start))
    assert (ours, stale) == (6, 0)  # the first round's rows went, and every other row the window passed


def test_one_reservation_prunes_a_bounded_number_of_old_rows(ra):
    """A backlog (after a flood, or a long-stopped service) goes a bounded slice per login,
    so no login pays for it all while it holds the write lock."""
    clock = FixedClock(ra.clock())
    authenticator = authenticator_at(ra, clock)
    long_ago = clock.now - timedelta(days=365)  # older than any other test's rows: pruned first
    backlog = partners.PRUNED_PER_ATTEMPT * 2 + 5
    with ra.sessions() as session, session.begin():
        session.add_all(AuthenticationFailure(partner_code="BACKLOG", username=f"u{n}", at=long_ago)
                        for n in range(backlog))

    def left() -> int:
        with ra.readers() as session:
            return session.scalar(select(func.count()).select_from(AuthenticationFailure).where(
                AuthenticationFailure.partner_code == "BACKLOG")) or 0

    remaining = [left()]
    while remaining[-1]:
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(Credentials("NOBODY", "api", Secret("some-guess")), channel="api")
        remaining.append(left())
        assert len(remaining) < 10
    assert remaining[0] == backlog
    assert all(before - after <= partners.PRUNED_PER_ATTEMPT for before, after in itertools.pairwise(remaining))
    assert len(remaining) == 4  # 133 rows: 64 + 64 + 5


def test_an_attempt_cut_short_after_its_reservation_counts_as_a_failure(ra, monkeypatch):
    """A worker killed between the reservation and the settlement leaves a pending row: it
    counts against the lockout like a failure (it may have been a guess)."""
    authenticator = authenticator_at(ra, FixedClock(ra.clock()), lockout_threshold=2, auth_cache_seconds=0)
    partner = new_partner(ra)
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(partner.credentials(password="a-wrong-password"), channel="api")

    def killed(*_args: Any, **_kwargs: Any) -> None:
        raise SystemExit("the worker was killed")

    monkeypatch.setattr(authenticator, "_settle", killed)
    with pytest.raises(SystemExit):
        authenticator.authenticate(partner.credentials(password="another-wrong-one"), channel="api")
    monkeypatch.undo()
    assert failure_rows(ra, partner.code, partner.username) == 2
    with pytest.raises(AccountLocked):
        authenticator.authenticate(partner.credentials(), channel="api")


def test_a_cached_login_still_honours_the_lockout(ra):
    authenticator = authenticator_at(ra, FixedClock(ra.clock()), lockout_threshold=3, auth_cache_seconds=60)
    partner = new_partner(ra)
    authenticator.authenticate(partner.credentials(), channel="api")  # now cached
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(partner.credentials(password="a-wrong-password"), channel="api")
    with pytest.raises(AccountLocked):
        authenticator.authenticate(partner.credentials(), channel="api")


def test_parallel_right_logins_of_a_cold_account_are_not_locked_out(ra):
    """Reserved attempts count against the lockout while they run: the logins of one account in
    one process wait for each other, so a burst of right passwords (a client's threads at a
    worker's start) does not lock itself out; after the first, the rest come from the cache."""
    authenticator = authenticator_at(ra, FixedClock(ra.clock()), lockout_threshold=3, auth_cache_seconds=60)
    partner = new_partner(ra)
    together = threading.Barrier(8)

    def login(_: int) -> str:
        together.wait()
        return authenticator.authenticate(partner.credentials(), channel="api").partner_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(login, range(8))) == [partner.code] * 8
