"""Where the CA's private keys live: one backend interface, an encrypted-in-the-database backend."""

from soap_service.ca.keys.backend import KeyBackend, KeyUnlockFailed, NewKey
from soap_service.ca.keys.encrypted import EncryptedKeyBackend, load_or_create_passphrase
from soap_service.ca.keys.signer import CASigner, InProcessSigner

__all__ = [
    "CASigner",
    "EncryptedKeyBackend",
    "InProcessSigner",
    "KeyBackend",
    "KeyUnlockFailed",
    "NewKey",
    "load_or_create_passphrase",
]
