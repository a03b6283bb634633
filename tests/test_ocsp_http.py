"""The OCSP responder over HTTP (docs/design.md, "OCSP"; RFC 6960 appendix A): POST and GET, the
content types, the bounds checked before parsing, Cache-Control, and error statuses that are
always an OCSPResponse (never HTML, never a 500). On SQLite and PostgreSQL, through the WSGI
callable itself, and through the real server (soap-service serve, 2 workers) with openssl.
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from api_support import RunningServer, running_server
from api_support import request as http_request
from conftest import TestInstallation
from factory import new_order, new_partner
from ocsp_support import Issued, issued_files, openssl_ocsp, request_der
from soap_service.ca import der
from soap_service.ca.ocsp import MAX_REQUEST_BYTES, issuer_hashes
from soap_service.config import load_settings
from soap_service.ra.ocsp import OCSPResponderService
from soap_service.ra.revocation import Revoker, RevokeRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.status.ocsp import MAX_GET_CHARS, MAX_HTTP_CACHE, REQUEST_TYPE, RESPONSE_TYPE, OCSPApplication


@dataclass
class Reply:
    status: str
    headers: dict[str, str]
    body: bytes

    @property
    def response(self) -> ocsp.OCSPResponse:
        assert self.headers["Content-Type"] == "application/ocsp-response"
        assert self.headers["Content-Length"] == str(len(self.body))
        return ocsp.load_der_ocsp_response(self.body)


class _Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


@dataclass
class Setup:
    app: OCSPApplication
    service: OCSPResponderService
    issued: Issued


@pytest.fixture(scope="module")
def setup(installation: TestInstallation, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    ra = installation.ra
    service = OCSPResponderService(ra)
    issued = issued_files(new_order(ra, new_partner(ra)), tmp_path_factory.mktemp("ocsp-http"))
    return Setup(OCSPApplication(service, ra.clock), service, issued)


def call(app: OCSPApplication, method: str, path: str, body: bytes = b"", *,
         content_type: str = "application/ocsp-request", stream: Any = None,
         content_length: str | None = None) -> Reply:
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
        "wsgi.input": stream or io.BytesIO(body),
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    body_out = b"".join(app(environ, start_response))
    return Reply(captured["status"], captured["headers"], body_out)


def _good(setup: Setup) -> bytes:
    return request_der(setup.issued.leaf, setup.issued.issuer)


def _assert_answered(setup: Setup) -> None:
    reply = call(setup.app, "POST", "/ocsp", _good(setup))
    assert reply.response.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_post(setup: Setup) -> None:
    reply = call(setup.app, "POST", "/ocsp", _good(setup))
    assert reply.status == "200 OK"
    assert reply.response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert reply.headers["Cache-Control"] == "no-cache"
    reply = call(setup.app, "POST", "/ocsp", _good(setup), content_type="application/ocsp-request; q=1")
    assert reply.response.certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe", "unpadded"])
def test_get_base64_in_the_path(setup: Setup, alphabet: str) -> None:
    # a request whose base64 has '+' and '/' in both alphabets' places, found by trying nonces
    for attempt in range(500):
        encoded = base64.b64encode(_with_serial_noise(setup, 16 + attempt % 3)).decode()
        if "+" in encoded and "/" in encoded and encoded.endswith("="):
            break
    else:
        pytest.fail("no request with '+', '/' and padding in its base64")
    if alphabet == "urlsafe":
        encoded = encoded.replace("+", "-").replace("/", "_")
    if alphabet == "unpadded":
        encoded = encoded.rstrip("=")
    reply = call(setup.app, "GET", "/ocsp/" + encoded)
    assert reply.status == "200 OK"
    assert reply.response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL


def _with_serial_noise(setup: Setup, nonce_bytes: int = 16) -> bytes:
    """A request with a random nonce. Its length varies too: with one length only, a request
    whose DER length is a multiple of 3 (it depends on the leaf's random serial) never has
    base64 padding, whatever the nonce."""
    return request_der(setup.issued.leaf, setup.issued.issuer, nonce=secrets.token_bytes(nonce_bytes))


def test_get_cache_control_bounded_by_next_update(setup: Setup) -> None:
    encoded = base64.b64encode(_good(setup)).decode()
    reply = call(setup.app, "GET", "/ocsp/" + encoded)
    response = reply.response
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    control = reply.headers["Cache-Control"]
    assert control.startswith("public, max-age=")
    max_age = int(control.split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= MAX_HTTP_CACHE
    assert max_age <= (response.next_update_utc - response.this_update_utc).total_seconds()
    assert "Expires" in reply.headers
    # with a nonce the answer is this request's alone
    nonce_reply = call(setup.app, "GET", "/ocsp/" + base64.b64encode(_with_serial_noise(setup)).decode())
    assert nonce_reply.headers["Cache-Control"] == "no-cache"


def test_head_has_no_body(setup: Setup) -> None:
    reply = call(setup.app, "HEAD", "/ocsp/" + base64.b64encode(_good(setup)).decode())
    assert reply.status == "200 OK" and reply.body == b""
    assert int(reply.headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "content_type"),
    [
        ("empty", "POST", "/ocsp", b"", "application/ocsp-request"),
        ("garbage", "POST", "/ocsp", b"not an ocsp request at all", "application/ocsp-request"),
        ("truncated", "POST", "/ocsp", None, "application/ocsp-request"),
        ("wrong content type", "POST", "/ocsp", None, "application/x-www-form-urlencoded"),
        ("no content type", "POST", "/ocsp", None, ""),
        ("bad base64", "GET", "/ocsp/!!!notbase64***", b"", ""),
        ("base64 of garbage", "GET", "/ocsp/" + base64.b64encode(b"garbage").decode(), b"", ""),
        ("huge path", "GET", "/ocsp/" + "A" * (MAX_GET_CHARS + 4), b"", ""),
    ],
)
def test_malformed(setup: Setup, name: str, method: str, path: str, body: bytes | None, content_type: str) -> None:
    if body is None:
        body = _good(setup)[:-4] if name == "truncated" else _good(setup)
    reply = call(setup.app, method, path, body, content_type=content_type)
    assert reply.status == "200 OK", name
    assert reply.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, name
    _assert_answered(setup)


def test_huge_body_refused_unread(setup: Setup) -> None:
    reply = call(setup.app, "POST", "/ocsp", stream=_Unreadable(), content_length=str(MAX_REQUEST_BYTES + 1))
    assert reply.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # no Content-Length: read at most one byte past the bound
    reply = call(setup.app, "POST", "/ocsp", stream=io.BytesIO(b"\x30" * 100_000), content_length="")
    assert reply.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    _assert_answered(setup)


def test_other_methods_and_paths(setup: Setup) -> None:
    reply = call(setup.app, "PUT", "/ocsp", _good(setup))
    assert reply.status.startswith("405") and reply.headers["Allow"] == "GET, POST"
    assert reply.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    reply = call(setup.app, "GET", "/ocsp")
    assert reply.status.startswith("405")
    reply = call(setup.app, "GET", "/ocspx/abc")
    assert reply.status.startswith("404")
    assert reply.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_internal_failure_is_internal_error_not_500(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(_question: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(setup.service, "_answer", fail)
    with caplog.at_level(logging.INFO):
        reply = call(setup.app, "POST", "/ocsp", _good(setup))
    assert reply.status == "200 OK"
    assert reply.response.response_status == ocsp.OCSPResponseStatus.INTERNAL_ERROR
    (incident_line,) = [r for r in caplog.records if r.name == "soap_service.ra.ocsp"]
    assert "OCSP answer failed, incident" in incident_line.getMessage()
    incident = incident_line.getMessage().rsplit(" ", 1)[1]
    (request_line,) = [r.getMessage() for r in caplog.records if r.name == "soap_service.status.requests"]
    assert "op=ocsp ca=- outcome=internal_error http=200" in request_line and f"incident={incident}" in request_line
    monkeypatch.undo()
    _assert_answered(setup)


def test_one_log_line_per_request(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="soap_service.status.requests"):
        call(setup.app, "POST", "/ocsp", _good(setup))
        call(setup.app, "POST", "/ocsp", b"garbage")
        call(setup.app, "PUT", "/ocsp", b"")
    lines = [r.getMessage() for r in caplog.records if r.name == "soap_service.status.requests"]
    assert len(lines) == 3
    assert lines[0].startswith("op=ocsp ca=GEOTRUST-TLS outcome=good http=200 ")
    assert lines[1].startswith("op=ocsp ca=- outcome=malformed_request http=200 ")
    assert lines[2].startswith("op=ocsp ca=- outcome=malformed_request http=405 ")


def test_mounted_at_ocsp(setup: Setup) -> None:
    """A router that mounts the callable at /ocsp (SCRIPT_NAME /ocsp, PATH_INFO the rest) reaches it too."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = status

    encoded = base64.b64encode(_good(setup)).decode()
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/ocsp", "PATH_INFO": "/" + encoded, "wsgi.input": io.BytesIO()}
    body = b"".join(setup.app(environ, start_response))
    assert captured["status"] == "200 OK"
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD


# ------------------------------------------------------------------------------- hostile CertIDs and extensions


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    content = bytes([40 * first + second])
    for value in rest:
        groups = [value & 0x7F]
        while value := value >> 7:
            groups.append(0x80 | (value & 0x7F))
        content += bytes(reversed(groups))
    return der.encode(0x06, content)


def _integer(value: int) -> bytes:
    size = (value.bit_length() + 8) // 8
    return der.encode(0x02, value.to_bytes(size, "big", signed=True))


_NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
_SHA1 = "1.3.14.3.2.26"


def _nonce_extension(nonce: bytes) -> bytes:
    return der.sequence(_oid(_NONCE_OID), der.encode(0x04, der.encode(0x04, nonce)))


def _hand_made_request(
    setup: Setup, *, serial: int | None = None, hash_oid: str = _SHA1, hash_size: int = 20,
    extensions: tuple[bytes, ...] = (),
) -> bytes:
    """An OCSPRequest built octet by octet: what cryptography's builder refuses to make."""
    if hash_oid == _SHA1:
        name_hash, key_hash = issuer_hashes(setup.issued.issuer, hashes.SHA1())
    else:
        name_hash = key_hash = b"\0" * hash_size
    cert_id = der.sequence(
        der.sequence(_oid(hash_oid), b"\x05\x00"), der.encode(0x04, name_hash), der.encode(0x04, key_hash),
        _integer(setup.issued.leaf.serial_number if serial is None else serial),
    )
    tbs = der.sequence(der.sequence(cert_id))
    if extensions:
        tbs += der.encode(0xA2, der.sequence(*extensions))
    return der.sequence(der.sequence(tbs))


_HOSTILE = {
    "MD5 CertID": {"hash_oid": "1.2.840.113549.2.5", "hash_size": 16},
    "SHA3-256 CertID": {"hash_oid": "2.16.840.1.101.3.4.2.8", "hash_size": 32},
    "unknown hash OID": {"hash_oid": "1.2.3.4.5", "hash_size": 20},
    "nonce twice": {"extensions": (_nonce_extension(b"A" * 16), _nonce_extension(b"B" * 16))},
    "negative serial": {"serial": -5},
    "zero serial": {"serial": 0},
    "serial of 21 octets": {"serial": 2**160 - 1},
    "serial of 3000 octets": {"serial": 1 << (8 * 3000 - 16)},
}


@pytest.mark.parametrize("name", _HOSTILE)
def test_hostile_cert_ids_and_extensions_are_malformed(
    setup: Setup, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What cryptography raises on reading (UnsupportedAlgorithm, DuplicateExtension) and serials
    RFC 5280 4.1.2.2 forbids are malformedRequest, no incident (docs/design.md, "OCSP")."""
    request = _hand_made_request(setup, **_HOSTILE[name])  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        reply = call(setup.app, "POST", "/ocsp", request)
        get = call(setup.app, "GET", "/ocsp/" + base64.urlsafe_b64encode(request).decode())
    for answer in (reply, get):
        assert answer.status == "200 OK"
        assert answer.response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert not [r for r in caplog.records if "incident" in r.getMessage() and r.name != "soap_service.status.requests"]
    _assert_answered(setup)


def test_serial_bounds_are_inclusive(setup: Setup) -> None:
    """A CertID serial of 1 and one of exactly 20 octets are asked about (unknown), not refused;
    the hand-made request for the leaf itself is answered good."""
    for serial in (1, 2**159 - 1):
        reply = call(setup.app, "POST", "/ocsp", _hand_made_request(setup, serial=serial))
        assert reply.response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    reply = call(setup.app, "POST", "/ocsp", _hand_made_request(setup, extensions=(_nonce_extension(b"n" * 16),)))
    assert reply.response.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_a_failure_escaping_the_service_is_an_incident_not_500(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The WSGI callable's last resort: whatever escapes is an incident answered internalError."""
    def fail(_request: bytes) -> None:
        raise RuntimeError("an unforeseen failure")

    monkeypatch.setattr(setup.service, "answer", fail)
    with caplog.at_level(logging.INFO):
        reply = call(setup.app, "POST", "/ocsp", _good(setup))
    assert reply.status == "200 OK"
    assert reply.response.response_status == ocsp.OCSPResponseStatus.INTERNAL_ERROR
    (incident_line,) = [r for r in caplog.records if r.name == "soap_service.status.ocsp"]
    assert "OCSP request failed, incident" in incident_line.getMessage()
    incident = incident_line.getMessage().rsplit(" ", 1)[1]
    (request_line,) = [r.getMessage() for r in caplog.records if r.name == "soap_service.status.requests"]
    assert "outcome=internal_error http=200" in request_line and f"incident={incident}" in request_line
    monkeypatch.undo()
    _assert_answered(setup)


# ------------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def server(installation: TestInstallation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=2)


def test_real_server_good_revoked_unknown_and_errors(
    installation: TestInstallation, server: RunningServer, tmp_path: Path
) -> None:
    """soap-service serve with 2 workers: openssl ocsp at the leaf's own OCSP URL says good, then
    revoked with its reason after Revoke; unknown for a serial never issued; hostile requests get
    error statuses and the server answers the next one."""
    ra = RegistrationAuthority.from_settings(
        load_settings({**installation.environ, "SOAP_SERVICE_PUBLIC_URL": server.base_url})
    )
    try:
        partner = new_partner(ra)
        outcome = new_order(ra, partner)
        issued = issued_files(outcome, tmp_path)
        assert issued.ocsp_url == server.base_url + "/ocsp"
        output = openssl_ocsp(issued)
        assert f"{issued.leaf_file}: good" in output and "Response verify OK" in output, output
        assert "WARNING" not in output, output  # nonce echoed
        Revoker(ra).revoke_by_operator(
            partner.code, RevokeRequest(outcome.order.partner_order_id, None, None, "keyCompromise")
        )
        for _ in range(4):  # each worker, whatever it cached, sees the revocation at once
            output = openssl_ocsp(issued, "-no_nonce")
            assert f"{issued.leaf_file}: revoked" in output and "Reason: keyCompromise" in output, output
        serial = x509.random_serial_number()
        assert f"{hex(serial)}: unknown" in openssl_ocsp(issued, serial=serial)
    finally:
        ra.close()
    for body, content_type in ((b"", REQUEST_TYPE), (b"garbage", REQUEST_TYPE),
                               (b"0" * (MAX_REQUEST_BYTES + 1), REQUEST_TYPE),
                               (request_der(issued.leaf, issued.issuer), "text/xml")):
        status, headers, answer = http_request(server, "POST", "/ocsp", body, {"Content-Type": content_type})
        assert status == 200 and headers["content-type"] == RESPONSE_TYPE
        assert ocsp.load_der_ocsp_response(answer).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    path = "/ocsp/" + base64.b64encode(request_der(issued.leaf, issued.issuer)).decode().replace("/", "%2F")
    status, headers, answer = http_request(server, "GET", path)
    assert status == 200 and headers["cache-control"].startswith("public, max-age=")
    assert ocsp.load_der_ocsp_response(answer).certificate_status == ocsp.OCSPCertStatus.REVOKED
