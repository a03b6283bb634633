"""The recoverable copy of an API user's password that WS-Security PasswordDigest needs
(docs/design.md, "Authentication"): AES-256-GCM under a key derived from the CA passphrase, so
every host of an installation can read it and a copy of the database alone cannot.

The copy is bound to its partner code and user name (the associated data): moved to another
user's row it does not decrypt. It exists only for users the operator enabled with
``partner set-password --ws-digest``; the argon2 hash stays the one that checks AuthToken and
PasswordText logins.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from soap_service.config import Secret

WS_PASSWORD_KEY_LABEL = b"soap_service: WS-Security password copies"
FORMAT = "v1:"
NONCE_BYTES = 12


def derive_key(passphrase: Secret) -> bytes:
    """The installation's key for the copies: derived from the CA passphrase with a label of its own
    (:meth:`Secret.derive_key`; the portal's cookie key with another)."""
    return passphrase.derive_key(WS_PASSWORD_KEY_LABEL)


def _associated(partner_code: str, username: str) -> bytes:
    return f"{partner_code}\x00{username}".encode()


def encrypt_password(key: bytes, *, partner_code: str, username: str, password: Secret) -> str:
    """The copy as stored: ``v1:`` and the base64 of a fresh 96-bit nonce and the ciphertext."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, password.reveal().encode(), _associated(partner_code, username))
    return FORMAT + base64.b64encode(nonce + sealed).decode("ascii")


def decrypt_password(key: bytes, copy: str, *, partner_code: str, username: str) -> bytes | None:
    """The password's UTF-8 bytes, or ``None`` when the copy cannot be read with this key (another
    installation's key, another user's row, a damaged value)."""
    if not copy.startswith(FORMAT):
        return None
    try:
        raw = base64.b64decode(copy[len(FORMAT):], validate=True)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(partner_code, username))
    except (ValueError, InvalidTag):
        return None
