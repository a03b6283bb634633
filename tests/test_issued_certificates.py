"""docs/design.md, "Certificate profiles": validity by date of issuance, and what the issued leaves are:
chained to their brand's CA, and clean under the linter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from ca_support import full_serverauth_lint
from conftest import build_installation, database_environment
from factory import fresh_key_csr, new_order, new_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.validity import maximum_days


def frozen(ra: RegistrationAuthority, moment: datetime) -> RegistrationAuthority:
    return RegistrationAuthority.from_settings(ra.settings, clock=lambda: moment, engine=ra.engine)


@pytest.mark.parametrize(
    ("moment", "days"),
    [
        (datetime(2026, 11, 28, 12, tzinfo=UTC), 199),
        (datetime(2027, 3, 14, 23, 59, 59, tzinfo=UTC), 199),
        (datetime(2027, 3, 15, tzinfo=UTC), 99),
        (datetime(2029, 3, 15, tzinfo=UTC), 46),
    ],
)
def test_tls_validity_is_one_day_under_the_forum_maximum_of_the_day(ra, moment, days):
    at = frozen(ra, moment)
    partner = new_partner(at)
    created = new_order(at, partner, term_days=1000)
    outcome = Reissuer(at).reissue(partner.credentials(), ReissueRequest(created.order.partner_order_id,
                                                                         fresh_key_csr()), channel="api")
    certificate = outcome.certificate
    assert certificate.not_before == moment.replace(microsecond=0)
    assert certificate.not_after - certificate.not_before == timedelta(days=days) - timedelta(seconds=1)


def test_validity_ends_with_the_orders_term(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner, term_days=30)
    outcome = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(created.order.partner_order_id,
                                                                         fresh_key_csr()), channel="api")
    assert outcome.certificate.not_after == created.order.term_end.replace(microsecond=0)


def test_code_signing_validity_is_at_most_459_days(ra):
    at = frozen(ra, datetime(2027, 6, 1, tzinfo=UTC))
    partner = new_partner(at)
    created = new_order(at, partner, product="SymantecCodeSigning", term_days=1500)
    certificate = created.certificate
    assert certificate.not_after - certificate.not_before == timedelta(days=459) - timedelta(seconds=1)
    assert maximum_days("CS", datetime(2030, 1, 1, tzinfo=UTC)) == 459


BRAND_PRODUCTS = [
    ("RapidSSL", "RAPIDSSL-TLS", ("example.com", "www.example.com")),
    ("RapidSSLWildcard", "RAPIDSSL-TLS", ("*.example.com", "example.com")),
    ("QuickSSLPremium", "GEOTRUST-TLS", ("example.com",)),
    ("TrueBizID", "GEOTRUST-TLS", ("example.com",)),
    ("TrueBizIDEV", "GEOTRUST-TLS", ("example.com",)),
    ("SSL123", "THAWTE-TLS", ("example.com",)),
    ("SSLWebServerEV", "THAWTE-TLS", ("example.com",)),
    ("SecureSite", "SYMANTEC-TLS", ("example.com",)),
    ("SecureSiteEV", "SYMANTEC-TLS", ("example.com",)),
]


@pytest.mark.parametrize(("product", "issuer", "names"), BRAND_PRODUCTS, ids=[p[0] for p in BRAND_PRODUCTS])
def test_reissued_leaves_verify_against_their_brands_chain(ra, product, issuer, names):
    partner = new_partner(ra)
    created = new_order(ra, partner, product=product, names=names)
    outcome = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(created.order.partner_order_id,
                                                                         fresh_key_csr(names)), channel="api")
    assert outcome.certificate.issuer == issuer
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    chain = [x509.load_pem_x509_certificate(c.pem.encode()) for c in outcome.chain]
    assert [c.kind for c in outcome.chain] == ["INTERMEDIATE", "ROOT"]
    verifier = (PolicyBuilder().store(Store([chain[-1]])).time(leaf.not_valid_before_utc + timedelta(hours=1))
                .build_server_verifier(x509.DNSName(names[-1])))
    verified = verifier.verify(leaf, chain[:-1])
    assert verified[-1] == chain[-1]
    assert verified[1] == chain[0]


@pytest.fixture(scope="module")
def public_installation(tmp_path_factory):
    """An installation whose AIA and CRL URLs use a public name, as in production."""
    data_dir = tmp_path_factory.mktemp("public")
    for environ in database_environment("sqlite", data_dir, "public"):
        environ["SOAP_SERVICE_PUBLIC_URL"] = "http://pki.example.com"
        installation = build_installation(environ, "sqlite")
        yield installation
        installation.ra.close()


@pytest.mark.parametrize(
    ("product", "names"),
    [("RapidSSL", ("example.com", "www.example.com")), ("TrueBizID", ("example.com",)),
     ("SecureSiteEV", ("example.com", "www.example.com")), ("RapidSSLWildcard", ("*.example.com",))],
    ids=["DV", "OV", "EV", "wildcard"],
)
def test_issued_leaves_have_no_linter_finding_at_warning_or_above(public_installation, product, names):
    ra = public_installation.ra
    partner = new_partner(ra)
    validated = names if product != "RapidSSLWildcard" else ("*.example.com", "example.com")
    created = new_order(ra, partner, product=product, names=validated)
    outcome = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(created.order.partner_order_id,
                                                                         fresh_key_csr(names)), channel="api")
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    detected, findings = full_serverauth_lint(leaf)
    assert findings == []
    assert detected.startswith(("DV", "OV", "EV"))
