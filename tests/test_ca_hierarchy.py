"""The installation's CA hierarchy: shape, extensions, and pkilint's CA linters find nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ca_support import (
    INSTALLATION,
    KEY_BACKEND,
    LOOPBACK_URL,
    NOW,
    PUBLIC_URL,
    full_serverauth_lint,
    hierarchy,
    linter,
)
from soap_service.ca.algorithms import generate_key
from soap_service.ca.hierarchy import BRANDS, CODE_SIGNING_BRANDS, CAMaterial, create_hierarchy

FAST_ALGORITHMS = ["rsa-2048", "ecdsa-p256"]
ALL_ALGORITHMS = [
    "rsa-2048",
    "ecdsa-p256",
    pytest.param("rsa-3072", marks=pytest.mark.slow),
    pytest.param("rsa-4096", marks=pytest.mark.slow),
    pytest.param("ecdsa-p384", marks=pytest.mark.slow),
]
EXPECTED_NAMES = [
    "ROOT",
    "SYMANTEC-TLS",
    "THAWTE-TLS",
    "GEOTRUST-TLS",
    "RAPIDSSL-TLS",
    "THAWTE-CS",
    "SYMANTEC-CS",
]
E = TypeVar("E", bound=x509.ExtensionType)
ANY_POLICY = x509.ObjectIdentifier("2.5.29.32.0")
CODE_SIGNING_POLICY = x509.ObjectIdentifier("2.23.140.1.4.1")


def _value(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return certificate.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize("algorithm", FAST_ALGORITHMS)
def test_hierarchy_has_the_root_then_four_tls_then_two_code_signing_cas(algorithm: str) -> None:
    materials = list(hierarchy(algorithm).values())
    assert [m.name for m in materials] == EXPECTED_NAMES
    assert [m.role for m in materials] == ["root"] + ["tls"] * 4 + ["codesigning"] * 2
    assert [m.brand for m in materials] == [None, *BRANDS, *CODE_SIGNING_BRANDS]
    assert len({m.certificate.serial_number for m in materials}) == 7
    assert len({m.certificate.subject for m in materials}) == 7


@pytest.mark.parametrize("algorithm", FAST_ALGORITHMS)
def test_every_ca_key_matches_its_certificate_and_is_of_the_algorithm(algorithm: str) -> None:
    expected = rsa.RSAPublicKey if algorithm.startswith("rsa") else ec.EllipticCurvePublicKey
    for material in hierarchy(algorithm).values():
        assert isinstance(material.signer.public_key, expected)
        assert material.signer.public_key == material.certificate.public_key()
        # what the RA stores opens, in another backend object, to a signer of the same key
        assert KEY_BACKEND.unlock(material.name, material.protected_key).public_key == material.signer.public_key
        assert b"ENCRYPTED PRIVATE KEY" in material.protected_key


@pytest.mark.parametrize("algorithm", FAST_ALGORITHMS)
def test_subjects_say_they_are_this_installations_own(algorithm: str) -> None:
    for material in hierarchy(algorithm).values():
        subject = material.certificate.subject
        organization = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        common_name = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert organization == f"soap_service {INSTALLATION}"
        assert common_name.startswith(f"soap_service {INSTALLATION} ")
        assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    assert (
        hierarchy(algorithm)["GEOTRUST-TLS"].certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        == f"soap_service {INSTALLATION} GeoTrust TLS Issuing CA"
    )


@pytest.mark.parametrize("algorithm", FAST_ALGORITHMS)
def test_root_profile(algorithm: str) -> None:
    root = hierarchy(algorithm)["ROOT"].certificate
    assert root.subject == root.issuer
    assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=20 * 365 + 5)
    constraints = _value(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = _value(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = _value(root, x509.SubjectKeyIdentifier).value
    assert _value(root, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    for absent in (x509.ExtendedKeyUsage, x509.CertificatePolicies, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            root.extensions.get_extension_for_class(absent)
    root.verify_directly_issued_by(root)


@pytest.mark.parametrize("algorithm", FAST_ALGORITHMS)
def test_issuing_ca_profile(algorithm: str) -> None:
    materials = hierarchy(algorithm)
    root = materials["ROOT"].certificate
    root_ski = _value(root, x509.SubjectKeyIdentifier).value.digest
    for material in list(materials.values())[1:]:
        certificate = material.certificate
        certificate.verify_directly_issued_by(root)
        assert certificate.issuer == root.subject
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert timedelta(days=4 * 365) < lifetime < timedelta(days=6 * 365)
        constraints = _value(certificate, x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
        usage = _value(certificate, x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        eku = list(_value(certificate, x509.ExtendedKeyUsage).value)
        policies = [p.policy_identifier for p in _value(certificate, x509.CertificatePolicies).value]
        if material.role == "tls":
            assert eku == [ExtendedKeyUsageOID.SERVER_AUTH]
            assert policies == [ANY_POLICY]
        else:
            assert eku == [ExtendedKeyUsageOID.CODE_SIGNING]
            assert policies == [CODE_SIGNING_POLICY]
        aia = _value(certificate, x509.AuthorityInformationAccess).value
        assert [(d.access_method, d.access_location.value) for d in aia] == [
            (AuthorityInformationAccessOID.CA_ISSUERS, "http://pki.example.com/ca/ROOT.crt")
        ]
        crl = _value(certificate, x509.CRLDistributionPoints).value
        assert [n.value for n in crl[0].full_name or []] == ["http://pki.example.com/crl/ROOT.crl"]
        assert _value(certificate, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
            material.signer.public_key
        )
        assert _value(certificate, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_pkilint_ca_linters_find_nothing_at_warning_or_above(algorithm: str) -> None:
    for material in hierarchy(algorithm).values():
        assert linter().ca_findings(material.certificate, material.role) == [], material.name
        detected, findings = full_serverauth_lint(material.certificate)
        assert findings == [], material.name
        assert (
            detected
            == {"root": "ROOT_CA", "tls": "INTERNAL_UNCONSTRAINED_TLS_CA", "codesigning": "NON_TLS_CA"}[material.role]
        )


def test_with_the_loopback_public_url_only_the_internal_url_findings_appear() -> None:
    materials = hierarchy("ecdsa-p256", LOOPBACK_URL)
    for material in materials.values():
        assert linter(LOOPBACK_URL).ca_findings(material.certificate, material.role) == [], material.name
        _, findings = full_serverauth_lint(material.certificate)
        if material.role != "root":  # the root carries no URL
            assert findings and all("cabf.internal_domain_name" in f and "127.0.0.1" in f for f in findings)
    # a linter configured for another public URL does not excuse these URLs
    intermediate = materials["THAWTE-TLS"]
    assert linter(PUBLIC_URL).ca_findings(intermediate.certificate, "tls")


@pytest.mark.parametrize(
    ("algorithm", "key_type", "hash_type"),
    [
        ("rsa-2048", rsa.RSAPrivateKey, hashes.SHA256),
        ("ecdsa-p256", ec.EllipticCurvePrivateKey, hashes.SHA256),
        ("ecdsa-p384", ec.EllipticCurvePrivateKey, hashes.SHA384),
    ],
)
def test_generate_key_and_ca_signature_hash(algorithm: str, key_type: type, hash_type: type) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, key_type)
    if algorithm.startswith("ecdsa"):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.key_size == int(algorithm[-3:])
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537
    if algorithm == "ecdsa-p384":
        root = hierarchy(algorithm)["ROOT"].certificate
        assert isinstance(root.signature_hash_algorithm, hash_type)


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "bits"), [("rsa-3072", 3072), ("rsa-4096", 4096)])
def test_generate_large_rsa_keys(algorithm: str, bits: int) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits


@pytest.mark.parametrize("algorithm", ["rsa-1024", "dsa-2048", "ecdsa-p521", "ed25519", ""])
def test_generate_key_refuses_other_algorithms(algorithm: str) -> None:
    with pytest.raises(ValueError, match="unknown key algorithm"):
        generate_key(algorithm)


@pytest.mark.parametrize("installation", ["", "has space", "x" * 21, "-lead", "évian"])
def test_create_hierarchy_refuses_a_bad_installation_id(installation: str) -> None:
    with pytest.raises(ValueError, match="installation"):
        create_hierarchy("ecdsa-p256", installation, PUBLIC_URL, NOW, KEY_BACKEND)


def test_create_hierarchy_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        create_hierarchy("ecdsa-p256", INSTALLATION, PUBLIC_URL, NOW.replace(tzinfo=None), KEY_BACKEND)


def test_camaterial_is_frozen() -> None:
    material: CAMaterial = hierarchy("ecdsa-p256")["ROOT"]
    with pytest.raises(AttributeError):
        material.name = "OTHER"  # type: ignore[misc]
