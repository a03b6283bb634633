"""Shared test material for the CA tests: hierarchies, requests and an independent full lint."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint import finding_filter, loader
from pkilint.cabf import serverauth
from pkilint.cabf.serverauth.serverauth_constants import CertificateType
from pkilint.pkix import certificate as pkix_certificate
from pkilint.validation import ValidationFindingSeverity

from factory import EV_ORGANIZATION, ORGANIZATION
from soap_service.ca.algorithms import PublicKey
from soap_service.ca.hierarchy import CAMaterial, create_hierarchy
from soap_service.ca.issuer import Issuer, IssuingCA
from soap_service.ca.keys import EncryptedKeyBackend
from soap_service.ca.lint import PreIssuanceLinter
from soap_service.ca.profiles import LeafRequest, SubjectOrganization
from soap_service.ca.serials import new_serial
from soap_service.config import Secret
from soap_service.vocabulary import ValidationLevel

PUBLIC_URL = "https://pki.example.com"
LOOPBACK_URL = "http://127.0.0.1:8080"
INSTALLATION = "t3st01"
NOW = datetime.now(UTC).replace(microsecond=0)
KEY_BACKEND = EncryptedKeyBackend(Secret("ca-support passphrase 5d1e"))  # makes the test hierarchies' keys

# (CA that issues it, level, DNS names) for each leaf kind the tests check
LEAF_KINDS = {
    "dv": ("RAPIDSSL-TLS", ValidationLevel.DV, ("www.example.com",)),
    "dv-multi": ("THAWTE-TLS", ValidationLevel.DV, ("example.com", "www.example.com", "shop.example.org")),
    "ov": ("SYMANTEC-TLS", ValidationLevel.OV, ("www.example.com", "example.com")),
    "ev": ("GEOTRUST-TLS", ValidationLevel.EV, ("www.example.com",)),
    "wildcard": ("RAPIDSSL-TLS", ValidationLevel.DV, ("*.example.com", "example.com")),
    "ov-wildcard": ("GEOTRUST-TLS", ValidationLevel.OV, ("*.example.com", "example.com")),
    "cs": ("THAWTE-CS", ValidationLevel.CS, ()),
}


def hierarchy(algorithm: str, public_url: str = PUBLIC_URL) -> dict[str, CAMaterial]:
    """One hierarchy per algorithm and public URL for the whole test process, by CA name."""
    return _hierarchy(algorithm, public_url)


@functools.cache
def _hierarchy(algorithm: str, public_url: str) -> dict[str, CAMaterial]:
    return {
        material.name: material for material in create_hierarchy(algorithm, INSTALLATION, public_url, NOW, KEY_BACKEND)
    }


def linter(public_url: str = PUBLIC_URL) -> PreIssuanceLinter:
    """One linter per public URL for the whole test process (its validators are built once)."""
    return _linter(public_url)


@functools.cache
def _linter(public_url: str) -> PreIssuanceLinter:
    return PreIssuanceLinter(public_url)


def issuer(public_url: str = PUBLIC_URL) -> Issuer:
    return Issuer(public_url, linter(public_url))


def issuing_ca(materials: dict[str, CAMaterial], name: str) -> IssuingCA:
    material = materials[name]
    return IssuingCA(material.name, material.certificate, material.signer, (materials["ROOT"].certificate,))


@functools.cache
def subscriber_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def leaf_request(
    level: ValidationLevel,
    dns_names: tuple[str, ...],
    *,
    days: int = 90,
    organization: SubjectOrganization | None = None,
    public_key: PublicKey | None = None,
) -> LeafRequest:
    """A request valid for ``days`` days (inclusive period, as the RA computes it)."""
    if organization is None and level is not ValidationLevel.DV:
        organization = EV_ORGANIZATION if level is ValidationLevel.EV else ORGANIZATION
    return LeafRequest(
        level=level,
        public_key=public_key or subscriber_key().public_key(),
        dns_names=dns_names,
        organization=organization,
        not_before=NOW,
        not_after=NOW + timedelta(days=days) - timedelta(seconds=1),
        serial=new_serial(),
    )


def full_serverauth_lint(
    certificate: x509.Certificate, threshold: ValidationFindingSeverity = ValidationFindingSeverity.WARNING
) -> tuple[str, list[str]]:
    """pkilint's serverauth linter run as its CLI does (type detected, its own filters), independently
    of the code under test; returns the detected type and every finding at ``threshold`` or worse."""
    document = loader.load_der_certificate(certificate.public_bytes(Encoding.DER), "certificate")
    certificate_type = serverauth.determine_certificate_type(document)
    validator, filters = _serverauth_linter(certificate_type)
    results, _ = finding_filter.filter_results(filters, validator.validate(document.root))
    findings = [
        f"{description.finding.severity} {description.finding.code}: {description.message} @ {result.node.path}"
        for result in results
        for description in result.finding_descriptions
        if description.finding.severity <= threshold
    ]
    return str(certificate_type), findings


@functools.cache
def _serverauth_linter(certificate_type: CertificateType) -> tuple[Any, list[Any]]:
    validator = pkix_certificate.create_pkix_certificate_validator_container(
        serverauth.create_decoding_validators(), serverauth.create_validators(certificate_type)
    )
    return validator, serverauth.create_serverauth_finding_filters(certificate_type)
