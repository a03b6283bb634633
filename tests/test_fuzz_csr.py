"""Fuzzing the CSR reader and the key policy (tracker issue 10): random text, random bytes, and
mutated DER and PEM of real CSRs (tests/csr_seeds.py) go through ``parse_csr`` and
``KeyPolicy.check_csr``. Only a documented refusal may come out (-2019 for an empty field,
-4007 unreadable, -4009 key refused: docs/design.md, "Error model"), never another exception;
and a CSR that is accepted still meets the key policy (docs/design.md, "Key policy"): an RSA
key of an accepted size or an EC key on an accepted curve, encoded as a certificate carries
it, and a self-signature that verifies. Profiles: tests/fuzz_support.py.
"""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import example, given
from hypothesis import strategies as st

from csr_seeds import FIXTURE_NAMES, der_to_pem, seed_ders
from fuzz_support import fuzz_settings, mutated
from keyfactory import assemble_csr, ec_key, make_csr, rsa_key
from soap_service.errors import CSRUnreadable, InvalidField, KeyRefused, ServiceError
from soap_service.keyalgorithms import EC_CURVES, RSA_SIZES
from soap_service.ra.csr import MAX_CSR_CHARS, KeyEncoding, ParsedCSR, parse_csr
from soap_service.ra.keypolicy import KeyPolicy

DOCUMENTED = {InvalidField: -2019, CSRUnreadable: -4007, KeyRefused: -4009}
"""What the CSR reader and the key policy may raise, with the code each answers."""

POLICY = KeyPolicy()
SEEDS = list(seed_ders().values())


def assert_policy_holds(parsed: ParsedCSR) -> None:
    """What an accepted CSR must be, read again from its own DER by cryptography."""
    csr = x509.load_der_x509_csr(parsed.der)
    assert csr.is_signature_valid
    key = csr.public_key()
    assert parsed.key_encoding in (KeyEncoding.RSA_ENCRYPTION, KeyEncoding.NAMED_CURVE)
    if isinstance(key, rsa.RSAPublicKey):
        assert parsed.key_algorithm == "RSA" and key.key_size in RSA_SIZES
        assert key.public_numbers().e == 65537 and key.public_numbers().n % 2 == 1
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey), type(key)
        assert parsed.curve in EC_CURVES and isinstance(key.curve, EC_CURVES[parsed.curve])
    assert parsed.public_key.public_numbers() == key.public_numbers()
    assert all(isinstance(name, str) for name in (*parsed.san_dns_names, *parsed.common_names))


def check(text: str) -> None:
    """``text`` through the reader and the policy: accepted within the policy, or refused as documented."""
    try:
        parsed = POLICY.check_csr(parse_csr(text))
    except ServiceError as refusal:
        assert type(refusal) in DOCUMENTED, type(refusal)
        assert refusal.code == DOCUMENTED[type(refusal)]
        assert refusal.message and refusal.field in ("CSR", None)
        return
    assert_policy_holds(parsed)


def test_every_seed_is_read_or_refused_as_documented() -> None:
    """The unmutated seeds themselves, and that the fuzz starts from both outcomes."""
    accepted = 0
    for der in SEEDS:
        check(der_to_pem(der))
        try:
            POLICY.check_csr(parse_csr(der_to_pem(der)))
            accepted += 1
        except ServiceError:
            pass
    assert 0 < accepted < len(SEEDS)


@fuzz_settings(150)
@given(st.text(max_size=2000))
@example("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----")
@example("-----BEGIN CERTIFICATE REQUEST-----" * 100)
@example("MA==")
@example("\x00")
@example("x" * (MAX_CSR_CHARS + 1))
def test_random_text(text: str) -> None:
    check(text)


@fuzz_settings(150)
@given(st.binary(max_size=3000), st.booleans())
def test_random_bytes_as_pem_or_base64(der: bytes, armoured: bool) -> None:
    check(der_to_pem(der) if armoured else base64.b64encode(der).decode("ascii"))


@fuzz_settings(400)
@given(mutated(SEEDS), st.sampled_from(["pem", "base64", "pem-other-label"]))
def test_mutated_der(der: bytes, form: str) -> None:
    if form == "pem":
        check(der_to_pem(der))
    elif form == "base64":
        check(base64.b64encode(der).decode("ascii"))
    else:
        check(der_to_pem(der, "NEW CERTIFICATE REQUEST"))


PEM_SEEDS = [der_to_pem(der).encode("ascii") for der in SEEDS]


@fuzz_settings(300)
@given(mutated(PEM_SEEDS, max_mutations=3))
def test_mutated_pem_text(pem: bytes) -> None:
    """The PEM text itself mutated: armour lines, base64 alphabet, line ends, bytes that are not ASCII."""
    check(pem.decode("latin-1"))


@pytest.mark.parametrize("name", sorted(seed_ders()))
def test_each_seed_truncated_at_every_tenth_byte(name: str) -> None:
    """Deterministic and exhaustive where random picks are sparse: every 10th cut of every seed."""
    der = seed_ders()[name]
    for end in range(0, len(der), 10):
        check(der_to_pem(der[:end]))


SIGNERS: list[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = [rsa_key(2048), ec_key("P-256"), ec_key("P-384")]
SIGNED_INFOS = [
    make_csr(key, names=FIXTURE_NAMES, common_name="example.com").tbs_certrequest_bytes for key in SIGNERS
]


def signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, info: bytes) -> bytes:
    """A CSR around ``info`` (a CertificationRequestInfo, mutated or not) signed by ``key``."""
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
        return assemble_csr(info, "1.2.840.113549.1.1.11", signature, null_params=True)
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return assemble_csr(info, "1.2.840.10045.4.3.2", signature, null_params=False)


@fuzz_settings(300)
@given(st.integers(0, len(SIGNERS) - 1), st.data())
def test_mutated_request_info_signed_again(signer: int, data: st.DataObject) -> None:
    """The request info (version, subject, key, attributes) mutated and signed again by the key, so
    that the signature verifies whenever the key itself survived: the mutation reaches the subject's
    and the extensions' readers, and the key policy, not just the signature check."""
    info = data.draw(mutated([SIGNED_INFOS[signer]]))
    check(der_to_pem(signed(SIGNERS[signer], info)))


def test_a_subject_value_of_a_type_its_attribute_cannot_have_is_unreadable() -> None:
    """Found by the fuzz above: the CN's OID one byte shorter (2.5.4) makes its value a BIT STRING,
    which cryptography refuses with a TypeError when the subject is read; now -4007."""
    cn = b"\x06\x03U\x04\x03\x0c\x0bexample.com"
    for key, info in zip(SIGNERS, SIGNED_INFOS, strict=True):
        assert cn in info
        text = der_to_pem(signed(key, info.replace(cn, b"\x06\x02U\x04\x03\x0c\x0bexample.com", 1)))
        with pytest.raises(CSRUnreadable, match="subject cannot be read"):
            parse_csr(text)
        check(text)
