"""CSRs made by the tools partners use, not by ``cryptography``: OpenSSL (``openssl req``),
GnuTLS (``certtool``) and Java (``keytool``), RSA and ECDSA, with and without a subjectAltName
extension. They are checked in under ``tests/fixtures/csr/`` with ``make.sh``, the script that
made them (``TOOLS`` names the versions); the tests need none of the tools.

Each CSR is read as ParseCSR reads it (the RA's ``parse_csr_for_partner``), then reissues an
order that validated its names (docs/design.md, "Reissue rules"), on SQLite and PostgreSQL:
the certificate carries the CSR's key and the names it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import new_order, new_partner
from soap_service.ra.queries import parse_csr_for_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "csr"
ORDER_NAMES = ("example.com", "www.example.com")
SAN_NAMES = ("www.example.com", "example.com")


@dataclass(frozen=True)
class ToolCSR:
    """One CSR of tests/fixtures/csr and what make.sh asked its tool for."""

    file: str
    pem_label: str
    key: tuple[str, int, str | None]
    """(algorithm, size, curve) as ParseCSR answers them."""
    signature_algorithm: str
    subject: tuple[tuple[str, str], ...]
    san_dns_names: tuple[str, ...]
    names: tuple[str, ...]
    """The names of the reissued certificate: the SAN's, then the CN when it is not among them."""

    @property
    def text(self) -> str:
        return (FIXTURES / self.file).read_text(encoding="ascii")


_CN_WWW = (("CN", "www.example.com"),)
_CN_APEX = (("CN", "example.com"),)
_LEGACY_LABEL = "NEW CERTIFICATE REQUEST"  # what certtool and keytool write (RFC 7468, section 7)

CSRS = [
    ToolCSR("openssl-rsa2048-san.csr", "CERTIFICATE REQUEST", ("RSA", 2048, None), "sha256WithRSAEncryption",
            (("C", "DE"), ("ST", "Bayern"), ("L", "München"), ("O", "Müller & Söhne GmbH"), ("OU", "Web"),
             ("CN", "www.example.com")),
            SAN_NAMES, SAN_NAMES),
    ToolCSR("openssl-rsa3072-cn-only.csr", "CERTIFICATE REQUEST", ("RSA", 3072, None), "sha256WithRSAEncryption",
            _CN_APEX, (), ("example.com",)),
    ToolCSR("openssl-rsa2048-pss-san.csr", "CERTIFICATE REQUEST", ("RSA", 2048, None), "rsassaPss with SHA-256",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
    ToolCSR("openssl-ec-p256-san.csr", "CERTIFICATE REQUEST", ("EC", 256, "P-256"), "ecdsa-with-SHA256",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
    ToolCSR("openssl-ec-p384-cn-only.csr", "CERTIFICATE REQUEST", ("EC", 384, "P-384"), "ecdsa-with-SHA384",
            _CN_APEX, (), ("example.com",)),
    ToolCSR("certtool-rsa2048-san.csr", _LEGACY_LABEL, ("RSA", 2048, None), "sha256WithRSAEncryption",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
    ToolCSR("certtool-ec-p256-san.csr", _LEGACY_LABEL, ("EC", 256, "P-256"), "ecdsa-with-SHA256",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
    ToolCSR("keytool-rsa2048-san.csr", _LEGACY_LABEL, ("RSA", 2048, None), "sha256WithRSAEncryption",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
    ToolCSR("keytool-ec-p256-san.csr", _LEGACY_LABEL, ("EC", 256, "P-256"), "ecdsa-with-SHA256",
            _CN_WWW, SAN_NAMES, SAN_NAMES),
]


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


def test_every_checked_in_csr_is_tested_and_no_private_key_is_checked_in() -> None:
    assert sorted(path.name for path in FIXTURES.glob("*.csr")) == sorted(csr.file for csr in CSRS)
    assert sorted(path.name for path in FIXTURES.iterdir()) == sorted(
        [csr.file for csr in CSRS] + ["TOOLS", "make.sh"]
    )
    for csr in CSRS:
        assert "PRIVATE KEY" not in csr.text


@pytest.mark.parametrize("csr", CSRS, ids=[csr.file.removesuffix(".csr") for csr in CSRS])
def test_a_csr_made_by_a_tool_is_parsed_and_reissues_an_order(
    ra: RegistrationAuthority, partner: Partner, csr: ToolCSR
) -> None:
    text = csr.text
    assert text.startswith(f"-----BEGIN {csr.pem_label}-----\n")

    parsed = parse_csr_for_partner(ra, partner.credentials(), text, channel="api")
    assert (parsed.key_algorithm, parsed.key_size, parsed.curve) == csr.key
    assert parsed.signature_algorithm == csr.signature_algorithm
    assert parsed.subject == csr.subject
    assert parsed.san_dns_names == csr.san_dns_names

    order = new_order(ra, partner, product="QuickSSLPremium", names=ORDER_NAMES).order
    outcome = Reissuer(ra).reissue(
        partner.credentials(), ReissueRequest(order.partner_order_id, text, None), channel="api"
    )
    assert not outcome.warnings
    assert outcome.certificate.names == csr.names
    assert outcome.certificate.replaces == order.certificate.serial
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode("ascii"))
    requested = x509.load_pem_x509_csr(text.replace(_LEGACY_LABEL, "CERTIFICATE REQUEST").encode("ascii"))
    assert leaf.public_key() == requested.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert tuple(san.get_values_for_type(x509.DNSName)) == csr.names
    assert list(leaf.subject) == []  # a DV leaf: nothing of the CSR's subject is carried over
