"""Signing a leaf: build it from the request, lint the very same TBS, then sign it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from soap_service.ca.algorithms import PrivateKey, generate_key, signature_hash
from soap_service.ca.leaf import leaf_builder
from soap_service.ca.lint import PreIssuanceLinter
from soap_service.ca.locations import ca_certificate_url, crl_url, ocsp_url
from soap_service.ca.profiles import LeafRequest
from soap_service.errors import LintRefused

__all__ = ["Issuer", "IssuingCA", "ca_certificate_url", "crl_url", "ocsp_url"]


@dataclass(frozen=True)
class IssuingCA:
    name: str  # e.g. "GEOTRUST-TLS"
    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # issuers above it, nearest first, ending with the root

    def __post_init__(self) -> None:
        if self.private_key.public_key() != self.certificate.public_key():
            raise ValueError(f"the private key of CA {self.name} does not match its certificate")


class _ThrowAwayKeys:
    """One throw-away key per algorithm family and curve, made on first use, kept for the process."""

    def __init__(self) -> None:
        self._keys: dict[str, PrivateKey] = {}
        self._lock = threading.Lock()

    def like(self, key: PrivateKey) -> PrivateKey:
        if isinstance(key, rsa.RSAPrivateKey):
            algorithm = "rsa-2048"  # same signature algorithm identifier as any RSA CA key
        elif isinstance(key.curve, ec.SECP384R1):
            algorithm = "ecdsa-p384"
        else:
            algorithm = "ecdsa-p256"
        with self._lock:
            if algorithm not in self._keys:
                self._keys[algorithm] = generate_key(algorithm)
            return self._keys[algorithm]


_THROW_AWAY_KEYS = _ThrowAwayKeys()


class Issuer:
    """Issues leaves from :class:`LeafRequest`; refuses whatever the pre-issuance linter refuses."""

    def __init__(self, public_url: str, linter: PreIssuanceLinter) -> None:
        self._public_url = public_url
        self._linter = linter

    def issue(self, ca: IssuingCA, request: LeafRequest) -> x509.Certificate:
        """The signed leaf; raises :class:`~soap_service.errors.LintRefused` on an ERROR or FATAL finding."""
        builder = leaf_builder(request, ca.certificate, ca.name, self._public_url)
        algorithm = signature_hash(ca.private_key)
        trial = builder.sign(_THROW_AWAY_KEYS.like(ca.private_key), algorithm)
        findings = self._linter.findings(trial, request.level)
        if findings:
            raise LintRefused(findings)
        certificate = builder.sign(ca.private_key, algorithm)
        if certificate.tbs_certificate_bytes != trial.tbs_certificate_bytes:
            raise RuntimeError("the signed TBS differs from the linted one")
        return certificate
