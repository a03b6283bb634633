"""The OCSP responder (docs/design.md, "OCSP"), on SQLite and PostgreSQL: openssl ocsp as the
relying party against the leaf's own OCSP URL, pkilint on the responses, the error statuses,
the cache, the delegated responder certificates and their renewal.

The WSGI callable is served here by a small threaded wsgiref server on a loopback port, and the
certificates are issued by an RA whose public URL is that server's, so their AIA names it;
tests/test_ocsp_http.py serves it with the real server.
"""

from __future__ import annotations

import secrets
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from sqlalchemy import delete, func, select

from conftest import TestInstallation, build_installation, database_environment
from factory import new_order, new_partner
from ocsp_support import (
    issued_files,
    openssl_ocsp,
    pkilint_ocsp,
    request_der,
    request_for_serial,
    revoke_row,
)
from soap_service.ca import der
from soap_service.ca.ocsp import NEXT_UPDATE, CertificateState
from soap_service.ca.ocsp_responder import RENEWAL_MARGIN, RESPONDER_VALIDITY
from soap_service.config import load_settings
from soap_service.ra import ocsp as ra_ocsp
from soap_service.ra.ocsp import OCSPResponderService, ensure_responders
from soap_service.ra.service import RegistrationAuthority
from soap_service.status.ocsp import OCSPApplication
from soap_service.storage.models import CertificateAuthority, OCSPResponder

ISSUING_CAS = 6  # a TLS CA per brand (4), two code-signing CAs


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class Responder:
    ra: RegistrationAuthority
    service: OCSPResponderService
    url: str


@pytest.fixture(scope="module")
def responder(installation: TestInstallation) -> Iterator[Responder]:
    server = make_server("127.0.0.1", 0, lambda e, s: app(e, s), server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    ra = RegistrationAuthority.from_settings(load_settings({**installation.environ, "SOAP_SERVICE_PUBLIC_URL": url}))
    service = OCSPResponderService(ra)
    app = OCSPApplication(service, ra.clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Responder(ra, service, url)
    finally:
        server.shutdown()
        server.server_close()
        ra.close()


def _status(response: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(response)


# ------------------------------------------------------------------------------- openssl as relying party


def test_good_then_revoked_with_reason(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    assert issued.ocsp_url == responder.url + "/ocsp"
    output = openssl_ocsp(issued)
    assert f"{issued.leaf_file}: good" in output, output
    assert "Response verify OK" in output, output
    assert "WARNING" not in output, output  # the nonce came back
    revoke_row(responder.ra, issued.leaf.serial_number, "keyCompromise")
    output = openssl_ocsp(issued)
    assert f"{issued.leaf_file}: revoked" in output, output
    assert "Reason: keyCompromise" in output, output
    assert "Response verify OK" in output, output


def test_unspecified_reason_is_omitted(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    revoke_row(responder.ra, issued.leaf.serial_number, "unspecified")
    answer = responder.service.answer(request_der(issued.leaf, issued.issuer))
    response = _status(answer.der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None
    assert "Reason" not in openssl_ocsp(issued)


def test_unknown_for_a_serial_never_issued(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    serial = x509.random_serial_number()
    output = openssl_ocsp(issued, serial=serial)
    assert f"{hex(serial)}: unknown" in output, output
    assert "Response verify OK" in output, output


def test_sha256_cert_id_is_answered(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    assert f"{issued.leaf_file}: good" in openssl_ocsp(issued, "-sha256")
    response = _status(responder.service.answer(request_der(issued.leaf, issued.issuer, algorithm=hashes.SHA256())).der)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert isinstance(response.hash_algorithm, hashes.SHA256)  # the CertID comes back as asked


# ------------------------------------------------------------------------------- the response itself


def test_response_fields(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    nonce = secrets.token_bytes(16)
    response = _status(responder.service.answer(request_der(issued.leaf, issued.issuer, nonce=nonce)).der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    (certificate,) = response.certificates
    assert certificate.issuer == issued.issuer.subject
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    assert response.responder_name is None  # byKey
    assert response.serial_number == issued.leaf.serial_number
    assert response.next_update_utc - response.this_update_utc == NEXT_UPDATE <= timedelta(days=10)
    assert abs(response.this_update_utc - responder.ra.clock()) < timedelta(minutes=1)


@pytest.mark.parametrize("state", ["good", "revoked", "unknown"])
def test_pkilint_finds_nothing(responder: Responder, tmp_path: Path, state: str) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    if state == "revoked":
        revoke_row(responder.ra, issued.leaf.serial_number, "superseded")
    request = (
        request_for_serial(issued.issuer, x509.random_serial_number(), nonce=b"n" * 16)
        if state == "unknown" else request_der(issued.leaf, issued.issuer, nonce=b"n" * 16)
    )
    answer = responder.service.answer(request)
    assert answer.state == CertificateState(state)
    assert pkilint_ocsp(answer.der, tmp_path) == []
    cached = responder.service.answer(request_der(issued.leaf, issued.issuer))
    assert pkilint_ocsp(cached.der, tmp_path) == []


# ------------------------------------------------------------------------------- cache


def test_cached_without_nonce_until_the_status_changes(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    request = request_der(issued.leaf, issued.issuer)
    first = responder.service.answer(request).der
    assert responder.service.answer(request).der == first  # the same signed bytes
    # another process (another RA object, another cache) revokes: this one sees it at once
    revoke_row(responder.ra, issued.leaf.serial_number, "superseded")
    revoked = responder.service.answer(request).der
    assert revoked != first
    assert _status(revoked).certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert _status(revoked).revocation_reason == x509.ReasonFlags.superseded


def test_nonce_responses_are_signed_each_time(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    one = responder.service.answer(request_der(issued.leaf, issued.issuer, nonce=b"a" * 16)).der
    two = responder.service.answer(request_der(issued.leaf, issued.issuer, nonce=b"b" * 16)).der
    assert _status(one).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"a" * 16
    assert _status(two).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"b" * 16


def test_cached_response_is_refreshed_when_old(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    request = request_der(issued.leaf, issued.issuer)
    first = responder.service.answer(request).der
    later = OCSPResponderService(responder.ra)
    later._cache = responder.service._cache  # the same cache, read a day and a minute later
    real_clock = responder.ra.clock
    responder.ra.clock = lambda: real_clock() + timedelta(days=1, minutes=1)
    try:
        refreshed = later.answer(request).der
    finally:
        responder.ra.clock = real_clock
    assert refreshed != first
    assert _status(refreshed).this_update_utc > _status(first).this_update_utc


def test_unknown_answers_are_not_cached(responder: Responder, tmp_path: Path) -> None:
    """Serials a requester chooses fill no cache: an unknown answer is signed each time."""
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    service = OCSPResponderService(responder.ra)
    for serial in (x509.random_serial_number() for _ in range(3)):
        for _ in range(2):
            answer = service.answer(request_for_serial(issued.issuer, serial))
            assert _status(answer.der).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert len(service._cache) == 0 and service._cache_bytes == 0
    service.answer(request_der(issued.leaf, issued.issuer))
    assert len(service._cache) == 1


def test_cache_is_bounded_by_bytes(responder: Responder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over ra.ocsp.CACHE_BYTES the least recently used responses are dropped, whatever their count."""
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    algorithms = (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
    requests = [request_der(issued.leaf, issued.issuer, algorithm=algorithm) for algorithm in algorithms]
    sizes = [len(responder.service.answer(request).der) for request in requests]
    monkeypatch.setattr(ra_ocsp, "CACHE_BYTES", sizes[-2] + sizes[-1] + 8)  # ECDSA: a byte or two more
    service = OCSPResponderService(responder.ra)
    for request in requests:
        assert _status(service.answer(request).der).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert [key[2] for key in service._cache] == ["sha384", "sha512"]
    assert service._cache_bytes == sum(len(entry.der) for entry in service._cache.values()) <= ra_ocsp.CACHE_BYTES


# ------------------------------------------------------------------------------- error statuses


def _two_requests(single: bytes) -> bytes:
    """An OCSPRequest whose requestList holds its one Request twice."""
    (tbs,) = der.sequence_elements(single)
    elements = der.sequence_elements(tbs)
    request_list = der.sequence_elements(elements[0])
    return der.sequence(der.sequence(der.sequence(*request_list, *request_list), *elements[1:]))


def test_malformed_requests(responder: Responder, tmp_path: Path) -> None:
    issued = issued_files(new_order(responder.ra, new_partner(responder.ra)), tmp_path)
    good = request_der(issued.leaf, issued.issuer)
    for bad in (b"", b"garbage", good[:-3], good + b"\x00", b"\x30" * 5000, _two_requests(good)):
        response = _status(responder.service.answer(bad).der)
        assert response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, bad[:20]
        assert _status(responder.service.answer(good).der).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_issuer_not_ours_is_unauthorized(responder: Responder, tmp_path: Path) -> None:
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        secrets.token_bytes(20), secrets.token_bytes(20), 12345, hashes.SHA1()
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    response = _status(responder.service.answer(builder.build().public_bytes(Encoding.DER)).der)
    assert response.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


# ------------------------------------------------------------------------------- responder certificates


def test_every_issuing_ca_has_a_responder(responder: Responder) -> None:
    with responder.ra.readers() as session:
        issuing = session.scalar(
            select(func.count()).select_from(CertificateAuthority).where(CertificateAuthority.role != "root")
        )
        with_responder = session.scalar(select(func.count(func.distinct(OCSPResponder.ca_id))))
    assert issuing == with_responder == ISSUING_CAS


@pytest.fixture
def fresh(installation: TestInstallation, tmp_path: Path) -> Iterator[TestInstallation]:
    """A new installation of its own (the renewal tests move its clock)."""
    for environ in database_environment(installation.backend, tmp_path, "ocsp"):
        inst = build_installation(environ, installation.backend)
        try:
            yield inst
        finally:
            inst.ra.close()


def _responders(ra: RegistrationAuthority) -> list[OCSPResponder]:
    with ra.readers() as session:
        return list(session.scalars(select(OCSPResponder).order_by(OCSPResponder.id)))


def test_renewal_before_expiry_and_one_creator_wins(fresh: TestInstallation) -> None:
    ra = fresh.ra
    initial = _responders(ra)
    assert len(initial) == ISSUING_CAS
    assert all(r.not_after - r.not_before == RESPONDER_VALIDITY for r in initial)
    start = min(r.not_after for r in initial)
    assert ensure_responders(ra, start - RENEWAL_MARGIN - timedelta(minutes=1)) == 0
    due = start - RENEWAL_MARGIN + timedelta(minutes=1)
    made: list[int] = []
    threads = [threading.Thread(target=lambda: made.append(ensure_responders(ra, due))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(made) == ISSUING_CAS  # one new responder per CA, whichever thread made it
    after = _responders(ra)
    assert len(after) == 2 * ISSUING_CAS
    assert {r.ca_id for r in after[ISSUING_CAS:]} == {r.ca_id for r in initial}


def test_first_use_makes_missing_responders(fresh: TestInstallation, tmp_path: Path) -> None:
    ra = fresh.ra
    with ra.sessions() as session, session.begin():
        session.execute(delete(OCSPResponder))  # an installation initialized before responders existed
    outcome = new_order(ra, new_partner(ra))
    issued = issued_files(outcome, tmp_path)
    answer = OCSPResponderService(ra).answer(request_der(issued.leaf, issued.issuer))
    assert _status(answer.der).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert len(_responders(ra)) == ISSUING_CAS


def test_responder_certificate_profile(responder: Responder) -> None:
    """docs/design.md, "OCSP": each responder certificate is the BR's OCSP responder profile, and
    pkilint's serverauth linter (type OCSP_RESPONDER) finds nothing at WARNING or above."""
    from ca_support import full_serverauth_lint

    with responder.ra.readers() as session:
        pairs = [
            (x509.load_pem_x509_certificate(r.certificate_pem.encode()),
             x509.load_pem_x509_certificate(session.get(CertificateAuthority, r.ca_id).certificate_pem.encode()))
            for r in session.scalars(select(OCSPResponder))
        ]
    assert pairs
    for certificate, ca in pairs:
        extensions = certificate.extensions
        assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING
        ]
        extensions.get_extension_for_class(x509.OCSPNoCheck)
        usage = extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        with pytest.raises(x509.ExtensionNotFound):
            extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == RESPONDER_VALIDITY
        certificate.verify_directly_issued_by(ca)
        assert full_serverauth_lint(certificate) == ("OCSP_RESPONDER", [])


def test_a_responder_nearing_expiry_is_renewed_by_the_next_request(fresh: TestInstallation, tmp_path: Path) -> None:
    ra = fresh.ra
    issued = issued_files(new_order(ra, new_partner(ra)), tmp_path)
    service = OCSPResponderService(ra)
    request = request_der(issued.leaf, issued.issuer)
    before = _status(service.answer(request).der).certificates[0]
    real_clock = ra.clock
    ra.clock = lambda: before.not_valid_after_utc - RENEWAL_MARGIN + timedelta(hours=1)
    try:
        after = _status(service.answer(request).der)
    finally:
        ra.clock = real_clock
    assert after.certificate_status == ocsp.OCSPCertStatus.GOOD
    renewed = after.certificates[0]
    assert renewed.serial_number != before.serial_number
    assert renewed.not_valid_after_utc > before.not_valid_after_utc
    assert len(_responders(ra)) == 2 * ISSUING_CAS
