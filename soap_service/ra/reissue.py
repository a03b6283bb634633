"""The Reissue use case (docs/design.md, "Reissue rules"): a new certificate for an existing order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from sqlalchemy.orm import Session

from soap_service import metrics
from soap_service.errors import (
    KEY_REUSE_WARNING,
    CertificateRevoked,
    InternalError,
    InvalidField,
    KeyRefused,
    OrderNotFound,
    OrderStateInvalid,
    ServiceError,
    TermEnded,
)
from soap_service.ra.audit import Subject, record_outcome
from soap_service.ra.auth import Credentials
from soap_service.ra.authorities import LoadedCA
from soap_service.ra.catalogue import PRODUCTS_BY_CODE, ProductSpec
from soap_service.ra.csr import ParsedCSR, check_csr_size
from soap_service.ra.fields import (
    MAX_DNS_NAME_CHARS,
    MAX_EMAIL_CHARS,
    MAX_PARTNER_CODE_CHARS,
    MAX_PARTNER_ORDER_ID_CHARS,
    MAX_REQUEST_NAMES,
    MAX_SIGNATURE_HASH_CHARS,
    bounded,
    bounded_count,
    checked_email,
    checked_partner_order_id,
    is_clean_text,
)
from soap_service.ra.incidents import open_incident
from soap_service.ra.issuance import (
    ExaminedCSR,
    PlannedLeaf,
    chain_of,
    examine_csr,
    plan_leaf,
    record_certificate,
    refuse_blocked_key,
    refuse_key_of_another_partner,
    serial_hex,
    sign_leaf,
    still_fits,
)
from soap_service.ra.names import requested_names
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import CertificateView, IssuanceOutcome, Notice, OrderView
from soap_service.storage import audit, certificates, orders, partners
from soap_service.storage.errors import SerialCollision
from soap_service.storage.models import Certificate, Order
from soap_service.vocabulary import CertificateStatus, OrderStatus

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
SIGNATURE_HASHES = {"SHA256", "SHA2-256", "SHA-256", "SHA384", "SHA2-384", "SHA-384", "SHA512", "SHA-512"}

T = TypeVar("T")


@dataclass(frozen=True)
class ReissueRequest:
    partner_order_id: str
    csr: str
    dns_names: tuple[str, ...] | None = None
    signature_hash_algorithm: str | None = None
    reissue_email: str | None = None


@dataclass(frozen=True)
class PartnerRef:
    """The partner on whose behalf the RA acts, already authenticated or named by the operator."""

    id: int
    code: str
    actor: str  # the API user name, or "operator"


@dataclass(frozen=True)
class ValidationOutcome:
    """What ValidateOrderParameters answers: the CSR as read and what a reissue would do."""

    order_id: str
    csr: ParsedCSR
    names: tuple[str, ...]
    warnings: tuple[Notice, ...]
    replay: bool


@dataclass
class _Decision:
    order: Order
    product: ProductSpec
    current: Certificate | None
    csr: ParsedCSR
    loaded: LoadedCA
    names: tuple[str, ...] = ()
    warnings: list[Notice] = field(default_factory=list)
    replay: bool = False


class _ConcurrentChange(Exception):
    """Another transaction changed the order first: run the use case again."""


def check_reissuable(order: Order, current: Certificate | None, now: datetime) -> None:
    """Reissue rule 4 (docs/design.md, "Reissue rules"): completed, in term, and not revoked.

    A cancelled order is -4012 before its (revoked) certificates are looked at: the order
    ended, whatever became of them (docs/design.md, "Revocation")."""
    if order.status == OrderStatus.CANCELLED:
        raise OrderStateInvalid("the order is cancelled; a cancelled order cannot be reissued")
    if order.status == OrderStatus.REVOKED or (current is not None and current.status == CertificateStatus.REVOKED):
        raise CertificateRevoked()
    if order.status != OrderStatus.COMPLETED:
        raise OrderStateInvalid(f"the order is {order.status.lower()}; only a completed order can be reissued")
    if order.term_end <= now:
        raise TermEnded()
    if order.term_start > now:
        raise OrderStateInvalid("the order's term has not started")


def check_request_fields(request: ReissueRequest) -> None:
    """The request's own fields, each measured against its bound before anything reads it.

    Bounds first (docs/design.md, "Request fields"): the CSR's size, then the PartnerOrderID,
    SignatureHashAlgorithm and ReissueEmail lengths, the number of DNSNames entries and each
    entry's length; then control characters; then the shapes, with plain string code. No
    message quotes a value the caller sent.
    """
    check_csr_size(request.csr)
    bounded(request.partner_order_id, MAX_PARTNER_ORDER_ID_CHARS, "PartnerOrderID")
    bounded(request.signature_hash_algorithm or "", MAX_SIGNATURE_HASH_CHARS, "SignatureHashAlgorithm")
    bounded(request.reissue_email or "", MAX_EMAIL_CHARS, "ReissueEmail")
    dns_names = bounded_count(request.dns_names or (), MAX_REQUEST_NAMES, "DNSNames")
    for name in dns_names:
        bounded(name, MAX_DNS_NAME_CHARS + 1, "DNSNames")  # a final dot may follow the 253 characters
    texts = [("PartnerOrderID", request.partner_order_id), ("CSR", request.csr),
             ("SignatureHashAlgorithm", request.signature_hash_algorithm or ""),
             ("ReissueEmail", request.reissue_email or "")]
    texts += [("DNSNames", name) for name in dns_names]
    for field_name, value in texts:
        if not is_clean_text(value.replace("\n", "").replace("\r", "").replace("\t", "")):
            raise InvalidField(f"{field_name} holds control or invalid characters", field=field_name)
    checked_partner_order_id(request.partner_order_id)
    if not request.csr or not request.csr.strip():
        raise InvalidField("CSR is missing", field="CSR")
    hash_name = request.signature_hash_algorithm
    if hash_name and hash_name.strip().upper() not in SIGNATURE_HASHES:
        raise InvalidField(
            "SignatureHashAlgorithm is not supported: use SHA256 or SHA384", field="SignatureHashAlgorithm"
        )
    if request.reissue_email:
        checked_email(request.reissue_email, "ReissueEmail")


class Reissuer:
    """Runs the Reissue use case for the API, the portal and the operator alike."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self._ra = ra

    def reissue(self, credentials: Credentials, request: ReissueRequest, *, channel: str) -> IssuanceOutcome:
        user = self._ra.authenticator.authenticate(credentials, channel=channel)
        partner = PartnerRef(id=user.partner_id, code=user.partner_code, actor=user.username)
        return self.reissue_for(partner, request, channel=channel)

    def reissue_by_operator(self, partner_code: str, request: ReissueRequest) -> IssuanceOutcome:
        bounded(partner_code, MAX_PARTNER_CODE_CHARS, "PartnerCode")
        with self._ra.readers() as session:
            partner = partners.get_partner(session, partner_code)
        if partner is None:
            raise InvalidField(f"no partner with code {partner_code!r}", field="PartnerCode")
        return self.reissue_for(PartnerRef(partner.id, partner.code, "operator"), request, channel="cli")

    def reissue_for(self, partner: PartnerRef, request: ReissueRequest, *, channel: str) -> IssuanceOutcome:
        subject = Subject(
            channel=channel,
            action="reissue",
            partner_code=partner.code,
            username=partner.actor,
            partner_order_id=request.partner_order_id,
        )
        return run_audited(self._ra, subject, lambda: self._reissue(partner, request, subject))

    def _reissue(self, partner: PartnerRef, request: ReissueRequest, subject: Subject) -> IssuanceOutcome:
        """Two short write transactions with the lint and the signature between them, under no
        lock (docs/design.md, "The path of one Reissue"): the first decides and reserves the
        serial (or answers a retry), the second decides again under the order's lock and records
        the certificate if the signed leaf is still the one the rules give."""
        check_request_fields(request)
        examined = examine_csr(self._ra.key_policy, request.csr)  # CPU work outside the order's lock
        for _attempt in range(MAX_ATTEMPTS):
            with self._ra.sessions() as session, session.begin():
                planned = self._plan(session, partner, request, examined, subject)
            if isinstance(planned, IssuanceOutcome):
                return planned  # a retry of the current certificate: nothing to sign
            leaf = sign_leaf(self._ra, planned)  # no transaction open: no lock held
            try:
                with self._ra.sessions() as session, session.begin():
                    outcome = self._record(session, partner, request, examined, subject, planned, leaf)
            except (_ConcurrentChange, SerialCollision):
                continue  # the order changed in a way that the signed leaf no longer fits: again
            if not outcome.replayed:
                metrics.certificate_issued(outcome.order.brand)  # committed
            return outcome
        raise RuntimeError(f"the order kept changing under the reissue ({MAX_ATTEMPTS} attempts)")

    def _plan(
        self,
        session: Session,
        partner: PartnerRef,
        request: ReissueRequest,
        examined: ExaminedCSR,
        subject: Subject,
    ) -> PlannedLeaf | IssuanceOutcome:
        """The first transaction: every rule, then the serial reserved; a retry of the reissue that
        made the current certificate is answered here (rule 8) with its audit event."""
        now = self._ra.clock()
        decision = self._decide(session, partner, request, examined, now, lock=True)
        if decision.replay:
            return self._replayed(session, partner, subject, decision, now)
        return plan_leaf(self._ra, session, order=decision.order, product=decision.product, csr=decision.csr,
                         names=decision.names, now=now)

    def _record(
        self,
        session: Session,
        partner: PartnerRef,
        request: ReissueRequest,
        examined: ExaminedCSR,
        subject: Subject,
        planned: PlannedLeaf,
        leaf: x509.Certificate,
    ) -> IssuanceOutcome:
        """The second transaction: the rules again under the order's lock (a revocation, a
        cancellation, a blocked key or the term's end since the first one refuses the leaf, which
        is then never recorded nor sent), then the certificate, the order's current certificate
        and the audit event. A concurrent reissue of the same order leaves the leaf fitting: it
        replaces whatever certificate is current now."""
        ra = self._ra
        now = ra.clock()
        decision = self._decide(session, partner, request, examined, now, lock=True)
        order, current = decision.order, decision.current
        if decision.replay:
            # A concurrent retry recorded it first: this leaf is dropped, its serial stays reserved.
            dropped = f"same CSR as current; signed leaf {serial_hex(planned.request.serial)} dropped"
            return self._replayed(session, partner, subject, decision, now, detail=dropped)
        if not still_fits(planned, order=order, product=decision.product, names=decision.names,
                          loaded=decision.loaded):
            raise _ConcurrentChange()
        expected_version = order.version
        issued = record_certificate(ra, session, order=order, planned=planned, leaf=leaf, csr=decision.csr,
                                    replaces=current, now=now)
        if not orders.set_current_certificate(
            session, order=order, certificate_id=issued.id, expected_version=expected_version, at=now
        ):
            raise _ConcurrentChange()
        self._append(session, subject, order, issued, now, outcome="success", detail=_names_detail(decision.names))
        return self._outcome(session, partner, order, issued, current, decision.loaded, tuple(decision.warnings),
                             replayed=False)

    def _replayed(
        self, session: Session, partner: PartnerRef, subject: Subject, decision: _Decision, now: datetime,
        *, detail: str = "same CSR as current",
    ) -> IssuanceOutcome:
        current = decision.current
        assert current is not None
        self._append(session, subject, decision.order, current, now, outcome="replayed", detail=detail)
        return self._outcome(session, partner, decision.order, current, None, decision.loaded, (), replayed=True)

    def _decide(
        self,
        session: Session,
        partner: PartnerRef,
        request: ReissueRequest,
        examined: ExaminedCSR,
        now: datetime,
        *,
        lock: bool,
    ) -> _Decision:
        """Every reissue rule (docs/design.md, "Reissue rules"), in order; nothing is written."""
        ra = self._ra
        order = orders.find_order(
            session, partner_id=partner.id, partner_order_id=request.partner_order_id.strip(), for_update=lock,
            details=False,
        )
        if order is None:
            raise OrderNotFound()
        product = PRODUCTS_BY_CODE[order.product_code]
        current = (
            certificates.get_certificate(session, order.current_certificate_id)
            if order.current_certificate_id is not None
            else None
        )
        check_reissuable(order, current, now)
        csr = examined.accepted()
        names = requested_names(
            validated=[n.name for n in order.names],
            product=product,
            dns_names=request.dns_names,
            csr_names=[*csr.san_dns_names, *csr.common_names],
        )
        refuse_blocked_key(ra.key_policy, session, csr)
        refuse_key_of_another_partner(ra.key_policy, session, csr, partner_id=order.partner_id, now=now)
        loaded = ra.authorities.issuing_ca(session, order.brand_code, product.validation_level)
        decision = _Decision(order, product, current, csr, loaded, names=names)
        if current is not None and current.csr_sha256 == csr.sha256 and names == tuple(current.name_list):
            decision.replay = True  # rule 8: a retry of the reissue that made the current certificate
            return decision
        if current is not None and current.spki_sha256 == csr.spki_sha256:
            if ra.settings.key_reuse == "refuse":
                raise KeyRefused("the CSR reuses the current certificate's key: generate a new key")
            decision.warnings.append(
                Notice(
                    KEY_REUSE_WARNING,
                    "the CSR reuses the current certificate's key; a new key is recommended",
                    "CSR",
                )
            )
        return decision

    def validate(self, credentials: Credentials, request: ReissueRequest, *, channel: str) -> ValidationOutcome:
        """What a reissue would answer, with nothing issued and nothing changed but the audit trail."""
        user = self._ra.authenticator.authenticate(credentials, channel=channel)
        partner = PartnerRef(id=user.partner_id, code=user.partner_code, actor=user.username)
        subject = Subject(channel=channel, action="validate", partner_code=partner.code, username=partner.actor,
                          partner_order_id=request.partner_order_id)
        return run_audited(self._ra, subject, lambda: self._validate(partner, request, subject))

    def _validate(self, partner: PartnerRef, request: ReissueRequest, subject: Subject) -> ValidationOutcome:
        check_request_fields(request)
        examined = examine_csr(self._ra.key_policy, request.csr)
        now = self._ra.clock()
        with self._ra.sessions() as session, session.begin():
            decision = self._decide(session, partner, request, examined, now, lock=False)
            audit.append_event(
                session, at=now, channel=subject.channel, action=subject.action, outcome="success", code=0,
                partner_code=subject.partner_code, username=subject.username, order_id=decision.order.order_id,
                partner_order_id=decision.order.partner_order_id,
                detail="replay of the current certificate" if decision.replay else _names_detail(decision.names),
            )
        return ValidationOutcome(
            order_id=decision.order.order_id,
            csr=decision.csr,
            names=decision.names,
            warnings=tuple(decision.warnings),
            replay=decision.replay,
        )

    @staticmethod
    def _append(
        session: Session,
        subject: Subject,
        order: Order,
        certificate: Certificate,
        now: datetime,
        *,
        outcome: str,
        detail: str,
    ) -> None:
        audit.append_event(
            session,
            at=now,
            channel=subject.channel,
            action=subject.action,
            outcome=outcome,
            code=0,
            partner_code=subject.partner_code,
            username=subject.username,
            order_id=order.order_id,
            partner_order_id=order.partner_order_id,
            certificate_serial=certificate.serial,
            detail=detail,
        )

    @staticmethod
    def _outcome(
        session: Session,
        partner: PartnerRef,
        order: Order,
        certificate: Certificate,
        replaced: Certificate | None,
        loaded: LoadedCA,
        warnings: tuple[Notice, ...],
        *,
        replayed: bool,
    ) -> IssuanceOutcome:
        """The answer, from what the transaction holds already: the partner, the CA and the
        replaced certificate's serial are not read again (their rows would be, one query each,
        with the write lock held). Not the whole history: reissues are unlimited, and their
        answer must not grow with them."""
        if replaced is not None and replaced.id == certificate.replaces_id:
            replaces_serial: str | None = replaced.serial
        elif certificate.replaces_id is not None:
            replaces_serial = certificates.serial_of(session, certificate.replaces_id)
        else:
            replaces_serial = None
        issuer = loaded.issuing.name if certificate.ca_id == loaded.id else None
        current_view = CertificateView.of(certificate, replaces_serial, issuer=issuer)
        view = OrderView.of(order, [], current_view=current_view, partner_code=partner.code)
        return IssuanceOutcome(
            order=view, certificate=current_view, chain=chain_of(loaded), warnings=warnings, replayed=replayed
        )


def _names_detail(names: Sequence[str]) -> str:
    return "names=" + ",".join(names) if names else "code signing"


def run_audited(ra: RegistrationAuthority, subject: Subject, action: Callable[[], T]) -> T:
    """Run a use case and audit how it ended (docs/design.md, "Error model").

    A refusal is audited and raised as it is; an incident opened below is already
    audited and passes; any other failure (the pre-issuance linter's verdict among
    them) opens an incident on the subject. Nothing of a failure reaches the caller.
    """
    try:
        return action()
    except ServiceError as refusal:
        try:
            record_outcome(ra, subject, outcome="refused", code=refusal.code, detail=refusal.message)
        except Exception:  # the refusal stands; the log has the audit store's failure
            logger.exception("audit of a %s refusal (%s) failed", subject.action, refusal.code)
        raise
    except InternalError:
        raise
    except Exception as failure:  # noqa: BLE001 - any other failure is an incident, opened here
        raise open_incident(logger, f"{subject.action} failed", failure=failure, audit=(ra, subject)) from None
