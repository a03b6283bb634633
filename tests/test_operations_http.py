"""The operations endpoints on a real server (docs/operations.md; docs/design.md, "Serving"):
``/healthz`` and ``/readyz`` on SQLite and PostgreSQL, ``/readyz`` answering 503 when the database
is behind the migrations' head and when it cannot be read, and ``/metrics`` counting a Reissue, a
refused request, a lockout, a revocation, OCSP and CRL requests and the portal's pages, summed
across two gunicorn workers (the client library's multiprocess mode)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import create_engine, text

from api_support import (
    Answer,
    RunningServer,
    envelope,
    hello_envelope,
    post,
    request,
    running_server,
    start_server,
    zeep_service,
)
from conftest import TestInstallation as Installation
from conftest import build_installation, database_environment
from factory import fresh_key_csr, new_order, new_partner

OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics")


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=2, threads=2)


def _get_json(server: RunningServer, path: str) -> tuple[int, dict[str, str], dict[str, object]]:
    status, headers, body = request(server, "GET", path)
    assert headers["content-type"] == "application/json"
    return status, headers, json.loads(body)


def _samples(exposition: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample of a Prometheus text exposition."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def _metrics(server: RunningServer) -> tuple[str, dict[str, float]]:
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text_ = body.decode()
    return text_, _samples(text_)


def _reissue_envelope(partner_code: str, username: str, password: str, partner_order_id: str, csr: str) -> bytes:
    return envelope("Reissue", (
        "<o:Request><o:OrderRequestHeader>"
        f"<o:PartnerCode>{escape(partner_code)}</o:PartnerCode>"
        f"<o:AuthToken><o:UserName>{escape(username)}</o:UserName><o:Password>{escape(password)}</o:Password>"
        f"</o:AuthToken><o:PartnerOrderID>{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>"
        f"<o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters></o:Request>"
    ))


def _success_code(answer: Answer) -> str:
    assert answer.root is not None
    codes = answer.root.xpath("//*[local-name()='SuccessCode']/text()")
    return str(codes[0])


def test_healthz_and_readyz_answer_200(server: RunningServer) -> None:
    status, headers, body = _get_json(server, "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, headers, body = _get_json(server, "/readyz")
    assert status == 200, body
    assert body == {"status": "ready", "checks": {"database": "ok", "ca_keys": "ok", "migrations": "ok"}}
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", OPERATIONS_PATHS)
def test_operations_endpoints_answer_get_and_head_only(server: RunningServer, path: str) -> None:
    status, headers, body = request(server, "HEAD", path)
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = request(server, method, path, b"")
        assert status == 405 and headers["allow"] == "GET, HEAD", (method, status)


@pytest.mark.parametrize("path", ["/healthz/", "/readyz/x", "/metricsx", "/HEALTHZ"])
def test_only_the_exact_paths_are_operations_endpoints(server: RunningServer, path: str) -> None:
    status, _, body = request(server, "GET", path)
    assert status == 404 and b"ok" not in body


def test_metrics_count_by_operation_and_outcome_summed_across_workers(
    installation: Installation, server: RunningServer
) -> None:
    """The counters of both workers add up: Hellos are sent on new connections until both workers
    have answered some (their PIDs in the request lines), and the scrape counts them all."""
    _, before = _metrics(server)
    hello = 'front_end="soap",operation="Hello",outcome="0"'
    already = before.get(f"soap_service_requests_total{{{hello}}}", 0.0)
    mark = server.log_mark()
    sent, pids = 0, set()
    while sent < 400 and (len(pids) < 2 or sent < 20):
        assert post(server, hello_envelope(), soap_action='"Hello"').status == 200
        sent += 1
        if sent % 10 == 0:
            pids = {json.loads(line)["pid"] for line in server.request_lines(mark)}
    assert len(pids) == 2, f"one worker answered all {sent} requests"
    _, after = _metrics(server)
    assert after[f"soap_service_requests_total{{{hello}}}"] - already == sent


def test_metrics_after_a_reissue_a_refusal_a_lockout_and_a_revocation(
    installation: Installation, server: RunningServer
) -> None:
    ra = installation.ra
    partner = new_partner(ra)
    outcome = new_order(ra, partner, product="RapidSSL", names=("example.com",))
    poid = outcome.order.partner_order_id
    _, before = _metrics(server)

    answer = post(server, _reissue_envelope(partner.code, partner.username, partner.password, poid,
                                            fresh_key_csr(("example.com",))), soap_action='"Reissue"')
    assert answer.status == 200 and _success_code(answer) == "0", answer.body
    wrong = "wrong-" + secrets.token_hex(8)
    refused = post(server, _reissue_envelope(partner.code, partner.username, wrong, poid,
                                             fresh_key_csr(("example.com",))), soap_action='"Reissue"')
    assert refused.status == 200 and _success_code(refused) == "-4001"
    # The rest of the lockout's threshold (10 by default), then one more: refused as locked out.
    other = new_partner(ra)
    for _ in range(11):
        post(server, _reissue_envelope(other.code, other.username, wrong, "PO-none", fresh_key_csr()),
             soap_action='"Reissue"')
    api = zeep_service(server.wsdl_url, server.url)
    revoked = api.service.Revoke(Request={
        "OrderRequestHeader": {"PartnerCode": partner.code,
                               "AuthToken": {"UserName": partner.username, "Password": partner.password},
                               "PartnerOrderID": poid},
        "RevokeReason": "superseded",
    })
    assert revoked.OrderResponseHeader.SuccessCode == 0
    assert request(server, "GET", "/crl/RAPIDSSL-TLS.crl")[0] == 200
    assert request(server, "POST", "/ocsp", b"not DER", {"Content-Type": "application/ocsp-request"})[0] == 200
    assert request(server, "GET", "/portal/nosuchportal/")[0] == 404

    exposition, after = _metrics(server)

    def grew(sample: str) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    assert grew('soap_service_requests_total{front_end="soap",operation="Reissue",outcome="0"}') == 1
    assert grew('soap_service_requests_total{front_end="soap",operation="Reissue",outcome="-4001"}') >= 2
    assert grew('soap_service_requests_total{front_end="soap",operation="Reissue",outcome="-4002"}') >= 1
    assert grew("soap_service_lockout_refusals_total") >= 1
    assert grew('soap_service_requests_total{front_end="soap",operation="Revoke",outcome="0"}') == 1
    assert grew('soap_service_certificates_revoked_total{brand="RAPIDSSL"}') == 1
    assert grew("soap_service_issuance_duration_seconds_count") >= 1
    assert grew('soap_service_certificates_issued_total{brand="RAPIDSSL"}') == 1  # the reissue, by the server
    assert grew("soap_service_lint_duration_seconds_count") >= 1
    assert grew('soap_service_crl_requests_total{ca="RAPIDSSL-TLS",operation="crl",outcome="0"}') == 1
    assert grew('soap_service_ocsp_requests_total{outcome="malformed_request"}') == 1
    assert grew('soap_service_requests_total{front_end="portal",operation="GET",outcome="404"}') == 1
    assert after["soap_service_mail_outbox_depth"] >= 0
    # Every label value is one of the service's own words or codes.
    for line in exposition.splitlines():
        for name, value in re.findall(r'(\w+)="([^"]*)"', line):
            assert re.fullmatch(r"[A-Za-z0-9:._+-]{1,64}|", value), (name, value)
    for secret in (partner.password, wrong, installation.environ["SOAP_SERVICE_CA_PASSPHRASE"]):
        assert secret not in exposition
        assert secret not in server.log()


# --------------------------------------------------------------------------- readiness refused


@pytest.fixture(params=["sqlite", "postgresql"])
def doomed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Installation, RunningServer]]:
    """A server over an installation of its own, which the test may break."""
    for environ in database_environment(request.param, tmp_path / "data", "doomed"):
        installation = build_installation(environ, request.param)
        try:
            server = start_server(installation, tmp_path)
            try:
                yield installation, server
            finally:
                server.stop()
        finally:
            installation.ra.close()


@pytest.mark.slow  # an installation and a server of its own: about 27 s a backend
def test_readyz_503_when_behind_the_migrations_then_when_the_database_is_gone(
    doomed: tuple[Installation, RunningServer],
) -> None:
    """Behind the head on both backends; then, on PostgreSQL, the database dropped under the server."""
    installation, server = doomed
    url = installation.environ["SOAP_SERVICE_DATABASE_URL"]
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    engine.dispose()
    status, headers, body = _get_json(server, "/readyz")  # the revision was never read before: no cache
    assert status == 503
    assert body == {"status": "unready", "checks": {"database": "ok", "ca_keys": "ok", "migrations": "behind"}}
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])

    if installation.backend == "sqlite":
        # A SQLite file cannot be made unreadable to a worker that has it open: the tests run as
        # root (no permission stops them) and a worker's pooled connection keeps the file's inode
        # and its page cache (a zeroed header, a truncated or replaced file went unnoticed).
        return
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()
    status, _, body = _get_json(server, "/readyz")
    assert status == 503
    assert body["status"] == "unready"
    checks = body["checks"]
    assert isinstance(checks, dict) and checks["database"] == "failed", checks
    assert _get_json(server, "/healthz")[0] == 200  # alive all the same
    log = server.log()
    assert "readiness check database failed: " in log
    assert url not in log and installation.environ["SOAP_SERVICE_CA_PASSPHRASE"] not in log
