"""Delegated OCSP responder certificates (docs/design.md, "OCSP").

One per issuing CA, made with a key of the CA's own algorithm by the key backend, and signed by
the CA through its signer. The profile is the Baseline Requirements' OCSP responder certificate
(BR 7.1.2.8): extKeyUsage id-kp-OCSPSigning alone, id-pkix-ocsp-nocheck, keyUsage
digitalSignature (critical), the AKI from the CA's SKI, its own SKI (pkilint warns without
one), no AIA, no CRL distribution point, no
certificate policies. Because id-pkix-ocsp-nocheck tells relying parties never to check its own
revocation, it lives :data:`RESPONDER_VALIDITY` (30 days) and a new one is made
:data:`RENEWAL_MARGIN` (7 days) before the newest one expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from soap_service.ca.algorithms import PublicKey
from soap_service.ca.keys.backend import KeyBackend
from soap_service.ca.keys.signer import CASigner
from soap_service.ca.leaf import authority_key_identifier
from soap_service.ca.profiles import DIGITAL_SIGNATURE_ONLY
from soap_service.ca.serials import new_serial
from soap_service.ca.signing import sign_trial, trial_certificate

__all__ = [
    "BACKDATE",
    "RENEWAL_MARGIN",
    "RESPONDER_VALIDITY",
    "ResponderMaterial",
    "create_responder",
    "key_algorithm_of",
    "needs_renewal",
]

RESPONDER_VALIDITY = timedelta(days=30)
"""How long a responder certificate is valid: short, since nocheck makes it unrevocable in practice."""
RENEWAL_MARGIN = timedelta(days=7)
"""A CA whose newest responder expires within this gets a new one."""
BACKDATE = timedelta(minutes=5)
"""notBefore is this much before now, so a relying party whose clock lags a little accepts it."""

_MAX_COMMON_NAME = 64  # ub-common-name


@dataclass(frozen=True)
class ResponderMaterial:
    """A new responder: its certificate, its signer and what the key backend gave to store."""

    certificate: x509.Certificate
    signer: CASigner
    protected_key: bytes = field(repr=False)


def key_algorithm_of(public_key: PublicKey) -> str:
    """The key algorithm's setting spelling (``rsa-2048``, ``ecdsa-p256``...) of a CA key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return "ecdsa-p256"
        if isinstance(public_key.curve, ec.SECP384R1):
            return "ecdsa-p384"
    raise ValueError("a CA key is RSA or ECDSA on P-256 or P-384")


def needs_renewal(newest_not_after: datetime | None, now: datetime) -> bool:
    """Whether a CA whose newest responder expires at ``newest_not_after`` (None: it has none) needs one."""
    return newest_not_after is None or newest_not_after - RENEWAL_MARGIN <= now


def _subject(ca_certificate: x509.Certificate) -> x509.Name:
    attributes = [
        attribute
        for attribute in ca_certificate.subject
        if attribute.oid in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME)
    ]
    common_names = ca_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(common_names[0].value) if common_names else "CA"
    common_name = (base + " OCSP")[:_MAX_COMMON_NAME] if len(base) + 5 <= _MAX_COMMON_NAME else "OCSP Responder"
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def create_responder(
    ca_name: str, ca_certificate: x509.Certificate, ca_signer: CASigner, keys: KeyBackend, now: datetime
) -> ResponderMaterial:
    """A new delegated responder certificate for the CA ``ca_name``, its key made by ``keys``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start = now.astimezone(UTC).replace(microsecond=0) - BACKDATE
    new_key = keys.create(f"{ca_name}-OCSP", key_algorithm_of(ca_signer.public_key))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(ca_certificate))
        .issuer_name(ca_certificate.subject)
        .public_key(new_key.signer.public_key)
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(start + RESPONDER_VALIDITY)
        .add_extension(authority_key_identifier(ca_certificate), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(new_key.signer.public_key), critical=False)
        .add_extension(DIGITAL_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    certificate = sign_trial(trial_certificate(builder, ca_signer), ca_signer, ca_certificate)
    return ResponderMaterial(certificate, new_key.signer, new_key.stored)
