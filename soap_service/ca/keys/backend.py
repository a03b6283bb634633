"""The one interface through which the CA keeps its private keys (PKCS#11 can come later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from soap_service.ca.keys.signer import CASigner
from soap_service.config import ConfigurationError


class KeyUnlockFailed(ConfigurationError):
    """A stored CA key could not be unlocked (wrong passphrase or damaged data).

    The message names the CA only: never the passphrase, never key bytes.
    """


@dataclass(frozen=True)
class NewKey:
    """A key a backend has just made: its signer, and what the RA stores for it."""

    signer: CASigner
    stored: bytes = field(repr=False)


class KeyBackend(Protocol):
    """Makes and keeps CA keys; hands out a :class:`CASigner` for each, never the private key.

    docs/design.md, "Certificate profiles": a PKCS#11 backend would make the key pair on the token
    in :meth:`create`, give the key's label as what the RA stores, and sign on the token.
    """

    def create(self, ca_name: str, algorithm: str) -> NewKey:
        """A new key of ``algorithm`` (one of ``soap_service.keyalgorithms``'s) for the CA ``ca_name``."""
        ...

    def unlock(self, ca_name: str, stored: bytes) -> CASigner:
        """The signer of the key whose stored form is ``stored``; opened once per process."""
        ...
