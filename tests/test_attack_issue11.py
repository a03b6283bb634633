"""An outside attacker's (and an unlucky operator's) look at issue 11's changes: what happens between
a Reissue's two transactions (docs/design.md, "Concurrency and failures"), and a passphrase
rotation that another process's ``ca finish-rotation`` meets half-way (docs/design.md, "Layers").

Each reissue test runs something between the first transaction (rules, serial reserved) and the
signature, in the reissuing thread itself: the second transaction must then decide as if the
change came first, record nothing that policy forbids and send nothing that was not recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from conftest import BACKENDS, build_installation, database_environment
from conftest import TestInstallation as Installation
from factory import TestPartner, fresh_key_csr, new_order, new_partner
from soap_service.ca.keys.rotation import opens
from soap_service.config import Secret
from soap_service.errors import CertificateRevoked, InternalError, InvalidField, KeyRefused, OrderStateInvalid
from soap_service.ra import passphrase_rotation
from soap_service.ra import reissue as reissue_module
from soap_service.ra.passphrase_rotation import (
    RotationRunning,
    finish_interrupted_rotation,
    lock_file,
    passphrase_file,
    pending_file,
    rotate_passphrase,
)
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.revocation import Revoker, RevokeRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome
from soap_service.storage import certificates as certificate_store
from soap_service.storage import key_material
from soap_service.storage.models import AuditEvent, Certificate, IssuedSerial, Order

# -- between a Reissue's two transactions -----------------------------------------------------------


def between_phases(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> list[int]:
    """Run ``action`` once, right after the first reissue transaction committed (before the lint and
    the signature); returns the serials that were signed (as ints) so a test can look for them."""
    real = reissue_module.sign_leaf
    signed: list[int] = []
    done: list[bool] = []

    def signing(ra: RegistrationAuthority, planned: object) -> object:
        if not done:
            done.append(True)
            action()
        leaf = real(ra, planned)  # type: ignore[arg-type]
        signed.append(leaf.serial_number)
        return leaf

    monkeypatch.setattr(reissue_module, "sign_leaf", signing)
    return signed


def history(ra: RegistrationAuthority, poid: str, partner: TestPartner) -> tuple[Order, list[Certificate]]:
    with ra.readers() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == poid))
        assert order is not None
        return order, certificate_store.order_history(session, order.id)


def reserved_without_certificate(ra: RegistrationAuthority, serials: list[int]) -> set[str]:
    """Of ``serials``, those reserved in issued_serials with no certificate row."""
    wanted = {format(s, "x") for s in serials}
    with ra.readers() as session:
        reserved = set(session.scalars(select(IssuedSerial.serial).where(IssuedSerial.serial.in_(wanted))))
        recorded = set(session.scalars(select(Certificate.serial).where(Certificate.serial.in_(wanted))))
    return reserved - recorded


def reissue(ra: RegistrationAuthority, partner: TestPartner, poid: str, csr: str) -> IssuanceOutcome:
    return Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")


def revoke(ra: RegistrationAuthority, partner: TestPartner, poid: str, reason: str) -> None:
    Revoker(ra).revoke(partner.credentials(), RevokeRequest(poid, None, None, reason), channel="api")


@pytest.mark.parametrize(
    ("change", "refusal"),
    [("keyCompromise of the current certificate", CertificateRevoked),
     ("superseded revocation of the current certificate", CertificateRevoked),
     ("cancellation of the order", OrderStateInvalid),
     ("keyCompromise of the CSR's key on another order", KeyRefused)],
)
def test_a_change_between_the_two_transactions_refuses_the_signed_leaf(ra, monkeypatch, change, refusal):
    """The leaf signed after the first transaction is neither recorded nor sent; its serial stays
    reserved, never reused; the order's current certificate is the one before."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    key = ec.generate_private_key(ec.SECP256R1())
    other_poid = new_order(ra, partner, csr=fresh_key_csr(("example.com",), key=key)).order.partner_order_id
    actions: dict[str, Callable[[], object]] = {
        "keyCompromise of the current certificate": lambda: revoke(ra, partner, poid, "keyCompromise"),
        "superseded revocation of the current certificate": lambda: revoke(ra, partner, poid, "superseded"),
        "cancellation of the order": lambda: Revoker(ra).cancel(partner.credentials(), poid, channel="api"),
        "keyCompromise of the CSR's key on another order": lambda: revoke(ra, partner, other_poid, "keyCompromise"),
    }
    signed = between_phases(monkeypatch, actions[change])
    with pytest.raises(refusal):
        reissue(ra, partner, poid, fresh_key_csr(("example.com",), key=key))
    monkeypatch.undo()
    order, certificates = history(ra, poid, partner)
    assert [c.serial for c in certificates] == [created.certificate.serial]
    assert order.current_certificate_id == certificates[0].id
    assert len(signed) == 1  # one signature, no retry loop
    assert reserved_without_certificate(ra, signed) == {format(signed[0], "x")}


def test_a_concurrent_reissue_with_another_csr_between_the_transactions_gives_one_chain(ra, monkeypatch):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    other: list[IssuanceOutcome] = []
    signed = between_phases(monkeypatch, lambda: other.append(reissue(ra, partner, poid, fresh_key_csr())))
    mine = reissue(ra, partner, poid, fresh_key_csr())
    monkeypatch.undo()
    order, certificates = history(ra, poid, partner)
    assert [c.serial for c in certificates] == [created.certificate.serial, other[0].certificate.serial,
                                                 mine.certificate.serial]
    assert [c.replaces_id for c in certificates] == [None, certificates[0].id, certificates[1].id]
    assert order.current_certificate_id == certificates[2].id
    assert len(signed) == 2 and not mine.replayed  # no signature wasted, none repeated


def test_a_concurrent_retry_of_the_same_csr_between_the_transactions_is_a_replay(ra, monkeypatch):
    """The retry recorded first: this one answers the recorded certificate, not the leaf it signed."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    csr = fresh_key_csr()
    other: list[IssuanceOutcome] = []
    signed = between_phases(monkeypatch, lambda: other.append(reissue(ra, partner, poid, csr)))
    mine = reissue(ra, partner, poid, csr)
    monkeypatch.undo()
    _, certificates = history(ra, poid, partner)
    assert len(certificates) == 2
    assert mine.replayed and mine.certificate.serial == other[0].certificate.serial == certificates[1].serial
    dropped = [s for s in signed if format(s, "x") != certificates[1].serial]
    assert len(dropped) == 1 and reserved_without_certificate(ra, dropped) == {format(dropped[0], "x")}
    with ra.readers() as session:  # the replay's audit event names the leaf it dropped
        details = list(session.scalars(select(AuditEvent.detail).where(
            AuditEvent.partner_order_id == poid, AuditEvent.outcome == "replayed")))
    assert details == [f"same CSR as current; signed leaf {format(dropped[0], 'x')} dropped"]


def test_the_retry_loop_signs_at_most_once_per_attempt_and_gives_up(ra, monkeypatch):
    """A leaf that never fits (simulated: the CA "changes" at every second transaction) costs
    MAX_ATTEMPTS signatures, then an internal failure: one request cannot buy more."""
    partner = new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    signed = between_phases(monkeypatch, lambda: None)
    monkeypatch.setattr(reissue_module, "still_fits", lambda *a, **k: False)
    with pytest.raises(InternalError):  # an incident, audited as failed
        reissue(ra, partner, poid, fresh_key_csr())
    assert len(signed) == reissue_module.MAX_ATTEMPTS
    assert len(set(signed)) == len(signed)  # a new serial for every attempt


# -- a passphrase rotation that another process's finish-rotation meets ------------------------------


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """An installation of this test's own whose CA passphrase is the generated file in its data directory."""
    for environ in database_environment(request.param, tmp_path / "data", "attack"):
        environ.pop("SOAP_SERVICE_CA_PASSPHRASE")
        environ["SOAP_SERVICE_CA_KEY_ALGORITHM"] = "ecdsa-p256"
        installation = build_installation(environ, request.param)
        try:
            yield installation
        finally:
            installation.ra.close()


def file_opens_the_keys(installation: Installation) -> bool:
    path = passphrase_file(installation.settings)
    assert path is not None
    with installation.ra.readers() as session:
        stored = key_material.first_authority(session)
    assert stored is not None
    return opens(stored[0], stored[1], Secret(path.read_text().rstrip("\n")))


def meeting(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> list[object]:
    """Run ``action`` once, in the rotation's transaction (after ``.rotating`` is written, before the
    commit), as another process would; returns what it returned or raised."""
    real_rewrap = passphrase_rotation.rewrap
    met: list[object] = []

    def rewrap(name: str, stored: bytes, *, current: Secret, new: Secret) -> bytes:
        if not met:
            try:
                met.append(action())
            except Exception as refused:  # what the other process met is the answer
                met.append(refused)
        return real_rewrap(name, stored, current=current, new=new)

    monkeypatch.setattr(passphrase_rotation, "rewrap", rewrap)
    return met


def test_finish_rotation_started_during_a_rotation_neither_discards_nor_loses_the_new_passphrase(
    fresh, monkeypatch
):
    """A container that starts (its entry point runs ``ca finish-rotation``) while an operator's
    ``ca rotate-passphrase`` is between writing ``.rotating`` and its commit must not remove the
    file: the rotation would then commit under a passphrase kept nowhere, and the CA keys be lost."""
    path = passphrase_file(fresh.settings)
    assert path is not None
    met = meeting(monkeypatch, lambda: finish_interrupted_rotation(fresh.ra))
    rotate_passphrase(fresh.ra, new=None)
    monkeypatch.undo()
    assert isinstance(met[0], RotationRunning), met
    assert "is locked" in str(met[0])
    assert file_opens_the_keys(fresh) and not pending_file(path).exists()
    assert finish_interrupted_rotation(fresh.ra).outcome == "none"


def test_a_second_rotation_during_a_rotation_is_refused_and_the_first_completes(fresh, monkeypatch):
    path = passphrase_file(fresh.settings)
    assert path is not None
    met = meeting(monkeypatch, lambda: rotate_passphrase(fresh.ra, new=None))
    rotate_passphrase(fresh.ra, new=None)
    monkeypatch.undo()
    assert isinstance(met[0], RotationRunning), met
    assert file_opens_the_keys(fresh) and not pending_file(path).exists()
    assert lock_file(path).stat().st_mode & 0o777 == 0o600


def test_the_lock_is_free_again_after_a_refused_rotation(fresh):
    """A refusal (a weak new passphrase) releases the lock: the next rotation runs."""
    with pytest.raises(InvalidField):
        rotate_passphrase(fresh.ra, new=Secret("short"))
    rotate_passphrase(fresh.ra, new=None)
    assert file_opens_the_keys(fresh)


# -- the metric files of replaced workers ----------------------------------------------------------

_WORKERS_SCRIPT = """
import fcntl, json, os, sys
from pathlib import Path
from prometheus_client import values
from soap_service import metrics

directory = Path(sys.argv[1])
metrics.use_multiprocess_directory(directory)
pid = [0]
values.ValueClass = values.MultiProcessValue(lambda: pid[0])

def worker(number):
    pid[0] = number
    metrics._built = None  # a new process builds its metrics anew
    metrics.count_request("soap", "Reissue", "0", 0.1)
    with metrics.timed_issuance():
        pass

for number in range(1, 301):  # 300 workers replaced, one after another
    worker(number)
    metrics.worker_exited(number)
# a worker leaves while a scrape holds the lock: the master does not wait, the next exit folds it
held = os.open(directory / ".scrape-lock", os.O_RDWR)
fcntl.flock(held, fcntl.LOCK_SH)
worker(301)
metrics.worker_exited(301)
deferred = sorted(p.name for p in directory.glob("*.db"))
os.close(held)
worker(302)
metrics.worker_exited(302)
worker(303)  # alive
text = metrics.exposition(lambda: 0).decode()
print(json.dumps({"files": sorted(p.name for p in directory.glob("*.db")), "deferred": deferred, "text": text}))
"""


def test_replaced_workers_leave_no_files_behind_and_their_counts_stay(tmp_path: Path) -> None:
    """Every replaced worker (max_requests, which any client's requests drive) used to leave its
    counter and histogram files, which every scrape read again: 1,000 replacements made a scrape
    take 0.4 s instead of 2 ms (and /metrics has no authentication)."""
    import json
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", _WORKERS_SCRIPT, str(tmp_path / "metrics")], env=environ,
                          capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(done.stdout)
    assert "counter_301.db" in answer["deferred"]  # not folded while a scrape held the lock
    assert answer["files"] == ["counter_303.db", "counter_archive.db", "histogram_303.db", "histogram_archive.db"]
    text = answer["text"]
    assert 'soap_service_requests_total{front_end="soap",operation="Reissue",outcome="0"} 303.0' in text
    assert "soap_service_issuance_duration_seconds_count 303.0" in text
    assert 'soap_service_request_duration_seconds_bucket{front_end="soap",le="+Inf"} 303.0' in text


def _workers(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_a_real_server_folds_a_killed_workers_files_and_keeps_its_counts(installation, tmp_path: Path) -> None:
    import os
    import signal
    import time

    from api_support import request, start_server

    directory = tmp_path / "metrics"
    server = start_server(installation, tmp_path, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    try:
        killed: set[int] = set()
        for _round in range(3):
            for _ in range(10):
                assert request(server, "GET", "/healthz")[0] == 200
            before = _workers(server.process.pid)
            victim = sorted(before)[0]
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = _workers(server.process.pid)
                if victim not in now and len(now) == 2:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the killed worker was not replaced")
        status, _headers, body = request(server, "GET", "/metrics")
        assert status == 200
        line = 'soap_service_requests_total{front_end="health",operation="healthz",outcome="200"} 30.0'
        assert line in body.decode()  # no count lost with the workers that were killed
        files = {p.name for p in directory.glob("*.db")}
        assert not {f"{kind}_{pid}.db" for kind in ("counter", "histogram") for pid in killed} & files
        assert {"counter_archive.db", "histogram_archive.db"} <= files
    finally:
        server.stop()


# -- the compose file's instructions --------------------------------------------------------------


def test_the_compose_instructions_leave_the_secrets_readable_by_the_services_user_alone(tmp_path: Path) -> None:
    """docker compose mounts a file secret with its host owner and mode: the instructions used to
    write it under the default umask (0644, every user of the host reads the CA passphrase)."""
    import re
    import subprocess

    root = Path(__file__).resolve().parents[1]
    steps = [line[4:] for line in (root / "docker-compose.yml").read_text().splitlines()
             if line.startswith("#   ")]
    uid = re.search(r"--uid (\d+)", (root / "Dockerfile").read_text())
    assert uid is not None
    chown = [step for step in steps if "chown" in step]
    assert chown and chown[0].startswith(f"sudo chown {uid.group(1)} secrets/ca_passphrase")
    local = [step for step in steps if not step.startswith(("sudo ", "docker "))]
    subprocess.run(["sh", "-ec", "\n".join(local)], cwd=tmp_path, check=True, timeout=60)
    for written in ("secrets/ca_passphrase", ".env"):
        assert (tmp_path / written).stat().st_mode & 0o077 == 0, written


# -- reissue rule 7 between two partners, on PostgreSQL ------------------------------------------------


def test_two_partners_cannot_both_hold_one_key_when_their_reissues_meet(installation, ra, monkeypatch):
    """Partner B (the attacker) holds a copy of partner A's CSR and sends it while A's reissue records
    its certificate: both used to commit, and B could then revoke A's certificate for keyCompromise."""
    if installation.backend != "postgresql":
        pytest.skip("SQLite's BEGIN IMMEDIATE serializes the two second transactions")
    import threading

    victim, attacker = new_partner(ra), new_partner(ra)
    victim_poid = new_order(ra, victim).order.partner_order_id
    attacker_poid = new_order(ra, attacker).order.partner_order_id
    copied_csr = fresh_key_csr(("example.com",))
    real_record = reissue_module.record_certificate
    outcome: list[object] = []

    def record_while_the_attacker_reissues(*args: object, **kwargs: object) -> object:
        recorded = real_record(*args, **kwargs)  # type: ignore[arg-type]
        if not outcome:
            outcome.append(None)
            attack = threading.Thread(target=lambda: outcome.append(_try(
                lambda: reissue(ra, attacker, attacker_poid, copied_csr))))
            attack.start()
            attack.join(timeout=60)
        return recorded

    monkeypatch.setattr(reissue_module, "record_certificate", record_while_the_attacker_reissues)
    reissue(ra, victim, victim_poid, copied_csr)
    monkeypatch.undo()
    spki = history(ra, victim_poid, victim)[1][-1].spki_sha256
    with ra.readers() as session:
        holders = set(session.scalars(
            select(Order.partner_id).join(Certificate, Certificate.order_pk == Order.id)
            .where(Certificate.spki_sha256 == spki, Certificate.status == "VALID")))
    assert len(holders) == 1, outcome


def _try(action: Callable[[], object]) -> object:
    try:
        return action()
    except Exception as failure:  # the attacker's refusal is an acceptable outcome
        return failure


# -- OCSP responder renewal against a database that refuses writes -------------------------------------


def test_a_due_renewal_that_cannot_be_written_is_not_retried_by_every_ocsp_request(ra, monkeypatch):
    from datetime import timedelta

    from sqlalchemy.exc import OperationalError

    from ocsp_support import request_der
    from soap_service.ca.ocsp_responder import RENEWAL_MARGIN
    from soap_service.ra import ocsp as ocsp_module
    from soap_service.storage.models import OCSPResponder

    created = new_order(ra, new_partner(ra))
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(created.certificate.pem.encode())
    issuer = x509.load_pem_x509_certificate(created.chain[0].pem.encode())
    service = ocsp_module.OCSPResponderService(ra)
    request = request_der(leaf, issuer)
    service.answer(request)  # the responders loaded
    with ra.readers() as session:
        latest = max(session.scalars(select(OCSPResponder.not_after)))
    real_clock = ra.clock
    monkeypatch.setattr(ra, "clock", lambda: max(real_clock(), latest - RENEWAL_MARGIN + timedelta(hours=1)))

    def read_only(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT ... FOR UPDATE", None, Exception("read-only transaction"))

    made: list[int] = []
    real_create = ocsp_module.create_responder

    def counting_create(*args: object, **kwargs: object) -> object:
        made.append(1)
        return real_create(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ocsp_module.ocsp_storage, "lock_authority", read_only)
    monkeypatch.setattr(ocsp_module, "create_responder", counting_create)
    for _ in range(5):
        service.answer(request)
    assert len(made) <= 1, f"{len(made)} responder keys made and signed for 5 OCSP requests"


def test_a_metrics_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    """The master deletes ``*.db`` there and the workers open ``<type>_<pid>.db`` for writing: in a
    shared directory another local user could plant links to this user's files."""
    import os

    from soap_service import metrics

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    planted = tmp_path / "precious"
    planted.write_bytes(b"the service's own file")
    (shared / "counter_1.db").symlink_to(planted)
    for directory in (shared, link):
        with pytest.raises(metrics.SharedMetricsDirectory, match="directory of its own"):
            metrics.use_multiprocess_directory(directory)
    assert (shared / "counter_1.db").is_symlink() and planted.read_bytes() == b"the service's own file"
    assert metrics.MULTIPROC_VARIABLE not in os.environ or os.environ[metrics.MULTIPROC_VARIABLE] != str(shared)


def test_a_metric_file_that_cannot_be_read_never_fails_the_master(tmp_path: Path, monkeypatch, caplog) -> None:
    """``child_exit`` runs in gunicorn's master, whose main loop exits on an exception: a worker's
    file cut short (a full disk) is left as it is, with a WARNING, and the archive is not changed."""
    import logging
    import struct

    from soap_service import metrics

    directory = tmp_path / "metrics"
    directory.mkdir(mode=0o700)
    (directory / "counter_77.db").write_bytes(struct.pack("i", 4096) + b"\0" * 60)  # says 4096 bytes used
    monkeypatch.setenv(metrics.MULTIPROC_VARIABLE, str(directory))
    caplog.set_level(logging.WARNING, logger="soap_service.metrics")
    metrics.worker_exited(77)
    assert "metric files of worker 77 not folded" in caplog.text
    assert (directory / "counter_77.db").exists() and not (directory / "counter_archive.db").exists()
