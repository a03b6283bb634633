"""docs/design.md, "Concurrency and failures": concurrent reissues of one order are serialized, on SQLite and
PostgreSQL alike; a failure after signing leaves nothing behind but its audit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import InternalError, ServiceError
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.views import IssuanceOutcome
from soap_service.storage import certificates as certificate_store
from soap_service.storage.models import AuditEvent, Certificate, IssuedSerial, Order

THREADS = 16


def run_concurrently(ra, partner, poid: str, csrs: list[str]) -> list[IssuanceOutcome | ServiceError]:
    reissuer = Reissuer(ra)

    def one(csr: str) -> IssuanceOutcome | ServiceError:
        try:
            return reissuer.reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
        except ServiceError as error:
            return error

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, csrs))


def order_state(ra, poid: str) -> tuple[Order, list[Certificate]]:
    with ra.sessions() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == poid))
        assert order is not None
        return order, certificate_store.order_history(session, order.id)


@pytest.mark.slow
def test_sixteen_concurrent_reissues_with_different_csrs(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    version_before = order_state(ra, poid)[0].version
    results = run_concurrently(ra, partner, poid, [fresh_key_csr() for _ in range(THREADS)])
    errors = [r for r in results if isinstance(r, ServiceError)]
    assert errors == []  # every reissue of a completed order is allowed: none may be lost
    successes = [r for r in results if isinstance(r, IssuanceOutcome)]
    serials = [r.certificate.serial for r in successes]
    assert len(set(serials)) == THREADS
    order, history = order_state(ra, poid)
    assert [c.serial for c in history][1:] == sorted(serials, key=[c.serial for c in history].index)
    assert len(history) == THREADS + 1
    assert len({c.serial for c in history}) == THREADS + 1
    assert order.current_certificate_id == history[-1].id  # exactly one current: the last one written
    assert order.version == version_before + THREADS
    # each new certificate replaced the one that was current when it was made: one chain, no forks
    assert [c.replaces_id for c in history] == [None] + [c.id for c in history[:-1]]


@pytest.mark.slow
def test_sixteen_concurrent_retries_of_one_csr_issue_exactly_one_certificate(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    csr = fresh_key_csr()
    results = run_concurrently(ra, partner, poid, [csr] * THREADS)
    assert all(isinstance(r, IssuanceOutcome) for r in results)
    serials = {r.certificate.serial for r in results if isinstance(r, IssuanceOutcome)}
    assert len(serials) == 1
    _, history = order_state(ra, poid)
    assert len(history) == 2
    assert sum(1 for r in results if isinstance(r, IssuanceOutcome) and not r.replayed) == 1


def test_a_failure_after_signing_leaves_no_certificate_no_change_and_an_audit_event(ra, monkeypatch):
    """The serial stays reserved (committed before the signature, never drawn again) with no
    certificate of it; nothing else of the reissue is left (docs/design.md, "Concurrency and failures")."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    before_order, before_history = order_state(ra, poid)
    with ra.sessions() as session:
        serials_before = len(list(session.scalars(select(IssuedSerial.id))))
        unused_before = list(session.scalars(
            select(IssuedSerial.id).where(~IssuedSerial.serial.in_(select(Certificate.serial)))))

    def failing_insert(session, certificate):
        raise RuntimeError("disk full while writing the certificate row")

    monkeypatch.setattr(certificate_store, "add_certificate", failing_insert)
    with pytest.raises(InternalError) as caught:
        Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, fresh_key_csr()), channel="api")
    assert caught.value.code == -9000
    assert caught.value.incident_id in caught.value.message
    assert "disk full" not in caught.value.message
    monkeypatch.undo()

    after_order, after_history = order_state(ra, poid)
    assert [c.id for c in after_history] == [c.id for c in before_history]
    assert (after_order.current_certificate_id, after_order.version) == (
        before_order.current_certificate_id, before_order.version)
    with ra.sessions() as session:
        assert len(list(session.scalars(select(IssuedSerial.id)))) == serials_before + 1
        unused = select(IssuedSerial.id).where(~IssuedSerial.serial.in_(select(Certificate.serial)))
        assert len(list(session.scalars(unused))) == 1 + len(unused_before)
        event = session.scalars(select(AuditEvent).where(AuditEvent.partner_order_id == poid)
                                .order_by(AuditEvent.id.desc())).first()
    assert event is not None
    assert (event.action, event.outcome, event.code, event.incident_id) == (
        "reissue", "failed", -9000, caught.value.incident_id)


def test_audit_events_are_append_only(ra):
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DatabaseError

    partner = new_partner(ra)
    new_order(ra, partner)
    for statement in (update(AuditEvent).values(detail="rewritten"), delete(AuditEvent)):
        with pytest.raises(DatabaseError, match="append-only"):
            with ra.sessions() as session, session.begin():
                session.execute(statement)


def test_a_database_error_in_the_log_carries_no_parameters(ra, monkeypatch, caplog):
    """A real IntegrityError during a reissue: its logged traceback holds no CSR nor any value."""
    import logging

    from soap_service.storage.models import Certificate as CertificateRow

    partner = new_partner(ra)
    created = new_order(ra, partner)
    real_add = certificate_store.add_certificate

    def add_with_a_duplicate_serial(session, certificate: CertificateRow):
        certificate.serial = created.certificate.serial  # unique per issuer: the insert fails in the database
        return real_add(session, certificate)

    monkeypatch.setattr(certificate_store, "add_certificate", add_with_a_duplicate_serial)
    csr = fresh_key_csr()
    with caplog.at_level(logging.ERROR), pytest.raises(InternalError):
        Reissuer(ra).reissue(partner.credentials(), ReissueRequest(created.order.partner_order_id, csr),
                             channel="api")
    assert "IntegrityError" in caplog.text
    assert "BEGIN CERTIFICATE REQUEST" not in caplog.text
    assert csr.splitlines()[1] not in caplog.text
    assert "hidden due to hide_parameters" in caplog.text
