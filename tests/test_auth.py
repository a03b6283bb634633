"""Partner credentials: one error for any wrong part, a lockout counted in the
database (so it holds across processes), and the cache of verified credentials."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from factory import new_partner
from soap_service.config import Secret
from soap_service.errors import AccountLocked, AuthenticationFailed, InvalidField
from soap_service.ra.auth import MAX_PASSWORD_LENGTH, Authenticator, Credentials
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import ApiUser, AuditEvent, AuthenticationFailure, Partner


def authenticate(ra: RegistrationAuthority, credentials: Credentials):
    return ra.authenticator.authenticate(credentials, channel="api")


def test_right_credentials_authenticate(ra):
    partner = new_partner(ra)
    user = authenticate(ra, partner.credentials())
    assert (user.partner_code, user.username) == (partner.code, partner.username)


def test_ten_failures_lock_the_account_even_for_the_right_password(ra):
    partner = new_partner(ra)
    for _ in range(10):
        with pytest.raises(AuthenticationFailed):
            authenticate(ra, partner.credentials(password="not-the-password"))
    with pytest.raises(AccountLocked) as caught:
        authenticate(ra, partner.credentials())
    assert caught.value.code == -4002


def test_the_lockout_holds_across_processes(ra, installation):
    """A second RA on the same database (as another gunicorn worker or host) sees the failures."""
    partner = new_partner(ra)
    other_process = RegistrationAuthority.from_settings(installation.settings)
    try:
        for attempt in range(10):
            side = ra if attempt % 2 else other_process
            with pytest.raises(AuthenticationFailed):
                authenticate(side, partner.credentials(password="not-the-password"))
        with pytest.raises(AccountLocked):
            authenticate(other_process, partner.credentials())
    finally:
        other_process.close()


def test_failures_of_another_user_do_not_lock_this_one(ra):
    partner, other = new_partner(ra), new_partner(ra)
    for _ in range(10):
        with pytest.raises(AuthenticationFailed):
            authenticate(ra, other.credentials(password="nope-nope-nope"))
    assert authenticate(ra, partner.credentials()).partner_code == partner.code


def test_failures_are_audited_without_the_password(ra):
    partner = new_partner(ra)
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, partner.credentials(password="guess-guess-guess"))
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.partner_code == partner.code,
                                                                AuditEvent.action == "authenticate")))
    assert [(e.outcome, e.code) for e in events] == [("refused", -4001)]
    assert "guess-guess-guess" not in repr(vars(events[0]))


def test_verified_credentials_are_cached_so_steady_traffic_skips_the_hash(ra, monkeypatch):
    partner = new_partner(ra)
    calls = []
    real_verify = PasswordHasher.verify

    def counting_verify(self, hash_, password):
        calls.append(1)
        return real_verify(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    for _ in range(5):
        authenticate(ra, partner.credentials())
    assert len(calls) == 1
    with pytest.raises(AuthenticationFailed):  # a wrong password is never answered from the cache
        authenticate(ra, partner.credentials(password="cached-but-wrong"))


def test_a_changed_password_is_not_answered_from_the_cache(ra):
    partner = new_partner(ra)
    authenticate(ra, partner.credentials())
    with ra.sessions() as session, session.begin():
        partner_id = session.scalar(select(Partner.id).where(Partner.code == partner.code))
        session.execute(update(ApiUser).where(ApiUser.partner_id == partner_id)
                        .values(password_hash=PasswordHasher().hash("a-brand-new-password")))
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, partner.credentials())


def test_a_suspended_partner_cannot_authenticate(ra):
    partner = new_partner(ra)
    with ra.sessions() as session, session.begin():
        session.execute(update(Partner).where(Partner.code == partner.code).values(status="suspended"))
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, partner.credentials())


def test_hostile_long_credentials_are_refused_cleanly(ra):
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, Credentials("X" * 5000, "u" * 5000, Secret("p" * 5000)))


def test_short_passwords_are_refused_at_creation(ra):
    with pytest.raises(InvalidField):
        create_partner(ra, code="SHORTPW", name="Short", username="api", password=Secret("short"))


def test_credentials_never_print_the_password(ra, caplog):
    credentials = Credentials("P", "u", Secret("very-secret-password"))
    assert "very-secret-password" not in repr(credentials) + str(credentials.password)
    settings = dataclasses.replace(ra.settings, ca_passphrase=Secret("another-secret"))
    assert "another-secret" not in repr(settings)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthenticationFailed):
            authenticate(ra, credentials)
    assert "very-secret-password" not in caplog.text


# ------------------------------------------------------- one hash on every path (issue 6, defect 3)


def counted_hashes(monkeypatch) -> list[int]:
    """A list that grows by one per argon2 computation (PasswordHasher.verify's, not its parsing)."""
    from argon2 import _password_hasher

    calls: list[int] = []
    real = _password_hasher.verify_secret

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_password_hasher, "verify_secret", counting)
    return calls


def uncached(ra: RegistrationAuthority, **changes) -> Authenticator:
    settings = dataclasses.replace(ra.settings, auth_cache_seconds=0, **changes)
    return Authenticator(ra.sessions, ra.readers, settings, ra.clock)


def suspend(ra: RegistrationAuthority, partner, *, user: bool = False) -> None:
    with ra.sessions() as session, session.begin():
        partner_id = session.scalar(select(Partner.id).where(Partner.code == partner.code))
        if user:
            session.execute(update(ApiUser).where(ApiUser.partner_id == partner_id).values(status="disabled"))
        else:
            session.execute(update(Partner).where(Partner.id == partner_id).values(status="suspended"))


def store_hash(ra: RegistrationAuthority, partner, password_hash: str) -> None:
    with ra.sessions() as session, session.begin():
        partner_id = session.scalar(select(Partner.id).where(Partner.code == partner.code))
        session.execute(update(ApiUser).where(ApiUser.partner_id == partner_id).values(password_hash=password_hash))


FAILURE_PATHS = {
    "unknown partner": lambda ra, p: Credentials("NOSUCH" + p.code, p.username, Secret(p.password)),
    "unknown user": lambda ra, p: Credentials(p.code, "nobody", Secret(p.password)),
    "wrong password": lambda ra, p: p.credentials(password="not-the-password"),
    "empty partner code": lambda ra, p: Credentials("", p.username, Secret(p.password)),
    "empty user name": lambda ra, p: Credentials(p.code, " ", Secret(p.password)),
    "empty password": lambda ra, p: p.credentials(password=""),
    "over-long partner code": lambda ra, p: Credentials(p.code + "X" * 64, p.username, Secret(p.password)),
    "over-long user name": lambda ra, p: Credentials(p.code, p.username + "u" * 128, Secret(p.password)),
    "over-long password": lambda ra, p: p.credentials(password=p.password + "p" * MAX_PASSWORD_LENGTH),
    "huge password": lambda ra, p: p.credentials(password="p" * 1_000_000),
    "control character": lambda ra, p: p.credentials(password=p.password + "\n"),
    "C1 control after the partner code": lambda ra, p: Credentials(p.code + "\x85", p.username, Secret(p.password)),
    "line separator after the user name": lambda ra, p: Credentials(p.code, p.username + "\u2028",
                                                                    Secret(p.password)),
    "lone surrogate": lambda ra, p: p.credentials(password=p.password + "\ud800"),
    "suspended partner": lambda ra, p: (suspend(ra, p), p.credentials())[1],
    "disabled user": lambda ra, p: (suspend(ra, p, user=True), p.credentials())[1],
    "unreadable stored hash": lambda ra, p: (store_hash(ra, p, "not-an-argon2-hash"), p.credentials())[1],
}


@pytest.mark.parametrize("path", FAILURE_PATHS)
def test_every_failure_costs_exactly_one_hash(ra, monkeypatch, path):
    """Whatever failed, one argon2 verification (the user's hash or the dummy): the time of
    an answer does not tell which part was wrong, nor whether the account exists."""
    partner = new_partner(ra)
    credentials = FAILURE_PATHS[path](ra, partner)
    authenticator = uncached(ra)
    hashes = counted_hashes(monkeypatch)
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(credentials, channel="api")
    assert len(hashes) == 1


def test_a_locked_account_costs_exactly_one_hash_too(ra, monkeypatch):
    partner = new_partner(ra)
    authenticator = uncached(ra, lockout_threshold=1)
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(partner.credentials(password="not-the-password"), channel="api")
    hashes = counted_hashes(monkeypatch)
    for credentials in (partner.credentials(), partner.credentials(password="still-wrong")):
        with pytest.raises(AccountLocked):
            authenticator.authenticate(credentials, channel="api")
    assert len(hashes) == 2


def test_the_right_password_costs_one_hash_and_records_no_failure(ra, monkeypatch):
    partner = new_partner(ra)
    hashes = counted_hashes(monkeypatch)
    assert uncached(ra).authenticate(partner.credentials(), channel="api").partner_code == partner.code
    assert len(hashes) == 1
    with ra.readers() as session:
        rows = session.scalar(select(func.count()).select_from(AuthenticationFailure)
                              .where(AuthenticationFailure.partner_code == partner.code))
    assert rows == 0


def test_an_over_long_password_is_refused_at_creation(ra):
    with pytest.raises(InvalidField):
        create_partner(ra, code="LONGPW", name="Long", username="api",
                       password=Secret("p" * (MAX_PASSWORD_LENGTH + 1)))


def test_an_over_long_password_counts_as_a_failure_of_the_account(ra):
    partner = new_partner(ra)
    authenticator = uncached(ra, lockout_threshold=1)
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(partner.credentials(password="p" * 5000), channel="api")
    with pytest.raises(AccountLocked):
        authenticator.authenticate(partner.credentials(), channel="api")


def test_an_unreadable_stored_hash_is_refused_as_a_wrong_password_and_logged(ra, caplog):
    """A damaged hash in the database: the partner's answer stays -4001 (the same answer and
    cost as a wrong password, so nothing tells the account apart), and the operator reads in
    the log which account to repair, without the password or the stored value."""
    partner = new_partner(ra)
    store_hash(ra, partner, "$2b$12$not-an-argon2-hash-at-all")
    with caplog.at_level("ERROR"), pytest.raises(AuthenticationFailed):
        uncached(ra).authenticate(partner.credentials(), channel="api")
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert partner.code in errors[0] and partner.username in errors[0]
    assert "cannot be read" in errors[0]
    assert partner.password not in caplog.text and "not-an-argon2" not in caplog.text
