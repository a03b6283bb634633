"""A stored CA key (or OCSP responder key) re-encrypted under another passphrase: the same key,
the same public half, a new wrapping (``soap-service ca rotate-passphrase``, docs/deployment.md).

The format is :class:`EncryptedKeyBackend`'s own (its decryption and its encryption are used, so
the two cannot drift apart); the re-encrypted form is opened again with the new passphrase and its
public key compared before it is handed back. Nothing here knows where keys are stored.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from soap_service.ca.algorithms import PublicKey
from soap_service.ca.keys.backend import KeyUnlockFailed
from soap_service.ca.keys.encrypted import EncryptedKeyBackend
from soap_service.config import Secret


def opens(name: str, stored: bytes, passphrase: Secret) -> bool:
    """Whether ``passphrase`` unlocks the stored key of ``name``."""
    try:
        EncryptedKeyBackend(passphrase)._decrypt(name, stored)
    except KeyUnlockFailed:
        return False
    return True


def rewrap(name: str, stored: bytes, *, current: Secret, new: Secret) -> bytes:
    """``stored`` (encrypted under ``current``) encrypted under ``new`` instead.

    :class:`KeyUnlockFailed` (naming the key only) when ``current`` does not open it."""
    key = EncryptedKeyBackend(current)._decrypt(name, stored)
    rewrapped = EncryptedKeyBackend(new)._protect(key)
    check = EncryptedKeyBackend(new)._decrypt(name, rewrapped)
    if _spki(check.public_key()) != _spki(key.public_key()):  # pragma: no cover - a library fault
        raise KeyUnlockFailed(f"the key of {name} did not survive its re-encryption")
    return rewrapped


def _spki(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
