"""CA keys stored in the database as passphrase-encrypted PKCS#8, and where the passphrase comes from."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from soap_service.ca.algorithms import PrivateKey, generate_key
from soap_service.ca.keys.backend import KeyUnlockFailed, NewKey
from soap_service.ca.keys.signer import CASigner, InProcessSigner
from soap_service.config import ConfigurationError, Secret

GENERATED_FILE_NAME = "ca-passphrase"  # under the data directory


class EncryptedKeyBackend:
    """PKCS#8 PEM encrypted with the best available scheme; keys are made, and sign, in this process.

    Unlocked keys are cached per process, each inside its :class:`InProcessSigner`.
    """

    def __init__(self, passphrase: Secret) -> None:
        if not passphrase.reveal():
            raise ConfigurationError("the CA key passphrase is empty")
        self._passphrase = passphrase
        self._unlocked: dict[tuple[str, bytes], CASigner] = {}
        self._lock = threading.Lock()

    def create(self, ca_name: str, algorithm: str) -> NewKey:
        key = generate_key(algorithm)
        return NewKey(InProcessSigner(key), self._protect(key))

    def _protect(self, key: PrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase.reveal().encode()),
        )

    def unlock(self, ca_name: str, stored: bytes) -> CASigner:
        cache_key = (ca_name, hashlib.sha256(stored).digest())
        with self._lock:
            signer = self._unlocked.get(cache_key)
            if signer is None:
                signer = InProcessSigner(self._decrypt(ca_name, stored))
                self._unlocked[cache_key] = signer
        return signer

    def _decrypt(self, ca_name: str, stored: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(stored, self._passphrase.reveal().encode())
        except (ValueError, TypeError):
            # cryptography's message says nothing secret, but it is not ours to pass on
            raise KeyUnlockFailed(
                f"the key of CA {ca_name} cannot be unlocked: wrong CA passphrase or damaged key data"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyUnlockFailed(f"the key of CA {ca_name} is neither RSA nor ECDSA")
        return key


def load_or_create_passphrase(explicit: Secret | None, passphrase_file: Path | None, data_dir: Path) -> Secret:
    """The CA key passphrase: the explicit setting, else the given file, else ``<data_dir>/ca-passphrase``.

    The last is created once with a random passphrase, readable by the owner only.
    """
    if explicit is not None:
        return explicit
    if passphrase_file is not None:
        return _read(passphrase_file)
    path = data_dir / GENERATED_FILE_NAME
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_new_passphrase_file(path, Secret(secrets.token_urlsafe(32)))
    except FileExistsError:
        return  # another process made it first; read theirs


def write_new_passphrase_file(path: Path, passphrase: Secret) -> None:
    """A new file (never an existing one: ``FileExistsError``) holding ``passphrase`` and a newline,
    ``0600`` whatever the umask, synced to disk before this returns."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (passphrase.reveal() + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read(path: Path) -> Secret:
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ConfigurationError(f"cannot read the CA passphrase file {path}: {error.strerror}") from None
    if not value:
        raise ConfigurationError(f"the CA passphrase file {path} is empty")
    return Secret(value)
