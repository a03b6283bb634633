"""Reading CSRs (docs/design.md, "Reissue rules"): encodings, extraction, the allowlist of signature
algorithms, and every way a CSR is refused.  The reader never refuses a key: a key it cannot load
is a fact (UnloadableKey) that the key policy refuses (tests/test_keypolicy.py)."""

from __future__ import annotations

import datetime
import hashlib
import random
import re
import textwrap
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

import keyfactory as kf
from soap_service.errors import CSRUnreadable, InvalidField, ServiceError
from soap_service.ra.csr import (
    ACCEPTED_SIGNATURES,
    MAX_CSR_CHARS,
    KeyLoadFailure,
    ParsedCSR,
    UnloadableKey,
    parse_csr,
    spki_sha256,
)

ACCEPTED_TEXT = (
    "only RSA (PKCS#1 v1.5, or PSS with MGF1 on the same hash) and ECDSA signatures with SHA-256, "
    "SHA-384 or SHA-512 are accepted"
)


def _read(text: str) -> ParsedCSR:
    """The CSR read and verified (a key the reader could not load fails the test)."""
    reading = parse_csr(text)
    assert isinstance(reading, ParsedCSR), reading
    return reading


def _refusal(text: str) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        parse_csr(text)
    return caught.value


def _unreadable(text: str, *fragments: str) -> CSRUnreadable:
    refusal = _refusal(text)
    assert isinstance(refusal, CSRUnreadable), refusal
    assert (refusal.code, refusal.field) == (-4007, "CSR")
    for fragment in fragments:
        assert fragment in refusal.message, refusal.message
    return refusal


@pytest.fixture(scope="module")
def rsa_csr() -> x509.CertificateSigningRequest:
    return kf.make_csr(
        kf.rsa_key(),
        ("www.Example.com", "example.com"),
        common_name="www.example.com",
        subject=[(NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Example GmbH")],
    )


# ----------------------------------------------------------------------------- encodings


def test_every_accepted_encoding_reads_to_the_same_der(rsa_csr: x509.CertificateSigningRequest) -> None:
    der = kf.csr_der(rsa_csr)
    pem = kf.csr_pem(rsa_csr)
    bare = kf.csr_base64_der(rsa_csr)
    encodings = {
        "pem": pem,
        "old header": pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
        "pem with CRLF and surrounding blanks": "\r\n  " + pem.replace("\n", "\r\n") + "\n\n",
        "pem on one line": pem.replace("\n", ""),
        "bare base64": bare,
        "base64 wrapped at 64": "\n".join(textwrap.wrap(bare, 64)),
        "base64 wrapped at 76 with CRLF and tabs": "\r\n\t".join(textwrap.wrap(bare, 76)) + "\r\n",
    }
    parsed = {name: _read(text) for name, text in encodings.items()}
    expected = hashlib.sha256(der).hexdigest()
    for name, result in parsed.items():
        assert result.der == der, name
        assert result.sha256 == expected, name


def test_extracts_subject_common_names_and_san(rsa_csr: x509.CertificateSigningRequest) -> None:
    parsed = _read(kf.csr_pem(rsa_csr))
    assert parsed.subject == (("C", "DE"), ("O", "Example GmbH"), ("CN", "www.example.com"))
    assert parsed.common_names == ("www.example.com",)
    assert parsed.san_dns_names == ("www.Example.com", "example.com")  # as given: the RA lowercases


def test_subject_keeps_order_repeats_and_unnamed_attributes() -> None:
    csr = kf.make_csr(
        kf.rsa_key(),
        names=(),
        common_name="b.example.org",
        subject=[
            (NameOID.COMMON_NAME, "a.example.org"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "Web"),
            (NameOID.EMAIL_ADDRESS, "hostmaster@example.org"),
        ],
    )
    parsed = _read(kf.csr_pem(csr))
    assert parsed.subject == (
        ("CN", "a.example.org"),
        ("OU", "Web"),
        ("1.2.840.113549.1.9.1", "hostmaster@example.org"),
        ("CN", "b.example.org"),
    )
    assert parsed.common_names == ("a.example.org", "b.example.org")
    assert parsed.san_dns_names == ()


def test_san_keeps_only_dns_names() -> None:
    import ipaddress

    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("a.example.net"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
            x509.RFC822Name("x@example.net"),
            x509.DNSName("*.example.net"),
        ]
    )
    parsed = _read(kf.csr_pem(kf.make_csr(kf.rsa_key(), names=(), extensions=[san])))
    assert parsed.san_dns_names == ("a.example.net", "*.example.net")


def test_rsa_key_facts_and_fingerprint_match_a_certificate_of_the_same_key(
    rsa_csr: x509.CertificateSigningRequest,
) -> None:
    parsed = _read(kf.csr_pem(rsa_csr))
    assert (parsed.key_algorithm, parsed.key_size, parsed.curve) == ("RSA", 2048, None)
    assert parsed.signature_algorithm == "sha256WithRSAEncryption"
    spki = kf.rsa_key().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parsed.spki_sha256 == hashlib.sha256(spki).hexdigest()

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(kf.rsa_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(kf.rsa_key(), hashes.SHA256())
    )
    assert spki_sha256(certificate.public_key()) == parsed.spki_sha256
    assert spki_sha256(kf.rsa_key(index=1).public_key()) != parsed.spki_sha256


@pytest.mark.parametrize(
    ("curve", "hash_algorithm", "size", "signature"),
    [
        ("P-256", hashes.SHA256(), 256, "ecdsa-with-SHA256"),
        ("P-384", hashes.SHA384(), 384, "ecdsa-with-SHA384"),
    ],
)
def test_ec_key_facts(curve: str, hash_algorithm: kf.SigningHash, size: int, signature: str) -> None:
    parsed = _read(kf.csr_pem(kf.make_csr(kf.ec_key(curve), hash_algorithm=hash_algorithm)))
    assert (parsed.key_algorithm, parsed.key_size, parsed.curve) == ("EC", size, curve)
    assert parsed.signature_algorithm == signature


def test_parsing_has_no_key_policy() -> None:
    """Keys that keypolicy refuses still parse: refusing them is not this module's job."""
    assert _read(kf.csr_pem(kf.make_csr(kf.ec_key("secp256k1")))).curve == "secp256k1"
    assert _read(kf.csr_pem(kf.make_csr(kf.ec_key("P-224")))).curve == "P-224"
    assert _read(kf.csr_pem(kf.make_csr(kf.ec_key("P-521"), hash_algorithm=hashes.SHA512()))).curve == "P-521"
    assert _read(kf.csr_pem(kf.make_csr(kf.rsa_key(1024)))).key_size == 1024
    assert _read(kf.csr_pem(kf.make_csr(kf.rsa_key(2048, exponent=3)))).key_size == 2048
    assert _read(kf.csr_pem(kf.make_csr(kf.close_prime_rsa_key()))).key_algorithm == "RSA"


def test_rsa_pss_signature_is_read() -> None:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pss.example.com")])
    )
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    csr = builder.sign(kf.rsa_key(), hashes.SHA256(), rsa_padding=pss)
    assert _read(kf.csr_pem(csr)).signature_algorithm == "rsassaPss with SHA-256"


def test_parsed_csr_is_frozen(rsa_csr: x509.CertificateSigningRequest) -> None:
    parsed: ParsedCSR = _read(kf.csr_pem(rsa_csr))
    with pytest.raises(AttributeError):
        parsed.sha256 = "0" * 64  # type: ignore[misc]


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("text", ["", "   ", "\r\n\t\n"])
def test_empty_csr_is_a_missing_field(text: str) -> None:
    refusal = _refusal(text)
    assert isinstance(refusal, InvalidField)
    assert (refusal.code, refusal.field, refusal.message) == (-2019, "CSR", "CSR is missing")


def test_garbage_is_unreadable_and_not_echoed() -> None:
    refusal = _unreadable("this is not a CSR; password=hunter2", "neither PEM nor base64-encoded DER")
    assert "hunter2" not in refusal.message


def test_base64_of_something_else_is_unreadable() -> None:
    _unreadable("aGVsbG8gd29ybGQh", "DER-encoded PKCS#10 certificate request")


def test_truncated_der_is_unreadable(rsa_csr: x509.CertificateSigningRequest) -> None:
    _unreadable(kf.der_to_pem(kf.csr_der(rsa_csr)[:-20]), "truncated")


def test_trailing_bytes_are_unreadable(rsa_csr: x509.CertificateSigningRequest) -> None:
    _unreadable(kf.der_to_pem(kf.csr_der(rsa_csr) + b"\x00\x00"), "trailing bytes")


def test_oversized_input_is_refused_before_decoding() -> None:
    text = "A" * (MAX_CSR_CHARS + 1)
    _unreadable(text, f"{MAX_CSR_CHARS + 1} characters", f"at most {MAX_CSR_CHARS}")


def test_input_of_exactly_the_limit_is_read_as_usual(rsa_csr: x509.CertificateSigningRequest) -> None:
    pem = kf.csr_pem(rsa_csr)
    padded = pem + " " * (MAX_CSR_CHARS - len(pem))
    assert len(padded) == MAX_CSR_CHARS
    assert _read(padded).der == kf.csr_der(rsa_csr)


def test_broken_signature_is_unreadable() -> None:
    _unreadable(kf.broken_signature_csr_pem(), "signature does not verify")
    _unreadable(kf.broken_signature_csr_pem(kf.ec_key("P-384")), "signature does not verify")


def test_csr_signed_by_another_key_is_unreadable() -> None:
    genuine = kf.make_csr(kf.rsa_key(), ("a.example.com",))
    forged = kf.make_csr(kf.rsa_key(index=1), ("a.example.com",))
    # the request info (with the first key) and the signature of the second key
    algorithm = kf.der_sequence(kf.der_oid("1.2.840.113549.1.1.11"), kf.der_null())
    der = kf.der_sequence(genuine.tbs_certrequest_bytes, algorithm, kf.der_bit_string(forged.signature))
    _unreadable(kf.der_to_pem(der), "signature does not verify", "another key")


@pytest.mark.parametrize("key_kind", ["rsa", "ec"])
def test_sha1_signature_is_refused_as_sha1(key_kind: str) -> None:
    key = kf.rsa_key() if key_kind == "rsa" else kf.ec_key()
    name = "sha1WithRSAEncryption" if key_kind == "rsa" else "ecdsa-with-SHA1"
    refusal = _unreadable(kf.sha1_csr_pem(key), f"signed with SHA-1 ({name}): {ACCEPTED_TEXT}")
    assert "does not verify" not in refusal.message
    # Whatever cryptography thinks of SHA-1, the message names the hash, not a bad signature.
    csr = x509.load_pem_x509_csr(kf.sha1_csr_pem(key).encode())
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA1)


def test_md5_signature_is_refused_as_md5() -> None:
    der = kf.legacy_signed_csr_der(kf.rsa_key(), hashes.MD5())
    _unreadable(kf.der_to_pem(der), "MD5 (md5WithRSAEncryption)", ACCEPTED_TEXT)


def test_sha224_signature_is_refused() -> None:
    csr = kf.make_csr(kf.rsa_key(), hash_algorithm=hashes.SHA224())
    _unreadable(kf.csr_pem(csr), "SHA-224 (sha224WithRSAEncryption)", ACCEPTED_TEXT)


def test_rsa_pss_with_sha1_is_refused() -> None:
    """The hash of RSASSA-PSS is in its parameters, not in the OID: it is checked too."""
    csr = kf.make_csr(kf.rsa_key())
    pss_sha1 = kf.der_sequence(
        kf.der_oid("1.2.840.113549.1.1.10"),
        kf.der_sequence(),  # RSASSA-PSS-params with every default: SHA-1, MGF1-SHA1, salt 20
    )
    signature = kf.rsa_key().sign(
        csr.tbs_certrequest_bytes, padding.PSS(padding.MGF1(hashes.SHA1()), 20), hashes.SHA1()
    )
    der = kf.der_sequence(csr.tbs_certrequest_bytes, pss_sha1, kf.der_bit_string(signature))
    _unreadable(kf.der_to_pem(der), "SHA-1 (rsassaPss)", ACCEPTED_TEXT)


def test_pem_of_another_type_is_refused_by_name(rsa_csr: x509.CertificateSigningRequest) -> None:
    pem = kf.csr_pem(rsa_csr).replace("CERTIFICATE REQUEST", "PRIVATE KEY")
    refusal = _unreadable(pem, "PEM PRIVATE KEY, not a CERTIFICATE REQUEST")
    assert kf.csr_base64_der(rsa_csr)[:40] not in refusal.message


def test_text_outside_the_pem_block_is_refused(rsa_csr: x509.CertificateSigningRequest) -> None:
    _unreadable("Certificate Request:\n    Data: ...\n" + kf.csr_pem(rsa_csr), "text outside its PEM block")
    _unreadable(kf.csr_pem(rsa_csr) + "trailing words\n", "text outside its PEM block")


def test_two_pem_blocks_are_refused(rsa_csr: x509.CertificateSigningRequest) -> None:
    _unreadable(kf.csr_pem(rsa_csr) * 2, "2 PEM blocks")


def test_mismatched_or_damaged_armour_is_refused(rsa_csr: x509.CertificateSigningRequest) -> None:
    pem = kf.csr_pem(rsa_csr)
    mismatched = pem.replace("END CERTIFICATE REQUEST", "END NEW CERTIFICATE REQUEST")
    _unreadable(mismatched, "begins with CERTIFICATE REQUEST but ends with NEW CERTIFICATE REQUEST")
    _unreadable(pem.split("-----END")[0], "PEM armour is incomplete")
    made_up = pem.replace("END CERTIFICATE REQUEST", "END ZQX031")
    refusal = _unreadable(made_up, "begins with CERTIFICATE REQUEST but ends with another label")
    assert "ZQX031" not in refusal.message


def test_a_made_up_pem_label_is_not_quoted_back(rsa_csr: x509.CertificateSigningRequest) -> None:
    """Answers never quote request text: only well-known labels (a pasted PRIVATE KEY) are named."""
    pem = kf.csr_pem(rsa_csr).replace("CERTIFICATE REQUEST", "ZQX031 SECRET")
    refusal = _unreadable(pem, "a PEM block of another kind, not a CERTIFICATE REQUEST")
    assert "ZQX031" not in refusal.message and "SECRET" not in refusal.message


def test_pem_body_that_is_not_base64_is_refused(rsa_csr: x509.CertificateSigningRequest) -> None:
    lines = kf.csr_pem(rsa_csr).splitlines()
    lines[2] = lines[2][:10] + "!*" + lines[2][12:]
    _unreadable("\n".join(lines), "PEM block is not valid base64")


# The pattern the PEM reader used until issue 6: a lazy body under DOTALL, quadratic on
# "-----BEGIN A" repeated. The linear scan must find exactly the blocks it found.
_OLD_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{1,40})-----(?P<body>.*?)-----END (?P<end>[A-Z0-9 ]{1,40})-----",
    re.DOTALL,
)
_PEM_PIECES = (
    "-----BEGIN ", "-----END ", "-----", "----", "-", "CERTIFICATE REQUEST", "A", "a", " ", "\n", "AB0",
    "X" * 41, "MIIB", "=", "-----BEGIN CERTIFICATE REQUEST-----", "-----END CERTIFICATE REQUEST-----",
)


def test_the_linear_pem_scan_finds_what_the_old_pattern_found() -> None:
    from soap_service.ra.csr import _pem_blocks

    generator = random.Random(6)
    for _ in range(20_000):
        text = "".join(generator.choice(_PEM_PIECES) for _ in range(generator.randint(0, 12)))
        expected = [(m.start(), m.end(), m["label"], m["end"], m["body"]) for m in _OLD_PEM_BLOCK.finditer(text)]
        found = [(b.start, b.end, b.label, b.end_label, b.body) for b in _pem_blocks(text)]
        assert found == expected, text


def invalid_point_csr_pem() -> str:
    """A CSR whose EC point is not on its curve (its last byte of y flipped)."""
    key = kf.ec_key("P-256", index=7)
    der = bytearray(kf.csr_der(kf.make_csr(key)))
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    at = bytes(der).find(point)
    assert at > 0
    der[at + len(point) - 1] ^= 0x01  # y no longer matches x: not on the curve
    return kf.der_to_pem(bytes(der))


def unsupported_curve_csr_pem() -> str:
    """A CSR (ecdsa-with-SHA256) whose key names a curve OID that cryptography does not know."""
    key = kf.ec_key("P-256")
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    spki = kf.der_sequence(
        kf.der_sequence(kf.der_oid("1.2.840.10045.2.1"), kf.der_oid("1.3.6.1.4.1.99999.1")),
        kf.der_bit_string(point),
    )
    tbs = kf.request_info_with_key(spki)
    return kf.der_to_pem(kf.assemble_csr(tbs, "1.2.840.10045.4.3.2", key.sign(tbs, ec.ECDSA(hashes.SHA256())), False))


@pytest.mark.parametrize(
    ("make", "failure"),
    [(invalid_point_csr_pem, KeyLoadFailure.INVALID), (unsupported_curve_csr_pem, KeyLoadFailure.UNSUPPORTED)],
    ids=["point-off-the-curve", "unknown-curve"],
)
def test_a_key_that_cannot_be_loaded_is_reported_not_refused(make: Callable[[], str], failure: KeyLoadFailure) -> None:
    """The reader only reads: a key cryptography cannot load is a fact for the key policy (-4009 there)."""
    assert parse_csr(make()) == UnloadableKey(failure)


def test_csr_version_other_than_1_is_refused(rsa_csr: x509.CertificateSigningRequest) -> None:
    tbs = bytearray(rsa_csr.tbs_certrequest_bytes)
    # CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), ... }: the version is at
    # the first INTEGER after the SEQUENCE header (30 82 xx xx 02 01 00)
    assert tbs[4:7] == b"\x02\x01\x00"
    tbs[6] = 0x01
    algorithm = kf.der_sequence(kf.der_oid("1.2.840.113549.1.1.11"), kf.der_null())
    signature = kf.rsa_key().sign(bytes(tbs), padding.PKCS1v15(), hashes.SHA256())
    der = kf.der_sequence(bytes(tbs), algorithm, kf.der_bit_string(signature))
    _unreadable(kf.der_to_pem(der), "version")


# ----------------------------------------------------------------------------- the signature allowlist

_SHA256, _SHA384, _SHA512 = "2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3"
_SHA3_256 = "2.16.840.1.101.3.4.2.8"
_MGF1 = "1.2.840.113549.1.1.8"
_HASH_OIDS = {"sha256": _SHA256, "sha384": _SHA384, "sha512": _SHA512, "sha3-256": _SHA3_256}


def _hash_identifier(oid: str) -> bytes:
    return kf.der_sequence(kf.der_oid(oid), kf.der_null())


def _pss_csr_pem(hash_algorithm: hashes.HashAlgorithm, mgf_hash: hashes.HashAlgorithm, mgf_oid: str = _MGF1) -> str:
    """An RSASSA-PSS CSR with explicit parameters, genuinely signed (salt of the digest's length)."""
    key = kf.rsa_key()
    tbs = kf.make_csr(key).tbs_certrequest_bytes
    parameters = kf.der_sequence(
        kf.der_tlv(0xA0, _hash_identifier(_HASH_OIDS[hash_algorithm.name])),
        kf.der_tlv(0xA1, kf.der_sequence(kf.der_oid(mgf_oid), _hash_identifier(_HASH_OIDS[mgf_hash.name]))),
        kf.der_tlv(0xA2, kf.der_integer(hash_algorithm.digest_size)),
    )
    algorithm = kf.der_sequence(kf.der_oid("1.2.840.113549.1.1.10"), parameters)
    signature = key.sign(tbs, padding.PSS(padding.MGF1(mgf_hash), hash_algorithm.digest_size), hash_algorithm)
    return kf.der_to_pem(kf.der_sequence(tbs, algorithm, kf.der_bit_string(signature)))


def _signed_csr_pem(key: kf.CertificateIssuerPrivateKeyTypes, oid: str, sign: Callable[[bytes], bytes]) -> str:
    """A CSR of ``key`` whose signature algorithm is ``oid`` (no parameters) and signature ``sign(tbs)``."""
    tbs = kf.make_csr(key, hash_algorithm=None if oid in ("1.3.101.112", "1.3.101.113") else hashes.SHA256())
    info = tbs.tbs_certrequest_bytes
    return kf.der_to_pem(kf.assemble_csr(info, oid, sign(info), null_params=False))


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: kf.csr_pem(kf.make_csr(kf.rsa_key(), hash_algorithm=hashes.SHA256())), "sha256WithRSAEncryption"),
        (lambda: kf.csr_pem(kf.make_csr(kf.rsa_key(), hash_algorithm=hashes.SHA384())), "sha384WithRSAEncryption"),
        (lambda: kf.csr_pem(kf.make_csr(kf.rsa_key(), hash_algorithm=hashes.SHA512())), "sha512WithRSAEncryption"),
        (lambda: _pss_csr_pem(hashes.SHA256(), hashes.SHA256()), "rsassaPss with SHA-256"),
        (lambda: _pss_csr_pem(hashes.SHA384(), hashes.SHA384()), "rsassaPss with SHA-384"),
        (lambda: _pss_csr_pem(hashes.SHA512(), hashes.SHA512()), "rsassaPss with SHA-512"),
        (lambda: kf.csr_pem(kf.make_csr(kf.ec_key(), hash_algorithm=hashes.SHA256())), "ecdsa-with-SHA256"),
        (lambda: kf.csr_pem(kf.make_csr(kf.ec_key(), hash_algorithm=hashes.SHA384())), "ecdsa-with-SHA384"),
        (lambda: kf.csr_pem(kf.make_csr(kf.ec_key("P-384"), hash_algorithm=hashes.SHA512())), "ecdsa-with-SHA512"),
    ],
    ids=["rsa-sha256", "rsa-sha384", "rsa-sha512", "pss-sha256", "pss-sha384", "pss-sha512",
         "ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512"],
)
def test_every_algorithm_on_the_allowlist_is_read(make: Callable[[], str], name: str) -> None:
    assert _read(make()).signature_algorithm == name


def test_the_allowlist_is_exactly_rsa_pss_and_ecdsa_with_sha2() -> None:
    assert sorted(ACCEPTED_SIGNATURES) == sorted([
        "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13",  # sha256/384/512WithRSA
        "1.2.840.113549.1.1.10",  # RSASSA-PSS, its hash and MGF1 checked apart
        "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4",  # ecdsa-with-SHA256/384/512
    ])


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: kf.csr_pem(kf.make_csr(kf.ed25519_key())), "ED25519"),
        (lambda: kf.csr_pem(kf.make_csr(kf.ed448_key())), "ED448"),
        (
            lambda: _signed_csr_pem(
                kf.rsa_key(), "2.16.840.1.101.3.4.3.14",
                lambda tbs: kf.rsa_key().sign(tbs, padding.PKCS1v15(), hashes.SHA3_256()),
            ),
            "SHA3-256 (RSA-SHA3-256)",
        ),
        (
            lambda: _signed_csr_pem(
                kf.ec_key(), "2.16.840.1.101.3.4.3.10", lambda tbs: kf.ec_key().sign(tbs, ec.ECDSA(hashes.SHA3_256()))
            ),
            "SHA3-256 (ecdsa_with_SHA3-256)",
        ),
        (lambda: kf.csr_pem(kf.make_csr(kf.dsa_key(), hash_algorithm=hashes.SHA256())), "SHA-256 (dsa-with-SHA256)"),
        (lambda: _pss_csr_pem(hashes.SHA3_256(), hashes.SHA3_256()), "SHA3-256 (rsassaPss)"),
        (
            lambda: _pss_csr_pem(hashes.SHA256(), hashes.SHA384()),
            "rsassaPss with SHA-256 and a mask generation other than MGF1 with SHA-256",
        ),
        (
            lambda: _pss_csr_pem(hashes.SHA256(), hashes.SHA256(), mgf_oid="1.2.3.4"),
            "rsassaPss with parameters this service cannot read",
        ),
        (
            lambda: _signed_csr_pem(
                kf.rsa_key(), "1.2.3.4.5", lambda tbs: kf.rsa_key().sign(tbs, padding.PKCS1v15(), hashes.SHA256())
            ),
            "1.2.3.4.5",
        ),
    ],
    ids=["ed25519", "ed448", "rsa-sha3-256", "ecdsa-sha3-256", "dsa-sha256", "pss-sha3-256", "pss-mgf1-sha384",
         "pss-other-mgf", "unknown-oid"],
)
def test_a_signature_algorithm_off_the_allowlist_is_refused_by_name(make: Callable[[], str], named: str) -> None:
    """Not a list of weak algorithms: strong ones that are not on the allowlist are refused too (-4007)."""
    _unreadable(make(), f"the CSR is signed with {named}: {ACCEPTED_TEXT}")


def test_a_very_long_unknown_oid_is_not_quoted() -> None:
    oid = "1.2." + ".".join(["12345"] * 25)  # 52 bytes of DER: cryptography reads up to 63
    pem = _signed_csr_pem(kf.rsa_key(), oid, lambda tbs: kf.rsa_key().sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
    refusal = _unreadable(pem, "an algorithm of an unknown, very long OID")
    assert "12345" not in refusal.message


def test_a_signature_algorithm_of_another_key_type_does_not_verify() -> None:
    """ecdsa-with-SHA256 on a CSR of an RSA key (signed by an EC key): not verifiable, -4007 as before."""
    pem = _signed_csr_pem(
        kf.rsa_key(), "1.2.840.10045.4.3.2", lambda tbs: kf.ec_key().sign(tbs, ec.ECDSA(hashes.SHA256()))
    )
    _unreadable(pem, "signature does not verify")
