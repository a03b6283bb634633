"""A worker killed (SIGKILL) in the middle of reissues under load, and what a failure leaves
(docs/design.md, "Concurrency and failures"): gunicorn's master replaces it; nothing is left half
written (every certificate belongs to an order and has a PEM, every order's current certificate
exists, the history is one chain, the audit chain verifies), no serial is used twice (a serial
reserved for a certificate that was never recorded is allowed), and each request whose answer
was lost succeeds when sent again: it returns the certificate the killed worker had committed
(reissue rule 8, a retry of the current certificate's CSR is replayed) or issues it now, never
both. On SQLite and PostgreSQL.

Two kinds of kill: one worker at a random moment (its requests die anywhere: before the lock,
while signing, before or after the commit), and then every worker the moment the test sees a
new certificate committed, so that the answer of a committed certificate is lost too (the window
between a commit and its answer is a few milliseconds, rarely hit at random).

The service is a black box here: whether the killed worker had signed, committed or only
reserved a serial is read from the database afterwards, never assumed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api_support import RunningServer, start_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner
from many_hosts_support import (
    Call,
    assert_answers_match_database,
    assert_nothing_half_written,
    assert_orders_whole,
    assert_serials_unique,
    audit_outcomes_of_serial,
    audit_verify,
    certificates_of_csr,
    newest_certificate_id,
    order_states,
    reissue_audit_counts,
    reissue_body,
    send,
    unrecorded_reservations,
    wait_for_workers,
)

pytestmark = pytest.mark.slow

NAMES = ("example.com", "www.example.com")
WORKERS = 2
CLIENTS = 6
"""Client threads, one order each, so that a lost request's retry is the order's next request."""
MIN_KILLS = 1
MAX_KILLS = 6
"""Kill at least MIN_KILLS workers, and go on (up to MAX_KILLS) until some answer was lost."""
MAX_RETRIES = 5
COMMIT_ROUNDS = 2
"""Rounds in which every worker is killed the moment a new certificate is seen committed, so that
answers of committed certificates are lost too (the window between a commit and its answer is short)."""


@dataclass
class Retried:
    """A reissue whose answer was lost, and what became of it."""

    lost: Call
    committed_before_retry: bool
    retries: list[Call] = field(default_factory=list)

    @property
    def answer(self) -> Call:
        return self.retries[-1]


def _client(installation: Installation, server: RunningServer, partner: Partner, partner_order_id: str,
            stop: threading.Event, any_lost: threading.Event) -> tuple[list[Call], list[Retried]]:
    """Reissue the order with new CSRs until ``stop``; a request whose answer is lost is sent again
    (the same CSR) until answered, as a partner whose Reissue timed out does."""
    calls: list[Call] = []
    lost: list[Retried] = []
    while not stop.is_set():
        csr = fresh_key_csr(NAMES)
        body = reissue_body(partner, partner_order_id, csr)
        call = send(server, Call("Reissue", partner_order_id, "", csr=csr), body)
        calls.append(call)
        if call.lost is None:
            continue
        any_lost.set()
        # Informational, and one-sided: a certificate of this CSR seen now must be what the retry answers.
        state = order_states(installation, partner)[partner_order_id]
        retried = Retried(call, committed_before_retry=bool(certificates_of_csr(state, csr)))
        lost.append(retried)
        for _ in range(MAX_RETRIES):
            again = send(server, Call("Reissue", partner_order_id, "", csr=csr), body)
            retried.retries.append(again)
            if again.lost is None:
                break
            time.sleep(0.5)
    return calls, lost


def test_a_worker_killed_mid_reissue_leaves_nothing_half_written_and_a_retry_completes(
    installation: Installation, tmp_path: Path
) -> None:
    began = datetime.now(UTC) - timedelta(seconds=1)
    ra = installation.ra
    partner = new_partner(ra)
    orders = [new_order(ra, partner, names=NAMES).order.partner_order_id for _ in range(CLIENTS)]
    server = start_server(installation, tmp_path, workers=WORKERS, threads=4)
    stop, any_lost = threading.Event(), threading.Event()
    kills: list[int] = []
    try:
        workers = wait_for_workers(server, WORKERS)
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(_client, installation, server, partner, poid, stop, any_lost) for poid in orders]
            try:
                time.sleep(2.0)  # every client has requests in flight
                while len(kills) < MAX_KILLS and not (len(kills) >= MIN_KILLS and any_lost.is_set()):
                    victim = random.choice(workers)  # one worker, at a random moment
                    time.sleep(random.uniform(0.0, 0.8))
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                    workers = wait_for_workers(server, WORKERS, besides=kills)  # gunicorn replaced it
                    time.sleep(random.uniform(0.5, 1.5))  # the new worker takes its share of the load
                for _ in range(COMMIT_ROUNDS):  # every worker, as soon as a certificate is committed
                    seen = newest_certificate_id(installation, partner)
                    deadline = time.monotonic() + 30
                    while newest_certificate_id(installation, partner) == seen and time.monotonic() < deadline:
                        time.sleep(0.002)
                    for victim in workers:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(victim, signal.SIGKILL)
                    kills += workers
                    workers = wait_for_workers(server, WORKERS, besides=kills)
                    time.sleep(1.0)
            finally:
                stop.set()
            results = [future.result() for future in futures]
    finally:
        code = server.stop()
    assert code == 0, f"the server exited with {code} on SIGTERM:\n{server.log()[-3000:]}"

    calls = [call for own, _ in results for call in own]
    retried = [r for _, lost in results for r in lost]
    answered = [c for c in calls if c.lost is None] + [r.answer for r in retried if r.answer.lost is None]
    print(f"{len(kills)} workers killed; {len(calls)} reissues sent, {len(retried)} answers lost")
    assert retried, "no answer was lost: the kills hit no request in flight"
    assert all(c.fault is None and c.success_code == 0 for c in answered), [
        c.describe() for c in answered if c.fault is not None or c.success_code != 0]

    states = order_states(installation, partner)
    assert_nothing_half_written(installation)
    assert_orders_whole(states)
    assert_serials_unique(installation, states)
    assert_answers_match_database(answered, states)

    replayed = issued_now = replayed_events = 0
    for item in retried:
        assert item.answer.lost is None, f"still lost after {MAX_RETRIES} retries: {item.answer.describe()}"
        state = states[item.lost.partner_order_id]
        made = certificates_of_csr(state, item.lost.csr or "")
        assert [c.serial for c in made] == [item.answer.serial], (
            f"the lost request and its retry left {[c.serial for c in made]}, the retry answered "
            f"{item.answer.serial}: one certificate, the one answered")
        outcomes = audit_outcomes_of_serial(installation, partner, item.answer.serial or "")
        assert outcomes.count("success") == 1 and set(outcomes) <= {"success", "replayed"}, outcomes
        replayed_events += outcomes.count("replayed")  # a retry lost too (a later kill) may have replayed it
        if "replayed" in outcomes:
            replayed += 1  # a killed worker had committed it: the retry got it back
        else:
            assert not item.committed_before_retry, "committed before the retry, yet the retry issued it again"
            issued_now += 1
    unrecorded = unrecorded_reservations(installation, began)
    lost_requests = len(retried) + sum(1 for r in retried for again in r.retries if again.lost is not None)
    print(f"lost answers: {replayed} committed by the killed worker and replayed, {issued_now} issued on retry; "
          f"{len(unrecorded)} serials reserved and never recorded, {lost_requests} requests lost in all")
    # Allowed after a kill, one at most per request that died (one client per order: no concurrent change).
    assert len(unrecorded) <= lost_requests, unrecorded

    issued = sum(len(state.chain) - 1 for state in states.values())
    assert {c.serial for state in states.values() for c in state.chain[1:]} == {c.serial for c in answered}
    audited = reissue_audit_counts(installation, partner)
    assert audited["success"] == issued, audited  # every committed certificate has its audit event
    assert audited["replayed"] == replayed_events, audited
    verified = audit_verify(installation)
    assert verified.returncode == 0, verified.stdout + verified.stderr

