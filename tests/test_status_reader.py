"""The OCSP responder's status reads (soap_service.storage.status_reader), on SQLite and PostgreSQL:
the row as the ORM would read it, a revocation seen by the next read, connections that cannot write,
shared by any number of threads up to a bound, and a connection that broke replaced on the next read."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from cryptography import x509
from sqlalchemy import select

from factory import new_order, new_partner
from ocsp_support import revoke_row
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import status_reader
from soap_service.storage.models import Certificate
from soap_service.storage.status_reader import MAX_CONNECTIONS, StatusReader, StatusReaderBusy
from soap_service.vocabulary import CertificateStatus


def issued_serial(ra: RegistrationAuthority) -> tuple[int, str]:
    outcome = new_order(ra, new_partner(ra))
    serial = format(x509.load_pem_x509_certificate(outcome.certificate.pem.encode()).serial_number, "x")
    with ra.readers() as session:
        ca_id = session.scalars(select(Certificate.ca_id).where(Certificate.serial == serial)).one()
    return ca_id, serial


def test_a_status_is_read_as_stored_and_a_revocation_shows_on_the_next_read(ra: RegistrationAuthority) -> None:
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    try:
        row = reader.read(ca_id=ca_id, serial=serial)
        assert row is not None and row.status is CertificateStatus.VALID and row.revoked_at is None
        assert reader.read(ca_id=ca_id, serial=serial + "0") is None
        assert reader.read(ca_id=ca_id + 1000, serial=serial) is None
        revoke_row(ra, int(serial, 16), "keyCompromise")
        row = reader.read(ca_id=ca_id, serial=serial)
        assert row is not None and row.status is CertificateStatus.REVOKED
        assert row.revocation_reason == "keyCompromise"
        with ra.readers() as session:
            stored = session.scalars(select(Certificate).where(Certificate.serial == serial)).one()
        assert row.revoked_at == stored.revoked_at and row.revoked_at.tzinfo is UTC
    finally:
        reader.close()


def test_its_connections_cannot_write(ra: RegistrationAuthority) -> None:
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    try:
        reader.read(ca_id=ca_id, serial=serial)
        (connection,) = reader._open
        cursor = connection.cursor()
        with pytest.raises(ra.engine.dialect.loaded_dbapi.Error, match=r"(?i)read.only|readonly"):
            cursor.execute("UPDATE certificates SET revocation_reason = 'x' WHERE serial = '0'")
    finally:
        reader.close()
    row = StatusReader(ra.engine)
    try:
        assert row.read(ca_id=ca_id, serial=serial).revocation_reason is None  # type: ignore[union-attr]
    finally:
        row.close()


def test_any_number_of_threads_share_at_most_max_connections(ra: RegistrationAuthority) -> None:
    """More threads than connections (gunicorn's --threads has no bound of ours): every read is
    answered, on at most MAX_CONNECTIONS connections, which stay open for the next reads."""
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    threads_count = MAX_CONNECTIONS + 8
    barrier = threading.Barrier(threads_count)
    answered: list[int] = []

    def read() -> None:
        barrier.wait()
        for _ in range(30):
            assert reader.read(ca_id=ca_id, serial=serial) is not None
        answered.append(1)

    try:
        threads = [threading.Thread(target=read) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(answered) == threads_count
        assert 1 <= len(reader._open) <= MAX_CONNECTIONS
    finally:
        reader.close()
    assert reader._open == []


def test_a_read_that_finds_every_connection_busy_fails_after_the_checkout_timeout(
    ra: RegistrationAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_id, serial = issued_serial(ra)
    monkeypatch.setattr(status_reader, "CHECKOUT_TIMEOUT", 0.2)
    reader = StatusReader(ra.engine)
    try:
        held = [reader._checkout() for _ in range(MAX_CONNECTIONS)]
        with pytest.raises(StatusReaderBusy):
            reader.read(ca_id=ca_id, serial=serial)
        reader._idle.put(held.pop())
        assert reader.read(ca_id=ca_id, serial=serial) is not None
        assert len(reader._open) == MAX_CONNECTIONS
    finally:
        reader.close()


def test_a_broken_connection_is_replaced_and_the_read_answered(ra: RegistrationAuthority) -> None:
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    try:
        reader.read(ca_id=ca_id, serial=serial)
        (broken,) = reader._open
        broken.close()  # as a server restart or a network failure leaves it
        row = reader.read(ca_id=ca_id, serial=serial)
        assert row is not None and row.status is CertificateStatus.VALID
        assert len(reader._open) == 1 and reader._open[0] is not broken
    finally:
        reader.close()
