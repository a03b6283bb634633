"""The trial certificate (and trial CRL): a builder signed by a throw-away key of the CA signer's algorithm.

Its TBS is the one the CA's signer then signs (:func:`soap_service.ca.signing.sign_trial`), so what
is linted is what is issued. The throw-away keys sign nothing that leaves the process.
"""

from __future__ import annotations

import threading

from cryptography import x509
from cryptography.x509.oid import SignatureAlgorithmOID

from soap_service.ca.algorithms import PrivateKey, generate_key
from soap_service.ca.keys.signer import CASigner

# One throw-away key per signature algorithm; RSA 2048 has the AlgorithmIdentifier of any RSA CA key.
_ALGORITHMS = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: "rsa-2048",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-p256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-p384",
}


class _ThrowAwayKeys:
    """One throw-away key per signature algorithm, made on first use, kept for the process."""

    def __init__(self) -> None:
        self._keys: dict[str, PrivateKey] = {}
        self._lock = threading.Lock()

    def like(self, signer: CASigner) -> PrivateKey:
        algorithm = _ALGORITHMS.get(signer.signature_algorithm)
        if algorithm is None:
            raise ValueError(f"unsupported CA signature algorithm {signer.signature_algorithm.dotted_string}")
        with self._lock:
            if algorithm not in self._keys:
                self._keys[algorithm] = generate_key(algorithm)
            return self._keys[algorithm]


_THROW_AWAY_KEYS = _ThrowAwayKeys()


def trial_certificate(builder: x509.CertificateBuilder, signer: CASigner) -> x509.Certificate:
    """``builder`` signed by a throw-away key with ``signer``'s signature algorithm and hash."""
    trial = builder.sign(_THROW_AWAY_KEYS.like(signer), signer.hash_algorithm)
    if trial.signature_algorithm_oid != signer.signature_algorithm:
        raise RuntimeError("the trial certificate's signature algorithm is not the CA signer's")
    return trial


def trial_crl(builder: x509.CertificateRevocationListBuilder, signer: CASigner) -> x509.CertificateRevocationList:
    """``builder`` signed by a throw-away key with ``signer``'s signature algorithm and hash (a CRL's
    TBS for :func:`soap_service.ca.signing.sign_trial_crl`)."""
    trial = builder.sign(_THROW_AWAY_KEYS.like(signer), signer.hash_algorithm)
    if trial.signature_algorithm_oid != signer.signature_algorithm:
        raise RuntimeError("the trial CRL's signature algorithm is not the CA signer's")
    return trial


def throw_away_key_like(signer: CASigner) -> PrivateKey:
    """The process's throw-away key with ``signer``'s signature algorithm: it signs trials that never
    leave the process (an OCSP response's, whose TBS the signer then signs: ``ca.ocsp``)."""
    return _THROW_AWAY_KEYS.like(signer)
