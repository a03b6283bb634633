"""Leaves issued by the CA: chain, profile (docs/design.md, "Certificate profiles"), lint-clean, and refused
when bad."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import DNSName
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from ca_support import (
    EV_ORGANIZATION,
    LEAF_KINDS,
    LOOPBACK_URL,
    NOW,
    ORGANIZATION,
    PUBLIC_URL,
    full_serverauth_lint,
    hierarchy,
    issuer,
    issuing_ca,
    leaf_request,
    linter,
)
from soap_service.ca.algorithms import PublicKey, generate_key
from soap_service.ca.issuer import IssuingCA, ca_certificate_url, crl_url, ocsp_url
from soap_service.ca.profiles import LeafRequest
from soap_service.errors import LintRefused, ServiceError
from soap_service.vocabulary import ValidationLevel

E = TypeVar("E", bound=x509.ExtensionType)
ALGORITHMS = ["rsa-2048", "ecdsa-p256"]
POLICY = {
    ValidationLevel.DV: "2.23.140.1.2.1",
    ValidationLevel.OV: "2.23.140.1.2.2",
    ValidationLevel.EV: "2.23.140.1.1",
    ValidationLevel.CS: "2.23.140.1.4.1",
}
LeafSet = dict[str, tuple[IssuingCA, LeafRequest, x509.Certificate]]


def _ext(certificate: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return certificate.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module", params=ALGORITHMS)
def leaves(request: pytest.FixtureRequest) -> LeafSet:
    """Every kind of leaf, issued once per CA algorithm from a hierarchy on a public URL."""
    materials = hierarchy(request.param)
    issued: LeafSet = {}
    for kind, (ca_name, level, names) in LEAF_KINDS.items():
        ca = issuing_ca(materials, ca_name)
        leaf_request_ = leaf_request(level, names)
        issued[kind] = (ca, leaf_request_, issuer().issue(ca, leaf_request_))
    return issued


@pytest.mark.parametrize("kind", [k for k in LEAF_KINDS if k != "cs"])
def test_tls_leaf_verifies_against_its_chain_for_each_name(leaves: LeafSet, kind: str) -> None:
    ca, request, leaf = leaves[kind]
    store = Store([ca.chain[-1]])
    hosts = [name.replace("*", "any-label") for name in request.dns_names]
    for host in hosts:
        verifier = PolicyBuilder().store(store).build_server_verifier(DNSName(host))
        chain = verifier.verify(leaf, [ca.certificate])
        assert chain == [leaf, ca.certificate, ca.chain[-1]]
    verifier = PolicyBuilder().store(store).build_server_verifier(DNSName("not-validated.example.net"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(leaf, [ca.certificate])


def _signed_by(certificate: x509.Certificate, key: PublicKey) -> bool:
    hash_algorithm = certificate.signature_hash_algorithm
    assert isinstance(hash_algorithm, hashes.SHA256 | hashes.SHA384)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), hash_algorithm)
        else:
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        return False
    return True


def test_code_signing_leaf_verifies_by_signature(leaves: LeafSet) -> None:
    ca, _, leaf = leaves["cs"]
    assert ca.name == "THAWTE-CS"
    leaf.verify_directly_issued_by(ca.certificate)
    ca.certificate.verify_directly_issued_by(ca.chain[-1])
    assert _signed_by(leaf, ca.signer.public_key)
    assert _signed_by(ca.certificate, ca.chain[-1].public_key())  # type: ignore[arg-type]
    other = hierarchy("ecdsa-p256")["SYMANTEC-CS"].signer.public_key
    other_rsa = hierarchy("rsa-2048")["SYMANTEC-CS"].signer.public_key
    assert not _signed_by(leaf, other if isinstance(ca.signer.public_key, ec.EllipticCurvePublicKey) else other_rsa)


@pytest.mark.parametrize("kind", list(LEAF_KINDS))
def test_leaf_carries_the_request_exactly(leaves: LeafSet, kind: str) -> None:
    ca, request, leaf = leaves[kind]
    assert leaf.serial_number == request.serial
    assert leaf.not_valid_before_utc == request.not_before
    assert leaf.not_valid_after_utc == request.not_after
    assert leaf.public_key() == request.public_key
    assert leaf.issuer == ca.certificate.subject
    assert leaf.version is x509.Version.v3
    expected_hash = hashes.SHA256
    assert isinstance(leaf.signature_hash_algorithm, expected_hash)


@pytest.mark.parametrize("kind", list(LEAF_KINDS))
def test_leaf_profile_extensions(leaves: LeafSet, kind: str) -> None:
    ca, request, leaf = leaves[kind]
    level = request.level
    oids = [extension.oid for extension in leaf.extensions]
    assert len(oids) == len(set(oids))

    constraints = _ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False and constraints.value.path_length is None

    usage = _ext(leaf, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not any(
        (
            usage.value.content_commitment,
            usage.value.key_encipherment,
            usage.value.data_encipherment,
            usage.value.key_agreement,
            usage.value.key_cert_sign,
            usage.value.crl_sign,
        )
    )

    eku = _ext(leaf, x509.ExtendedKeyUsage)
    assert not eku.critical
    expected_eku = ExtendedKeyUsageOID.CODE_SIGNING if level is ValidationLevel.CS else ExtendedKeyUsageOID.SERVER_AUTH
    assert list(eku.value) == [expected_eku]

    policies = _ext(leaf, x509.CertificatePolicies)
    assert not policies.critical
    assert [(p.policy_identifier.dotted_string, p.policy_qualifiers) for p in policies.value] == [(POLICY[level], None)]

    aia = _ext(leaf, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert sorted((d.access_method.dotted_string, d.access_location.value) for d in aia.value) == sorted(
        [
            (AuthorityInformationAccessOID.OCSP.dotted_string, "http://pki.example.com/ocsp"),
            (
                AuthorityInformationAccessOID.CA_ISSUERS.dotted_string,
                f"http://pki.example.com/ca/{ca.name}.crt",
            ),
        ]
    )

    crl = _ext(leaf, x509.CRLDistributionPoints)
    assert not crl.critical
    assert len(crl.value) == 1
    point = crl.value[0]
    assert [n.value for n in point.full_name or []] == [f"http://pki.example.com/crl/{ca.name}.crl"]
    assert point.reasons is None and point.crl_issuer is None and point.relative_name is None

    aki = _ext(leaf, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert aki.value.authority_cert_issuer is None and aki.value.authority_cert_serial_number is None

    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    if level is ValidationLevel.CS:
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert len(oids) == 7
    else:
        san = _ext(leaf, x509.SubjectAlternativeName)
        assert san.critical is (level is ValidationLevel.DV)
        assert [type(n) for n in san.value] == [x509.DNSName] * len(request.dns_names)
        assert san.value.get_values_for_type(x509.DNSName) == list(request.dns_names)
        assert len(oids) == 8


def _subject(leaf: x509.Certificate) -> list[tuple[str, str]]:
    return [(attribute.oid.dotted_string, str(attribute.value)) for attribute in leaf.subject]


def test_dv_subject_is_empty(leaves: LeafSet) -> None:
    for kind in ("dv", "dv-multi", "wildcard"):
        assert _subject(leaves[kind][2]) == []


def test_ov_subject_is_c_st_l_o_without_cn(leaves: LeafSet) -> None:
    for kind in ("ov", "ov-wildcard"):
        assert _subject(leaves[kind][2]) == [
            (NameOID.COUNTRY_NAME.dotted_string, ORGANIZATION.country),
            (NameOID.STATE_OR_PROVINCE_NAME.dotted_string, ORGANIZATION.state),
            (NameOID.LOCALITY_NAME.dotted_string, ORGANIZATION.locality),
            (NameOID.ORGANIZATION_NAME.dotted_string, ORGANIZATION.name),
        ]


def test_ev_subject_has_the_ev_guidelines_attributes(leaves: LeafSet) -> None:
    assert _subject(leaves["ev"][2]) == [
        (NameOID.BUSINESS_CATEGORY.dotted_string, EV_ORGANIZATION.business_category),
        (NameOID.JURISDICTION_COUNTRY_NAME.dotted_string, EV_ORGANIZATION.jurisdiction_country),
        (NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME.dotted_string, EV_ORGANIZATION.jurisdiction_state),
        (NameOID.SERIAL_NUMBER.dotted_string, EV_ORGANIZATION.registration_number),
        (NameOID.COUNTRY_NAME.dotted_string, EV_ORGANIZATION.country),
        (NameOID.STATE_OR_PROVINCE_NAME.dotted_string, EV_ORGANIZATION.state),
        (NameOID.LOCALITY_NAME.dotted_string, EV_ORGANIZATION.locality),
        (NameOID.ORGANIZATION_NAME.dotted_string, EV_ORGANIZATION.name),
    ]


def test_code_signing_subject_is_the_organization(leaves: LeafSet) -> None:
    assert _subject(leaves["cs"][2]) == [
        (NameOID.COUNTRY_NAME.dotted_string, ORGANIZATION.country),
        (NameOID.STATE_OR_PROVINCE_NAME.dotted_string, ORGANIZATION.state),
        (NameOID.LOCALITY_NAME.dotted_string, ORGANIZATION.locality),
        (NameOID.ORGANIZATION_NAME.dotted_string, ORGANIZATION.name),
        (NameOID.COMMON_NAME.dotted_string, ORGANIZATION.name),
    ]


@pytest.mark.parametrize("kind", [k for k in LEAF_KINDS if k != "cs"])
def test_tls_leaves_have_nothing_at_warning_or_above(leaves: LeafSet, kind: str) -> None:
    _, request, leaf = leaves[kind]
    detected, findings = full_serverauth_lint(leaf)
    assert detected == f"{request.level}_FINAL_CERTIFICATE"
    assert findings == []


def test_code_signing_leaf_has_no_pkix_error(leaves: LeafSet) -> None:
    _, _, leaf = leaves["cs"]
    assert linter().findings(leaf, ValidationLevel.CS) == []


def test_rsa_subscriber_key_is_lint_clean() -> None:
    materials = hierarchy("ecdsa-p256")
    request = leaf_request(ValidationLevel.OV, ("www.example.com",), public_key=generate_key("rsa-2048").public_key())
    leaf = issuer().issue(issuing_ca(materials, "SYMANTEC-TLS"), request)
    assert _ext(leaf, x509.KeyUsage).value.key_encipherment is False
    assert full_serverauth_lint(leaf)[1] == []


def test_p384_ca_signs_with_sha384() -> None:
    materials = hierarchy("ecdsa-p384")
    ca = issuing_ca(materials, "GEOTRUST-TLS")
    leaf = issuer().issue(ca, leaf_request(ValidationLevel.DV, ("www.example.com",)))
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384)
    assert isinstance(ca.certificate.signature_hash_algorithm, hashes.SHA384)
    leaf.verify_directly_issued_by(ca.certificate)
    assert full_serverauth_lint(leaf)[1] == []


# --- refusals ---------------------------------------------------------------------------------


def _refusal(request: LeafRequest, ca_name: str = "RAPIDSSL-TLS", public_url: str = PUBLIC_URL) -> list[str]:
    ca = issuing_ca(hierarchy("ecdsa-p256", public_url), ca_name)
    with pytest.raises(LintRefused) as refused:
        issuer(public_url).issue(ca, request)
    assert not isinstance(refused.value, ServiceError)  # an incident's cause, never a refusal with a code
    assert refused.value.findings
    assert all(f.startswith(("ERROR ", "FATAL ")) for f in refused.value.findings)
    return refused.value.findings


def test_validity_over_398_days_is_refused() -> None:
    findings = _refusal(leaf_request(ValidationLevel.DV, ("www.example.com",), days=399))
    assert any("certificate_validity_period_exceeds" in f for f in findings)


def test_validity_over_the_current_maximum_is_refused() -> None:
    # 201 days is over the 200-day ceiling that applies from 2026-03-15 (and over 398 days' successors)
    findings = _refusal(leaf_request(ValidationLevel.OV, ("www.example.com",), days=201), "SYMANTEC-TLS")
    assert any("certificate_validity_period_exceeds" in f for f in findings)


def test_dv_without_names_is_refused() -> None:
    findings = _refusal(leaf_request(ValidationLevel.DV, ()))
    # an empty SAN cannot even be decoded: pkilint stops with a FATAL finding
    assert any(f.startswith("FATAL") and "SubjectAltName" in f for f in findings)


def test_ev_wildcard_is_refused() -> None:
    findings = _refusal(leaf_request(ValidationLevel.EV, ("*.example.com",)), "GEOTRUST-TLS")
    assert any("wildcard" in f for f in findings)


def test_ev_without_its_attributes_is_refused() -> None:
    request = leaf_request(ValidationLevel.EV, ("www.example.com",), organization=ORGANIZATION)
    findings = _refusal(request, "GEOTRUST-TLS")
    assert {f.split()[1] for f in findings} >= {
        "cabf.ev_guidelines.serial_number_attribute_absent",
        "cabf.ev_guidelines.business_category_attribute_absent",
        "cabf.ev_guidelines.jurisdiction_country_attribute_absent",
    }


def test_ev_with_an_unknown_business_category_is_refused() -> None:
    organization = replace(EV_ORGANIZATION, business_category="Startup")
    request = leaf_request(ValidationLevel.EV, ("www.example.com",), organization=organization)
    assert any("invalid_business_category" in f for f in _refusal(request, "GEOTRUST-TLS"))


def test_ov_without_state_and_locality_is_refused() -> None:
    organization = replace(ORGANIZATION, state=None, locality=None)
    request = leaf_request(ValidationLevel.OV, ("www.example.com",), organization=organization)
    assert any("stateprovince_and_locality_missing" in f for f in _refusal(request, "SYMANTEC-TLS"))


def test_ov_without_organization_is_a_programming_error() -> None:
    request = replace(leaf_request(ValidationLevel.OV, ("www.example.com",)), organization=None)
    with pytest.raises(ValueError, match="organization"):
        issuer().issue(issuing_ca(hierarchy("ecdsa-p256"), "SYMANTEC-TLS"), request)


def test_naive_times_are_a_programming_error() -> None:
    request = leaf_request(ValidationLevel.DV, ("www.example.com",))
    request = replace(request, not_before=request.not_before.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone"):
        issuer().issue(issuing_ca(hierarchy("ecdsa-p256"), "RAPIDSSL-TLS"), request)


def test_issuing_ca_refuses_a_key_that_is_not_its_own() -> None:
    materials = hierarchy("ecdsa-p256")
    with pytest.raises(ValueError, match="does not match"):
        IssuingCA("RAPIDSSL-TLS", materials["RAPIDSSL-TLS"].certificate, materials["THAWTE-TLS"].signer, ())


# --- the internal public URL exception ------------------------------------------------------------


def test_issuance_works_with_the_loopback_public_url() -> None:
    materials = hierarchy("ecdsa-p256", LOOPBACK_URL)
    for kind, (ca_name, level, names) in LEAF_KINDS.items():
        leaf = issuer(LOOPBACK_URL).issue(issuing_ca(materials, ca_name), leaf_request(level, names))
        aia = _ext(leaf, x509.AuthorityInformationAccess).value
        assert {d.access_location.value for d in aia} == {
            "http://127.0.0.1:8080/ocsp",
            f"http://127.0.0.1:8080/ca/{ca_name}.crt",
        }, kind
        if level is not ValidationLevel.CS:
            _, findings = full_serverauth_lint(leaf)
            # pkilint itself still reports the three URLs; only the pre-issuance filter drops them
            assert len(findings) == 3 and all("cabf.internal_domain_name" in f for f in findings), kind


@pytest.mark.parametrize("name", ["intranet.local", "localhost", "printer.internal", "nas"])
def test_an_internal_dns_name_is_still_refused_with_the_loopback_public_url(name: str) -> None:
    findings = _refusal(leaf_request(ValidationLevel.DV, (name,)), public_url=LOOPBACK_URL)
    assert any(f.startswith("ERROR cabf.internal_domain_name") and name in f for f in findings)
    assert not any("127.0.0.1" in f for f in findings)


def test_an_internal_dns_name_is_refused_with_a_public_url() -> None:
    findings = _refusal(leaf_request(ValidationLevel.DV, ("www.example.com", "intranet.local")))
    assert findings == ['ERROR cabf.internal_domain_name: Internal domain name: "intranet.local"']


def test_urls_use_http_on_the_public_host() -> None:
    assert ca_certificate_url(PUBLIC_URL, "GEOTRUST-TLS") == "http://pki.example.com/ca/GEOTRUST-TLS.crt"
    assert crl_url(PUBLIC_URL + "/", "ROOT") == "http://pki.example.com/crl/ROOT.crl"
    assert ocsp_url(PUBLIC_URL) == "http://pki.example.com/ocsp"
    assert ocsp_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/ocsp"
    assert crl_url("https://example.com:8443/pki", "ROOT") == "http://example.com:8443/pki/crl/ROOT.crl"
    with pytest.raises(ValueError, match="http"):
        ocsp_url("ftp://example.com")


def test_the_signed_leaf_has_the_linted_tbs_and_a_fresh_signature() -> None:
    # two issuances of one request differ only in the ECDSA signature, never in the TBS
    materials = hierarchy("ecdsa-p256")
    ca = issuing_ca(materials, "RAPIDSSL-TLS")
    request = leaf_request(ValidationLevel.DV, ("www.example.com",))
    first, second = issuer().issue(ca, request), issuer().issue(ca, request)
    assert first.tbs_certificate_bytes == second.tbs_certificate_bytes
    first.verify_directly_issued_by(ca.certificate)


def test_leaf_times_are_kept_to_the_second() -> None:
    request = leaf_request(ValidationLevel.DV, ("www.example.com",), days=199)
    leaf = issuer().issue(issuing_ca(hierarchy("rsa-2048"), "RAPIDSSL-TLS"), request)
    period = leaf.not_valid_after_utc - leaf.not_valid_before_utc + timedelta(seconds=1)
    assert period == timedelta(days=199)
    assert leaf.not_valid_before_utc == NOW
    assert full_serverauth_lint(leaf)[1] == []


def test_subscriber_key_types_do_not_change_the_profile() -> None:
    request = leaf_request(
        ValidationLevel.DV,
        ("www.example.com",),
        public_key=ec.generate_private_key(ec.SECP384R1()).public_key(),
    )
    leaf = issuer().issue(issuing_ca(hierarchy("rsa-2048"), "THAWTE-TLS"), request)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(hierarchy("rsa-2048")["THAWTE-TLS"].signer.public_key, rsa.RSAPublicKey)
    assert full_serverauth_lint(leaf)[1] == []
