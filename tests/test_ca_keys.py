"""CA key storage: encrypted PKCS#8 in the database, one decryption per process, the passphrase file;
the backend hands out signers (docs/design.md, "Certificate profiles")."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from soap_service.ca.algorithms import PrivateKey, PublicKey, generate_key
from soap_service.ca.keys import (
    CASigner,
    EncryptedKeyBackend,
    KeyBackend,
    KeyUnlockFailed,
    NewKey,
    load_or_create_passphrase,
)
from soap_service.config import ConfigurationError, Secret

PASSPHRASE = Secret("correct horse battery staple 7f3a")


class CountingBackend(EncryptedKeyBackend):
    """Counts the real decryptions behind :meth:`unlock`."""

    def __init__(self, passphrase: Secret) -> None:
        super().__init__(passphrase)
        self.decryptions = 0

    def _decrypt(self, ca_name: str, stored: bytes) -> PrivateKey:
        self.decryptions += 1
        return super()._decrypt(ca_name, stored)


def _verifies(public_key: PublicKey, signature: bytes, data: bytes, signer: CASigner) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), signer.hash_algorithm)
        else:
            public_key.verify(signature, data, ec.ECDSA(signer.hash_algorithm))
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def ec_new_key() -> NewKey:
    return EncryptedKeyBackend(PASSPHRASE).create("THAWTE-TLS", "ecdsa-p256")


def test_the_encrypted_backend_is_a_key_backend() -> None:
    backend: KeyBackend = EncryptedKeyBackend(PASSPHRASE)
    assert isinstance(backend, EncryptedKeyBackend)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-2048"])
def test_round_trip(algorithm: str) -> None:
    backend = EncryptedKeyBackend(PASSPHRASE)
    new = backend.create("GEOTRUST-TLS", algorithm)
    stored = new.stored
    assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE.reveal().encode() not in stored
    unlocked = EncryptedKeyBackend(Secret(PASSPHRASE.reveal())).unlock("GEOTRUST-TLS", stored)
    assert type(unlocked.public_key) is type(new.signer.public_key)
    assert unlocked.public_key == new.signer.public_key
    assert _verifies(new.signer.public_key, unlocked.sign(b"tbs bytes"), b"tbs bytes", unlocked)


def test_keys_stored_before_the_signer_still_unlock() -> None:
    # what `protect` stored before the backend handed out signers: cryptography's own encrypted PKCS#8
    key = generate_key("ecdsa-p384")
    stored = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.reveal().encode()),
    )
    signer = EncryptedKeyBackend(PASSPHRASE).unlock("SYMANTEC-TLS", stored)
    assert signer.public_key == key.public_key()
    assert _verifies(key.public_key(), signer.sign(b"tbs"), b"tbs", signer)
    # and what the backend stores now is that same format: the passphrase alone opens it
    made = EncryptedKeyBackend(PASSPHRASE).create("SYMANTEC-TLS", "ecdsa-p256")
    opened = serialization.load_pem_private_key(made.stored, PASSPHRASE.reveal().encode())
    assert opened.public_key() == made.signer.public_key


def test_unlock_decrypts_once_per_ca_and_stored_bytes(ec_new_key: NewKey) -> None:
    backend = CountingBackend(PASSPHRASE)
    stored = ec_new_key.stored
    first = backend.unlock("THAWTE-TLS", stored)
    second = backend.unlock("THAWTE-TLS", stored)
    assert first is second
    assert backend.decryptions == 1
    backend.unlock("THAWTE-CS", stored)  # another CA name is another entry
    assert backend.decryptions == 2
    replaced = backend.create("THAWTE-TLS", "ecdsa-p256").stored  # a new key for the same CA
    assert backend.unlock("THAWTE-TLS", replaced).public_key != first.public_key
    assert backend.decryptions == 3


def test_a_wrong_passphrase_is_a_clear_error_without_secrets() -> None:
    stored = EncryptedKeyBackend(PASSPHRASE).create("RAPIDSSL-TLS", "ecdsa-p256").stored
    wrong = Secret("not the passphrase at all 91b2")
    with pytest.raises(KeyUnlockFailed) as failure:
        EncryptedKeyBackend(wrong).unlock("RAPIDSSL-TLS", stored)
    error = failure.value
    assert isinstance(error, ConfigurationError)
    text = f"{error} {error!r} {error.args}"
    assert "RAPIDSSL-TLS" in text and "passphrase" in text
    for secret in (PASSPHRASE.reveal(), wrong.reveal()):
        assert secret not in text
    assert b"PRIVATE KEY" not in text.encode() and stored.decode() not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_damaged_key_data_is_the_same_clear_error() -> None:
    with pytest.raises(KeyUnlockFailed, match="SYMANTEC-CS"):
        EncryptedKeyBackend(PASSPHRASE).unlock("SYMANTEC-CS", b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n")


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        EncryptedKeyBackend(Secret(""))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_passphrase_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"  # does not exist yet
    first = load_or_create_passphrase(None, None, data_dir)
    path = data_dir / "ca-passphrase"
    assert path.is_file() and _mode(path) == 0o600
    assert len(first.reveal()) >= 43  # token_urlsafe(32)
    before = path.stat()
    second = load_or_create_passphrase(None, None, data_dir)
    assert second == first
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_text().rstrip("\n") == first.reveal()


def test_passphrase_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        load_or_create_passphrase(None, None, tmp_path)
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "ca-passphrase") == 0o600


def test_an_explicit_passphrase_wins(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.write_text("from the file\n")
    assert load_or_create_passphrase(PASSPHRASE, given, tmp_path) is PASSPHRASE
    assert not (tmp_path / "ca-passphrase").exists()


def test_a_passphrase_file_setting_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.write_text("  spaces kept  \n")
    assert load_or_create_passphrase(None, given, tmp_path).reveal() == "  spaces kept  "
    assert not (tmp_path / "ca-passphrase").exists()


def test_a_missing_or_empty_passphrase_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_or_create_passphrase(None, tmp_path / "absent", tmp_path)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        load_or_create_passphrase(None, empty, tmp_path)


def test_the_generated_passphrase_unlocks_what_it_protected(tmp_path: Path) -> None:
    new = EncryptedKeyBackend(load_or_create_passphrase(None, None, tmp_path)).create("ROOT", "ecdsa-p256")
    again = EncryptedKeyBackend(load_or_create_passphrase(None, None, tmp_path))
    assert again.unlock("ROOT", new.stored).public_key == new.signer.public_key
