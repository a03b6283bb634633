"""docs/design.md, "Reissue rules", rule by rule, through the RA's Reissue use case, on SQLite and
PostgreSQL, with real keys and CSRs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from factory import ORGANIZATION, fresh_key_csr, new_order, new_partner
from keyfactory import (
    broken_signature_csr_pem,
    close_prime_rsa_key,
    csr_base64_der,
    csr_pem,
    ec_key,
    make_csr,
    roca_rsa_key,
    rsa_key,
    sha1_csr_pem,
)
from soap_service.errors import (
    AuthenticationFailed,
    CertificateRevoked,
    CSRUnreadable,
    InvalidField,
    KeyRefused,
    NameNotValidated,
    OrderNotFound,
    OrderStateInvalid,
    ServiceError,
    TermEnded,
)
from soap_service.ra.orders import show_order
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import certificates as certificate_store
from soap_service.storage.models import AuditEvent, Certificate, Order, Partner
from soap_service.vocabulary import CertificateStatus, OrderStatus


def reissue(ra: RegistrationAuthority, partner, partner_order_id: str, csr: str, dns_names=None):
    return Reissuer(ra).reissue(
        partner.credentials(), ReissueRequest(partner_order_id, csr, tuple(dns_names) if dns_names else None),
        channel="api",
    )


def history_of(ra: RegistrationAuthority, partner, partner_order_id: str):
    with ra.sessions() as session:
        partner_id = session.scalar(select(Partner.id).where(Partner.code == partner.code))
    return show_order(ra, partner_id=partner_id, partner_order_id=partner_order_id).certificates


def refused(ra, partner, partner_order_id, csr, error: type[ServiceError], dns_names=None) -> ServiceError:
    """Assert a refusal with ``error`` that leaves the order as it was."""
    before = snapshot(ra, partner_order_id)
    with pytest.raises(error) as caught:
        reissue(ra, partner, partner_order_id, csr, dns_names)
    assert snapshot(ra, partner_order_id) == before
    return caught.value


def snapshot(ra: RegistrationAuthority, partner_order_id: str) -> tuple[object, ...]:
    with ra.sessions() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == partner_order_id))
        if order is None:
            return ()
        count = len(certificate_store.order_history(session, order.id))
        return (order.current_certificate_id, order.version, order.status, count)


def set_order(ra: RegistrationAuthority, partner_order_id: str, **values: object) -> None:
    with ra.sessions() as session, session.begin():
        session.execute(update(Order).where(Order.partner_order_id == partner_order_id).values(**values))


def audit_events(ra: RegistrationAuthority, partner_order_id: str) -> list[AuditEvent]:
    with ra.sessions() as session:
        return list(session.scalars(
            select(AuditEvent).where(AuditEvent.partner_order_id == partner_order_id).order_by(AuditEvent.id)
        ))


@pytest.fixture
def partner(ra):
    return new_partner(ra)


@pytest.fixture
def order(ra, partner):
    return new_order(ra, partner, product="QuickSSLPremium", names=("example.com", "www.example.com"))


# Rule 1: authentication -------------------------------------------------------------------------


def test_wrong_password_unknown_user_and_unknown_partner_get_one_indistinct_error(ra, partner, order):
    poid = order.order.partner_order_id
    csr = fresh_key_csr()
    answers = []
    for credentials in (
        partner.credentials(password="wrong-password-123"),
        type(partner)(partner.code, "nobody", partner.password).credentials(),
        type(partner)("NOPARTNER", partner.username, partner.password).credentials(),
        type(partner)(partner.code, partner.username, "").credentials(),
    ):
        with pytest.raises(AuthenticationFailed) as caught:
            Reissuer(ra).reissue(credentials, ReissueRequest(poid, csr), channel="api")
        answers.append((caught.value.code, caught.value.message, caught.value.field))
    assert answers == [(-4001, "authentication failed", None)] * 4
    assert snapshot(ra, poid)[3] == 1


# Rule 3: the order is the partner's own ------------------------------------------------------------


def test_unknown_order_and_another_partners_order_are_both_not_found(ra, partner, order):
    other = new_partner(ra)
    theirs = new_order(ra, other)
    missing = refused(ra, partner, "NO-SUCH-ORDER", fresh_key_csr(), OrderNotFound)
    foreign = refused(ra, partner, theirs.order.partner_order_id, fresh_key_csr(), OrderNotFound)
    assert (missing.code, missing.message, missing.field) == (foreign.code, foreign.message, foreign.field)
    assert missing.code == -4003 and missing.field == "PartnerOrderID"


def test_order_errors_come_before_csr_errors(ra, partner):
    assert refused(ra, partner, "NO-SUCH-ORDER", "garbage", OrderNotFound).code == -4003


# Rule 4: state, term, revocation ----------------------------------------------------------------


def test_cancelled_order_is_refused(ra, partner, order):
    poid = order.order.partner_order_id
    set_order(ra, poid, status=OrderStatus.CANCELLED)
    assert refused(ra, partner, poid, fresh_key_csr(), OrderStateInvalid).code == -4012


def test_ended_term_is_refused(ra, partner, order):
    poid = order.order.partner_order_id
    set_order(ra, poid, term_end=datetime.now(UTC) - timedelta(minutes=1))
    assert refused(ra, partner, poid, fresh_key_csr(), TermEnded).code == -4013


def test_revoked_current_certificate_cannot_be_reissued(ra, partner, order):
    poid = order.order.partner_order_id
    with ra.sessions() as session, session.begin():
        current = session.scalar(select(Certificate).where(Certificate.serial == order.certificate.serial))
        assert current is not None
        current.status = CertificateStatus.REVOKED
        current.revoked_at = datetime.now(UTC)
        current.revocation_reason = "superseded"
    assert refused(ra, partner, poid, fresh_key_csr(), CertificateRevoked).code == -4011


def test_revoked_order_cannot_be_reissued(ra, partner, order):
    poid = order.order.partner_order_id
    set_order(ra, poid, status=OrderStatus.REVOKED)
    assert refused(ra, partner, poid, fresh_key_csr(), CertificateRevoked).code == -4011


# Rule 5: the CSR and its key ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: "not a csr", CSRUnreadable),
        (lambda: sha1_csr_pem(rsa_key(2048)), CSRUnreadable),
        (broken_signature_csr_pem, CSRUnreadable),
        (lambda: csr_pem(make_csr(rsa_key(1024))), KeyRefused),
        (lambda: csr_pem(make_csr(rsa_key(2047))), KeyRefused),
        (lambda: csr_pem(make_csr(rsa_key(2048, exponent=3))), KeyRefused),
        (lambda: csr_pem(make_csr(ec_key("P-224"))), KeyRefused),
        (lambda: csr_pem(make_csr(close_prime_rsa_key())), KeyRefused),
        (lambda: csr_pem(make_csr(roca_rsa_key())), KeyRefused),
    ],
    ids=["garbage", "sha1", "broken-signature", "rsa1024", "rsa2047", "e3", "p224", "close-primes", "roca"],
)
def test_bad_csrs_and_weak_keys_are_refused(ra, partner, order, make, error):
    caught = refused(ra, partner, order.order.partner_order_id, make(), error)
    assert caught.field == "CSR"


def test_csr_as_bare_base64_der_is_accepted(ra, partner, order):
    csr = csr_base64_der(make_csr(ec.generate_private_key(ec.SECP256R1()), names=["example.com"]))
    outcome = reissue(ra, partner, order.order.partner_order_id, csr)
    assert outcome.certificate.names == ("example.com",)


def test_a_key_blocked_for_compromise_is_refused_forever(ra, partner, order):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_pem(make_csr(key))
    with ra.sessions() as session, session.begin():
        from soap_service.ra.csr import spki_sha256

        certificate_store.block_key(session, spki_sha256=spki_sha256(key.public_key()), reason="keyCompromise",
                                    at=datetime.now(UTC), certificate_id=None)
    other = new_order(ra, partner)
    for poid in (order.order.partner_order_id, other.order.partner_order_id):
        assert "compromised" in refused(ra, partner, poid, csr, KeyRefused).message


def test_a_key_in_another_partners_valid_certificate_is_refused(ra, partner, order):
    """A CSR can be copied: another partner reusing this subscriber's CSR (with its own
    DNSNames) must not get a certificate for a key it does not hold, which it could then
    revoke for keyCompromise and take this subscriber's certificates down with it."""
    subscribers_csr = fresh_key_csr(["example.com"])
    reissue(ra, partner, order.order.partner_order_id, subscribers_csr)
    other_partner = new_partner(ra)
    others_order = new_order(ra, other_partner, names=("other.example.net",))
    caught = refused(ra, other_partner, others_order.order.partner_order_id, subscribers_csr, KeyRefused,
                     dns_names=["other.example.net"])
    assert "another account" in caught.message
    with pytest.raises(KeyRefused, match="another account"):  # nor as a new order's first certificate
        new_order(ra, other_partner, names=("example.com",), csr=subscribers_csr)
    # The same subscriber may use its key on another of its orders.
    own_other_order = new_order(ra, partner, names=("example.com",))
    reissue(ra, partner, own_other_order.order.partner_order_id, subscribers_csr)


def test_a_key_whose_other_certificates_are_revoked_may_be_certified_again(ra, partner, order):
    subscribers_csr = fresh_key_csr(["example.com"])
    issued = reissue(ra, partner, order.order.partner_order_id, subscribers_csr)
    with ra.sessions() as session, session.begin():
        session.execute(update(Certificate).where(Certificate.serial == issued.certificate.serial)
                        .values(status=CertificateStatus.REVOKED, revoked_at=datetime.now(UTC),
                                revocation_reason="superseded"))
    other_partner = new_partner(ra)
    others_order = new_order(ra, other_partner, names=("other.example.net",))
    reissue(ra, other_partner, others_order.order.partner_order_id, subscribers_csr, dns_names=["other.example.net"])


def test_csr_extensions_are_not_copied(ra, partner, order):
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), names=["example.com"], extensions=[
        x509.BasicConstraints(ca=True, path_length=None),
        x509.OCSPNoCheck(),
    ])
    outcome = reissue(ra, partner, order.order.partner_order_id, csr_pem(csr))
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.OCSPNoCheck)


# Rule 6: names -------------------------------------------------------------------------------------


def test_a_name_outside_the_order_is_refused(ra, partner, order):
    csr = fresh_key_csr(["example.com", "evil.example.net"])
    caught = refused(ra, partner, order.order.partner_order_id, csr, NameNotValidated)
    assert caught.code == -4010 and caught.field == "CSR" and "evil.example.net" in caught.message


def test_a_long_name_of_the_csr_is_quoted_short(ra, partner, order):
    """A CSR's names have no bound of their own: the refusal quotes one longer than a DNS name
    by its start and its length, not 40,000 characters back."""
    long_name = "a" * 40_000 + ".example.net"
    caught = refused(ra, partner, order.order.partner_order_id, fresh_key_csr(["example.com", long_name]),
                     NameNotValidated)
    assert caught.code == -4010 and caught.field == "CSR"
    assert f"{'a' * 64}... ({len(long_name)} characters) is not a name validated" in caught.message
    assert len(caught.message) < 200


def test_a_name_in_dns_names_outside_the_order_is_refused_on_that_field(ra, partner, order):
    caught = refused(ra, partner, order.order.partner_order_id, fresh_key_csr(), NameNotValidated,
                     dns_names=["other.example.com"])
    assert caught.field == "DNSNames"


def test_a_wildcard_on_a_non_wildcard_product_is_refused(ra, partner, order):
    caught = refused(ra, partner, order.order.partner_order_id, fresh_key_csr(["*.example.com"]), NameNotValidated)
    assert "wildcard" in caught.message


def test_a_wildcard_the_order_validated_is_issued(ra, partner):
    wild = new_order(ra, partner, product="RapidSSLWildcard", names=("*.example.com", "example.com"))
    outcome = reissue(ra, partner, wild.order.partner_order_id, fresh_key_csr(["*.EXAMPLE.com"]))
    assert outcome.certificate.names == ("*.example.com",)


def test_names_match_in_any_letter_case_and_cn_counts(ra, partner, order):
    csr = csr_pem(make_csr(ec.generate_private_key(ec.SECP256R1()), names=["WWW.Example.COM"],
                           common_name="Example.com"))
    outcome = reissue(ra, partner, order.order.partner_order_id, csr)
    assert outcome.certificate.names == ("www.example.com", "example.com")


def test_dns_names_choose_the_names_over_the_csr(ra, partner, order):
    outcome = reissue(ra, partner, order.order.partner_order_id, fresh_key_csr(["example.com"]),
                      dns_names=["www.example.com"])
    assert outcome.certificate.names == ("www.example.com",)


def test_no_names_requested_gives_all_validated_names(ra, partner, order):
    outcome = reissue(ra, partner, order.order.partner_order_id, fresh_key_csr([]))
    assert outcome.certificate.names == ("example.com", "www.example.com")
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["example.com", "www.example.com"]


def test_subject_organization_comes_from_the_order_never_the_csr(ra, partner):
    ov = new_order(ra, partner, product="TrueBizID")
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), names=["example.com"],
                   subject=[(x509.NameOID.ORGANIZATION_NAME, "Evil Inc"), (x509.NameOID.COUNTRY_NAME, "XX")])
    outcome = reissue(ra, partner, ov.order.partner_order_id, csr_pem(csr))
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    assert [a.value for a in leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)] == [
        ORGANIZATION.name
    ]
    assert [a.value for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)] == [
        ORGANIZATION.country
    ]


def test_code_signing_subject_is_the_validated_organization(ra, partner):
    cs = new_order(ra, partner, product="ThawteCodeSigning")
    outcome = reissue(ra, partner, cs.order.partner_order_id, fresh_key_csr([], common_name="whatever.example"))
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == ORGANIZATION.name
    assert outcome.certificate.names == ()
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.ExtendedKeyUsageOID.CODE_SIGNING]
    assert outcome.certificate.issuer == "THAWTE-CS"


# What a reissue never does: the original stays valid; reissues are unlimited ------------------------------------


def test_reissue_keeps_the_original_valid_in_the_history(ra, partner, order):
    poid = order.order.partner_order_id
    first = order.certificate
    outcomes = [reissue(ra, partner, poid, fresh_key_csr()) for _ in range(4)]
    last = outcomes[-1]
    history = history_of(ra, partner, poid)
    assert [c.serial for c in history] == [first.serial] + [o.certificate.serial for o in outcomes]
    assert all(c.status == CertificateStatus.VALID for c in history)
    assert last.order.certificate is not None and last.order.certificate.serial == last.certificate.serial
    assert [c.replaces for c in history] == [None] + [c.serial for c in history[:-1]]
    assert not last.warnings


# Rule 9: key reuse --------------------------------------------------------------------------------


def test_reusing_the_current_key_succeeds_with_warning_1001(ra, partner):
    key = ec.generate_private_key(ec.SECP256R1())
    reused = new_order(ra, partner, csr=csr_pem(make_csr(key, names=["example.com"])))
    outcome = reissue(ra, partner, reused.order.partner_order_id,
                      csr_pem(make_csr(key, names=["www.example.com"])))
    assert [(w.code, w.field) for w in outcome.warnings] == [(1001, "CSR")]
    assert len(history_of(ra, partner, reused.order.partner_order_id)) == 2


def test_key_reuse_can_be_made_an_error(ra, partner, installation):
    import dataclasses

    strict = RegistrationAuthority.from_settings(dataclasses.replace(installation.settings, key_reuse="refuse"),
                                                 engine=ra.engine)
    key = ec.generate_private_key(ec.SECP256R1())
    reused = new_order(ra, partner, csr=csr_pem(make_csr(key, names=["example.com"])))
    caught = refused(strict, partner, reused.order.partner_order_id,
                     csr_pem(make_csr(key, names=["www.example.com"])), KeyRefused)
    assert "new key" in caught.message


# Rule 8: retrying is safe --------------------------------------------------------------------------


def test_a_retry_with_the_same_csr_returns_the_same_certificate(ra, partner, order):
    poid = order.order.partner_order_id
    csr = fresh_key_csr()
    first = reissue(ra, partner, poid, csr)
    again = reissue(ra, partner, poid, csr)
    assert again.replayed and not first.replayed
    assert again.certificate == first.certificate
    assert len(history_of(ra, partner, poid)) == 2


def test_the_original_orders_csr_is_also_a_safe_retry(ra, partner):
    csr = fresh_key_csr(["example.com"])
    created = new_order(ra, partner, csr=csr)
    again = reissue(ra, partner, created.order.partner_order_id, csr)
    assert again.replayed and again.certificate.serial == created.certificate.serial


# Required fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("poid", "csr", "field"), [("", "x", "PartnerOrderID"), ("PO", " ", "CSR"),
                                                    ("P" * 65, "x", "PartnerOrderID")])
def test_missing_or_invalid_fields(ra, partner, poid, csr, field):
    with pytest.raises(InvalidField) as caught:
        reissue(ra, partner, poid, csr)
    assert caught.value.code == -2019 and caught.value.field == field


# Auditing -------------------------------------------------------------------------------------------


def test_every_reissue_and_refusal_is_audited(ra, partner, order):
    poid = order.order.partner_order_id
    reissue(ra, partner, poid, fresh_key_csr())
    refused(ra, partner, poid, fresh_key_csr(["nope.example.org"]), NameNotValidated)
    events = [(e.action, e.outcome, e.code) for e in audit_events(ra, poid)]
    assert events[-2:] == [("reissue", "success", 0), ("reissue", "refused", -4010)]
