"""Reading a CSR: PEM or bare base64 DER in, a verified :class:`ParsedCSR` out.

This module only reads (docs/design.md, "Reissue rules", rule 5, and "Key policy").  It refuses
what cannot be trusted to say what it says, with -4007: unreadable encodings, a signature
algorithm that is not on the allowlist (:data:`ACCEPTED_SIGNATURES`), a self-signature that does
not verify.  It never refuses a key: a key that cryptography cannot load is reported as
:class:`UnloadableKey`, and what is *acceptable* about a key (-4009) is
:class:`soap_service.ra.keypolicy.KeyPolicy`'s job; which names may be certified is the name
policy's.  Extensions of the CSR are read only to learn the requested names: they are never
copied into a certificate.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

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
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from soap_service.ca import der
from soap_service.errors import CSRUnreadable, InvalidField

MAX_CSR_CHARS = 64 * 1024
"""Largest CSR field accepted, in characters (a CSR with a 4096-bit key and many names is ~3 KB)."""

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

CSRPublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""The key of a CSR that verified: every accepted signature algorithm is RSA or ECDSA."""

_RSASSA_PSS = "1.2.840.113549.1.1.10"

ACCEPTED_SIGNATURES: Mapping[str, type[rsa.RSAPublicKey] | type[ec.EllipticCurvePublicKey]] = {
    "1.2.840.113549.1.1.11": rsa.RSAPublicKey,  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": rsa.RSAPublicKey,  # sha384WithRSAEncryption
    "1.2.840.113549.1.1.13": rsa.RSAPublicKey,  # sha512WithRSAEncryption
    _RSASSA_PSS: rsa.RSAPublicKey,  # only with a hash of _PSS_HASHES and MGF1 on the same hash
    "1.2.840.10045.4.3.2": ec.EllipticCurvePublicKey,  # ecdsa-with-SHA256
    "1.2.840.10045.4.3.3": ec.EllipticCurvePublicKey,  # ecdsa-with-SHA384
    "1.2.840.10045.4.3.4": ec.EllipticCurvePublicKey,  # ecdsa-with-SHA512
}
"""The allowlist of CSR signature algorithms, by OID, with the type of key each is made with.

Every other algorithm is refused (-4007) by name, whatever its strength: SHA-1 and MD5, but also
Ed25519, SHA-3, DSA and ML-DSA."""

_PSS_HASHES: tuple[type[hashes.HashAlgorithm], ...] = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
"""The hashes RSASSA-PSS is accepted with (its parameters name the hash; MGF1 must use the same)."""

_ACCEPTED_TEXT = (
    "only RSA (PKCS#1 v1.5, or PSS with MGF1 on the same hash) and ECDSA signatures with SHA-256, "
    "SHA-384 or SHA-512 are accepted"
)

# The signature algorithms a CSR is likely to carry, as OpenSSL spells them, with the hash each
# uses when it names one: only to name an algorithm in an answer, never to decide.
_SIGNATURE_NAMES: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.2": ("md2WithRSAEncryption", "MD2"),
    "1.2.840.113549.1.1.3": ("md4WithRSAEncryption", "MD4"),
    "1.2.840.113549.1.1.4": ("md5WithRSAEncryption", "MD5"),
    "1.2.840.113549.1.1.5": ("sha1WithRSAEncryption", "SHA-1"),
    "1.3.14.3.2.29": ("sha1WithRSASignature", "SHA-1"),
    "1.2.840.113549.1.1.14": ("sha224WithRSAEncryption", "SHA-224"),
    "1.2.840.113549.1.1.11": ("sha256WithRSAEncryption", "SHA-256"),
    "1.2.840.113549.1.1.12": ("sha384WithRSAEncryption", "SHA-384"),
    "1.2.840.113549.1.1.13": ("sha512WithRSAEncryption", "SHA-512"),
    _RSASSA_PSS: ("rsassaPss", None),
    "2.16.840.1.101.3.4.3.13": ("RSA-SHA3-224", "SHA3-224"),
    "2.16.840.1.101.3.4.3.14": ("RSA-SHA3-256", "SHA3-256"),
    "2.16.840.1.101.3.4.3.15": ("RSA-SHA3-384", "SHA3-384"),
    "2.16.840.1.101.3.4.3.16": ("RSA-SHA3-512", "SHA3-512"),
    "1.2.840.10045.4.1": ("ecdsa-with-SHA1", "SHA-1"),
    "1.2.840.10045.4.3.1": ("ecdsa-with-SHA224", "SHA-224"),
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", "SHA-256"),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", "SHA-384"),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", "SHA-512"),
    "2.16.840.1.101.3.4.3.9": ("ecdsa_with_SHA3-224", "SHA3-224"),
    "2.16.840.1.101.3.4.3.10": ("ecdsa_with_SHA3-256", "SHA3-256"),
    "2.16.840.1.101.3.4.3.11": ("ecdsa_with_SHA3-384", "SHA3-384"),
    "2.16.840.1.101.3.4.3.12": ("ecdsa_with_SHA3-512", "SHA3-512"),
    "1.2.840.10040.4.3": ("dsa-with-SHA1", "SHA-1"),
    "2.16.840.1.101.3.4.3.1": ("dsa-with-SHA224", "SHA-224"),
    "2.16.840.1.101.3.4.3.2": ("dsa-with-SHA256", "SHA-256"),
    "2.16.840.1.101.3.4.3.3": ("dsa-with-SHA384", "SHA-384"),
    "2.16.840.1.101.3.4.3.4": ("dsa-with-SHA512", "SHA-512"),
    "1.3.101.112": ("ED25519", None),
    "1.3.101.113": ("ED448", None),
    "2.16.840.1.101.3.4.3.17": ("ML-DSA-44", None),
    "2.16.840.1.101.3.4.3.18": ("ML-DSA-65", None),
    "2.16.840.1.101.3.4.3.19": ("ML-DSA-87", None),
}

_MAX_QUOTED_OID_CHARS = 64
"""An unnamed OID is quoted in an answer only up to this length (a DER OID can be kilobytes)."""

_DOES_NOT_VERIFY = (
    "the CSR's signature does not verify with its own public key: "
    "the CSR was altered after signing or signed with another key"
)

_CURVE_NAMES: dict[str, str] = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


@dataclass(frozen=True)
class ParsedCSR:
    """A CSR whose encoding was read, whose signature algorithm is on the allowlist and whose
    self-signature verified."""

    der: bytes
    sha256: str
    """Hex SHA-256 of the DER: byte-identical retries compare on this."""
    public_key: CSRPublicKey
    spki_sha256: str
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo, as :func:`spki_sha256` computes it."""
    subject: tuple[tuple[str, str], ...]
    """(short attribute name such as "CN", "O", "C", or the dotted OID; value), in order."""
    common_names: tuple[str, ...]
    san_dns_names: tuple[str, ...]
    """dNSNames of the extensionRequest's subjectAltName, as given (not lowercased)."""
    key_algorithm: str
    """"RSA" or "EC" (:func:`key_facts`)."""
    key_size: int
    """Bits: the RSA modulus, the EC curve's order size."""
    curve: str | None
    """"P-256", "P-384", ... or cryptography's curve name; None for an RSA key."""
    signature_algorithm: str
    """Such as "sha256WithRSAEncryption", "rsassaPss with SHA-256", "ecdsa-with-SHA384"."""
    key_encoding: KeyEncoding
    """How the CSR's SubjectPublicKeyInfo names the key's algorithm (cryptography loads some
    keys whatever their AlgorithmIdentifier says)."""


class KeyEncoding(enum.Enum):
    """The AlgorithmIdentifier of a CSR's SubjectPublicKeyInfo, as far as the key policy cares."""

    RSA_ENCRYPTION = "rsaEncryption"
    """An RSA key for any RSA use (parameters NULL or absent): what a certificate carries."""
    NAMED_CURVE = "id-ecPublicKey on a named curve"
    RSASSA_PSS = "an RSA key restricted to RSASSA-PSS (id-RSASSA-PSS)"
    """A restriction a certificate made from it would silently drop."""
    EXPLICIT_CURVE = "id-ecPublicKey with explicit curve parameters"
    OTHER = "an algorithm identifier other than rsaEncryption or id-ecPublicKey on a named curve"


class KeyLoadFailure(enum.Enum):
    """Why cryptography could not load a CSR's public key."""

    UNSUPPORTED = "unsupported"
    """An algorithm or a curve it does not implement."""
    INVALID = "invalid"
    """A point not on its curve, the point at infinity, explicit curve parameters, a malformed key."""


@dataclass(frozen=True)
class UnloadableKey:
    """A CSR read up to its public key, which could not be loaded: a fact, not a refusal.

    Its signature cannot be verified without the key, so reading stops there (nothing after it,
    the subject and the requested names, is read).  The key policy refuses it with -4009.
    """

    failure: KeyLoadFailure


CSRReading: TypeAlias = ParsedCSR | UnloadableKey
"""What :func:`parse_csr` reads from a CSR that it does not refuse."""


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


def parse_csr(text: str) -> CSRReading:
    """Read and verify a CSR given as PEM or as bare base64 of its DER.

    Raises :class:`InvalidField` when the field is empty, :class:`CSRUnreadable` when it cannot
    be read, holds anything besides one CSR, is signed with an algorithm off the allowlist or
    its signature does not verify.  A public key that cannot even be loaded (unknown algorithm,
    unsupported curve, invalid point) is not refused here: the answer is :class:`UnloadableKey`,
    which the key policy refuses.
    """
    check_csr_size(text)
    if not text.strip():
        raise InvalidField("CSR is missing", field="CSR")
    der = _decode(text.strip())
    csr = _load_der(der)
    signature_algorithm, key_type = _accepted_signature(csr, der)
    try:
        public_key = csr.public_key()
    except UnsupportedAlgorithm:
        return UnloadableKey(KeyLoadFailure.UNSUPPORTED)
    except ValueError:
        return UnloadableKey(KeyLoadFailure.INVALID)
    if not isinstance(public_key, key_type):
        raise CSRUnreadable(_DOES_NOT_VERIFY)  # an RSA signature cannot be made by an EC key, and so on
    try:
        signature_valid = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:
        raise CSRUnreadable(
            f"the CSR's signature algorithm {signature_algorithm} cannot be verified by this service"
        ) from exc
    if not signature_valid:
        raise CSRUnreadable(_DOES_NOT_VERIFY)
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
        key_encoding=_key_encoding(csr.tbs_certrequest_bytes),
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


def _accepted_signature(
    csr: x509.CertificateSigningRequest, der: bytes
) -> tuple[str, type[rsa.RSAPublicKey] | type[ec.EllipticCurvePublicKey]]:
    """(the name of the CSR's signature algorithm, the type of key it is made with), when the
    algorithm is on the allowlist; -4007 naming it when it is not.

    Decided on the OID (and, for RSASSA-PSS, its parameters) before the key is loaded or the
    signature verified: cryptography 50 does not verify SHA-1 or MD5 signatures at all and would
    only report "invalid signature", which misleads the caller.
    """
    dotted = csr.signature_algorithm_oid.dotted_string
    key_type = ACCEPTED_SIGNATURES.get(dotted)
    if key_type is None:
        raise _signature_refused(_signature_label(dotted))
    if dotted == _RSASSA_PSS:
        return _accepted_pss(csr, der), key_type
    name, _ = _SIGNATURE_NAMES[dotted]
    return name, key_type


def _accepted_pss(csr: x509.CertificateSigningRequest, der: bytes) -> str:
    """"rsassaPss with SHA-256" when the hash is SHA-256/384/512, the mask MGF1 with the same hash
    and the trailerField absent or 1 (the only value RFC 4055 defines; cryptography does not read it)."""
    try:
        hash_algorithm = csr.signature_hash_algorithm
        parameters = csr.signature_algorithm_parameters
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise _signature_refused("rsassaPss with parameters this service cannot read") from exc
    if hash_algorithm is None or not isinstance(parameters, padding.PSS):
        raise _signature_refused("rsassaPss with parameters this service cannot read")
    label = _hash_label(hash_algorithm)
    if type(hash_algorithm) not in _PSS_HASHES:
        raise _signature_refused(f"{label} (rsassaPss)")
    if parameters.mgf != padding.MGF1(type(hash_algorithm)()):
        raise _signature_refused(f"rsassaPss with {label} and a mask generation other than MGF1 with {label}")
    if _pss_trailer_field(der) not in (None, _TRAILER_FIELD_BC):
        raise _signature_refused(f"rsassaPss with {label} and a trailerField other than 1 (RFC 4055)")
    return f"rsassaPss with {label}"


_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")
_RSASSA_PSS_OID = bytes.fromhex("06092a864886f70d01010a")
_EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")
_DER_NULL = bytes.fromhex("0500")
_DER_OID_TAG = 0x06
_PSS_TRAILER_FIELD_TAG = 0xA3  # RSASSA-PSS-params: [0] hash, [1] mask, [2] saltLength, [3] trailerField
_TRAILER_FIELD_BC = bytes.fromhex("020101")  # INTEGER 1


def _key_encoding(request_info: bytes) -> KeyEncoding:
    """The :class:`KeyEncoding` of the SubjectPublicKeyInfo in a CertificationRequestInfo that
    cryptography has read (so well-formed DER: a ValueError here is a bug, not the caller's)."""
    spki = der.sequence_elements(request_info)[2]
    algorithm = der.sequence_elements(der.sequence_elements(spki)[0])
    identifier, parameters = algorithm[0], algorithm[1:]
    if identifier == _RSA_ENCRYPTION_OID and parameters in ([], [_DER_NULL]):
        return KeyEncoding.RSA_ENCRYPTION
    if identifier == _RSASSA_PSS_OID:
        return KeyEncoding.RSASSA_PSS
    if identifier == _EC_PUBLIC_KEY_OID and len(parameters) == 1:
        return KeyEncoding.NAMED_CURVE if parameters[0][0] == _DER_OID_TAG else KeyEncoding.EXPLICIT_CURVE
    return KeyEncoding.OTHER


def _pss_trailer_field(request: bytes) -> bytes | None:
    """The trailerField element (whole) of a CSR signed with RSASSA-PSS, or None when absent."""
    try:
        algorithm = der.sequence_elements(der.sequence_elements(request)[1])
        parameters = der.sequence_elements(algorithm[1]) if len(algorithm) == 2 else []
    except ValueError as exc:  # parameters that are no SEQUENCE: cryptography would have refused them
        raise _signature_refused("rsassaPss with parameters this service cannot read") from exc
    for element in parameters:
        if element[0] == _PSS_TRAILER_FIELD_TAG:
            _, start, end = der.read_element(element)
            return element[start:end]
    return None


def _signature_label(dotted: str) -> str:
    """An algorithm off the allowlist as an answer names it: "SHA-1 (sha1WithRSAEncryption)",
    "ED25519", or its dotted OID when it has no name here."""
    known = _SIGNATURE_NAMES.get(dotted)
    if known is None:
        return dotted if len(dotted) <= _MAX_QUOTED_OID_CHARS else "an algorithm of an unknown, very long OID"
    name, hash_label = known
    return f"{hash_label} ({name})" if hash_label is not None else name


def _signature_refused(label: str) -> CSRUnreadable:
    return CSRUnreadable(f"the CSR is signed with {label}: {_ACCEPTED_TEXT}")


def _hash_label(hash_algorithm: hashes.HashAlgorithm) -> str:
    """"SHA-1", "SHA-256", "SHA3-256", "MD5" from cryptography's "sha1", "sha256", "sha3-256", "md5"."""
    label = hash_algorithm.name.upper()
    if label.startswith("SHA") and not label.startswith(("SHA-", "SHA3-")):  # "SHA384" is not SHA-3
        return "SHA-" + label[3:]
    return label


def _subject(csr: x509.CertificateSigningRequest) -> tuple[tuple[str, str], ...]:
    try:
        attributes = list(csr.subject)
    except (ValueError, TypeError) as exc:
        # TypeError: a value of a type its attribute cannot have (cryptography's NameAttribute
        # takes a BIT STRING only for x500UniqueIdentifier; found by tests/test_fuzz_csr.py).
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
