"""CA key storage: encrypted PKCS#8 in the database, one decryption per process, the passphrase file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from soap_service.ca.algorithms import PrivateKey, generate_key
from soap_service.ca.keys import (
    EncryptedKeyBackend,
    KeyBackend,
    KeyUnlockFailed,
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


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    key = generate_key("ecdsa-p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    key = generate_key("rsa-2048")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_the_encrypted_backend_is_a_key_backend() -> None:
    backend: KeyBackend = EncryptedKeyBackend(PASSPHRASE)
    assert isinstance(backend, EncryptedKeyBackend)


@pytest.mark.parametrize("which", ["ec_key", "rsa_key"])
def test_round_trip(which: str, request: pytest.FixtureRequest) -> None:
    key: PrivateKey = request.getfixturevalue(which)
    backend = EncryptedKeyBackend(PASSPHRASE)
    stored = backend.protect("GEOTRUST-TLS", key)
    assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE.reveal().encode() not in stored
    unlocked = EncryptedKeyBackend(Secret(PASSPHRASE.reveal())).unlock("GEOTRUST-TLS", stored)
    assert type(unlocked) is type(key)
    assert unlocked.public_key() == key.public_key()


def test_unlock_decrypts_once_per_ca_and_stored_bytes(ec_key: ec.EllipticCurvePrivateKey) -> None:
    backend = CountingBackend(PASSPHRASE)
    stored = backend.protect("THAWTE-TLS", ec_key)
    first = backend.unlock("THAWTE-TLS", stored)
    second = backend.unlock("THAWTE-TLS", stored)
    assert first is second
    assert backend.decryptions == 1
    backend.unlock("THAWTE-CS", stored)  # another CA name is another entry
    assert backend.decryptions == 2
    replaced = backend.protect("THAWTE-TLS", generate_key("ecdsa-p256"))  # a new key for the same CA
    assert backend.unlock("THAWTE-TLS", replaced).public_key() != first.public_key()
    assert backend.decryptions == 3


def test_a_wrong_passphrase_is_a_clear_error_without_secrets(ec_key: ec.EllipticCurvePrivateKey) -> None:
    stored = EncryptedKeyBackend(PASSPHRASE).protect("RAPIDSSL-TLS", ec_key)
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


def test_damaged_key_data_is_the_same_clear_error(ec_key: ec.EllipticCurvePrivateKey) -> None:
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


def test_the_generated_passphrase_unlocks_what_it_protected(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    stored = EncryptedKeyBackend(load_or_create_passphrase(None, None, tmp_path)).protect("ROOT", ec_key)
    again = EncryptedKeyBackend(load_or_create_passphrase(None, None, tmp_path))
    assert again.unlock("ROOT", stored).public_key() == ec_key.public_key()
