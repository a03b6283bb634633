"""Many workers, many hosts, one PostgreSQL (docs/design.md, "Concurrency and failures"): two
independent ``soap-service serve`` instances, each its own gunicorn master, workers and data
directory, share one database and are hammered at once: concurrent reissues of the same few
orders (new CSRs, and retries of one CSR sent to both hosts), revocations by serial and of the
current certificate, cancellations, order lookups and portal access requests. Afterwards the
database alone must tell one consistent story, and both hosts must publish it (CRL and OCSP,
docs/design.md, "Status publication" and "OCSP"); the audit chain verifies ("Audit chain").

Only PostgreSQL: hosts share a database through a server; SQLite is one host's file (the
worker-kill test, tests/test_worker_kill.py, runs on both).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.x509 import ocsp
from sqlalchemy import select

from api_support import RunningServer, start_server
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from many_hosts_support import (
    Call,
    assert_answers_match_database,
    assert_orders_whole,
    assert_serials_unique,
    audit_verify,
    cancel_body,
    crl_serials,
    is_revoked,
    issuing_certificates,
    lookup_body,
    ocsp_status,
    order_states,
    reissue_audit_counts,
    reissue_body,
    request_portal_access,
    revoke_body,
    send,
    separate_data_dir,
    unrecorded_reservations,
)
from soap_service.storage.models import AuditEvent, MailMessage

pytestmark = pytest.mark.slow

NAMES = ("example.com", "www.example.com")
CAPTCHA = "24680"
CLIENTS = 12
"""Client threads, spread over both hosts (each 2 workers of 4 threads)."""
NEW_CSRS_PER_ORDER = 4
RETRIED_CSRS_PER_ORDER = 2
SENDS_PER_RETRIED_CSR = 3
LOOKUPS = 8


def _start_hosts(installation: Installation, base: Path) -> list[RunningServer]:
    extra = {"SOAP_SERVICE_TEST_CAPTCHA": CAPTCHA, "SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT": "1000",
             "SOAP_SERVICE_PORTAL_MAILS_PER_CLIENT": "1000"}
    hosts: list[RunningServer] = []
    try:
        for name in ("host-a", "host-b"):
            directory = base / name
            directory.mkdir()
            hosts.append(start_server(installation, directory, workers=2, threads=4,
                                      extra_env={**extra, **separate_data_dir(base, f"{name}-data")}))
    except BaseException:
        for host in hosts:
            host.stop()
        raise
    return hosts


def test_two_hosts_on_one_database_tell_one_story(installation: Installation,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    if installation.backend != "postgresql":
        pytest.skip("hosts share a database through a server: PostgreSQL only")
    ra = installation.ra
    partner = new_partner(ra)
    contacts = {label: f"admin-{label.lower()}-{secrets.token_hex(4)}@example.com" for label in "ABCD"}
    created = {label: new_order(ra, partner, names=NAMES, admin_email=contacts[label]) for label in "ABCD"}
    poid = {label: outcome.order.partner_order_id for label, outcome in created.items()}
    originals = {label: outcome.certificate.serial for label, outcome in created.items()}

    hosts = _start_hosts(installation, tmp_path_factory.mktemp("many-hosts"))
    try:
        names = {host.base_url: f"host-{'ab'[i]}" for i, host in enumerate(hosts)}
        calls: list[Call] = []

        def reissue(label: str, csr: str, host: RunningServer) -> Call:
            return send(host, Call("Reissue", poid[label], "", csr=csr), reissue_body(partner, poid[label], csr),
                        name=names[host.base_url])

        load_began = datetime.now(UTC) - timedelta(seconds=1)
        # A and B are reissued once first, so that revoking their originals leaves them reissuable.
        calls += [reissue(label, fresh_key_csr(NAMES), hosts[0]) for label in "AB"]
        assert all(c.success_code == 0 for c in calls), [c.describe() for c in calls]

        tasks: list[Callable[[RunningServer], Call]] = []
        for label in "ABCD":
            for _ in range(NEW_CSRS_PER_ORDER):
                csr = fresh_key_csr(NAMES)
                tasks.append(lambda host, label=label, csr=csr: reissue(label, csr, host))
            for _ in range(RETRIED_CSRS_PER_ORDER):
                csr = fresh_key_csr(NAMES)
                tasks += [lambda host, label=label, csr=csr: reissue(label, csr, host)] * SENDS_PER_RETRIED_CSR
        for label in "AB":  # the original, no longer current, revoked by serial twice at once
            tasks += [lambda host, label=label: send(
                host, Call("Revoke", poid[label], "", serial_asked=originals[label]),
                revoke_body(partner, poid[label], "superseded", originals[label]), name=names[host.base_url])] * 2
        tasks.append(lambda host: send(host, Call("Revoke", poid["C"], ""),  # whichever is current then
                                       revoke_body(partner, poid["C"], "affiliationChanged"),
                                       name=names[host.base_url]))
        tasks += [lambda host: send(host, Call("ModifyOrder", poid["D"], ""), cancel_body(partner, poid["D"]),
                                    name=names[host.base_url])] * 2
        for index in range(LOOKUPS):
            label = "ABCD"[index % 4]
            tasks.append(lambda host, label=label: send(host, Call("GetOrderByPartnerOrderID", poid[label], ""),
                                                        lookup_body(partner, poid[label]),
                                                        name=names[host.base_url]))
        portal_pages: list[str] = []
        for label in "AB":
            def portal(host: RunningServer, label: str = label) -> Call:
                portal_pages.append(request_portal_access(host, created[label].order.order_id, contacts[label],
                                                          CAPTCHA))
                return Call("portal", poid[label], names[host.base_url], status=200, success_code=0)
            tasks.append(portal)
        random.shuffle(tasks)

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            concurrent = list(pool.map(lambda item: item[1](hosts[item[0] % 2]), enumerate(tasks)))
        load_seconds = time.monotonic() - started
        calls += concurrent
        print(f"{len(tasks)} concurrent requests on two hosts in {load_seconds:.1f}s")

        # every request was answered, none with a fault or an internal error
        broken = [c.describe() for c in calls if c.lost is not None or c.fault is not None or c.status != 200
                  or c.success_code is None]
        assert broken == []
        allowed = {("Reissue", poid["A"]): {0}, ("Reissue", poid["B"]): {0},
                   ("Reissue", poid["C"]): {0, -4011},  # after the current certificate's revocation: -4011
                   ("Reissue", poid["D"]): {0, -4012}}  # after the cancellation: -4012
        for call in calls:
            if call.operation == "Reissue":
                assert call.success_code in allowed[("Reissue", call.partner_order_id)], call.describe()
            elif call.operation == "GetOrderByPartnerOrderID":
                assert call.success_code == 0, call.describe()
        for label in "AB":
            revokes = sorted((c.success_code or 0, c.error_codes) for c in calls
                             if c.operation == "Revoke" and c.partner_order_id == poid[label])
            assert revokes == [(-4014, (-4014,)), (0, ())], revokes  # one revoked it, the other found it revoked
        cancels = sorted((c.success_code or 0, c.error_codes) for c in calls if c.operation == "ModifyOrder")
        assert cancels == [(-4012, (-4012,)), (0, ())], cancels
        (revoke_c,) = [c for c in calls if c.operation == "Revoke" and c.partner_order_id == poid["C"]]
        assert revoke_c.success_code == 0, revoke_c.describe()
        assert len(portal_pages) == 2 and all("Check your e-mail" in page for page in portal_pages), portal_pages

        # the database's story
        states = order_states(installation, partner)
        assert set(states) == set(poid.values())
        assert_orders_whole(states)
        assert_serials_unique(installation, states)
        assert_answers_match_database(calls, states)
        reissued = {c.serial for state in states.values() for c in state.chain[1:]}
        answered = {c.serial for c in calls if c.operation == "Reissue" and c.succeeded}
        assert reissued == answered, (
            f"certificates nobody was answered: {reissued - answered}; answered, not stored: {answered - reissued}")
        for lookup in (c for c in calls if c.operation == "GetOrderByPartnerOrderID"):
            stored = {c.serial for c in states[lookup.partner_order_id].certificates.values()}
            assert {serial for serial, _ in lookup.history} <= stored, lookup.describe()
        audited = reissue_audit_counts(installation, partner)
        successes = sum(1 for c in calls if c.operation == "Reissue" and c.succeeded)
        assert audited["success"] == len(reissued), audited
        assert audited["replayed"] == successes - len(reissued), audited
        assert audited["failed"] == 0, audited

        # revocations: what was answered is what the database holds
        by_serial = {c.serial: c for state in states.values() for c in state.certificates.values()}
        for label in "AB":
            original = by_serial[originals[label]]
            assert (is_revoked(original), original.revocation_reason) == (True, "superseded")
        state_c = states[poid["C"]]
        assert state_c.chain[-1].serial == revoke_c.serial, "a reissue of C committed after its current was revoked"
        assert [c.serial for c in state_c.certificates.values() if is_revoked(c)] == [revoke_c.serial]
        state_d = states[poid["D"]]
        (cancel,) = [c for c in calls if c.operation == "ModifyOrder" and c.success_code == 0]
        assert state_d.status == "CANCELLED"
        assert all(is_revoked(c) and c.revocation_reason == "cessationOfOperation"
                   for c in state_d.certificates.values()), "a certificate of D issued after its cancellation"
        assert sorted(cancel.revoked) == sorted(c.serial for c in state_d.certificates.values())
        for label in "AB":
            assert not any(is_revoked(c) for c in states[poid[label]].certificates.values()
                           if c.serial != originals[label])

        # both hosts publish it: the CRL and OCSP of each; a serial reserved for a leaf that was
        # never recorded (signed for a retry that another request recorded first) is nobody's
        issuers = issuing_certificates(installation, states)
        revoked = {c.serial for c in by_serial.values() if is_revoked(c)}
        unrecorded = unrecorded_reservations(installation, load_began)
        print(f"{len(by_serial)} certificates, {len(revoked)} revoked, {len(unrecorded)} serials reserved "
              "and never recorded")
        for host in hosts:
            for ca_id, (ca_name, _certificate) in issuers.items():
                on_crl = crl_serials(host, ca_name)
                mine = {s for s, c in by_serial.items() if c.ca_id == ca_id}
                assert {int(s, 16) for s in revoked & mine} <= on_crl, f"{ca_name} CRL of {names[host.base_url]}"
                assert not {int(s, 16) for s in mine - revoked} & on_crl
                assert not {int(s, 16) for ca, s in unrecorded if ca == ca_id} & on_crl
            for ca_id, serial in unrecorded:
                if ca_id in issuers:
                    assert ocsp_status(host, issuers[ca_id][1], serial) == ocsp.OCSPCertStatus.UNKNOWN, (
                        f"OCSP of {names[host.base_url]} about {serial}, reserved and never recorded")
            for serial, certificate in by_serial.items():
                expected = ocsp.OCSPCertStatus.REVOKED if serial in revoked else ocsp.OCSPCertStatus.GOOD
                assert ocsp_status(host, issuers[certificate.ca_id][1], serial) == expected, (
                    f"OCSP of {names[host.base_url]} about {serial}")

        # the portal's access requests were each decided, and mailed, by whichever host took them
        deadline = time.monotonic() + 30
        while True:
            with ra.readers() as session:
                granted = set(session.scalars(select(AuditEvent.username).where(
                    AuditEvent.action == "portal.access_granted", AuditEvent.outcome == "success",
                    AuditEvent.username.in_([contacts["A"], contacts["B"]]))))
                mailed = set(session.scalars(select(MailMessage.recipient).where(
                    MailMessage.recipient.in_([contacts["A"], contacts["B"]]))))
            if granted == mailed == {contacts["A"], contacts["B"]} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert granted == mailed == {contacts["A"], contacts["B"]}
    finally:
        codes = [host.stop() for host in hosts]
    assert codes == [0, 0], "a host did not stop cleanly on SIGTERM"
    verified = audit_verify(installation)
    assert verified.returncode == 0, verified.stdout + verified.stderr
