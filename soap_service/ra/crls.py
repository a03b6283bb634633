"""The current CRL and certificate of each CA of the installation, as the status front end
and ``soap-service crl`` serve them (docs/design.md, "Status publication").

A CRL is made when it is asked for, and kept in this process while it is current:

- **current** means: the CA's revocation state is what it was when the CRL was made (one
  aggregate query per fetch, :func:`soap_service.storage.status.revocation_state`: the count
  of revoked certificates, the latest revocation time and the count revoked for
  keyCompromise; a revocation or a change of reason to keyCompromise, committed by any
  worker on any host, changes it), and its thisUpdate is younger than
  :data:`REFRESH_INTERVAL` (1 hour). Otherwise the next fetch makes a new one.
- **made**: the revoked certificates are read (with the state) in one read-only transaction;
  the next CRL number is taken in a short write transaction of its own (an upsert in
  ``crl_states``, so numbers increase across processes and hosts; its time is the CRL's
  thisUpdate); the CRL is signed after that transaction has committed, with no lock held.
  nextUpdate is thisUpdate + 7 days (:data:`soap_service.ca.crl.MAX_VALIDITY`).
- **expired certificates**: a revoked certificate stays on its CA's CRL until 7 days after
  its notAfter, so that it appears on at least one CRL made after it expired (RFC 5280
  3.3; the BR allow leaving it out after notAfter); then it is left out.

Two threads of one process asking for the same CA's CRL while it is not current make it
once (a lock per CA); two processes each make their own, with different numbers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from soap_service.ca.crl import MAX_VALIDITY, RevokedEntry, build_crl
from soap_service.ca.hierarchy import BRANDS, CODE_SIGNING_BRANDS, ROOT_NAME, issuing_ca_name
from soap_service.ra.authorities import NotInitialized
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import authorities, status
from soap_service.vocabulary import Brand

REFRESH_INTERVAL = timedelta(hours=1)
"""How long a CRL is served while the revocation state is unchanged, from its thisUpdate."""

CA_NAMES: frozenset[str] = frozenset(
    [ROOT_NAME]
    + [issuing_ca_name(brand, "tls") for brand in BRANDS]
    + [issuing_ca_name(brand, "codesigning") for brand in CODE_SIGNING_BRANDS]
)
"""Every CA name an installation has: what the status URLs may name."""


class UnknownAuthority(LookupError):
    """No CA of this installation has that name (answered 404, never an incident)."""


@dataclass(frozen=True)
class PublishedCRL:
    ca_name: str
    der: bytes
    number: int
    this_update: datetime
    next_update: datetime
    state: status.RevocationState


@dataclass(frozen=True)
class _Record:
    id: int
    certificate: x509.Certificate
    der: bytes
    is_root: bool


def crl_ca_name(brand: Brand, *, code_signing: bool) -> str:
    """The CA whose CRL ``soap-service crl --brand B [--code-signing]`` writes."""
    if code_signing and brand not in CODE_SIGNING_BRANDS:
        raise UnknownAuthority(f"{brand.display_name} has no code-signing CA")
    return issuing_ca_name(brand, "codesigning" if code_signing else "tls")


class CRLPublisher:
    """The CRLs and CA certificates of one installation, kept per process (module docstring)."""

    def __init__(self, ra: RegistrationAuthority, *, refresh_interval: timedelta = REFRESH_INTERVAL) -> None:
        if not timedelta(0) <= refresh_interval <= MAX_VALIDITY:
            raise ValueError("the refresh interval is between 0 and the CRL's validity")
        self._ra = ra
        self._refresh = refresh_interval
        self._records: dict[str, _Record] | None = None
        self._crls: dict[str, PublishedCRL] = {}
        self._locks = {name: threading.Lock() for name in CA_NAMES}
        self._records_lock = threading.Lock()

    @property
    def refresh_interval(self) -> timedelta:
        return self._refresh

    def clock(self) -> datetime:
        return self._ra.clock()

    @property
    def ra(self) -> RegistrationAuthority:
        return self._ra

    def ca_certificate(self, name: str) -> bytes:
        """The DER certificate of the CA named ``name``; :class:`UnknownAuthority` when none."""
        return self._record(name).der

    def current_crl(self, name: str) -> PublishedCRL:
        """The CA's current CRL, made now if the one kept is no longer current."""
        record = self._record(name)
        with self._ra.readers() as session, session.begin():
            state = status.revocation_state(session, record.id)
        kept = self._crls.get(name)
        if kept is not None and self._is_current(kept, state):
            return kept
        with self._locks[name]:
            kept = self._crls.get(name)
            if kept is not None and self._is_current(kept, state):
                return kept
            made = self._make(name, record)
            self._crls[name] = made
            return made

    def _is_current(self, crl: PublishedCRL, state: status.RevocationState) -> bool:
        return crl.state == state and self._ra.clock() - crl.this_update < self._refresh

    def _make(self, name: str, record: _Record) -> PublishedCRL:
        now = self._ra.clock()
        with self._ra.readers() as session, session.begin():
            state = status.revocation_state(session, record.id)
            rows = status.revoked_certificates(session, record.id, expired_before=now - MAX_VALIDITY)
            signer = self._ra.authorities.by_name(session, name).issuing.signer
        with self._ra.sessions() as session, session.begin():
            this_update = self._ra.clock()
            number = status.next_crl_number(session, record.id, at=this_update)
        # Signed after the number's transaction has committed: no lock is held while it signs.
        crl = build_crl(
            record.certificate,
            signer,
            number=number,
            this_update=this_update,
            next_update=this_update + MAX_VALIDITY,
            revoked=[RevokedEntry(int(row.serial, 16), row.revoked_at, row.reason) for row in rows],
            of_ca_certificates=record.is_root,
        )
        return PublishedCRL(
            ca_name=name,
            der=crl.public_bytes(Encoding.DER),
            number=number,
            this_update=crl.last_update_utc,
            next_update=_next_update(crl),
            state=state,
        )

    def _record(self, name: str) -> _Record:
        if name not in CA_NAMES:
            raise UnknownAuthority(f"no CA named {name}")
        records = self._records
        if records is None:
            with self._records_lock:
                if self._records is None:
                    self._records = self._load_records()
                records = self._records
        record = records.get(name)
        if record is None:
            raise NotInitialized()
        return record

    def _load_records(self) -> dict[str, _Record]:
        with self._ra.readers() as session, session.begin():
            found = authorities.list_authorities(session)
            records = {}
            for ca in found:
                certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
                records[ca.name] = _Record(
                    ca.id, certificate, certificate.public_bytes(Encoding.DER), ca.parent_id is None
                )
        if not records:
            raise NotInitialized()
        return records


def _next_update(crl: x509.CertificateRevocationList) -> datetime:
    next_update = crl.next_update_utc
    if next_update is None:
        raise RuntimeError("a CRL of this service always has a nextUpdate")
    return next_update
