"""OCSP requests read and responses signed (RFC 6960; docs/design.md, "OCSP").

A request is read with cryptography and bounded: one Request in its requestList (cryptography
reads no more; a list of several is refused as malformed, and OpenSSL's ``ocsp`` sends one per
certificate). A response is an RFC 6960 BasicOCSPResponse: responderID byKey, one SingleResponse,
thisUpdate now, nextUpdate :data:`NEXT_UPDATE` later, the nonce echoed when the request has one,
the responder certificate in ``certs``. cryptography's builder signs only with a private key, so
the response is signed by the process's throw-away key of the responder's algorithm first, and
its tbsResponseData is then signed by the responder's signer and put together with ``ca.der``::

    OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT SEQUENCE {
        responseType OBJECT IDENTIFIER (id-pkix-ocsp-basic), response OCTET STRING } }
    BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
        certs [0] EXPLICIT SEQUENCE OF Certificate }

and verified with the responder certificate's key before it is returned.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from soap_service.ca import der
from soap_service.ca.keys.signer import CASigner
from soap_service.ca.keys.throwaway import throw_away_key_like

__all__ = [
    "CERT_ID_HASHES",
    "MAX_REQUEST_BYTES",
    "MAX_SERIAL_OCTETS",
    "NEXT_UPDATE",
    "CertificateState",
    "ErrorStatus",
    "MalformedRequest",
    "OCSPQuestion",
    "ResponderKey",
    "SignedResponse",
    "error_response",
    "issuer_hashes",
    "read_request",
    "sign_response",
]

NEXT_UPDATE = timedelta(days=4)
"""nextUpdate - thisUpdate: BR 4.9.10 allows at most 10 days; 4 days leaves room for refreshing
a cached response a day after it was signed (``ra.ocsp``) and still meet the BR's "update at
least 8 hours before nextUpdate"."""
MAX_REQUEST_BYTES = 4096
"""An OCSPRequest larger than this is refused unread (one CertID and a nonce take ~120 bytes)."""
MAX_NONCE_BYTES = 32
"""RFC 8954: a nonce of 1 to 32 octets; a longer one is malformed."""
MAX_SERIAL_OCTETS = 20
"""RFC 5280, 4.1.2.2: a serial number is positive and at most 20 octets (its DER INTEGER content);
a CertID with another one is malformed, refused before any lookup."""

_OCSP_BASIC = der.encode(0x06, bytes.fromhex("2b0601050507300101"))  # 1.3.6.1.5.5.7.48.1.1
_OCTET_STRING = 0x04
_ENUMERATED = 0x0A
_CONTEXT_0 = 0xA0
_RESPONDER_BY_KEY = 0xA2
_SPKI = PublicFormat.SubjectPublicKeyInfo


class ErrorStatus(enum.Enum):
    """The OCSPResponseStatus values this responder answers without a signature."""

    MALFORMED_REQUEST = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    INTERNAL_ERROR = ocsp.OCSPResponseStatus.INTERNAL_ERROR
    UNAUTHORIZED = ocsp.OCSPResponseStatus.UNAUTHORIZED


_ERROR_RESPONSES = {
    status: ocsp.OCSPResponseBuilder.build_unsuccessful(status.value).public_bytes(Encoding.DER)
    for status in ErrorStatus
}


def error_response(status: ErrorStatus) -> bytes:
    """The DER OCSPResponse with ``status`` and no responseBytes."""
    return _ERROR_RESPONSES[status]


class MalformedRequest(ValueError):
    """The bytes are no OCSPRequest this responder reads; answered ``malformedRequest``."""


@dataclass(frozen=True)
class OCSPQuestion:
    """The one CertID a request asks about, and its nonce if it has one."""

    hash_algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    nonce: bytes | None


def read_request(data: bytes) -> OCSPQuestion:
    """The question in a DER OCSPRequest; :class:`MalformedRequest` for anything else."""
    if not data:
        raise MalformedRequest("empty request")
    if len(data) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"request over {MAX_REQUEST_BYTES} bytes")
    try:
        request = ocsp.load_der_ocsp_request(data)
        algorithm = request.hash_algorithm
        nonce: bytes | None = None
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                nonce = extension.value.nonce
            elif extension.critical:
                raise MalformedRequest("unsupported critical request extension")
        question = OCSPQuestion(
            hash_algorithm=algorithm,
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial=request.serial_number,
            nonce=nonce,
        )
    except MalformedRequest:
        raise
    except (
        ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm,
        x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
    ) as error:
        # cryptography: bad DER, several requests (NotImplementedError), a CertID hash it does not
        # know (MD5, SHA3, an unknown OID: UnsupportedAlgorithm), an extension twice, a bad extension
        raise MalformedRequest(str(error)[:200]) from None
    if not isinstance(algorithm, hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        raise MalformedRequest("unsupported CertID hash algorithm")
    size = algorithm.digest_size
    if len(question.issuer_key_hash) != size or len(question.issuer_name_hash) != size:
        raise MalformedRequest("CertID hash of the wrong length")
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise MalformedRequest("nonce length out of range")
    if question.serial <= 0 or question.serial.bit_length() // 8 + 1 > MAX_SERIAL_OCTETS:
        raise MalformedRequest("CertID serial number not positive or over 20 octets")
    return question


class CertificateState(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ResponderKey:
    """A delegated responder: its certificate and its signer."""

    certificate: x509.Certificate
    signer: CASigner


@dataclass(frozen=True)
class SignedResponse:
    der: bytes
    this_update: datetime
    next_update: datetime


_REASONS = {flag.value.lower(): flag for flag in x509.ReasonFlags}


def reason_flag(reason: str | None) -> x509.ReasonFlags | None:
    """The CRLReason of a stored reason ('keyCompromise', 'KEY_COMPROMISE', ...); None for
    unspecified or none (RFC 5280 and BR 7.2.2: unspecified is omitted)."""
    if not reason:
        return None
    flag = _REASONS.get(reason.replace("_", "").lower())
    if flag is None:
        raise ValueError(f"unknown revocation reason {reason!r}")
    return None if flag is x509.ReasonFlags.unspecified else flag


def sign_response(
    question: OCSPQuestion,
    state: CertificateState,
    responder: ResponderKey,
    now: datetime,
    *,
    revoked_at: datetime | None = None,
    reason: str | None = None,
    with_nonce: bool = True,
) -> SignedResponse:
    """A successful response about ``question``'s certificate, signed by ``responder``."""
    this_update = now.astimezone(UTC).replace(microsecond=0)
    next_update = this_update + NEXT_UPDATE
    status = {
        CertificateState.GOOD: ocsp.OCSPCertStatus.GOOD,
        CertificateState.REVOKED: ocsp.OCSPCertStatus.REVOKED,
        CertificateState.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
    }[state]
    revocation_time = None
    revocation_reason = None
    if state is CertificateState.REVOKED:
        if revoked_at is None:
            raise ValueError("a revoked certificate has a revocation time")
        revocation_time = revoked_at.astimezone(UTC).replace(microsecond=0)
        revocation_reason = reason_flag(reason)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=question.issuer_name_hash,
            issuer_key_hash=question.issuer_key_hash,
            serial_number=question.serial,
            algorithm=question.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=revocation_time,
            revocation_reason=revocation_reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, _stand_in(signer := responder.signer))
    )
    if with_nonce and question.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(question.nonce), critical=False)
    trial = builder.sign(throw_away_key_like(signer), signer.hash_algorithm)
    if trial.signature_algorithm_oid != signer.signature_algorithm:
        raise RuntimeError("the trial response's signature algorithm is not the responder's")
    signed = _resign(trial, responder)
    _verify(signed, responder.certificate)
    return SignedResponse(signed, this_update, next_update)


def _resign(trial: ocsp.OCSPResponse, responder: ResponderKey) -> bytes:
    """``trial`` with the responder's key hash as its responderID, its tbsResponseData signed by the
    responder's signer instead of the throw-away key, and the responder certificate in ``certs``."""
    outer = der.sequence_elements(trial.public_bytes(Encoding.DER))
    if len(outer) != 2 or outer[0] != der.encode(_ENUMERATED, b"\x00"):
        raise ValueError("the trial is not a successful OCSPResponse")
    tag, start, end = der.read_element(outer[1])
    if tag != _CONTEXT_0 or end != len(outer[1]):
        raise ValueError("the trial's responseBytes are not [0]")
    response_bytes = der.sequence_elements(outer[1][start:end])
    if len(response_bytes) != 2 or response_bytes[0] != _OCSP_BASIC:
        raise ValueError("the trial's response is not id-pkix-ocsp-basic")
    tag, start, end = der.read_element(response_bytes[1])
    if tag != _OCTET_STRING or end != len(response_bytes[1]):
        raise ValueError("the trial's response is not an OCTET STRING")
    basic = der.sequence_elements(response_bytes[1][start:end])
    if len(basic) != 3 or basic[0] != trial.tbs_response_bytes:
        raise ValueError("the trial's BasicOCSPResponse is not tbsResponseData, algorithm, signature")
    tbs = _with_responder_id(basic[0], responder.certificate)
    certs = der.encode(_CONTEXT_0, der.sequence(responder.certificate.public_bytes(Encoding.DER)))
    signed_basic = der.sequence(tbs, basic[1], der.bit_string(responder.signer.sign(tbs)), certs)
    return der.sequence(
        outer[0],
        der.encode(_CONTEXT_0, der.sequence(_OCSP_BASIC, der.encode(_OCTET_STRING, signed_basic))),
    )


def _with_responder_id(tbs: bytes, responder: x509.Certificate) -> bytes:
    """ResponseData with its responderID (byKey, [2]) naming ``responder``'s key: the SHA-1 of its
    subjectPublicKey (RFC 6960, 4.2.1), where the trial named the throw-away key."""
    elements = der.sequence_elements(tbs)
    positions = [i for i, element in enumerate(elements) if element[0] == _RESPONDER_BY_KEY]
    if len(positions) != 1:
        raise ValueError("the trial's ResponseData has no responderID byKey")
    _, key_hash = issuer_hashes(responder, hashes.SHA1())  # noqa: S303 - RFC 6960's KeyHash is SHA-1
    elements[positions[0]] = der.encode(_RESPONDER_BY_KEY, der.encode(_OCTET_STRING, key_hash))
    return der.sequence(*elements)


class _StandIns:
    """A self-signed certificate for each throw-away key: what cryptography's builder wants as the
    responderID's certificate (it checks it against the signing key); it never leaves the process."""

    def __init__(self) -> None:
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def like(self, signer: CASigner) -> x509.Certificate:
        key = throw_away_key_like(signer)
        name = signer.signature_algorithm.dotted_string
        with self._lock:
            certificate = self._certificates.get(name)
            if certificate is None:
                subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "throw-away")])
                start = datetime(2000, 1, 1, tzinfo=UTC)
                certificate = (
                    x509.CertificateBuilder()
                    .subject_name(subject)
                    .issuer_name(subject)
                    .public_key(key.public_key())
                    .serial_number(1)
                    .not_valid_before(start)
                    .not_valid_after(start + timedelta(days=1))
                    .sign(key, signer.hash_algorithm)
                )
                self._certificates[name] = certificate
            return certificate


_STAND_INS = _StandIns()


def _stand_in(signer: CASigner) -> x509.Certificate:
    return _STAND_INS.like(signer)


def _verify(data: bytes, responder: x509.Certificate) -> None:
    response = ocsp.load_der_ocsp_response(data)
    key = responder.public_key()
    hash_algorithm = response.signature_hash_algorithm
    if hash_algorithm is None:
        raise RuntimeError("the signed response names no hash")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hash_algorithm))
        else:
            raise RuntimeError("a responder key is RSA or ECDSA")
    except InvalidSignature:
        raise RuntimeError("the OCSP response's signature does not verify with the responder's key") from None


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """A CertID's issuerNameHash and issuerKeyHash for ``issuer`` (RFC 6960, 4.1.1): the hash of
    its subject's DER, and of its subjectPublicKey BIT STRING's value (without the unused-bits octet)."""
    spki = der.sequence_elements(issuer.public_key().public_bytes(Encoding.DER, _SPKI))
    tag, start, end = der.read_element(spki[1])
    if len(spki) != 2 or tag != der.BIT_STRING or spki[1][start] != 0:
        raise ValueError("the issuer's SubjectPublicKeyInfo is not algorithm, BIT STRING")
    return _digest(algorithm, issuer.subject.public_bytes()), _digest(algorithm, spki[1][start + 1 : end])


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


CERT_ID_HASHES: tuple[hashes.HashAlgorithm, ...] = (
    hashes.SHA1(),  # noqa: S303 - a CertID's hash names the issuer only; RFC 6960 and RFC 5019 clients send SHA-1
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
)
"""The CertID hash algorithms a request may use (OpenSSL sends SHA-1 by default)."""
