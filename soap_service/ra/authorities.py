"""The installation's CAs as the RA uses them: which one signs what, with its key
unlocked once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy.orm import Session

from soap_service.ca.hierarchy import issuing_ca_name
from soap_service.ca.issuer import IssuingCA
from soap_service.ca.keys.backend import KeyBackend
from soap_service.storage import authorities
from soap_service.storage.models import CertificateAuthority
from soap_service.vocabulary import Brand, ValidationLevel


class NotInitialized(RuntimeError):
    """The hierarchy is missing: an operator's mistake, answered as an internal error."""

    def __init__(self) -> None:
        super().__init__("the CA hierarchy has not been created: run `soap-service init`")


@dataclass(frozen=True)
class LoadedCA:
    id: int
    issuing: IssuingCA


def issuing_ca_name_for(brand: str, validation_level: ValidationLevel) -> str:
    """The CA that signs a brand's TLS certificates, or its code-signing ones."""
    return issuing_ca_name(Brand(brand), "codesigning" if validation_level == ValidationLevel.CS else "tls")


class AuthorityRegistry:
    """Loads the CA records once, unlocks each issuing key on first use."""

    def __init__(self, key_backend: KeyBackend) -> None:
        self._key_backend = key_backend
        self._records: dict[str, CertificateAuthority] | None = None
        self._loaded: dict[str, LoadedCA] = {}
        self._lock = threading.Lock()

    def _load_records(self, session: Session) -> dict[str, CertificateAuthority]:
        if self._records is None:
            self._records = {ca.name: ca for ca in authorities.list_authorities(session)}
        return self._records

    def issuing_ca(self, session: Session, brand: str, validation_level: ValidationLevel) -> LoadedCA:
        """The CA for this brand and level; ``session`` is used only on first load."""
        return self.by_name(session, issuing_ca_name_for(brand, validation_level))

    def by_name(self, session: Session, name: str) -> LoadedCA:
        """The CA named ``name`` (``ROOT`` or an issuing CA); :class:`NotInitialized` when there is
        none. ``session`` is used only on first load."""
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is None:
                loaded = self._unlock(session, name)
                self._loaded[name] = loaded
        return loaded

    def _unlock(self, session: Session, name: str) -> LoadedCA:
        records = self._load_records(session)
        record = records.get(name)
        if record is None:
            self._records = None
            raise NotInitialized()
        chain: list[x509.Certificate] = []
        parent_id = record.parent_id
        by_id = {ca.id: ca for ca in records.values()}
        while parent_id is not None:
            parent = by_id[parent_id]
            chain.append(x509.load_pem_x509_certificate(parent.certificate_pem.encode()))
            parent_id = parent.parent_id
        issuing = IssuingCA(
            name=record.name,
            certificate=x509.load_pem_x509_certificate(record.certificate_pem.encode()),
            signer=self._key_backend.unlock(record.name, record.protected_key),
            chain=tuple(chain),
        )
        return LoadedCA(id=record.id, issuing=issuing)
