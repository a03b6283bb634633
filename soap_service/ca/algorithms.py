"""Key algorithms of the CA: the key types it holds and the hash each one signs with."""

from __future__ import annotations

from typing import TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

KEY_ALGORITHMS = ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")

_RSA_SIZES = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}


def generate_key(algorithm: str) -> PrivateKey:
    """A new private key for one of :data:`KEY_ALGORITHMS`; ``ValueError`` for anything else."""
    if algorithm in _RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_SIZES[algorithm])
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm]())
    raise ValueError(f"unknown key algorithm {algorithm!r}, expected one of {', '.join(KEY_ALGORITHMS)}")


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash a CA key signs with: SHA-384 for a P-384 key, SHA-256 for RSA and P-256."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(key.curve, ec.SECP256R1):
            return hashes.SHA256()
        raise ValueError(f"unsupported CA curve {key.curve.name}")
    return hashes.SHA256()
