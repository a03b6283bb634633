"""The leaf certificate profile: a :class:`LeafRequest` becomes an unsigned certificate.

docs/design.md, "Certificate profiles".
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from soap_service.ca.locations import authority_information_access, crl_distribution_points
from soap_service.ca.profiles import (
    DIGITAL_SIGNATURE_ONLY,
    EXTENDED_KEY_USAGES,
    POLICY_OIDS,
    LeafRequest,
    SubjectOrganization,
)
from soap_service.vocabulary import ValidationLevel


def leaf_builder(
    request: LeafRequest, issuer: x509.Certificate, ca_name: str, public_url: str
) -> x509.CertificateBuilder:
    """The unsigned leaf for ``request``, issued by ``issuer`` (the CA named ``ca_name``)."""
    subject = _subject(request)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(request.public_key)
        .serial_number(request.serial)
        .not_valid_before(_utc(request.not_before, "not_before"))
        .not_valid_after(_utc(request.not_after, "not_after"))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(DIGITAL_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([EXTENDED_KEY_USAGES[request.level]]), critical=False)
    )
    if request.level != ValidationLevel.CS:
        san = x509.SubjectAlternativeName([x509.DNSName(name) for name in request.dns_names])
        # RFC 5280 4.2.1.6: with an empty subject the SAN is critical.
        builder = builder.add_extension(san, critical=len(subject) == 0)
    return (
        builder.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_OIDS[request.level], None)]),
            critical=False,
        )
        .add_extension(
            authority_information_access(public_url, ca_name, with_ocsp=True),
            critical=False,
        )
        .add_extension(
            crl_distribution_points(public_url, ca_name),
            critical=False,
        )
        .add_extension(authority_key_identifier(issuer), critical=False)
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI (key identifier only, as the BR require) copied from ``issuer``'s SKI."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise ValueError("an issuing CA certificate must carry a subject key identifier") from None
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _subject(request: LeafRequest) -> x509.Name:
    if request.level == ValidationLevel.DV:
        return x509.Name([])
    organization = request.organization
    if organization is None:
        raise ValueError(f"a {request.level} certificate needs the validated organization")
    attributes: list[x509.NameAttribute[str]] = []
    if request.level == ValidationLevel.EV:
        attributes += _ev_attributes(organization)
    attributes += _address(organization)
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization.name))
    if request.level == ValidationLevel.CS:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, organization.name))
    return x509.Name(attributes)


def _ev_attributes(organization: SubjectOrganization) -> list[x509.NameAttribute[str]]:
    """The EV Guidelines 7.1.4.2 attributes, in the usual order (the BR order does not rank them)."""
    pairs = (
        (NameOID.BUSINESS_CATEGORY, organization.business_category),
        (NameOID.JURISDICTION_COUNTRY_NAME, organization.jurisdiction_country),
        (NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME, organization.jurisdiction_state),
        (NameOID.JURISDICTION_LOCALITY_NAME, organization.jurisdiction_locality),
        (NameOID.SERIAL_NUMBER, organization.registration_number),
    )
    return [x509.NameAttribute(oid, value) for oid, value in pairs if value]


def _address(organization: SubjectOrganization) -> list[x509.NameAttribute[str]]:
    """C, ST, L in the order of BR 7.1.4.2, leaving out what the order does not carry."""
    pairs = (
        (NameOID.COUNTRY_NAME, organization.country),
        (NameOID.STATE_OR_PROVINCE_NAME, organization.state),
        (NameOID.LOCALITY_NAME, organization.locality),
    )
    return [x509.NameAttribute(oid, value) for oid, value in pairs if value]


def _utc(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware")
    return moment.astimezone(UTC)
