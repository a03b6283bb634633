"""Where the CA's private keys live: one backend interface, an encrypted-in-the-database backend."""

from soap_service.ca.keys.backend import KeyBackend, KeyUnlockFailed
from soap_service.ca.keys.encrypted import EncryptedKeyBackend, load_or_create_passphrase

__all__ = ["EncryptedKeyBackend", "KeyBackend", "KeyUnlockFailed", "load_or_create_passphrase"]
