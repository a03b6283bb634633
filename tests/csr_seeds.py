"""The CSRs the fuzz and corpus tests start from: every fixture of tests/fixtures/csr (made by
openssl, certtool and keytool, tests/fixtures/csr/make.sh) and a few of tests/keyfactory's that
the fixtures lack (keys and signatures the policy refuses)."""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyfactory import (
    broken_signature_csr_der,
    csr_der,
    der_to_pem,
    ec_key,
    ed25519_key,
    make_csr,
    rsa_key,
    sha1_csr_der,
)

__all__ = ["FIXTURE_NAMES", "der_to_pem", "fixture_pems", "seed_ders"]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "csr"
FIXTURE_NAMES = ("example.com", "www.example.com")
"""The names the fixtures ask for (tests/fixtures/csr/make.sh)."""


def fixture_pems() -> dict[str, str]:
    """Each fixture's PEM text, by file name."""
    return {path.name: path.read_text(encoding="ascii") for path in sorted(FIXTURES.glob("*.csr"))}


def pem_to_der(pem: str) -> bytes:
    return x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)


@functools.cache
def seed_ders() -> dict[str, bytes]:
    """Every seed CSR's DER, by name: the fixtures, then keyfactory's."""
    seeds = {name: pem_to_der(pem) for name, pem in fixture_pems().items()}
    made = {
        "keyfactory-rsa2048": make_csr(rsa_key(2048), names=FIXTURE_NAMES),
        "keyfactory-p384": make_csr(ec_key("P-384"), names=FIXTURE_NAMES, common_name="example.com"),
        "keyfactory-rsa1024": make_csr(rsa_key(1024), names=FIXTURE_NAMES),
        "keyfactory-p521": make_csr(ec_key("P-521"), names=FIXTURE_NAMES),
        "keyfactory-ed25519": make_csr(ed25519_key(), names=FIXTURE_NAMES),
    }
    seeds.update({name: csr_der(csr) for name, csr in made.items()})
    seeds["keyfactory-sha1"] = sha1_csr_der(rsa_key(2048))
    seeds["keyfactory-broken-signature"] = broken_signature_csr_der(ec_key("P-256"))
    return seeds

