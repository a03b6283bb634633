"""Edges of the reissue rules: their order, hostile characters, serial collisions,
lockout under parallel guessing, validity around the schedule's dates, and a
certificate the linter refuses."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from factory import fresh_key_csr, new_order, new_partner
from keyfactory import csr_pem, make_csr
from soap_service.config import Secret
from soap_service.errors import (
    AccountLocked,
    AuthenticationFailed,
    InternalError,
    InvalidField,
    KeyRefused,
    NameNotValidated,
    ServiceError,
)
from soap_service.ra import issuance
from soap_service.ra.auth import Credentials
from soap_service.ra.csr import spki_sha256
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import certificates as certificate_store
from soap_service.storage.models import AuditEvent


def reissue(ra, partner, poid, csr, dns_names=None):
    return Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr, dns_names), channel="api")


def block(ra, key) -> None:
    with ra.sessions() as session, session.begin():
        certificate_store.block_key(session, spki_sha256=spki_sha256(key.public_key()), reason="keyCompromise",
                                    at=datetime.now(UTC), certificate_id=None)


def test_names_are_checked_before_the_key_reuse_rule(ra, installation):
    strict = RegistrationAuthority.from_settings(dataclasses.replace(installation.settings, key_reuse="refuse"),
                                                 engine=ra.engine)
    partner = new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    created = new_order(ra, partner, csr=csr_pem(make_csr(key, names=["example.com"])))
    with pytest.raises(NameNotValidated):
        reissue(strict, partner, created.order.partner_order_id, csr_pem(make_csr(key, names=["bad.example.org"])))


def test_a_retry_with_other_dns_names_is_not_a_retry(ra):
    partner = new_partner(ra)
    csr = fresh_key_csr(["example.com", "www.example.com"])
    created = new_order(ra, partner, csr=csr)
    poid = created.order.partner_order_id
    with pytest.raises(NameNotValidated):
        reissue(ra, partner, poid, csr, dns_names=("nope.example.net",))
    narrowed = reissue(ra, partner, poid, csr, dns_names=("www.example.com",))
    assert not narrowed.replayed and narrowed.certificate.names == ("www.example.com",)
    assert [w.code for w in narrowed.warnings] == [1001]


def test_a_retry_after_the_key_was_blocked_is_refused(ra):
    partner = new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_pem(make_csr(key, names=["example.com", "www.example.com"]))
    created = new_order(ra, partner, csr=csr)
    block(ra, key)
    with pytest.raises(KeyRefused):
        reissue(ra, partner, created.order.partner_order_id, csr)


def test_an_order_cannot_enter_with_a_blocked_key(ra):
    partner = new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    block(ra, key)
    with pytest.raises(KeyRefused):
        new_order(ra, partner, csr=csr_pem(make_csr(key, names=["example.com"])))


@pytest.mark.parametrize("bad", ["PO\x00X", "PO\ud800"])
def test_hostile_characters_in_fields_are_invalid_fields(ra, bad):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    with pytest.raises(InvalidField) as caught:
        reissue(ra, partner, bad, fresh_key_csr())
    assert caught.value.field == "PartnerOrderID"
    with pytest.raises(InvalidField) as caught:
        reissue(ra, partner, created.order.partner_order_id, fresh_key_csr(), dns_names=("a" + bad + ".com",))
    assert caught.value.field == "DNSNames"


@pytest.mark.parametrize("bad", ["u\x00", "u\ud800"])
def test_hostile_characters_in_credentials_fail_authentication_and_are_counted(ra, bad):
    partner = new_partner(ra)
    for credentials in (Credentials(partner.code, bad, Secret(partner.password)),
                        Credentials(partner.code + bad, partner.username, Secret(partner.password)),
                        Credentials(partner.code, partner.username, Secret(partner.password + bad))):
        with pytest.raises(AuthenticationFailed):
            ra.authenticator.authenticate(credentials, channel="api")
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "authenticate",
                                                                AuditEvent.partner_code.like(partner.code + "%"))))
    assert len(events) == 3


def test_parallel_guesses_cannot_overrun_the_lockout(ra):
    partner = new_partner(ra)

    def guess(i: int) -> int:
        try:
            ra.authenticator.authenticate(partner.credentials(password=f"guess-{i}-wrong"), channel="api")
        except ServiceError as error:
            return error.code
        return 0

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(guess, range(30)))
    assert codes.count(AuthenticationFailed.code) == 10
    assert codes.count(AccountLocked.code) == 20


def test_a_serial_collision_draws_another_serial(ra, monkeypatch):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    drawn = iter([2**100 + 7, 2**100 + 7, 2**100 + 9])
    monkeypatch.setattr(issuance, "new_serial", lambda: next(drawn))
    first = reissue(ra, partner, poid, fresh_key_csr())
    second = reissue(ra, partner, poid, fresh_key_csr())
    assert (int(first.certificate.serial, 16), int(second.certificate.serial, 16)) == (2**100 + 7, 2**100 + 9)


@pytest.mark.parametrize(("moment", "days"), [(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), 397),
                                              (datetime(2026, 3, 15, tzinfo=UTC), 199)])
def test_validity_around_the_first_reduction(ra, moment, days):
    at = RegistrationAuthority.from_settings(ra.settings, clock=lambda: moment, engine=ra.engine)
    partner = new_partner(at)
    created = new_order(at, partner, term_days=1000)
    certificate = created.certificate
    assert certificate.not_after - certificate.not_before == timedelta(days=days) - timedelta(seconds=1)


def test_a_certificate_the_linter_refuses_is_not_issued_and_is_audited(ra):
    """A real linter finding: an internal name (not the configured public URL's) in the SAN."""
    partner = new_partner(ra)
    created = new_order(ra, partner, names=("example.com", "intranet.local"), csr=fresh_key_csr(["example.com"]))
    poid = created.order.partner_order_id
    with pytest.raises(InternalError) as caught:
        reissue(ra, partner, poid, fresh_key_csr(["intranet.local"]))
    assert caught.value.code == -9000 and "internal_domain_name" not in caught.value.message
    with ra.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.partner_order_id == poid)
                                .order_by(AuditEvent.id.desc())).first()
    assert event is not None and (event.outcome, event.incident_id) == ("failed", caught.value.incident_id)
    assert "internal_domain_name" in event.detail
    after = reissue(ra, partner, poid, fresh_key_csr(["example.com"]))  # nothing was left behind
    assert after.certificate.replaces == created.certificate.serial


def test_unknown_wildcard_on_a_wildcard_product_is_refused(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner, product="RapidSSLWildcard", names=("example.com",))
    with pytest.raises(NameNotValidated):
        reissue(ra, partner, created.order.partner_order_id, fresh_key_csr(["*.example.com"]))


def test_partner_order_ids_are_trimmed_on_entry(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner, partner_order_id="  PADDED-1 ")
    assert created.order.partner_order_id == "PADDED-1"
    assert reissue(ra, partner, "PADDED-1", fresh_key_csr()).order.partner_order_id == "PADDED-1"
