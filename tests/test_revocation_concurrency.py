"""docs/design.md, "Revocation" (what is locked): revocations and reissues of one order take
turns, on SQLite and PostgreSQL, from threads of one process and from two real processes
(``spawn``, each with its own registration authority, as two gunicorn workers are). Whatever
order they run in, the order keeps one consistent history: at most one current certificate,
a linear chain of replacements, no reissue that succeeded after the current certificate was
revoked, and every revoked certificate with its time and reason."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from factory import fresh_key_csr, new_order, new_partner
from process_support import START_TIMEOUT, results_of_processes
from soap_service.config import load_settings
from soap_service.errors import AlreadyRevoked, CertificateRevoked, ServiceError
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.revocation import Revoker, RevokeRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import AuditEvent, Certificate, Order
from soap_service.vocabulary import CertificateStatus

THREADS = 16
CURRENT_REASON = "unspecified"  # the revocations of whatever certificate is current
OLDER_REASON = "superseded"  # the revocations of the order's first certificate, by serial

Job = tuple[str, str | None]  # ("reissue", csr) or ("revoke", serial or None)


def jobs_for(first_serial: str, count: int) -> list[Job]:
    """Reissues, revocations of the first certificate by serial and of the current one, interleaved."""
    kinds: list[Job] = []
    for number in range(count):
        if number % 3 == 0:
            kinds.append(("revoke", first_serial))
        elif number % 3 == 1:
            kinds.append(("reissue", fresh_key_csr()))
        else:
            kinds.append(("revoke", None))
    return kinds


def run_jobs(ra: RegistrationAuthority, partner_credentials: Any, poid: str, jobs: list[Job]) -> list[str]:
    """Each job's outcome: ``ok``, or the refusal's code."""
    together = threading.Barrier(len(jobs))

    def one(job: Job) -> str:
        kind, value = job
        together.wait()
        try:
            if kind == "reissue":
                assert value is not None
                Reissuer(ra).reissue(partner_credentials, ReissueRequest(poid, value), channel="api")
            else:
                reason = OLDER_REASON if value is not None else CURRENT_REASON
                Revoker(ra).revoke(partner_credentials, RevokeRequest(poid, value, None, reason), channel="api")
        except ServiceError as refusal:
            return f"{kind} {refusal.code}"
        return f"{kind} ok"

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def check_history(ra: RegistrationAuthority, poid: str, outcomes: list[str]) -> None:
    """The invariants of the module's docstring."""
    allowed = {"reissue ok", "revoke ok", f"reissue {CertificateRevoked.code}", f"revoke {AlreadyRevoked.code}"}
    assert set(outcomes) <= allowed, outcomes
    with ra.readers() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == poid))
        assert order is not None
        history = list(session.scalars(select(Certificate).where(Certificate.order_pk == order.id)
                                       .order_by(Certificate.id)))
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.partner_order_id == poid, AuditEvent.action.in_(("reissue", "revoke")),
            AuditEvent.outcome == "success").order_by(AuditEvent.id)))
    # one current certificate, the last of one linear chain
    assert order.current_certificate_id == history[-1].id
    assert [c.replaces_id for c in history] == [None] + [c.id for c in history[:-1]]
    assert outcomes.count("reissue ok") == len(history) - 1
    # every revoked certificate has its time and reason; only the last can have been revoked as current
    for certificate in history:
        assert (certificate.status == CertificateStatus.REVOKED) == (certificate.revoked_at is not None)
        assert (certificate.revoked_at is None) == (certificate.revocation_reason is None)
    revoked_as_current = [c for c in history if c.revocation_reason == CURRENT_REASON]
    assert revoked_as_current in ([], [history[-1]])
    assert outcomes.count("revoke ok") == sum(1 for c in history if c.status == CertificateStatus.REVOKED)
    # in the order the transactions took the order's lock: no reissue after the current was revoked
    sequence = [(e.action, e.certificate_serial) for e in events]
    if revoked_as_current:
        position = sequence.index(("revoke", revoked_as_current[0].serial))
        assert all(action != "reissue" for action, _serial in sequence[position + 1:]), sequence


@pytest.mark.slow
def test_sixteen_parallel_revocations_and_reissues_of_one_order_from_threads(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    outcomes = run_jobs(ra, partner.credentials(), poid, jobs_for(created.certificate.serial, THREADS))
    check_history(ra, poid, outcomes)
    assert "revoke ok" in outcomes


def _worker(environ: dict[str, str], partner: Any, poid: str, jobs: list[Job], start: Any, results: Any) -> None:
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    try:
        start.wait(START_TIMEOUT)
        results.put(run_jobs(ra, partner.credentials(), poid, jobs))
    finally:
        ra.close()


@pytest.mark.slow
def test_sixteen_parallel_revocations_and_reissues_from_two_processes(ra, installation):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    jobs = jobs_for(created.certificate.serial, THREADS)
    outcomes = results_of_processes(
        _worker, [(installation.environ, partner, poid, jobs[half::2]) for half in (0, 1)], work_timeout=180
    )
    check_history(ra, poid, outcomes)


@pytest.mark.slow
def test_parallel_key_compromise_revocations_of_one_key_from_two_orders_take_turns(ra, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric import ec

    partner, other = new_partner(ra), new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    # Two partners' certificates for one key: refused at issuance now (reissue rule 7,
    # docs/design.md, "Reissue rules"), but certificates issued before that rule can hold it.
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr("soap_service.ra.orders.refuse_key_of_another_partner", lambda *_, **__: None)
        orders = [new_order(ra, p, csr=fresh_key_csr(key=key)) for p in (partner, other)]
    together = threading.Barrier(8)

    def one(number: int) -> str:
        owner, created = ((partner, orders[0]), (other, orders[1]))[number % 2]
        together.wait()
        try:
            Revoker(ra).revoke(owner.credentials(), RevokeRequest(created.order.partner_order_id, None, None,
                                                                  "keyCompromise"), channel="api")
        except ServiceError as refusal:
            return str(refusal.code)
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert sorted(outcomes) == sorted(["ok"] + [str(AlreadyRevoked.code)] * 7), outcomes
    with ra.readers() as session:
        revoked = [session.scalar(select(Certificate).where(Certificate.serial == o.certificate.serial))
                   for o in orders]
    assert {(c.status, c.revocation_reason) for c in revoked if c is not None} == {
        (CertificateStatus.REVOKED, "keyCompromise")}
    assert len({c.revoked_at for c in revoked if c is not None}) == 1
