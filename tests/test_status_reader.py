"""The OCSP responder's status reads (soap_service.storage.status_reader), on SQLite and PostgreSQL:
the row as the ORM would read it, a revocation seen by the next read, connections that cannot write,
one per thread, and a connection that broke replaced on the next read."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from cryptography import x509
from ocsp_support import revoke_row
from sqlalchemy import select

from factory import new_order, new_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import Certificate
from soap_service.storage.status_reader import StatusReader
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
        connection = reader._local.connection
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


def test_each_thread_reads_on_its_own_connection(ra: RegistrationAuthority) -> None:
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    seen: list[int] = []
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        for _ in range(20):
            assert reader.read(ca_id=ca_id, serial=serial) is not None
        seen.append(id(reader._local.connection))

    try:
        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 4 and len(set(seen)) == 4 and len(reader._open) == 4
    finally:
        reader.close()
    assert reader._open == []


def test_a_broken_connection_is_replaced_and_the_read_answered(ra: RegistrationAuthority) -> None:
    ca_id, serial = issued_serial(ra)
    reader = StatusReader(ra.engine)
    try:
        reader.read(ca_id=ca_id, serial=serial)
        broken = reader._local.connection
        broken.close()  # as a server restart or a network failure leaves it
        row = reader.read(ca_id=ca_id, serial=serial)
        assert row is not None and row.status is CertificateStatus.VALID
        assert reader._local.connection is not broken and reader._open == [reader._local.connection]
    finally:
        reader.close()
