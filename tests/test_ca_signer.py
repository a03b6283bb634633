"""The CA signs through a signer handed out by the key backend, never through a private key object
(docs/design.md, "Certificate profiles"): the DER put together by hand, the signer of every CA key
algorithm, the linted TBS being the issued one, wrong keys refused, and a signer that is no
``cryptography`` key at all (as a PKCS#11 token's would be) issuing through the unchanged issuer."""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import pickle
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import DNSName
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store
from pyasn1.codec.der import encoder as pyasn1_der
from pyasn1.type import univ

from ca_support import (
    INSTALLATION,
    KEY_BACKEND,
    LEAF_KINDS,
    NOW,
    PUBLIC_URL,
    full_serverauth_lint,
    hierarchy,
    issuer,
    issuing_ca,
    leaf_request,
    linter,
)
from soap_service.ca import der
from soap_service.ca.algorithms import PublicKey
from soap_service.ca.hierarchy import create_hierarchy
from soap_service.ca.issuer import Issuer, IssuingCA
from soap_service.ca.keys import CASigner, EncryptedKeyBackend, InProcessSigner, NewKey
from soap_service.ca.lint import PreIssuanceLinter
from soap_service.ca.signing import SignatureMismatch, sign_trial, trial_certificate
from soap_service.config import Secret
from soap_service.keyalgorithms import KEY_ALGORITHM_NAMES
from soap_service.vocabulary import ValidationLevel

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = Secret("signer tests passphrase 0c4b")
EXPECTED = {  # algorithm: (signature algorithm, hash, public key type)
    "rsa-2048": (SignatureAlgorithmOID.RSA_WITH_SHA256, hashes.SHA256, rsa.RSAPublicKey),
    "rsa-3072": (SignatureAlgorithmOID.RSA_WITH_SHA256, hashes.SHA256, rsa.RSAPublicKey),
    "rsa-4096": (SignatureAlgorithmOID.RSA_WITH_SHA256, hashes.SHA256, rsa.RSAPublicKey),
    "ecdsa-p256": (SignatureAlgorithmOID.ECDSA_WITH_SHA256, hashes.SHA256, ec.EllipticCurvePublicKey),
    "ecdsa-p384": (SignatureAlgorithmOID.ECDSA_WITH_SHA384, hashes.SHA384, ec.EllipticCurvePublicKey),
}
PRIVATE_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)


# --- the DER helper -------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 127, 128, 129, 255, 256, 1000, 65535, 65536, 70000])
def test_der_lengths_match_an_independent_encoder(length: int) -> None:
    content = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    assert der.encode(0x04, content) == pyasn1_der.encode(univ.OctetString(content))
    assert der.bit_string(content) == pyasn1_der.encode(univ.BitString.fromOctetString(content))
    assert der.sequence(der.encode(0x04, content)) == pyasn1_der.encode(
        univ.SequenceOf(componentType=univ.OctetString()).setComponents(univ.OctetString(content))
    )


def test_der_length_octets() -> None:
    assert der.encode_length(0) == b"\x00"
    assert der.encode_length(127) == b"\x7f"
    assert der.encode_length(128) == b"\x81\x80"
    assert der.encode_length(255) == b"\x81\xff"
    assert der.encode_length(256) == b"\x82\x01\x00"
    assert der.encode_length(0x01000000) == b"\x84\x01\x00\x00\x00"
    with pytest.raises(ValueError):
        der.encode_length(-1)
    with pytest.raises(ValueError):
        der.encode_length(1 << 32)
    with pytest.raises(ValueError):
        der.encode(0x1F, b"")  # a multi-octet tag


def test_der_bit_string_has_no_unused_bits() -> None:
    assert der.bit_string(b"\xab\xcd") == b"\x03\x03\x00\xab\xcd"
    assert der.bit_string(b"") == b"\x03\x01\x00"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "missing"),
        (b"\x30", "without a length"),
        (b"\x30\x80\x00\x00", "indefinite"),
        (b"\x30\x81\x05\x04\x00\x04\x00\x00", "shortest"),  # 5 fits in one octet
        (b"\x30\x82\x00\x80" + b"\x00" * 0x80, "shortest"),  # a leading zero octet
        (b"\x30\x85\x01\x00\x00\x00\x00", "too many"),
        (b"\x30\x82\x01", "missing or too many"),
        (b"\x30\x05\x04\x00", "longer than its data"),
        (b"\x1f\x01\x00", "multi-octet tag"),
    ],
)
def test_der_reader_refuses_what_is_not_der(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        der.read_element(data)


def test_der_sequence_elements() -> None:
    elements = [der.encode(0x02, b"\x01"), der.bit_string(b"\x00" * 300), der.sequence()]
    assert der.sequence_elements(der.sequence(*elements)) == elements
    with pytest.raises(ValueError, match="not a SEQUENCE"):
        der.sequence_elements(der.encode(0x04, b""))
    with pytest.raises(ValueError, match="after the SEQUENCE"):
        der.sequence_elements(der.sequence(*elements) + b"\x00")
    with pytest.raises(ValueError, match="longer than its data"):
        der.sequence_elements(b"\x30\x03\x04\x05\x00")  # an inner element past the SEQUENCE's end


def test_a_certificate_comes_apart_and_back_together_byte_for_byte() -> None:
    certificate = hierarchy("rsa-2048")["THAWTE-TLS"].certificate
    encoded = certificate.public_bytes(serialization.Encoding.DER)
    tbs, algorithm, signature = der.sequence_elements(encoded)
    assert tbs == certificate.tbs_certificate_bytes
    assert signature == der.bit_string(certificate.signature)
    assert der.sequence(tbs, algorithm, signature) == encoded


# --- the in-process signer, for every CA key algorithm ---------------------------------------------


@pytest.fixture(scope="module")
def backend() -> EncryptedKeyBackend:
    return EncryptedKeyBackend(PASSPHRASE)


def _self_signed_builder(public_key: PublicKey) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW.replace(year=NOW.year + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


@pytest.mark.parametrize(
    "algorithm",
    [pytest.param(name, marks=pytest.mark.slow) if name in ("rsa-3072", "rsa-4096") else name
     for name in KEY_ALGORITHM_NAMES],
)
def test_the_signer_of_each_ca_key_algorithm_signs_a_certificate_that_verifies(
    backend: EncryptedKeyBackend, algorithm: str
) -> None:
    oid, hash_type, public_type = EXPECTED[algorithm]
    for signer in (new := backend.create("ROOT", algorithm)).signer, backend.unlock("ROOT", new.stored):
        assert signer.signature_algorithm == oid
        assert isinstance(signer.hash_algorithm, hash_type)
        assert isinstance(signer.public_key, public_type)
        trial = trial_certificate(_self_signed_builder(signer.public_key), signer)
        assert trial.signature_algorithm_oid == oid
        certificate = sign_trial(trial, signer, None)
        certificate.verify_directly_issued_by(certificate)
        assert certificate.tbs_certificate_bytes == trial.tbs_certificate_bytes
        assert certificate.signature != trial.signature
        assert certificate.signature_algorithm_oid == oid
        assert isinstance(certificate.signature_hash_algorithm, hash_type)
        encoded = certificate.public_bytes(serialization.Encoding.DER)
        trial_encoded = trial.public_bytes(serialization.Encoding.DER)
        assert der.sequence_elements(encoded)[1] == der.sequence_elements(trial_encoded)[1]
        assert x509.load_der_x509_certificate(encoded) == certificate


def test_the_root_signs_the_issuing_cas_through_its_signer() -> None:
    materials = hierarchy("ecdsa-p256")
    root = materials["ROOT"]
    root.certificate.verify_directly_issued_by(root.certificate)
    for material in list(materials.values())[1:]:
        material.certificate.verify_directly_issued_by(root.certificate)
        assert material.signer.public_key == material.certificate.public_key()


# --- the issuer ------------------------------------------------------------------------------------


class RecordingLinter:
    """The real linter, remembering every certificate it was shown."""

    def __init__(self, inner: PreIssuanceLinter) -> None:
        self._inner = inner
        self.seen: list[x509.Certificate] = []

    def findings(self, certificate: x509.Certificate, level: ValidationLevel) -> list[str]:
        self.seen.append(certificate)
        return self._inner.findings(certificate, level)


@pytest.mark.parametrize("algorithm", ["rsa-2048", "ecdsa-p256", pytest.param("ecdsa-p384", marks=pytest.mark.slow)])
def test_the_issued_tbs_is_byte_for_byte_the_linted_one(algorithm: str) -> None:
    recording = RecordingLinter(linter())
    ca = issuing_ca(hierarchy(algorithm), "GEOTRUST-TLS")
    leaf = Issuer(PUBLIC_URL, recording).issue(ca, leaf_request(ValidationLevel.OV, ("www.example.com",)))
    [trial] = recording.seen
    assert leaf.tbs_certificate_bytes == trial.tbs_certificate_bytes
    assert leaf.signature != trial.signature
    leaf_parts = der.sequence_elements(leaf.public_bytes(serialization.Encoding.DER))
    trial_parts = der.sequence_elements(trial.public_bytes(serialization.Encoding.DER))
    assert leaf_parts[:2] == trial_parts[:2]
    leaf.verify_directly_issued_by(ca.certificate)
    with pytest.raises(InvalidSignature):  # the trial is signed by the throw-away key
        trial.verify_directly_issued_by(ca.certificate)


def test_a_signer_whose_key_is_not_the_ca_certificates_is_refused() -> None:
    materials = hierarchy("ecdsa-p256")
    with pytest.raises(ValueError, match="does not match"):
        IssuingCA("RAPIDSSL-TLS", materials["RAPIDSSL-TLS"].certificate, materials["THAWTE-TLS"].signer, ())
    rsa_materials = hierarchy("rsa-2048")
    with pytest.raises(ValueError, match="does not match"):
        IssuingCA("RAPIDSSL-TLS", materials["RAPIDSSL-TLS"].certificate, rsa_materials["RAPIDSSL-TLS"].signer, ())


@dataclasses.dataclass(frozen=True)
class LyingSigner:
    """Claims the CA's public key, signs with another key of the same algorithm."""

    claimed: CASigner
    actual: CASigner

    @property
    def public_key(self) -> PublicKey:
        return self.claimed.public_key

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        return self.claimed.hash_algorithm

    @property
    def signature_algorithm(self) -> x509.ObjectIdentifier:
        return self.claimed.signature_algorithm

    def sign(self, tbs: bytes) -> bytes:
        return self.actual.sign(tbs)


@pytest.mark.parametrize("algorithm", ["rsa-2048", "ecdsa-p256"])
def test_a_signature_that_does_not_verify_with_the_ca_certificate_is_an_error(algorithm: str) -> None:
    materials = hierarchy(algorithm)
    liar = LyingSigner(materials["RAPIDSSL-TLS"].signer, materials["THAWTE-TLS"].signer)
    ca = IssuingCA("RAPIDSSL-TLS", materials["RAPIDSSL-TLS"].certificate, liar, (materials["ROOT"].certificate,))
    with pytest.raises(SignatureMismatch, match="does not verify") as failure:
        issuer().issue(ca, leaf_request(ValidationLevel.DV, ("www.example.com",)))
    assert "PRIVATE" not in str(failure.value)


def test_a_signer_of_another_algorithm_than_the_trial_is_refused() -> None:
    signer = hierarchy("ecdsa-p256")["ROOT"].signer
    trial = trial_certificate(_self_signed_builder(signer.public_key), hierarchy("rsa-2048")["ROOT"].signer)
    with pytest.raises(ValueError, match="signature algorithm"):
        sign_trial(trial, signer, None)


# --- a signer that is no cryptography key: what a PKCS#11 token would give -------------------------

# NIST P-256 (FIPS 186-4, D.1.2.3)
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
Point = tuple[int, int] | None


def _add(a: Point, b: Point) -> Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % _P == 0:
        return None
    if a == b:
        slope = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, _P) % _P
    else:
        slope = (b[1] - a[1]) * pow(b[0] - a[0], -1, _P) % _P
    x = (slope * slope - a[0] - b[0]) % _P
    return x, (slope * (a[0] - x) - a[1]) % _P


def _multiply(k: int, point: Point) -> Point:
    result: Point = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


class TokenSigner:
    """ECDSA P-256 in plain Python; the private scalar lives only in the closure of :attr:`sign`,
    as a key lives only on a token. No ``cryptography`` private key object exists."""

    signature_algorithm = SignatureAlgorithmOID.ECDSA_WITH_SHA256

    def __init__(self) -> None:
        scalar = secrets.randbelow(_N - 1) + 1
        point = _multiply(scalar, _G)
        assert point is not None
        self.public_key: PublicKey = ec.EllipticCurvePublicNumbers(point[0], point[1], ec.SECP256R1()).public_key()
        self.hash_algorithm = hashes.SHA256()

        def sign(tbs: bytes) -> bytes:
            digest = int.from_bytes(hashlib.sha256(tbs).digest(), "big")
            while True:
                nonce = secrets.randbelow(_N - 1) + 1
                r_point = _multiply(nonce, _G)
                assert r_point is not None
                r = r_point[0] % _N
                s = pow(nonce, -1, _N) * (digest + r * scalar) % _N
                if r and s:
                    return encode_dss_signature(r, s)  # a token's raw r || s, made DER

        self.sign = sign


class TokenBackend:
    """A :class:`~soap_service.ca.keys.KeyBackend` shaped like a PKCS#11 one: keys made on the
    "token", the database holding only their labels."""

    def __init__(self) -> None:
        self._token: dict[bytes, TokenSigner] = {}

    def create(self, ca_name: str, algorithm: str) -> NewKey:
        assert algorithm == "ecdsa-p256"
        label = f"token:{ca_name}:{secrets.token_hex(4)}".encode()
        self._token[label] = TokenSigner()
        return NewKey(self._token[label], label)

    def unlock(self, ca_name: str, stored: bytes) -> CASigner:
        return self._token[stored]


@pytest.fixture(scope="module")
def token_hierarchy() -> tuple[TokenBackend, dict[str, Any]]:
    token = TokenBackend()
    materials = create_hierarchy("ecdsa-p256", INSTALLATION, PUBLIC_URL, NOW, token)
    return token, {material.name: material for material in materials}


def test_a_hierarchy_made_and_signed_on_a_token(token_hierarchy: tuple[TokenBackend, dict[str, Any]]) -> None:
    _, materials = token_hierarchy
    root = materials["ROOT"].certificate
    root.verify_directly_issued_by(root)
    for name, material in materials.items():
        assert material.protected_key.startswith(f"token:{name}:".encode())
        if name != "ROOT":
            material.certificate.verify_directly_issued_by(root)
        assert linter().ca_findings(material.certificate, material.role) == []


@pytest.mark.parametrize("kind", list(LEAF_KINDS))
def test_the_unchanged_issuer_issues_through_a_token_signer(
    token_hierarchy: tuple[TokenBackend, dict[str, Any]], kind: str
) -> None:
    token, materials = token_hierarchy
    ca_name, level, names = LEAF_KINDS[kind]
    material = materials[ca_name]
    root = materials["ROOT"].certificate
    ca = IssuingCA(ca_name, material.certificate, token.unlock(ca_name, material.protected_key), (root,))
    leaf = issuer().issue(ca, leaf_request(level, names))
    leaf.verify_directly_issued_by(material.certificate)
    if level is ValidationLevel.CS:
        return
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(DNSName(names[0].replace("*", "any")))
    assert verifier.verify(leaf, [material.certificate]) == [leaf, material.certificate, root]
    assert full_serverauth_lint(leaf)[1] == []


# --- the private key stays in the backend ----------------------------------------------------------


def _reachable_private_keys(value: object, path: str, seen: set[int]) -> list[str]:
    """Paths to private key objects through public attributes, fields and items."""
    if id(value) in seen or isinstance(value, str | bytes | int | float | bool | type(None)):
        return []
    seen.add(id(value))
    if isinstance(value, PRIVATE_KEY_TYPES):
        return [path]
    found: list[str] = []
    children: list[tuple[str, object]] = []
    if isinstance(value, dict):
        children = [(f"{path}[{key!r}]", item) for key, item in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    elif not isinstance(value, x509.Certificate | hashes.HashAlgorithm | x509.ObjectIdentifier):
        for name in dir(value):
            if name.startswith("_"):
                continue
            try:
                attribute = getattr(value, name)
            except Exception:  # a property that cannot be read here hides nothing
                continue
            if callable(attribute):
                continue
            children.append((f"{path}.{name}", attribute))
    for child_path, child in children:
        found += _reachable_private_keys(child, child_path, seen)
    return found


def test_no_private_key_object_is_reachable_from_the_issuer_and_the_cas() -> None:
    materials = hierarchy("ecdsa-p256")
    objects: dict[str, object] = {
        "issuing_ca": issuing_ca(materials, "GEOTRUST-TLS"),
        "issuer": issuer(),
        "materials": materials,
        "new_key": KEY_BACKEND.create("ROOT", "ecdsa-p256"),
        "unlocked": KEY_BACKEND.unlock("GEOTRUST-TLS", materials["GEOTRUST-TLS"].protected_key),
    }
    for name, value in objects.items():
        assert _reachable_private_keys(value, name, set()) == [], name


def test_a_signer_shows_only_its_public_side() -> None:
    signer = KEY_BACKEND.create("ROOT", "ecdsa-p256").signer
    assert isinstance(signer, InProcessSigner)
    assert {name for name in dir(signer) if not name.startswith("_")} == {
        "public_key",
        "hash_algorithm",
        "signature_algorithm",
        "sign",
    }
    assert not hasattr(signer, "__dict__")  # nothing can be hung on it either


def test_no_repr_shows_key_material() -> None:
    backend = EncryptedKeyBackend(PASSPHRASE)
    for algorithm in ("ecdsa-p256", "rsa-2048"):
        new = backend.create("THAWTE-TLS", algorithm)
        key = serialization.load_pem_private_key(new.stored, PASSPHRASE.reveal().encode())
        numbers = key.private_numbers()  # type: ignore[union-attr]
        secrets_ = (
            [numbers.private_value]
            if isinstance(numbers, ec.EllipticCurvePrivateNumbers)
            else [numbers.d, numbers.p, numbers.q]  # type: ignore[union-attr]
        )
        unlocked = backend.unlock("THAWTE-TLS", new.stored)
        texts = [repr(new), str(new), repr(new.signer), str(new.signer), repr(unlocked), repr(backend)]
        for text in texts:
            assert "PRIVATE" not in text and new.stored.decode() not in text
            assert PASSPHRASE.reveal() not in text
            for secret in secrets_:
                assert str(secret) not in text and f"{secret:x}" not in text
        assert "InProcessSigner(" in repr(new.signer) and "public key" in repr(new.signer)


def test_a_signer_cannot_be_pickled_or_copied() -> None:
    signer = KEY_BACKEND.create("ROOT", "ecdsa-p256").signer
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(signer)


# names that reach a CA private key; generate_private_key is left out (the demo's and the key
# policy's subscriber keys, never a CA's)
PRIVATE_KEY_NAMES = {"private_key", "PrivateKey", "private_bytes", "generate_key", "load_pem_private_key",
                     "load_der_private_key", "private_numbers", "_key", "_THROW_AWAY_KEYS"}
ALLOWED = {"soap_service/ca/algorithms.py", "soap_service/ca/keys/encrypted.py", "soap_service/ca/keys/signer.py",
           "soap_service/ca/keys/throwaway.py"}


def _names_in_code(path: Path) -> set[str]:
    """Every identifier and attribute name in the module's code (not its docstrings or comments)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.rsplit(".", 1)[-1])
            if node.asname:
                names.add(node.asname)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return names


def test_only_the_key_backends_name_a_private_key() -> None:
    offenders = {}
    for path in sorted((ROOT / "soap_service").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        found = _names_in_code(path) & PRIVATE_KEY_NAMES
        if found and relative not in ALLOWED:
            offenders[relative] = sorted(found)
    assert offenders == {}
