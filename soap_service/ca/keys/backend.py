"""The one interface through which the CA keeps its private keys (PKCS#11 can come later)."""

from __future__ import annotations

from typing import Protocol

from soap_service.ca.algorithms import PrivateKey
from soap_service.config import ConfigurationError


class KeyUnlockFailed(ConfigurationError):
    """A stored CA key could not be unlocked (wrong passphrase or damaged data).

    The message names the CA only: never the passphrase, never key bytes.
    """


class KeyBackend(Protocol):
    def protect(self, ca_name: str, key: PrivateKey) -> bytes:
        """What the RA stores in the database for the key of the CA ``ca_name``."""
        ...

    def unlock(self, ca_name: str, stored: bytes) -> PrivateKey:
        """The private key from what :meth:`protect` returned; decrypted once per process."""
        ...
