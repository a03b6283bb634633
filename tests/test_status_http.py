"""Status publication over the wire (docs/design.md, "Status publication"): a real server
(gunicorn on a loopback port) and the real ``openssl`` binary as the relying party. The leaf is
issued with SOAP_SERVICE_PUBLIC_URL set to the server's own address, so its CRL distribution
point and caIssuers URLs are fetched as they are, nothing rewritten. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID

from api_support import RunningServer, request, running_server
from conftest import TestInstallation as Installation
from factory import new_order, new_partner
from soap_service.config import load_settings
from soap_service.ra.revocation import Revoker, RevokeRequest
from soap_service.ra.service import RegistrationAuthority


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def local_ra(installation: Installation, server: RunningServer) -> Iterator[RegistrationAuthority]:
    """An RA whose public URL is the test server's: what it signs points at that server."""
    settings = load_settings({**installation.environ, "SOAP_SERVICE_PUBLIC_URL": server.base_url})
    ra = RegistrationAuthority.from_settings(settings)
    try:
        yield ra
    finally:
        ra.close()


def _fetch(url: str) -> tuple[str, bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.headers.get_content_type(), answer.read(), {k.lower(): v for k, v in answer.headers.items()}


def _urls(leaf: x509.Certificate) -> tuple[str, str]:
    points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = points[0].full_name[0].value  # type: ignore[index]
    access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    issuers = [a.access_location.value for a in access if a.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    return crl_url, issuers[0]


def _pem(path: Path, der: bytes, kind: str) -> Path:
    if kind == "crl":
        path.write_bytes(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    else:
        path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return path


def _verify(tmp_path: Path, root: Path, issuer: Path, leaf: Path, *crls: Path, check: str = "-crl_check") -> str:
    command = ["openssl", "verify", check, "-CAfile", str(root), "-untrusted", str(issuer)]
    for crl in crls:
        command += ["-CRLfile", str(crl)]
    done = subprocess.run([*command, str(leaf)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    return f"{done.returncode} {done.stdout}{done.stderr}"


def _revoke(ra: RegistrationAuthority, partner: str, partner_order_id: str, serial: str, reason: str) -> None:
    """Revoke as the operator does (``soap-service order revoke``: ``ra.revocation``)."""
    Revoker(ra).revoke_by_operator(partner, RevokeRequest(
        partner_order_id=partner_order_id, serial_number=serial, certificate_pem=None, reason=reason))


@pytest.mark.parametrize(("product", "reason"), [("SSL123", "keyCompromise"), ("ThawteCodeSigning", "unspecified")])
def test_openssl_verifies_with_the_fetched_crl_then_sees_the_revocation(
    server: RunningServer, local_ra: RegistrationAuthority, tmp_path: Path, product: str, reason: str
):
    partner = new_partner(local_ra)
    outcome = new_order(local_ra, partner, product=product)
    leaf_certificate = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    crl_url, issuer_url = _urls(leaf_certificate)
    assert crl_url.startswith(server.base_url + "/crl/") and issuer_url.startswith(server.base_url + "/ca/")
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(outcome.certificate.pem)

    kind, issuer_der, _ = _fetch(issuer_url)
    assert kind == "application/pkix-cert"
    issuer = _pem(tmp_path / "issuer.pem", issuer_der, "cert")
    # The caIssuers certificate is the leaf's issuer: it verifies the leaf's signature.
    leaf_certificate.verify_directly_issued_by(x509.load_der_x509_certificate(issuer_der))
    root = _pem(tmp_path / "root.pem", _fetch(server.base_url + "/ca/ROOT.crt")[1], "cert")
    kind, crl_der, _ = _fetch(crl_url)
    assert kind == "application/pkix-crl"
    crl = _pem(tmp_path / "crl.pem", crl_der, "crl")
    root_crl = _pem(tmp_path / "root-crl.pem", _fetch(server.base_url + "/crl/ROOT.crl")[1], "crl")

    assert _verify(tmp_path, root, issuer, leaf, crl).startswith("0 "), _verify(tmp_path, root, issuer, leaf, crl)
    assert _verify(tmp_path, root, issuer, leaf, crl, root_crl, check="-crl_check_all").startswith("0 ")
    # Without the CRL, -crl_check cannot pass: the check is real.
    assert "unable to get certificate CRL" in _verify(tmp_path, root, issuer, leaf)

    _revoke(local_ra, partner.code, outcome.order.partner_order_id, outcome.certificate.serial, reason)
    revoked_der = _fetch(crl_url)[1]  # the next fetch shows it
    revoked_crl = x509.load_der_x509_crl(revoked_der)
    entry = revoked_crl.get_revoked_certificate_by_serial_number(leaf_certificate.serial_number)
    assert entry is not None
    reasons = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
    assert reasons == ([] if reason == "unspecified" else [x509.ReasonFlags.key_compromise])
    number = revoked_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > x509.load_der_x509_crl(crl_der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    crl = _pem(tmp_path / "crl.pem", revoked_der, "crl")
    verdict = _verify(tmp_path, root, issuer, leaf, crl)
    assert not verdict.startswith("0 ") and "certificate revoked" in verdict, verdict


def test_answers_and_headers(server: RunningServer):
    mark = server.log_mark()
    status, headers, body = request(server, "GET", "/crl/GEOTRUST-TLS.crl")
    assert status == 200 and headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(body)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc <= timedelta(days=7)
    max_age = int(headers["cache-control"].split("max-age=", 1)[1])
    assert 0 < max_age <= 3600
    assert max_age <= (crl.next_update_utc - crl.last_update_utc).total_seconds()
    status, headers, body = request(server, "HEAD", "/crl/GEOTRUST-TLS.crl")
    assert status == 200 and body == b"" and headers["content-type"] == "application/pkix-crl"
    assert int(headers["content-length"]) > 0
    status, headers, body = request(server, "GET", "/ca/THAWTE-CS.crt")
    assert status == 200 and headers["content-type"] == "application/pkix-cert"
    assert "Thawte Code Signing CA" in x509.load_der_x509_certificate(body).subject.rfc4514_string()
    root = x509.load_der_x509_certificate(request(server, "GET", "/ca/ROOT.crt")[2])
    assert root.issuer == root.subject
    time.sleep(0.2)
    lines = [line for line in server.log(mark).splitlines() if "soap_service.status.requests" in line]
    assert any("op=crl ca=GEOTRUST-TLS outcome=crl:" in line and "http=200" in line for line in lines), lines
    assert any("op=cacert ca=THAWTE-CS outcome=0 http=200" in line for line in lines), lines


@pytest.mark.parametrize("path", [
    "/ca/NOPE.crt", "/crl/NOPE.crl", "/ca/ROOT.crl", "/crl/ROOT.crt", "/ca/", "/crl/", "/ca/thawte-tls.crt",
    "/ca/THAWTE-TLS.crt/", "/crl/../ca/ROOT.crt", "/ca/" + "A" * 5000 + ".crt", "/crl/" + "/" * 3000,
    "/index.html", "/portal",
])
def test_unknown_paths_are_404(server: RunningServer, path: str):
    status, _headers, body = request(server, "GET", path)  # /ocsp is the responder's: tests/test_ocsp_http.py
    assert status == 404, (path[:80], status)
    assert len(body) < 200 and b"<" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405(server: RunningServer, method: str):
    for path in ("/crl/ROOT.crl", "/ca/RAPIDSSL-TLS.crt"):
        status, headers, _body = request(server, method, path, body=b"x" if method in ("POST", "PUT") else None)
        assert status == 405, (method, path, status)
        assert headers["allow"] == "GET, HEAD"


def test_the_soap_service_is_unchanged(server: RunningServer):
    status, _headers, body = request(server, "GET", "/api/order?wsdl")
    assert status == 200 and body.startswith(b"<?xml")
    status, _headers, _body = request(server, "GET", "/api/other")
    assert status == 404


def test_a_long_path_is_refused_quickly(server: RunningServer):
    started = time.perf_counter()
    status, _headers, _body = request(server, "GET", "/crl/" + "-" * 6000 + ".crl")
    assert status == 404 and time.perf_counter() - started < 5
