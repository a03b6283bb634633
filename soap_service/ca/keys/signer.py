"""What a key backend hands out for a CA key: a signer, never the private key (docs/design.md, "Certificate profiles").

The issuer and the hierarchy sign through :class:`CASigner` only, so a backend that keeps its keys
elsewhere (a PKCS#11 token, say) implements this and nothing else changes.
"""

from __future__ import annotations

import hashlib
from typing import NoReturn, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from soap_service.ca.algorithms import PrivateKey, PublicKey, signature_algorithm, signature_hash


class CASigner(Protocol):
    """Signs TBS bytes with one CA key that it never shows."""

    @property
    def public_key(self) -> PublicKey:
        """The CA key's public half (compared with the CA certificate's)."""
        ...

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        """The hash it signs with (:func:`soap_service.ca.algorithms.signature_hash`)."""
        ...

    @property
    def signature_algorithm(self) -> x509.ObjectIdentifier:
        """Its AlgorithmIdentifier's OID: sha256WithRSAEncryption, ecdsa-with-SHA256 or ecdsa-with-SHA384."""
        ...

    def sign(self, tbs: bytes) -> bytes:
        """The signature over ``tbs`` (DER), as it goes in the certificate's BIT STRING.

        RSA: PKCS#1 v1.5 with :attr:`hash_algorithm`. ECDSA: the DER ECDSA-Sig-Value (a token's
        raw r || s is converted with ``cryptography``'s ``encode_dss_signature``).
        """
        ...


class InProcessSigner:
    """A :class:`CASigner` over a key held in this process; the key has no public way out."""

    __slots__ = ("_algorithm", "_hash", "_key", "_public_key")

    def __init__(self, key: PrivateKey) -> None:
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("a CA key is RSA or ECDSA")
        self._key = key
        self._public_key: PublicKey = key.public_key()
        self._hash = signature_hash(key)
        self._algorithm = signature_algorithm(key)

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        return self._hash

    @property
    def signature_algorithm(self) -> x509.ObjectIdentifier:
        return self._algorithm

    def sign(self, tbs: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(tbs, padding.PKCS1v15(), self._hash)
        return self._key.sign(tbs, ec.ECDSA(self._hash))

    def __repr__(self) -> str:
        return f"InProcessSigner({self._algorithm._name}, public key {public_key_id(self._public_key)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CA signer cannot be pickled or copied")


def public_key_id(public_key: PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the SubjectPublicKeyInfo: names a key, shows nothing secret."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:16]
