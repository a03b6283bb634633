"""The OCSP responder's answers, and its delegated responder certificates (docs/design.md, "OCSP").

:func:`ensure_responders` gives every issuing CA a responder certificate whose expiry is more than
``ca.ocsp_responder.RENEWAL_MARGIN`` away (``soap-service init`` calls it, and the responder on
its first use and whenever the one it holds nears its end). :class:`OCSPResponderService` answers
one DER request: the issuing CA found by the CertID's hashes, the certificate's status read from
the database on every request (one indexed read on a connection the thread keeps,
``storage.status_reader``, so a revocation by any process on any host shows at once),
and a response signed for it, or taken from the process's cache when the same status was signed
less than :data:`REFRESH_AFTER` ago and the request has no nonce. Only good and revoked answers are
cached (a requester chooses the serials it asks about, so "unknown" answers are signed each time),
and the cache is bounded by :data:`CACHE_ENTRIES` and :data:`CACHE_BYTES`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import SQLAlchemyError

from soap_service.ca.ocsp import (
    CERT_ID_HASHES,
    CertificateState,
    ErrorStatus,
    MalformedRequest,
    OCSPQuestion,
    ResponderKey,
    error_response,
    issuer_hashes,
    read_request,
    sign_response,
)
from soap_service.ca.ocsp_responder import create_responder, needs_renewal
from soap_service.ra.incidents import open_incident
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import authorities
from soap_service.storage import ocsp as ocsp_storage
from soap_service.storage.models import CertificateAuthority
from soap_service.storage.status_reader import StatusReader
from soap_service.vocabulary import CertificateStatus

logger = logging.getLogger(__name__)

ISSUING_ROLES = ("tls", "codesigning")
REFRESH_AFTER = timedelta(days=1)
"""A cached response is signed anew once this old (its nextUpdate is then still 3 days ahead)."""
CACHE_ENTRIES = 100_000
"""Pre-signed responses kept per process at most (least recently used dropped first)."""
CACHE_BYTES = 64 * 1024 * 1024
"""The DER bytes of the pre-signed responses kept per process at most (least recently used dropped
first): a response with its responder certificate is 2 to 10 KB, so 64 MiB holds 6,500 to 30,000."""


def responder_key_name(ca_name: str) -> str:
    """The name the key backend knows a CA's responder key by."""
    return f"{ca_name}-OCSP"


def _renew_one(ra: RegistrationAuthority, ca: CertificateAuthority, now: datetime) -> bool:
    """A new responder for ``ca`` unless its newest one is still far from expiry; True if made.

    The key is made and the certificate signed with no transaction open (docs/design.md,
    "Concurrency and failures": no signature under a database lock); then one creator wins across
    processes and hosts: the CA's row is locked (FOR UPDATE; on SQLite the writer's BEGIN IMMEDIATE
    holds the database's write lock) and the newest responder read again under that lock, so a
    second process that renewed at the same moment finds the first one's, records nothing, and its
    certificate and key, never used nor sent, are dropped with its memory. It happens once per CA
    per ``RESPONDER_VALIDITY - RENEWAL_MARGIN`` (23 days) and takes well under a second.
    """
    with ra.readers() as session:
        newest = ocsp_storage.newest_responder(session, ca.id)
    if not needs_renewal(newest.not_after if newest else None, now):
        return False
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    ca_signer = ra.key_backend.unlock(ca.name, ca.protected_key)
    material = create_responder(ca.name, ca_certificate, ca_signer, ra.key_backend, now)
    with ra.sessions() as session, session.begin():
        ocsp_storage.lock_authority(session, ca.id)
        newest = ocsp_storage.newest_responder(session, ca.id)
        if not needs_renewal(newest.not_after if newest else None, now):
            return False  # another process recorded one since
        ocsp_storage.add_responder(
            session,
            ca_id=ca.id,
            certificate_pem=material.certificate.public_bytes(serialization.Encoding.PEM).decode(),
            protected_key=material.protected_key,
            not_before=material.certificate.not_valid_before_utc,
            not_after=material.certificate.not_valid_after_utc,
            created_at=now,
        )
    # DEBUG: `soap-service init` and `demo` start quietly (six of these on a new installation)
    logger.debug("OCSP responder certificate made for CA %s, valid until %s",
                ca.name, material.certificate.not_valid_after_utc.isoformat())
    return True


def ensure_responders(ra: RegistrationAuthority, now: datetime | None = None) -> int:
    """A fresh responder for every issuing CA that needs one; returns how many were made."""
    now = now or ra.clock()
    with ra.readers() as session:
        cas = [ca for ca in authorities.list_authorities(session) if ca.role in ISSUING_ROLES]
        newest = ocsp_storage.newest_responders(session)
    made = 0
    for ca in cas:
        current = newest.get(ca.id)
        if needs_renewal(current.not_after if current else None, now):
            made += _renew_one(ra, ca, now)
    return made


@dataclass(frozen=True)
class _Issuer:
    id: int
    name: str
    responder: ResponderKey
    responder_not_after: datetime
    responder_id: int


@dataclass(frozen=True)
class OCSPAnswer:
    """A DER OCSPResponse and, for a signed one without nonce, until when an HTTP cache may keep it."""

    der: bytes
    cache_until: datetime | None = None
    state: CertificateState | None = None  # None: an error status
    error: ErrorStatus | None = None
    ca: str | None = None  # the issuing CA the request named, when it is ours
    incident: str | None = None  # the incident an internalError opened

    @classmethod
    def failed(cls, status: ErrorStatus, *, ca: str | None = None, incident: str | None = None) -> OCSPAnswer:
        return cls(error_response(status), error=status, ca=ca, incident=incident)

    @property
    def outcome(self) -> str:
        """What the request log says: good, revoked, unknown, or the error status."""
        if self.state is not None:
            return self.state.value
        return self.error.name.lower() if self.error is not None else "-"


@dataclass(frozen=True)
class _Cached:
    fingerprint: tuple[object, ...]  # responder, status, revoked_at, reason
    der: bytes
    refresh_at: datetime
    next_update: datetime


RENEWAL_BACKOFF_SECONDS = 60.0
"""After a failed responder renewal, how long a process answers with its current responder before
it tries again (the current one stays valid for days: renewal starts 7 days before its end)."""


class OCSPResponderService:
    """Answers OCSP requests for the installation's issuing CAs; one per process."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self._ra = ra
        self._lock = threading.Lock()
        self._issuers: dict[tuple[str, bytes, bytes], _Issuer] | None = None
        self._cache: OrderedDict[tuple[int, int, str], _Cached] = OrderedDict()
        self._cache_bytes = 0  # the sum of len(der) over self._cache, under self._lock
        self._status = StatusReader(ra.engine)
        self._renewal_failed_at: float | None = None  # time.monotonic() of the last failed renewal

    def close(self) -> None:
        """Close the status reader's connections."""
        self._status.close()

    # ------------------------------------------------------------------ issuers and responders

    def prepare(self) -> None:
        """Load the issuers and unlock the responder keys (making or renewing responders as needed)
        before the first request; a failure is logged and the first request tries again."""
        try:
            self._load_issuers()
        except Exception:
            logger.exception("OCSP: the responders could not be loaded; the first request will try again")

    def _load_issuers(self) -> dict[tuple[str, bytes, bytes], _Issuer]:
        issuers = self._issuers
        if issuers is not None:
            return issuers
        with self._lock:
            if self._issuers is None:
                self._issuers = self._read_issuers(allow_renewal=True)
            return self._issuers

    def _read_issuers(self, *, allow_renewal: bool) -> dict[tuple[str, bytes, bytes], _Issuer]:
        now = self._ra.clock()
        if allow_renewal:
            ensure_responders(self._ra, now)
        with self._ra.readers() as session:
            cas = [ca for ca in authorities.list_authorities(session) if ca.role in ISSUING_ROLES]
            responders = ocsp_storage.newest_responders(session)
        issuers: dict[tuple[str, bytes, bytes], _Issuer] = {}
        for ca in cas:
            record = responders.get(ca.id)
            if record is None:
                continue  # answered unauthorized until a responder exists
            certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
            signer = self._ra.key_backend.unlock(responder_key_name(ca.name), record.protected_key)
            issuer = _Issuer(ca.id, ca.name, ResponderKey(certificate, signer), record.not_after, record.id)
            ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
            for algorithm in CERT_ID_HASHES:
                name_hash, key_hash = issuer_hashes(ca_certificate, algorithm)
                issuers[(algorithm.name, name_hash, key_hash)] = issuer
        return issuers

    def _renew_if_due(self, issuer: _Issuer, now: datetime) -> _Issuer:
        """A renewal that failed is not tried again for :data:`RENEWAL_BACKOFF_SECONDS`: it makes a
        key and a signature before it writes, and a database that refuses writes (a standby after
        a failover, a full disk) would otherwise cost both on every request."""
        if not needs_renewal(issuer.responder_not_after, now):
            return issuer
        failed_at = self._renewal_failed_at
        if failed_at is not None and time.monotonic() - failed_at < RENEWAL_BACKOFF_SECONDS:
            return issuer
        try:
            with self._lock:
                current = self._issuers or {}
                fresh = next((i for i in current.values() if i.id == issuer.id), issuer)
                if not needs_renewal(fresh.responder_not_after, now):
                    return fresh
                self._issuers = self._read_issuers(allow_renewal=True)
                self._renewal_failed_at = None
                return next((i for i in self._issuers.values() if i.id == issuer.id), issuer)
        except (SQLAlchemyError, OSError, ValueError):
            self._renewal_failed_at = time.monotonic()
            logger.exception("OCSP responder renewal for CA %s failed; the current responder goes on", issuer.name)
            return issuer

    # ------------------------------------------------------------------ answers

    def answer(self, request_der: bytes) -> OCSPAnswer:
        """The DER OCSPResponse to ``request_der``: never raises for a bad request or a failure."""
        try:
            try:
                question = read_request(request_der)
            except MalformedRequest:
                return OCSPAnswer.failed(ErrorStatus.MALFORMED_REQUEST)
            return self._answer(question)
        except Exception as failure:  # noqa: BLE001 - any failure is an incident, answered internalError
            incident = open_incident(logger, "OCSP answer failed", failure=failure)
            return OCSPAnswer.failed(ErrorStatus.INTERNAL_ERROR, incident=incident.incident_id)

    def _answer(self, question: OCSPQuestion) -> OCSPAnswer:
        issuers = self._load_issuers()
        issuer = issuers.get((question.hash_algorithm.name, question.issuer_name_hash, question.issuer_key_hash))
        if issuer is None:
            return OCSPAnswer.failed(ErrorStatus.UNAUTHORIZED)
        now = self._ra.clock()
        issuer = self._renew_if_due(issuer, now)
        if issuer.responder_not_after <= now:
            logger.error("OCSP: the responder certificate of CA %s has expired", issuer.name)
            return OCSPAnswer.failed(ErrorStatus.INTERNAL_ERROR, ca=issuer.name)
        row = self._status.read(ca_id=issuer.id, serial=format(question.serial, "x"))
        if row is None:
            state, revoked_at, reason = CertificateState.UNKNOWN, None, None
        elif row.status == CertificateStatus.REVOKED:
            state, revoked_at, reason = CertificateState.REVOKED, row.revoked_at or now, row.revocation_reason
        else:
            state, revoked_at, reason = CertificateState.GOOD, None, None
        if question.nonce is not None:
            signed = sign_response(question, state, issuer.responder, now, revoked_at=revoked_at, reason=reason)
            return OCSPAnswer(signed.der, None, state, ca=issuer.name)
        if state is CertificateState.UNKNOWN:
            # never cached: the serials are the requester's choice, and each would be kept
            signed = sign_response(question, state, issuer.responder, now)
            return OCSPAnswer(signed.der, signed.next_update, state, ca=issuer.name)
        key = (issuer.id, question.serial, question.hash_algorithm.name)
        fingerprint = (issuer.responder_id, state, revoked_at, reason)
        cached = self._cache.get(key)
        if cached is not None and cached.fingerprint == fingerprint and now < cached.refresh_at:
            return OCSPAnswer(cached.der, cached.next_update, state, ca=issuer.name)
        signed = sign_response(question, state, issuer.responder, now, revoked_at=revoked_at, reason=reason)
        entry = _Cached(fingerprint, signed.der, signed.this_update + REFRESH_AFTER, signed.next_update)
        self._keep(key, entry)
        return OCSPAnswer(signed.der, signed.next_update, state, ca=issuer.name)

    def _keep(self, key: tuple[int, int, str], entry: _Cached) -> None:
        """``entry`` in the cache, the least recently used dropped while over either bound."""
        with self._lock:
            replaced = self._cache.pop(key, None)
            if replaced is not None:
                self._cache_bytes -= len(replaced.der)
            self._cache[key] = entry
            self._cache_bytes += len(entry.der)
            while self._cache and (len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES):
                _, dropped = self._cache.popitem(last=False)
                self._cache_bytes -= len(dropped.der)
