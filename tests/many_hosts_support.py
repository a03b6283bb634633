"""Shared parts of the many-hosts and worker-kill tests (docs/design.md, "Concurrency and failures"):
raw SOAP calls that record what each answered (or that the answer was lost), the gunicorn
workers of a server, and the checks made afterwards from the database alone, which hold
whatever the reissue path does inside (the service is a black box here).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from lxml import etree, html
from sqlalchemy import func, select

from api_support import TNS, RunningServer, envelope, request
from factory import TestPartner
from ocsp_support import request_for_serial
from soap_service.storage.models import (
    AuditEvent,
    Certificate,
    CertificateAuthority,
    IssuedSerial,
    Order,
    Partner,
)
from soap_service.vocabulary import CertificateStatus

if TYPE_CHECKING:
    from conftest import TestInstallation

CALL_TIMEOUT = 60.0
"""Seconds a client waits for one answer: far past any answer of a loaded server, short of a hung test."""


def _q(name: str) -> str:
    return f"{{{TNS}}}{name}"


# ------------------------------------------------------------------------------------ requests


def _token(partner: TestPartner) -> str:
    return (f"<o:PartnerCode>{escape(partner.code)}</o:PartnerCode><o:AuthToken><o:UserName>"
            f"{escape(partner.username)}</o:UserName><o:Password>{escape(partner.password)}</o:Password>"
            "</o:AuthToken>")


def reissue_body(partner: TestPartner, partner_order_id: str, csr: str) -> bytes:
    return envelope("Reissue", f"<o:Request><o:OrderRequestHeader>{_token(partner)}<o:PartnerOrderID>"
                               f"{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>"
                               f"<o:OrderParameters><o:CSR>{escape(csr)}</o:CSR></o:OrderParameters></o:Request>")


def revoke_body(partner: TestPartner, partner_order_id: str, reason: str, serial: str | None = None) -> bytes:
    serial_part = f"<o:SerialNumber>{serial}</o:SerialNumber>" if serial is not None else ""
    return envelope("Revoke", f"<o:Request><o:OrderRequestHeader>{_token(partner)}<o:PartnerOrderID>"
                              f"{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>{serial_part}"
                              f"<o:RevokeReason>{reason}</o:RevokeReason></o:Request>")


def cancel_body(partner: TestPartner, partner_order_id: str) -> bytes:
    return envelope("ModifyOrder", f"<o:Request><o:OrderRequestHeader>{_token(partner)}<o:PartnerOrderID>"
                                   f"{escape(partner_order_id)}</o:PartnerOrderID></o:OrderRequestHeader>"
                                   "<o:ModifyOrderOperation>CANCEL</o:ModifyOrderOperation></o:Request>")


def lookup_body(partner: TestPartner, partner_order_id: str) -> bytes:
    return envelope("GetOrderByPartnerOrderID",
                    f"<o:Request><o:QueryRequestHeader>{_token(partner)}</o:QueryRequestHeader>"
                    f"<o:PartnerOrderID>{escape(partner_order_id)}</o:PartnerOrderID><o:OrderQueryOptions>"
                    "<o:ReturnCertificateInfo>true</o:ReturnCertificateInfo>"
                    "<o:ReturnCertificateHistory>true</o:ReturnCertificateHistory></o:OrderQueryOptions>"
                    "</o:Request>")


@dataclass
class Call:
    """One SOAP request and what became of it: its answer, or the error that lost it."""

    operation: str
    partner_order_id: str
    server: str
    csr: str | None = None
    serial_asked: str | None = None
    status: int | None = None
    success_code: int | None = None
    error_codes: tuple[int, ...] = ()
    fault: str | None = None
    serial: str | None = None
    pem: str | None = None
    revoked: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] = ()
    lost: str | None = None
    """The client-side error (class and text) when no whole answer came back."""

    @property
    def succeeded(self) -> bool:
        return self.lost is None and self.success_code is not None and self.success_code >= 0

    def describe(self) -> str:
        return (f"{self.operation} {self.partner_order_id} via {self.server}: status={self.status} "
                f"code={self.success_code} errors={self.error_codes} fault={self.fault} lost={self.lost}")


def send(server: RunningServer, call: Call, body: bytes, *, name: str = "") -> Call:
    """POST ``body`` and fill ``call`` from the answer; a connection broken before a whole answer
    (a killed worker) is recorded in ``call.lost``, never raised."""
    call.server = name or server.base_url
    try:
        status, _headers, content = request(server, "POST", "/api/order", body,
                                            {"Content-Type": "text/xml; charset=utf-8"}, timeout=CALL_TIMEOUT)
    except (OSError, http.client.HTTPException) as error:
        call.lost = f"{type(error).__name__}: {error}"
        return call
    call.status = status
    try:
        root = etree.fromstring(content)
    except etree.XMLSyntaxError as error:
        call.lost = f"unreadable answer ({error}): {content[:200]!r}"
        return call
    fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    if fault is not None:
        call.fault = f"{fault.findtext('faultcode')}: {fault.findtext('faultstring')}"
        return call
    code = root.findtext(f".//{_q('SuccessCode')}")
    call.success_code = int(code) if code is not None else None
    call.error_codes = tuple(int(e.text or "0") for e in root.iter(_q("ErrorCode")))
    certificate = root.find(f".//{_q('Certificate')}")
    if call.operation == "Reissue" and certificate is not None:
        call.serial = certificate.findtext(_q("SerialNumber"))
        call.pem = certificate.findtext(_q("ServerCertificate"))
    if call.operation == "Revoke":
        call.serial = root.findtext(f".//{_q('RevokeResult')}/{_q('SerialNumber')}")
        call.revoked = tuple(s.text or "" for s in root.iterfind(f".//{_q('AlsoRevoked')}/{_q('SerialNumber')}"))
    if call.operation == "ModifyOrder":
        call.revoked = tuple(s.text or "" for s in root.iterfind(f".//{_q('Revoked')}/{_q('SerialNumber')}"))
    if call.operation == "GetOrderByPartnerOrderID":
        call.history = tuple(
            (entry.findtext(_q("SerialNumber")) or "", entry.findtext(_q("CertificateStatus")) or "")
            for entry in root.iterfind(f".//{_q('CertificateHistory')}/{_q('Certificate')}"))
    return call


def csr_sha256(csr_pem: str) -> str:
    """The SHA-256 of a CSR's DER, as the certificates table keeps it."""
    return hashlib.sha256(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(Encoding.DER)).hexdigest()


# ------------------------------------------------------------------------------------- servers


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn master's child processes (its workers), from /proc."""
    children: set[int] = set()
    for task in Path(f"/proc/{master_pid}/task").glob("*/children"):
        try:
            children.update(int(pid) for pid in task.read_text().split())
        except OSError:
            continue
    return sorted(children)


def wait_for_workers(server: RunningServer, count: int, *, besides: Iterable[int] = (), timeout: float = 90.0
                     ) -> list[int]:
    """Wait until the master has ``count`` workers, none of them in ``besides`` (the killed ones),
    and the server answers; their PIDs."""
    gone = set(besides)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.alive(), f"the master exited:\n{server.log()}"
        pids = worker_pids(server.process.pid)
        if len(pids) == count and not gone & set(pids):
            try:
                status, _h, _b = request(server, "GET", "/api/order?wsdl", timeout=10)
            except OSError:
                status = 0
            if status == 200:
                return pids
        time.sleep(0.2)
    raise AssertionError(f"the master did not have {count} new workers within {timeout}s:\n{server.log()[-3000:]}")


def separate_data_dir(base: Path, name: str) -> dict[str, str]:
    """The environment of a host of its own: its own data directory (outbox, logs), the shared database."""
    directory = base / name
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {"SOAP_SERVICE_DATA_DIR": str(directory)}


def audit_verify(installation: TestInstallation) -> subprocess.CompletedProcess[str]:
    """``soap-service audit verify`` as a separate process, against the installation's database."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")}
    environ.update(installation.environ)
    return subprocess.run([sys.executable, "-m", "soap_service.main", "audit", "verify"], text=True,
                          timeout=180, capture_output=True, env=environ,
                          cwd=Path(installation.environ["SOAP_SERVICE_DATA_DIR"]))


# ------------------------------------------------------------------------------ status checks


def crl_serials(server: RunningServer, ca_name: str) -> set[int]:
    status, _headers, body = request(server, "GET", f"/crl/{ca_name}.crl", timeout=CALL_TIMEOUT)
    assert status == 200, body[:200]
    return {entry.serial_number for entry in x509.load_der_x509_crl(body)}


def ocsp_status(server: RunningServer, issuer: x509.Certificate, serial: str) -> ocsp.OCSPCertStatus:
    status, _headers, body = request(server, "POST", "/ocsp", request_for_serial(issuer, int(serial, 16)),
                                     {"Content-Type": "application/ocsp-request"}, timeout=CALL_TIMEOUT)
    assert status == 200
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, response.response_status
    assert response.serial_number == int(serial, 16)
    return response.certificate_status


# ------------------------------------------------------------------------- the database's view


@dataclass
class OrderState:
    """An order's row and its certificates, as the database holds them after the load."""

    partner_order_id: str
    order_id: str
    status: str
    current_certificate_id: int | None
    certificates: dict[int, Certificate]
    chain: list[Certificate] = field(default_factory=list)
    """The history from the first certificate to the current one, following ``replaces``."""


def order_states(installation: TestInstallation, partner: TestPartner) -> dict[str, OrderState]:
    """Every order of ``partner``, with its certificates and its history chain."""
    states: dict[str, OrderState] = {}
    with installation.ra.readers() as session:
        orders = session.scalars(select(Order).join(Partner, Order.partner_id == Partner.id)
                                 .where(Partner.code == partner.code)).all()
        for order in orders:
            rows = session.scalars(select(Certificate).where(Certificate.order_pk == order.id)).all()
            for row in rows:
                session.expunge(row)
            states[order.partner_order_id] = OrderState(order.partner_order_id, order.order_id, order.status.value,
                                                        order.current_certificate_id, {c.id: c for c in rows})
    for state in states.values():
        state.chain = _chain(state)
    return states


def _chain(state: OrderState) -> list[Certificate]:
    if state.current_certificate_id is None:
        return []
    chain: list[Certificate] = []
    seen: set[int] = set()
    next_id: int | None = state.current_certificate_id
    while next_id is not None:
        assert next_id not in seen, f"order {state.partner_order_id}: the replaces chain loops at {next_id}"
        seen.add(next_id)
        certificate = state.certificates.get(next_id)
        assert certificate is not None, f"order {state.partner_order_id}: certificate {next_id} is not the order's"
        chain.append(certificate)
        next_id = certificate.replaces_id
    chain.reverse()
    return chain


def assert_orders_whole(states: dict[str, OrderState]) -> None:
    """No half-written order: each has a current certificate that exists, and its history is one
    chain from the first certificate to the current one holding every certificate of the order
    exactly once (no fork: two certificates that replace one, i.e. two current ones); each
    certificate has a PEM whose serial is its row's; and no two consecutive certificates of the
    chain come from the same CSR and names (a retry of the current certificate is replayed,
    reissue rule 8, never signed again)."""
    for poid, state in states.items():
        assert state.current_certificate_id is not None, f"order {poid} has no current certificate"
        assert state.current_certificate_id in state.certificates, f"order {poid}: its current certificate is missing"
        replaced = Counter(c.replaces_id for c in state.certificates.values())
        forks = {k: n for k, n in replaced.items() if n > 1}
        assert not forks, f"order {poid}: certificates replaced by more than one (two current ones): {forks}"
        assert sorted(c.id for c in state.chain) == sorted(state.certificates), (
            f"order {poid}: certificates outside the chain from the first to the current one: "
            f"{sorted(set(state.certificates) - {c.id for c in state.chain})}")
        assert state.chain[0].replaces_id is None
        for certificate in state.certificates.values():
            assert certificate.pem.startswith("-----BEGIN CERTIFICATE-----"), f"order {poid}: a row without PEM"
            leaf = x509.load_pem_x509_certificate(certificate.pem.encode())
            assert format(leaf.serial_number, "x") == certificate.serial
        for before, after in zip(state.chain, state.chain[1:], strict=False):
            assert (before.csr_sha256, before.names) != (after.csr_sha256, after.names), (
                f"order {poid}: serial {after.serial} was signed again from the CSR of {before.serial}, "
                "the current certificate it replaced (reissue rule 8: a retry is replayed)")


def assert_serials_unique(installation: TestInstallation, states: dict[str, OrderState]) -> None:
    """Every serial is on one certificate of its CA at most, every certificate's serial was reserved
    once (issued_serials), and no reserved serial is on two certificates. A reserved serial with
    no certificate is allowed (a signature that failed, a worker killed after the reservation)."""
    certificates = [c for state in states.values() for c in state.certificates.values()]
    with installation.ra.readers() as session:
        duplicate_certificates = session.execute(
            select(Certificate.ca_id, Certificate.serial, func.count()).group_by(Certificate.ca_id, Certificate.serial)
            .having(func.count() > 1)).all()
        duplicate_reservations = session.execute(
            select(IssuedSerial.ca_id, IssuedSerial.serial, func.count())
            .group_by(IssuedSerial.ca_id, IssuedSerial.serial).having(func.count() > 1)).all()
        reserved = {(row.ca_id, row.serial) for row in session.execute(
            select(IssuedSerial.ca_id, IssuedSerial.serial).where(
                IssuedSerial.serial.in_([c.serial for c in certificates])))}
    assert duplicate_certificates == [], f"a serial on two certificates of one CA: {duplicate_certificates}"
    assert duplicate_reservations == [], f"a serial reserved twice: {duplicate_reservations}"
    unreserved = [c.serial for c in certificates if (c.ca_id, c.serial) not in reserved]
    assert unreserved == [], f"certificates whose serial was never reserved: {unreserved}"


def assert_answers_match_database(calls: Sequence[Call], states: dict[str, OrderState]) -> None:
    """Every certificate a successful Reissue answered is in the database, on that order, with the
    same serial and PEM, and was made from the CSR that request sent."""
    for call in calls:
        if call.operation != "Reissue" or not call.succeeded:
            continue
        state = states[call.partner_order_id]
        rows = [c for c in state.certificates.values() if c.serial == call.serial]
        assert len(rows) == 1, f"{call.describe()}: answered serial {call.serial}, which the order does not hold"
        assert rows[0].pem.strip() == (call.pem or "").strip(), f"{call.describe()}: another PEM than the stored one"
        assert call.csr is not None and rows[0].csr_sha256 == csr_sha256(call.csr), (
            f"{call.describe()}: answered serial {call.serial}, made from another CSR")


def reissue_audit_counts(installation: TestInstallation, partner: TestPartner) -> Counter[str]:
    """The partner's audit events of action ``reissue``, counted by outcome."""
    with installation.ra.readers() as session:
        outcomes = session.scalars(select(AuditEvent.outcome).where(
            AuditEvent.partner_code == partner.code, AuditEvent.action == "reissue")).all()
    return Counter(outcomes)


def issuing_certificates(installation: TestInstallation, states: dict[str, OrderState]
                         ) -> dict[int, tuple[str, x509.Certificate]]:
    """The issuing CAs of the orders' certificates: id to (name, certificate)."""
    ids = {c.ca_id for state in states.values() for c in state.certificates.values()}
    with installation.ra.readers() as session:
        rows = session.scalars(select(CertificateAuthority).where(CertificateAuthority.id.in_(ids))).all()
        return {row.id: (row.name, x509.load_pem_x509_certificate(row.certificate_pem.encode())) for row in rows}


def is_revoked(certificate: Certificate) -> bool:
    return certificate.status == CertificateStatus.REVOKED


# --------------------------------------------------------------------------------------- portal


@dataclass
class Browser:
    """Cookies and the last page, as a browser without JavaScript keeps them (tests/test_portal.py's
    way of reading the portal, in short)."""

    server: RunningServer
    cookies: dict[str, str] = field(default_factory=dict)
    status: int = 0
    body: bytes = b""

    def go(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Browser:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        self.status, received, self.body = request(self.server, method, path, body, headers, timeout=CALL_TIMEOUT)
        for name, value in received.items():
            if name == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    self.cookies[key] = morsel.value
        return self

    def text(self) -> str:
        return " ".join(html.fromstring(self.body).text_content().split())

    def submit(self, **fields: str) -> Browser:
        from urllib.parse import urlencode

        form = html.fromstring(self.body).forms[0]
        values = {i.name: i.value or "" for i in form.inputs
                  if i.name and getattr(i, "type", "textarea") in ("hidden", "text", "email")}
        values.update(fields)
        return self.go("POST", form.action, urlencode(values).encode(), "application/x-www-form-urlencoded")


def request_portal_access(server: RunningServer, order_id: str, address: str, captcha: str) -> str:
    """Look the order up on the GeoTrust portal and press Request Access; the last page's text."""
    browser = Browser(server).go("GET", "/portal/geotrust/")
    assert browser.status == 200, browser.body[:300]
    browser.submit(query=order_id, email=address, captcha_answer=captcha)
    assert browser.status == 200 and order_id in browser.text(), browser.text()[:500]
    browser.submit()
    assert browser.status == 200, browser.text()[:500]
    return browser.text()


def assert_nothing_half_written(installation: TestInstallation) -> None:
    """In the whole database: every certificate belongs to an existing order and has a PEM; every
    order's current certificate exists and is one of that order's (:func:`assert_orders_whole`
    requires the partner's orders to have one)."""
    with installation.ra.readers() as session:
        orphans = session.scalars(select(Certificate.serial).outerjoin(Order, Certificate.order_pk == Order.id)
                                  .where((Order.id.is_(None)) | (Certificate.pem == ""))).all()
        current = session.execute(select(Order.order_id, Certificate.order_pk, Order.id)
                                  .outerjoin(Certificate, Order.current_certificate_id == Certificate.id)
                                  .where(Order.current_certificate_id.is_not(None))).all()
    assert orphans == [], f"certificates without an order or a PEM: {orphans}"
    dangling = [row.order_id for row in current if row.order_pk != row.id]
    assert dangling == [], f"orders whose current certificate is missing or another order's: {dangling}"


def certificates_of_csr(state: OrderState, csr_pem: str) -> list[Certificate]:
    digest = csr_sha256(csr_pem)
    return [c for c in state.certificates.values() if c.csr_sha256 == digest]


def audit_outcomes_of_serial(installation: TestInstallation, partner: TestPartner, serial: str) -> list[str]:
    """The outcomes of the partner's reissue audit events that name ``serial``, sorted."""
    with installation.ra.readers() as session:
        return sorted(session.scalars(select(AuditEvent.outcome).where(
            AuditEvent.partner_code == partner.code, AuditEvent.action == "reissue",
            AuditEvent.certificate_serial == serial)))


def newest_certificate_id(installation: TestInstallation, partner: TestPartner) -> int:
    """The highest certificates.id among the partner's orders (0 for none): what a watcher polls
    to see a certificate commit."""
    with installation.ra.readers() as session:
        newest = session.scalar(select(func.max(Certificate.id)).join(Order, Certificate.order_pk == Order.id)
                                .join(Partner, Order.partner_id == Partner.id).where(Partner.code == partner.code))
    return int(newest or 0)


def unrecorded_reservations(installation: TestInstallation, since: datetime) -> list[tuple[int, str]]:
    """(CA id, serial) of the serials reserved since ``since`` that no certificate carries: a
    signature that failed or was dropped (a concurrent change), or a worker killed in between."""
    with installation.ra.readers() as session:
        rows = session.execute(
            select(IssuedSerial.ca_id, IssuedSerial.serial)
            .outerjoin(Certificate, (Certificate.ca_id == IssuedSerial.ca_id)
                       & (Certificate.serial == IssuedSerial.serial))
            .where(IssuedSerial.reserved_at >= since, Certificate.id.is_(None))).all()
    return [(row.ca_id, row.serial) for row in rows]
