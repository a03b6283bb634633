"""This installation's own CA hierarchy: one root, a TLS issuing CA per brand, code-signing CAs.

The names say plainly that these are the CAs of one soap_service installation, not the
brands' real CAs. Every certificate here passes pkilint's CA linters with nothing at
WARNING or above (apart from the internal-URL findings on a loopback public URL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from soap_service.ca.algorithms import KEY_ALGORITHMS
from soap_service.ca.keys.backend import KeyBackend, NewKey
from soap_service.ca.keys.signer import CASigner
from soap_service.ca.leaf import authority_key_identifier
from soap_service.ca.locations import authority_information_access, crl_distribution_points
from soap_service.ca.profiles import POLICY_OIDS
from soap_service.ca.serials import new_serial
from soap_service.ca.signing import sign_trial, trial_certificate
from soap_service.vocabulary import Brand, ValidationLevel

__all__ = [
    "BRANDS",
    "CODE_SIGNING_BRANDS",
    "KEY_ALGORITHMS",
    "ROOT_NAME",
    "CAMaterial",
    "create_hierarchy",
    "issuing_ca_name",
]

BRANDS = tuple(Brand)  # one TLS issuing CA each, in this order
CODE_SIGNING_BRANDS = (Brand.THAWTE, Brand.SYMANTEC)
ROOT_NAME = "ROOT"

Role = Literal["root", "tls", "codesigning"]

_COUNTRY = "US"
_INSTALLATION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,19}")
_ROOT_VALIDITY = timedelta(days=20 * 366)  # over 20 years, under the BR's 9132-day ceiling
_ISSUING_VALIDITY = timedelta(days=5 * 365 + 1)
_ANY_POLICY = x509.ObjectIdentifier("2.5.29.32.0")


@dataclass(frozen=True)
class CAMaterial:
    name: str  # "ROOT", "SYMANTEC-TLS", ..., "THAWTE-CS", "SYMANTEC-CS"
    role: Role
    brand: Brand | None  # None for the root
    certificate: x509.Certificate
    signer: CASigner  # the key backend's; the private key stays there
    protected_key: bytes = field(repr=False)  # what the key backend gave to store


def issuing_ca_name(brand: Brand, role: Literal["tls", "codesigning"]) -> str:
    """The name of a brand's issuing CA, e.g. ``GEOTRUST-TLS`` or ``THAWTE-CS``."""
    return f"{brand}-{'TLS' if role == 'tls' else 'CS'}"


def create_hierarchy(
    algorithm: str, installation: str, public_url: str, now: datetime, keys: KeyBackend
) -> list[CAMaterial]:
    """A new root and its seven issuing CAs, all with keys of ``algorithm`` made by ``keys``.

    Returns the root first, then the TLS CAs in :data:`BRANDS` order, then the
    code-signing CAs in :data:`CODE_SIGNING_BRANDS` order.
    """
    if not _INSTALLATION_RE.fullmatch(installation):
        raise ValueError("the installation id must be 1-20 letters, digits or '-'")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if algorithm not in KEY_ALGORITHMS:
        raise ValueError(f"unknown key algorithm {algorithm!r}, expected one of {', '.join(KEY_ALGORITHMS)}")
    start = now.astimezone(UTC).replace(microsecond=0)
    root = _root(keys.create(ROOT_NAME, algorithm), installation, start)
    roles: list[tuple[Brand, Literal["tls", "codesigning"]]] = [(brand, "tls") for brand in BRANDS]
    roles += [(brand, "codesigning") for brand in CODE_SIGNING_BRANDS]
    issuing = []
    for brand, role in roles:
        key = keys.create(issuing_ca_name(brand, role), algorithm)
        issuing.append(_issuing(root, brand, role, key, installation, public_url, start))
    return [root, *issuing]


def _name(installation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, _COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"soap_service {installation}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"soap_service {installation} {common_name}"),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _root(key: NewKey, installation: str, start: datetime) -> CAMaterial:
    name = _name(installation, "Root CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.signer.public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.signer.public_key)
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(start + _ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    certificate = sign_trial(trial_certificate(builder, key.signer), key.signer, None)  # self-signed
    return CAMaterial(ROOT_NAME, "root", None, certificate, key.signer, key.stored)


def _issuing(
    root: CAMaterial,
    brand: Brand,
    role: Literal["tls", "codesigning"],
    key: NewKey,
    installation: str,
    public_url: str,
    start: datetime,
) -> CAMaterial:
    display = brand.display_name
    if role == "tls":
        common_name = f"{display} TLS Issuing CA"
        eku = ExtendedKeyUsageOID.SERVER_AUTH
        # An affiliated TLS CA that issues DV, OV and EV carries anyPolicy (BR 7.1.2.10.5).
        policy = _ANY_POLICY
    else:
        common_name = f"{display} Code Signing CA"
        eku = ExtendedKeyUsageOID.CODE_SIGNING
        policy = POLICY_OIDS[ValidationLevel.CS]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(installation, common_name))
        .issuer_name(root.certificate.subject)
        .public_key(key.signer.public_key)
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(start + _ISSUING_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), critical=False)
        .add_extension(
            authority_information_access(public_url, ROOT_NAME, with_ocsp=False),
            critical=False,
        )
        .add_extension(
            crl_distribution_points(public_url, ROOT_NAME),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.signer.public_key), critical=False)
        .add_extension(authority_key_identifier(root.certificate), critical=False)
    )
    certificate = sign_trial(trial_certificate(builder, root.signer), root.signer, root.certificate)
    return CAMaterial(issuing_ca_name(brand, role), role, brand, certificate, key.signer, key.stored)
