"""Partner credentials: one error for any wrong part, a lockout counted in the
database (so it holds across processes), and the cache of verified credentials."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from factory import new_partner
from soap_service.config import Secret
from soap_service.errors import AccountLocked, AuthenticationFailed, InvalidField
from soap_service.ra.auth import Credentials
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import ApiUser, AuditEvent, Partner


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
