"""What the registration authority asks the CA to sign: the leaf request, and what each validation level puts in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from soap_service.vocabulary import ValidationLevel

# The one reserved CA/Browser Forum policy OID of each level.
POLICY_OIDS: dict[ValidationLevel, x509.ObjectIdentifier] = {
    ValidationLevel.DV: x509.ObjectIdentifier("2.23.140.1.2.1"),
    ValidationLevel.OV: x509.ObjectIdentifier("2.23.140.1.2.2"),
    ValidationLevel.EV: x509.ObjectIdentifier("2.23.140.1.1"),
    ValidationLevel.CS: x509.ObjectIdentifier("2.23.140.1.4.1"),
}

DIGITAL_SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
"""The keyUsage of every leaf (keyEncipherment is left out for RSA keys too) and of the OCSP
responder certificates: they only sign."""

EXTENDED_KEY_USAGES: dict[ValidationLevel, x509.ObjectIdentifier] = {
    ValidationLevel.DV: ExtendedKeyUsageOID.SERVER_AUTH,
    ValidationLevel.OV: ExtendedKeyUsageOID.SERVER_AUTH,
    ValidationLevel.EV: ExtendedKeyUsageOID.SERVER_AUTH,
    ValidationLevel.CS: ExtendedKeyUsageOID.CODE_SIGNING,
}


@dataclass(frozen=True)
class SubjectOrganization:
    """The organization the CA validated, as it goes into the subject."""

    name: str
    country: str
    state: str | None
    locality: str | None
    business_category: str | None = None  # EV only, e.g. "Private Organization"
    jurisdiction_country: str | None = None  # EV only
    jurisdiction_state: str | None = None
    jurisdiction_locality: str | None = None
    registration_number: str | None = None  # EV only (subject serialNumber)


@dataclass(frozen=True)
class LeafRequest:
    """Everything the CA needs to build one end-entity certificate; nothing comes from a CSR."""

    level: ValidationLevel
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    dns_names: tuple[str, ...]  # lowercase; empty for CS
    organization: SubjectOrganization | None  # required for OV, EV, CS; ignored for DV
    not_before: datetime  # tz-aware UTC
    not_after: datetime  # tz-aware UTC, computed by the RA (inclusive period)
    serial: int
