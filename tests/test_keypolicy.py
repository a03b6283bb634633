"""Which keys are certified (docs/design.md, "Reissue rules"): one KeyPolicy for sizes, exponent,
curves, types, weak keys, keys the CSR reader could not load, the published blocklist and our own
blocked-key table."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

import keyfactory as kf
from soap_service.ca import der
from soap_service.errors import CSRUnreadable, KeyRefused
from soap_service.ra import keypolicy
from soap_service.ra.csr import KeyEncoding, KeyLoadFailure, ParsedCSR, UnloadableKey, parse_csr, spki_sha256
from soap_service.ra.keypolicy import KeyPolicy, blocklist_available

REPO = Path(__file__).resolve().parent.parent

POLICY = KeyPolicy()
check_key = POLICY.check_key


def _refusal(public_key: PublicKeyTypes) -> KeyRefused:
    with pytest.raises(KeyRefused) as caught:
        check_key(public_key)
    refusal = caught.value
    assert (refusal.code, refusal.field) == (-4009, "CSR")
    return refusal


# ----------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_of_accepted_sizes_is_accepted(bits: int) -> None:
    check_key(kf.rsa_key(bits).public_key())


@pytest.mark.slow
def test_rsa_4096_is_accepted() -> None:
    check_key(kf.rsa_key(4096).public_key())


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_ec_on_accepted_curves_is_accepted(curve: str) -> None:
    check_key(kf.ec_key(curve).public_key())


def test_the_key_of_a_parsed_csr_is_accepted() -> None:
    reading = parse_csr(kf.csr_pem(kf.make_csr(kf.ec_key("P-384"))))
    assert POLICY.check_csr(reading) is reading


def test_many_ordinary_rsa_keys_are_accepted() -> None:
    """No false positives from the weak-key checks on freshly generated keys."""
    for index in range(10):
        check_key(kf.rsa_key(2048, 65537, index).public_key())


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("bits", "message"),
    [
        (1024, "RSA key of 1024 bits: only 2048, 3072 or 4096 are accepted"),
        (2047, "RSA key of 2047 bits: only 2048, 3072 or 4096 are accepted"),
    ],
)
def test_rsa_of_other_sizes_is_refused(bits: int, message: str) -> None:
    assert _refusal(kf.rsa_key(bits).public_key()).message == message


def test_rsa_2056_bits_is_refused_although_a_multiple_of_8() -> None:
    import gmpy2

    p = kf.rsa_key().private_numbers().p  # 1024 bits, two top bits set
    r = int(gmpy2.next_prime((0b11 << 1030) | kf.rsa_key(index=1).private_numbers().q))  # 1032 bits
    n = p * r
    assert n.bit_length() == 2056
    assert "RSA key of 2056 bits" in _refusal(rsa.RSAPublicNumbers(65537, n).public_key()).message


def test_rsa_exponent_3_is_refused() -> None:
    message = _refusal(kf.rsa_key(2048, 3).public_key()).message
    assert message == "RSA public exponent 3: only 65537 is accepted"


def test_rsa_huge_exponent_is_refused_without_printing_it() -> None:
    n = kf.rsa_key().public_key().public_numbers().n
    e = (1 << 1500) + 1
    message = _refusal(rsa.RSAPublicNumbers(e, n).public_key()).message
    assert message == "RSA public exponent of 1501 bits: only 65537 is accepted"


def test_even_rsa_modulus_is_refused() -> None:
    n = kf.rsa_key().public_key().public_numbers().n + 1
    assert n.bit_length() == 2048
    assert "modulus is even" in _refusal(rsa.RSAPublicNumbers(65537, n).public_key()).message


def test_close_primes_are_refused_as_fermat_factorable() -> None:
    message = _refusal(kf.close_prime_rsa_key().public_key()).message
    assert "primes are so close" in message and "Fermat" in message


def test_roca_key_is_refused() -> None:
    message = _refusal(kf.roca_rsa_key().public_key()).message
    assert "ROCA" in message and "CVE-2017-15361" in message


def test_small_factor_is_refused() -> None:
    key = kf.small_factor_rsa_key()
    assert key.key_size == 2048
    assert "small prime factor" in _refusal(key).message


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ("P-224", "EC key on curve P-224: only P-256 and P-384 are accepted"),
        ("P-521", "EC key on curve P-521: only P-256 and P-384 are accepted"),
        ("secp256k1", "EC key on curve secp256k1: only P-256 and P-384 are accepted"),
        ("brainpoolP256r1", "EC key on curve brainpoolP256r1: only P-256 and P-384 are accepted"),
    ],
)
def test_ec_on_other_curves_is_refused(curve: str, message: str) -> None:
    assert _refusal(kf.ec_key(curve).public_key()).message == message


def test_ed25519_is_refused_by_name() -> None:
    message = _refusal(kf.ed25519_key().public_key()).message
    assert message.startswith("Ed25519 keys are not accepted")
    assert "RSA 2048, 3072 or 4096 bits and ECDSA P-256 or P-384" in message


def test_ed448_and_dsa_are_refused_by_name() -> None:
    assert _refusal(kf.ed448_key().public_key()).message.startswith("Ed448 keys are not accepted")
    assert _refusal(kf.dsa_key().public_key()).message.startswith("DSA keys are not accepted")


def test_x25519_is_refused_by_name() -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    public = x25519.X25519PrivateKey.generate().public_key()
    assert _refusal(public).message.startswith("X25519 keys are not accepted")


# ----------------------------------------------------------------------------- blocklist


def test_blocklist_available_is_a_bool_decided_once() -> None:
    first = blocklist_available()
    assert isinstance(first, bool)
    assert blocklist_available() is first


def test_a_badkeys_exit_never_ends_the_process() -> None:
    from badkeys.utils import _errexit

    with pytest.raises(RuntimeError, match="badkeys tried to exit"):
        keypolicy._run_badkeys(lambda: _errexit("simulated missing data file"))


_PROBE = textwrap.dedent(
    """
    import json, sys
    from cryptography.hazmat.primitives import serialization
    from soap_service.errors import KeyRefused
    from soap_service.ra.keypolicy import KeyPolicy, blocklist_available

    check_key = KeyPolicy().check_key
    results = {"available": blocklist_available(), "keys": []}
    for path in sys.argv[1:]:
        with open(path, "rb") as handle:
            key = serialization.load_pem_public_key(handle.read())
        try:
            check_key(key)
            results["keys"].append(None)
        except KeyRefused as refusal:
            results["keys"].append(refusal.message)
    print(json.dumps(results))
    """
)


def _probe(cache_home: Path, tmp_path: Path, *keys: PublicKeyTypes) -> dict[str, object]:
    """check_key in a fresh interpreter whose badkeys cache directory is ``cache_home``."""
    paths = []
    for number, key in enumerate(keys):
        path = tmp_path / f"key{number}.pem"
        path.write_bytes(
            key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        paths.append(str(path))
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_absent_blocklist_is_skipped_without_exiting(tmp_path: Path) -> None:
    cache_home = tmp_path / "empty-cache"
    cache_home.mkdir()
    result = _probe(cache_home, tmp_path, kf.rsa_key().public_key(), kf.ec_key().public_key())
    assert result == {"available": False, "keys": [None, None]}


def test_unusable_blocklist_is_skipped_without_exiting(tmp_path: Path) -> None:
    directory = tmp_path / "cache" / "badkeys"
    directory.mkdir(parents=True)
    (directory / "badkeysdata.json").write_text("{not json")
    (directory / "blocklist.dat").write_bytes(b"")
    result = _probe(tmp_path / "cache", tmp_path, kf.rsa_key().public_key())
    assert result == {"available": False, "keys": [None]}


def _blocklist_entry(value: int, list_id: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return hashlib.sha256(raw).digest()[:15] + bytes([list_id])


def test_keys_on_an_installed_blocklist_are_refused(tmp_path: Path) -> None:
    """A blocklist in badkeys's own format: listed RSA and EC keys refused, others accepted."""
    listed_rsa = kf.rsa_key(index=3).public_key()
    listed_ec = kf.ec_key("P-256", index=3).public_key()
    filler = [hashlib.sha256(bytes([i])).digest()[:15] + b"\x01" for i in range(64)]
    entries = sorted(
        [
            *filler,
            _blocklist_entry(listed_rsa.public_numbers().n, 7),
            _blocklist_entry(listed_ec.public_numbers().x, 7),
        ]
    )
    directory = tmp_path / "cache" / "badkeys"
    directory.mkdir(parents=True)
    (directory / "blocklist.dat").write_bytes(b"".join(entries))
    metadata = {"blocklists": [{"id": 1, "name": "filler"}, {"id": 7, "name": "debianssl"}]}
    (directory / "badkeysdata.json").write_text(json.dumps(metadata))

    unlisted = (kf.rsa_key().public_key(), kf.ec_key().public_key())
    result = _probe(tmp_path / "cache", tmp_path, listed_rsa, listed_ec, *unlisted)
    assert result["available"] is True
    keys = result["keys"]
    assert isinstance(keys, list)
    refused_rsa, refused_ec, accepted_rsa, accepted_ec = keys
    assert "public list of compromised keys (debianssl)" in refused_rsa
    assert "public list of compromised keys (debianssl)" in refused_ec
    assert accepted_rsa is None and accepted_ec is None


def test_an_installed_blocklist_may_be_required(tmp_path: Path) -> None:
    """KeyPolicy(require_blocklist=True) starts when the blocklist is there and refuses to when it is not."""
    probe = textwrap.dedent(
        """
        from soap_service.config import ConfigurationError
        from soap_service.ra.keypolicy import KeyPolicy

        try:
            KeyPolicy(require_blocklist=True)
            print("started")
        except ConfigurationError as error:
            print(error)
        KeyPolicy(require_blocklist=False)
        """
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    installed = tmp_path / "installed" / "badkeys"
    installed.mkdir(parents=True)
    (installed / "blocklist.dat").write_bytes(b"".join(sorted(
        hashlib.sha256(bytes([i])).digest()[:15] + b"\x01" for i in range(4)
    )))
    (installed / "badkeysdata.json").write_text(json.dumps({"blocklists": [{"id": 1, "name": "filler"}]}))
    answers = {}
    for name, cache_home in (("absent", empty), ("installed", installed.parent)):
        env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(REPO)}
        completed = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert completed.returncode == 0, completed.stderr
        answers[name] = completed.stdout.strip()
    assert answers["installed"] == "started"
    assert answers["absent"].startswith("SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST=yes but badkeys's blocklist")
    assert "badkeys --update-bl" in answers["absent"]


# ----------------------------------------------------------------------------- keys the reader could not load


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            KeyLoadFailure.UNSUPPORTED,
            "the CSR's public key is of an algorithm or curve this service does not support: "
            "only RSA 2048, 3072 or 4096 bits and ECDSA P-256 or P-384 keys are accepted",
        ),
        (
            KeyLoadFailure.INVALID,
            "the CSR's public key is invalid (not a point on its curve, explicit curve parameters, or a "
            "malformed key): only RSA 2048, 3072 or 4096 bits and ECDSA P-256 or P-384 keys are accepted",
        ),
    ],
)
def test_a_key_the_reader_could_not_load_is_refused(failure: KeyLoadFailure, message: str) -> None:
    for judge in (POLICY.loaded, POLICY.check_csr):
        with pytest.raises(KeyRefused) as caught:
            judge(UnloadableKey(failure))
        assert (caught.value.code, caught.value.field, caught.value.message) == (-4009, "CSR", message)


def test_loaded_applies_no_other_key_rule() -> None:
    """ParseCSR's only key rule: a key that was read is answered, whatever the policy thinks of it."""
    reading = parse_csr(kf.csr_pem(kf.make_csr(kf.rsa_key(1024))))
    assert isinstance(reading, ParsedCSR)
    assert POLICY.loaded(reading) is reading
    with pytest.raises(KeyRefused):
        POLICY.check_csr(reading)


# ----------------------------------------------------------------------------- our own blocked-key table


def test_a_key_on_our_blocked_key_table_is_refused() -> None:
    key = kf.ec_key("P-256", index=5).public_key()
    fingerprint = spki_sha256(key)
    asked: list[str] = []

    def blocked(spki: str) -> bool:
        asked.append(spki)
        return spki == fingerprint

    with pytest.raises(KeyRefused) as caught:
        POLICY.check_not_blocked(fingerprint, blocked)
    assert (caught.value.code, caught.value.field) == (-4009, "CSR")
    assert caught.value.message == "this key was reported compromised and is blocked"
    POLICY.check_not_blocked(spki_sha256(kf.ec_key("P-256", index=6).public_key()), blocked)
    assert asked == [fingerprint, spki_sha256(kf.ec_key("P-256", index=6).public_key())]


# ----------------------------------------- how the CSR names its key (SubjectPublicKeyInfo)
#
# cryptography loads an RSA key under id-RSASSA-PSS and an EC key with explicit parameters of a
# named curve as if they were the plain forms, so these CSRs are built at the DER level: the
# request info of an ordinary CSR with its SubjectPublicKeyInfo replaced, signed again.

_SHA256_OID = "2.16.840.1.101.3.4.2.1"
_MGF1_OID = "1.2.840.113549.1.1.8"
_RSASSA_PSS_OID = "1.2.840.113549.1.1.10"
_EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"
_P256 = {  # SEC 2, secp256r1
    "p": 2**256 - 2**224 + 2**192 + 2**96 - 1,
    "b": 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    "gx": 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    "gy": 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    "n": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}


def _integer(value: int) -> bytes:
    return kf.der_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _octets(data: bytes) -> bytes:
    return kf.der_tlv(0x04, data)


def _pss_parameters(trailer_field: int | None = None) -> bytes:
    sha256 = kf.der_sequence(kf.der_oid(_SHA256_OID), kf.der_null())
    fields = [kf.der_tlv(0xA0, sha256), kf.der_tlv(0xA1, kf.der_sequence(kf.der_oid(_MGF1_OID), sha256)),
              kf.der_tlv(0xA2, _integer(32))]
    if trailer_field is not None:
        fields.append(kf.der_tlv(0xA3, _integer(trailer_field)))
    return kf.der_sequence(*fields)


def _request_info(key, spki: bytes | None = None) -> bytes:
    """The request info of an ordinary CSR of ``key``, with ``spki`` in place of its own."""
    info = kf.make_csr(key, ("spki.example.com",)).tbs_certrequest_bytes
    if spki is None:
        return info
    version, subject, _, attributes = der.sequence_elements(info)
    return kf.der_sequence(version, subject, spki, attributes)


def _rsa_spki(key: rsa.RSAPrivateKey, algorithm: bytes) -> bytes:
    numbers = key.public_key().public_numbers()
    return kf.der_sequence(algorithm, kf.der_bit_string(kf.der_sequence(_integer(numbers.n), _integer(numbers.e))))


def _pss_signed(key: rsa.RSAPrivateKey, info: bytes, trailer_field: int | None = None) -> str:
    signature = key.sign(info, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    algorithm = kf.der_sequence(kf.der_oid(_RSASSA_PSS_OID), _pss_parameters(trailer_field))
    return kf.der_to_pem(kf.der_sequence(info, algorithm, kf.der_bit_string(signature)))


def _pkcs1_signed(key: rsa.RSAPrivateKey, info: bytes) -> str:
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    return kf.der_to_pem(kf.assemble_csr(info, "1.2.840.113549.1.1.11", signature, null_params=True))


def _explicit_p256_spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    c = _P256
    parameters = kf.der_sequence(
        _integer(1),
        kf.der_sequence(kf.der_oid("1.2.840.10045.1.1"), _integer(c["p"])),
        kf.der_sequence(_octets((c["p"] - 3).to_bytes(32, "big")), _octets(c["b"].to_bytes(32, "big"))),
        _octets(b"\x04" + c["gx"].to_bytes(32, "big") + c["gy"].to_bytes(32, "big")),
        _integer(c["n"]),
        _integer(1),
    )
    return kf.der_sequence(kf.der_sequence(kf.der_oid(_EC_PUBLIC_KEY_OID), parameters), kf.der_bit_string(point))


def _encoding_refusal(pem: str, fragment: str) -> None:
    reading = parse_csr(pem)
    assert isinstance(reading, ParsedCSR)  # read, and its signature verified: the policy refuses it
    with pytest.raises(KeyRefused) as caught:
        POLICY.check_csr(reading)
    assert (caught.value.code, caught.value.field) == (-4009, "CSR")
    assert fragment in caught.value.message


def test_an_ec_key_with_explicit_parameters_of_p256_is_refused() -> None:
    """Explicit parameters equal to P-256's load as P-256, but the design refuses them whatever
    curve they describe (and the certificate would not carry the key as the CSR gave it)."""
    key = kf.ec_key("P-256")
    info = _request_info(key, _explicit_p256_spki(key))
    pem = kf.der_to_pem(kf.assemble_csr(info, "1.2.840.10045.4.3.2", key.sign(info, ec.ECDSA(hashes.SHA256())),
                                        null_params=False))
    _encoding_refusal(pem, "explicit curve parameters")


@pytest.mark.parametrize("signed_with", ["RSASSA-PSS", "PKCS#1 v1.5"])
def test_an_rsa_key_restricted_to_pss_is_refused(signed_with: str) -> None:
    """A key under id-RSASSA-PSS must only make PSS signatures; a certificate for it as an
    rsaEncryption key would drop that restriction (and one PKCS#1 signature proves it ignored)."""
    key = kf.rsa_key()
    info = _request_info(key, _rsa_spki(key, kf.der_sequence(kf.der_oid(_RSASSA_PSS_OID))))
    pem = _pss_signed(key, info) if signed_with == "RSASSA-PSS" else _pkcs1_signed(key, info)
    _encoding_refusal(pem, "restricted to RSASSA-PSS")


def test_rsa_encryption_without_its_null_parameters_is_the_same_key() -> None:
    key = kf.rsa_key()
    info = _request_info(key, _rsa_spki(key, kf.der_sequence(kf.der_oid("1.2.840.113549.1.1.1"))))
    reading = parse_csr(_pkcs1_signed(key, info))
    assert isinstance(reading, ParsedCSR) and reading.key_encoding is KeyEncoding.RSA_ENCRYPTION
    assert POLICY.check_csr(reading) is reading


@pytest.mark.parametrize("trailer_field, fragment", [
    (2, "rsassaPss with SHA-256 and a trailerField other than 1 (RFC 4055)"),
    (2**100, "not a valid DER-encoded PKCS#10"),  # cryptography's parser refuses it first
])
def test_a_pss_signature_with_another_trailer_field_is_refused(trailer_field: int, fragment: str) -> None:
    """RFC 4055 defines trailerField 1 alone; cryptography does not check it, so the reader does."""
    key = kf.rsa_key()
    with pytest.raises(CSRUnreadable) as caught:
        parse_csr(_pss_signed(key, _request_info(key), trailer_field))
    assert caught.value.code == -4007
    assert fragment in caught.value.message


@pytest.mark.parametrize("trailer_field", [None, 1])
def test_a_pss_signature_with_trailer_field_1_is_accepted(trailer_field: int | None) -> None:
    key = kf.rsa_key()
    reading = parse_csr(_pss_signed(key, _request_info(key), trailer_field))
    assert isinstance(reading, ParsedCSR) and reading.signature_algorithm == "rsassaPss with SHA-256"
    assert POLICY.check_csr(reading) is reading
