"""Key algorithms of the CA: the key types it holds and the hash each one signs with.

Which algorithms exist is :mod:`soap_service.keyalgorithms`'s table, shared with the key policy.
"""

from __future__ import annotations

from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from soap_service.keyalgorithms import KEY_ALGORITHM_NAMES, RSA_EXPONENT, RSAKeyAlgorithm, key_algorithm

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

KEY_ALGORITHMS = KEY_ALGORITHM_NAMES


def generate_key(algorithm: str) -> PrivateKey:
    """A new private key for one of :data:`KEY_ALGORITHMS`; ``ValueError`` for anything else."""
    chosen = key_algorithm(algorithm)
    if chosen is None:
        raise ValueError(f"unknown key algorithm {algorithm!r}, expected one of {', '.join(KEY_ALGORITHMS)}")
    if isinstance(chosen, RSAKeyAlgorithm):
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=chosen.bits)
    return ec.generate_private_key(chosen.curve_type())


def signature_hash(key: PrivateKey | PublicKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash a CA key signs with: SHA-384 for a P-384 key, SHA-256 for RSA and P-256."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(key.curve, ec.SECP256R1):
            return hashes.SHA256()
        raise ValueError(f"unsupported CA curve {key.curve.name}")
    return hashes.SHA256()


def signature_algorithm(key: PrivateKey | PublicKey) -> x509.ObjectIdentifier:
    """The signature algorithm of a CA key: sha256WithRSAEncryption, ecdsa-with-SHA256 or ecdsa-with-SHA384."""
    hash_algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return SignatureAlgorithmOID.RSA_WITH_SHA256
    if isinstance(hash_algorithm, hashes.SHA384):
        return SignatureAlgorithmOID.ECDSA_WITH_SHA384
    return SignatureAlgorithmOID.ECDSA_WITH_SHA256
