"""A certificate (or a CRL) signed through a :class:`~soap_service.ca.keys.signer.CASigner`: the trial's TBS,
its signature algorithm and the signer's signature, put together as DER and verified.

docs/design.md, "Certificate profiles": the CA never holds a private key object, only a signer.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from soap_service.ca import der
from soap_service.ca.keys.signer import CASigner
from soap_service.ca.keys.throwaway import trial_certificate, trial_crl

__all__ = ["SignatureMismatch", "sign_trial", "sign_trial_crl", "trial_certificate", "trial_crl"]


class SignatureMismatch(RuntimeError):
    """The signer's signature does not verify with the issuer's certificate (a wrong key or a bad backend)."""


def sign_trial(trial: x509.Certificate, signer: CASigner, issuer: x509.Certificate | None) -> x509.Certificate:
    """``trial``'s TBS signed by ``signer``: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
    BIT STRING signature }, the first two copied from the trial's DER.

    The result is verified against ``issuer`` (its name and key), or against itself when ``issuer`` is
    None (a self-signed root); a signature that does not verify raises :class:`SignatureMismatch`.
    """
    if trial.signature_algorithm_oid != signer.signature_algorithm:
        raise ValueError("the trial certificate's signature algorithm is not the signer's")
    tbs, algorithm_identifier, _ = _parts(trial)
    signature = signer.sign(tbs)
    certificate = x509.load_der_x509_certificate(der.sequence(tbs, algorithm_identifier, der.bit_string(signature)))
    if certificate.tbs_certificate_bytes != tbs:
        raise RuntimeError("the signed TBS differs from the trial's")
    try:
        certificate.verify_directly_issued_by(issuer or certificate)
    except (InvalidSignature, ValueError, TypeError):
        subject = (issuer or certificate).subject.rfc4514_string()
        raise SignatureMismatch(f"the signature does not verify with the key of {subject}") from None
    return certificate


def sign_trial_crl(
    trial: x509.CertificateRevocationList, signer: CASigner, issuer: x509.Certificate
) -> x509.CertificateRevocationList:
    """``trial``'s TBSCertList signed by ``signer``: CertificateList ::= SEQUENCE { tbsCertList,
    signatureAlgorithm, BIT STRING signature }, as :func:`sign_trial` does for a certificate.

    The result is verified with ``issuer``'s public key (and must name ``issuer``); a signature
    that does not verify raises :class:`SignatureMismatch`.
    """
    if trial.signature_algorithm_oid != signer.signature_algorithm:
        raise ValueError("the trial CRL's signature algorithm is not the signer's")
    if trial.issuer != issuer.subject:
        raise ValueError("the trial CRL's issuer is not the CA's subject")
    elements = der.sequence_elements(trial.public_bytes(Encoding.DER))
    if len(elements) != 3 or elements[0] != trial.tbs_certlist_bytes:
        raise ValueError("the trial CRL is not tbsCertList, signatureAlgorithm, signature")
    tbs, algorithm_identifier = elements[0], elements[1]
    signature = signer.sign(tbs)
    crl = x509.load_der_x509_crl(der.sequence(tbs, algorithm_identifier, der.bit_string(signature)))
    if crl.tbs_certlist_bytes != tbs:
        raise RuntimeError("the signed TBSCertList differs from the trial's")
    public_key = issuer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
        public_key
    ):
        subject = issuer.subject.rfc4514_string()
        raise SignatureMismatch(f"the CRL's signature does not verify with the key of {subject}")
    return crl


def _parts(trial: x509.Certificate) -> tuple[bytes, bytes, bytes]:
    elements = der.sequence_elements(trial.public_bytes(Encoding.DER))
    if len(elements) != 3 or elements[0] != trial.tbs_certificate_bytes:
        raise ValueError("the trial certificate is not tbsCertificate, signatureAlgorithm, signature")
    return elements[0], elements[1], elements[2]
