"""Reading a CSR: PEM or bare base64 DER in, a verified :class:`ParsedCSR` out.

This module only reads.  It refuses what cannot be trusted to say what it says (unreadable
encodings, a self-signature that does not verify, a signature hash weaker than SHA-256); what
is *acceptable* about the key is :mod:`soap_service.ra.keypolicy`'s job, and which names may
be certified is the name policy's.  Extensions of the CSR are read only to learn the requested
names: they are never copied into a certificate (DESIGN section 3, rule 4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import string
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dh,
    dsa,
    ec,
    ed448,
    ed25519,
    mldsa,
    mlkem,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

from soap_service.errors import CSRUnreadable, InvalidField, KeyRefused

MAX_CSR_CHARS = 64 * 1024
"""Largest CSR field accepted, in characters (a CSR with a 4096-bit key and many names is ~3 KB)."""

MIN_SIGNATURE_HASH_BYTES = 32
"""SHA-256 or stronger: a signature hash with a shorter digest is refused."""

_PEM_BEGIN = "-----BEGIN "
_PEM_END = "-----END "
_PEM_DASHES = "-----"
_PEM_LABEL_CHARS = frozenset(string.ascii_uppercase + string.digits + " ")
_PEM_MAX_LABEL_CHARS = 40
_KNOWN_PEM_LABELS = frozenset({
    "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CRL", "ATTRIBUTE CERTIFICATE",
    "PKCS7", "CMS", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
    "DSA PRIVATE KEY", "PUBLIC KEY", "RSA PUBLIC KEY", "EC PARAMETERS", "DH PARAMETERS",
    "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST",
})
"""Labels an answer may name (RFC 7468 and OpenSSL's): what a partner is likely to paste by mistake."""
_CSR_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")

# Names of the signature algorithms a CSR is likely to carry, as OpenSSL spells them.
_SIGNATURE_NAMES: dict[str, str] = {
    "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
    "1.2.840.113549.1.1.3": "md4WithRSAEncryption",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.3.14.3.2.29": "sha1WithRSASignature",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "2.16.840.1.101.3.4.3.13": "RSA-SHA3-224",
    "2.16.840.1.101.3.4.3.14": "RSA-SHA3-256",
    "2.16.840.1.101.3.4.3.15": "RSA-SHA3-384",
    "2.16.840.1.101.3.4.3.16": "RSA-SHA3-512",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "2.16.840.1.101.3.4.3.9": "ecdsa_with_SHA3-224",
    "2.16.840.1.101.3.4.3.10": "ecdsa_with_SHA3-256",
    "2.16.840.1.101.3.4.3.11": "ecdsa_with_SHA3-384",
    "2.16.840.1.101.3.4.3.12": "ecdsa_with_SHA3-512",
    "1.2.840.10040.4.3": "dsa-with-SHA1",
    "2.16.840.1.101.3.4.3.1": "dsa-with-SHA224",
    "2.16.840.1.101.3.4.3.2": "dsa-with-SHA256",
    "2.16.840.1.101.3.4.3.3": "dsa-with-SHA384",
    "2.16.840.1.101.3.4.3.4": "dsa-with-SHA512",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}

# Signature algorithms whose hash is weaker than SHA-256, by OID, with the hash to name.
# Checked on the OID before anything else: cryptography 50 will not verify SHA-1 (or MD5)
# signatures at all and would only report "invalid signature", which misleads the caller.
_WEAK_SIGNATURE_HASHES: dict[str, str] = {
    "1.2.840.113549.1.1.2": "MD2",
    "1.2.840.113549.1.1.3": "MD4",
    "1.2.840.113549.1.1.4": "MD5",
    "1.2.840.113549.1.1.5": "SHA-1",
    "1.3.14.3.2.29": "SHA-1",
    "1.2.840.10045.4.1": "SHA-1",
    "1.2.840.10040.4.3": "SHA-1",
    "1.2.840.113549.1.1.14": "SHA-224",
    "1.2.840.10045.4.3.1": "SHA-224",
    "2.16.840.1.101.3.4.3.1": "SHA-224",
    "2.16.840.1.101.3.4.3.13": "SHA3-224",
    "2.16.840.1.101.3.4.3.9": "SHA3-224",
}

_CURVE_NAMES: dict[str, str] = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


@dataclass(frozen=True)
class ParsedCSR:
    """A CSR whose encoding was read and whose self-signature verified (SHA-256 or stronger)."""

    der: bytes
    sha256: str
    """Hex SHA-256 of the DER: byte-identical retries compare on this."""
    public_key: CertificatePublicKeyTypes
    spki_sha256: str
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo, as :func:`spki_sha256` computes it."""
    subject: tuple[tuple[str, str], ...]
    """(short attribute name such as "CN", "O", "C", or the dotted OID; value), in order."""
    common_names: tuple[str, ...]
    san_dns_names: tuple[str, ...]
    """dNSNames of the extensionRequest's subjectAltName, as given (not lowercased)."""
    key_algorithm: str
    """"RSA", "EC", or another name ("DSA", "Ed25519", ...)."""
    key_size: int
    """Bits: the RSA modulus, the EC curve's order size."""
    curve: str | None
    """"P-256", "P-384", ... or cryptography's curve name; None for a key that is not EC."""
    signature_algorithm: str
    """Such as "sha256WithRSAEncryption", "ecdsa-with-SHA384"; the dotted OID when unnamed."""


def spki_sha256(public_key: PublicKeyTypes) -> str:
    """Hex SHA-256 of the key's SubjectPublicKeyInfo in cryptography's canonical DER.

    The same key always gives the same fingerprint whether it came from a CSR or a
    certificate, and whatever encoding the CSR used for it (an EC point sent compressed is
    fingerprinted uncompressed), so a blocked key cannot slip past the blocklist re-encoded.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def key_facts(public_key: PublicKeyTypes) -> tuple[str, int, str | None]:
    """(algorithm name, size in bits, curve name or None) of a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve
        return "EC", curve.key_size, _CURVE_NAMES.get(curve.name, curve.name)
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size, None
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 255, None
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 448, None
    if isinstance(public_key, x25519.X25519PublicKey):
        return "X25519", 255, None
    if isinstance(public_key, x448.X448PublicKey):
        return "X448", 448, None
    if isinstance(public_key, dh.DHPublicKey):
        return "DH", public_key.key_size, None
    if isinstance(public_key, mldsa.MLDSA44PublicKey):
        return "ML-DSA-44", 8 * len(public_key.public_bytes_raw()), None
    if isinstance(public_key, mldsa.MLDSA65PublicKey):
        return "ML-DSA-65", 8 * len(public_key.public_bytes_raw()), None
    if isinstance(public_key, mldsa.MLDSA87PublicKey):
        return "ML-DSA-87", 8 * len(public_key.public_bytes_raw()), None
    if isinstance(public_key, mlkem.MLKEM768PublicKey):
        return "ML-KEM-768", 8 * len(public_key.public_bytes_raw()), None
    if isinstance(public_key, mlkem.MLKEM1024PublicKey):
        return "ML-KEM-1024", 8 * len(public_key.public_bytes_raw()), None
    return type(public_key).__name__.removesuffix("PublicKey"), 0, None


def check_csr_size(text: str) -> None:
    """-4007 when the CSR field is longer than :data:`MAX_CSR_CHARS`: checked before anything reads it."""
    if len(text) > MAX_CSR_CHARS:
        raise CSRUnreadable(f"the CSR is {len(text)} characters long: at most {MAX_CSR_CHARS} are accepted")


def parse_csr(text: str) -> ParsedCSR:
    """Read and verify a CSR given as PEM or as bare base64 of its DER.

    Raises :class:`InvalidField` when the field is empty, :class:`CSRUnreadable` when it cannot
    be read, holds anything besides one CSR, is signed with a hash weaker than SHA-256 or its
    signature does not verify, and :class:`KeyRefused` when its public key cannot even be
    loaded (unknown algorithm, unsupported curve, invalid point): that is a refusal of the
    key's type, code -4009, found while reading.
    """
    check_csr_size(text)
    if not text.strip():
        raise InvalidField("CSR is missing", field="CSR")
    der = _decode(text.strip())
    csr = _load_der(der)
    signature_algorithm = _check_signature_hash(csr)
    public_key = _load_public_key(csr)
    try:
        signature_valid = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:
        raise CSRUnreadable(
            f"the CSR's signature algorithm {signature_algorithm} cannot be verified by this service"
        ) from exc
    if not signature_valid:
        raise CSRUnreadable(
            "the CSR's signature does not verify with its own public key: "
            "the CSR was altered after signing or signed with another key"
        )
    subject = _subject(csr)
    key_algorithm, key_size, curve = key_facts(public_key)
    return ParsedCSR(
        der=der,
        sha256=hashlib.sha256(der).hexdigest(),
        public_key=public_key,
        spki_sha256=spki_sha256(public_key),
        subject=subject,
        common_names=tuple(value for name, value in subject if name == "CN"),
        san_dns_names=_san_dns_names(csr),
        key_algorithm=key_algorithm,
        key_size=key_size,
        curve=curve,
        signature_algorithm=signature_algorithm,
    )


@dataclass(frozen=True)
class _PEMBlock:
    start: int
    end: int
    label: str
    end_label: str
    body: str


def _decode(text: str) -> bytes:
    """The DER of the CSR, from PEM (one block, nothing around it) or bare base64."""
    blocks = _pem_blocks(text)
    if not blocks:
        if "-----BEGIN" in text or "-----END" in text:
            raise CSRUnreadable(
                "the CSR's PEM armour is incomplete: the BEGIN or END line is missing or damaged"
            )
        return _base64(text, "the CSR is neither PEM nor base64-encoded DER")
    if len(blocks) > 1:
        raise CSRUnreadable(
            f"the CSR field holds {len(blocks)} PEM blocks: send exactly one CERTIFICATE REQUEST"
        )
    block = blocks[0]
    if block.label not in _CSR_LABELS:
        raise CSRUnreadable(f"the CSR field holds {_pem_kind(block.label)}, not a CERTIFICATE REQUEST")
    if block.end_label != block.label:
        ending = block.end_label if block.end_label in _KNOWN_PEM_LABELS else "another label"
        raise CSRUnreadable(f"the CSR's PEM armour begins with {block.label} but ends with {ending}")
    if block.start != 0 or block.end != len(text):
        raise CSRUnreadable("the CSR field holds text outside its PEM block: send only the PEM block")
    return _base64(block.body, "the body of the CSR's PEM block is not valid base64")


def _pem_kind(label: str) -> str:
    """A PEM label as an answer may name it: one of RFC 7468's (or OpenSSL's) well-known labels,
    never a label the caller made up (an answer does not quote request text)."""
    return f"a PEM {label}" if label in _KNOWN_PEM_LABELS else "a PEM block of another kind"


def _pem_blocks(text: str) -> list[_PEMBlock]:
    """The PEM blocks of ``text``, in order, each from its BEGIN line to the first END line after it.

    Linear in the length of ``text``: ``str.find`` only, each character looked at a bounded
    number of times (a regular expression with a lazy body re-scanned the rest of the text
    from every BEGIN, quadratic on ``"-----BEGIN A" * 5461``). A block is what the pattern
    ``-----BEGIN (L)-----(.*?)-----END (L)-----`` with labels ``L`` of 1-40 of ``[A-Z0-9 ]``
    matches, found left to right without overlap.
    """
    blocks: list[_PEMBlock] = []
    position = 0
    while True:
        begin = text.find(_PEM_BEGIN, position)
        if begin < 0:
            return blocks
        label, body_start = _pem_label(text, begin + len(_PEM_BEGIN))
        if label is None:
            position = begin + 1
            continue
        search = body_start
        while True:
            end = text.find(_PEM_END, search)
            if end < 0:
                # No END line after this BEGIN: none after any later BEGIN either.
                return blocks
            end_label, after = _pem_label(text, end + len(_PEM_END))
            if end_label is not None:
                break
            search = end + 1
        blocks.append(_PEMBlock(begin, after, label, end_label, text[body_start:end]))
        position = after


def _pem_label(text: str, start: int) -> tuple[str | None, int]:
    """(the label at ``start`` and the index after its closing dashes), or (None, start) if none is."""
    close = text.find(_PEM_DASHES, start, start + _PEM_MAX_LABEL_CHARS + len(_PEM_DASHES))
    if close <= start:
        return None, start
    label = text[start:close]
    if not all(ch in _PEM_LABEL_CHARS for ch in label):
        return None, start
    return label, close + len(_PEM_DASHES)


def _base64(text: str, message: str) -> bytes:
    compact = _WHITESPACE.sub("", text)
    if not _BASE64.fullmatch(compact):
        raise CSRUnreadable(message)
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise CSRUnreadable(message) from exc


def _load_der(der: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_der_x509_csr(der)
    except x509.InvalidVersion as exc:
        raise CSRUnreadable("the CSR has a version other than 1 (v1, encoded as 0)") from exc
    except ValueError as exc:
        detail = str(exc)
        if "ExtraData" in detail:
            message = "the CSR has trailing bytes after its DER encoding"
        elif "ShortData" in detail:
            message = "the CSR is truncated or is not a DER-encoded PKCS#10 certificate request"
        else:
            message = "the CSR is not a valid DER-encoded PKCS#10 certificate request"
        raise CSRUnreadable(message) from exc


def _signature_name(csr: x509.CertificateSigningRequest) -> str:
    dotted = csr.signature_algorithm_oid.dotted_string
    return _SIGNATURE_NAMES.get(dotted, dotted)


def _check_signature_hash(csr: x509.CertificateSigningRequest) -> str:
    """The signature algorithm's name, once its hash is known to be SHA-256 or stronger."""
    name = _signature_name(csr)
    weak = _WEAK_SIGNATURE_HASHES.get(csr.signature_algorithm_oid.dotted_string)
    if weak is not None:
        raise CSRUnreadable(f"the CSR is signed with {weak} ({name}): SHA-256 or stronger is required")
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise CSRUnreadable(f"the CSR's signature algorithm {name} is not supported") from exc
    if hash_algorithm is not None and hash_algorithm.digest_size < MIN_SIGNATURE_HASH_BYTES:
        raise CSRUnreadable(
            f"the CSR is signed with {_hash_label(hash_algorithm)} ({name}): SHA-256 or stronger is required"
        )
    if name == "rsassaPss" and hash_algorithm is not None:
        name = f"rsassaPss with {_hash_label(hash_algorithm)}"
    return name


def _hash_label(hash_algorithm: hashes.HashAlgorithm) -> str:
    """"SHA-1", "SHA-256", "SHA3-256", "MD5" from cryptography's "sha1", "sha256", "sha3-256", "md5"."""
    label = hash_algorithm.name.upper()
    if label.startswith("SHA") and not label.startswith(("SHA-", "SHA3")):
        return "SHA-" + label[3:]
    return label


def _load_public_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    try:
        return csr.public_key()
    except UnsupportedAlgorithm as exc:
        raise KeyRefused(
            "the CSR's public key is of an algorithm or curve this service does not support: "
            "only RSA 2048, 3072 or 4096 bits and ECDSA P-256 or P-384 keys are accepted"
        ) from exc
    except ValueError as exc:
        raise KeyRefused(
            "the CSR's public key is invalid (not a point on its curve, explicit curve parameters, "
            "or a malformed key): only RSA 2048, 3072 or 4096 bits and ECDSA P-256 or P-384 keys are accepted"
        ) from exc


def _subject(csr: x509.CertificateSigningRequest) -> tuple[tuple[str, str], ...]:
    try:
        attributes = list(csr.subject)
    except ValueError as exc:
        raise CSRUnreadable("the CSR's subject cannot be read") from exc
    subject: list[tuple[str, str]] = []
    for attribute in attributes:
        value = attribute.value
        text = value if isinstance(value, str) else "#" + bytes(value).hex()
        name = "CN" if attribute.oid == NameOID.COMMON_NAME else attribute.rfc4514_attribute_name
        subject.append((name, text))
    return tuple(subject)


def _san_dns_names(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        extensions = csr.extensions
    except x509.DuplicateExtension as exc:
        raise CSRUnreadable(f"the CSR requests the extension {exc.oid.dotted_string} more than once") from exc
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise CSRUnreadable("the CSR's requested extensions (extensionRequest) cannot be read") from exc
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.value.get_values_for_type(x509.DNSName))
