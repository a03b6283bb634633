"""``soap-service ca rotate-passphrase`` (issue 11; docs/deployment.md, "Rotating the CA passphrase").

Every secret under the CA passphrase is re-encrypted under a new one in one transaction (the CA
and OCSP responder keys, the WS-Security password copies), then the new passphrase goes where the
service reads it. After it the service signs with the same keys and digest logins work; the old
passphrase opens nothing; a wrong passphrase in use changes nothing; the new passphrase is never
printed or logged; a crash between the commit and the file's rename is finished by
``ca finish-rotation``.

Each test has an installation of its own (it changes the passphrase), on SQLite and PostgreSQL,
with ECDSA CA keys (quick to make).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select

from conftest import BACKENDS, build_installation, database_environment
from conftest import TestInstallation as Installation
from factory import TestPartner as ApiPartner
from factory import new_order, new_partner
from soap_service.ca.keys.backend import KeyUnlockFailed
from soap_service.ca.keys.encrypted import EncryptedKeyBackend
from soap_service.ca.keys.rotation import opens
from soap_service.config import Secret, load_settings
from soap_service.errors import AuthenticationFailed, InvalidField
from soap_service.ra import passphrase_rotation
from soap_service.ra.auth import Credentials, DigestProof
from soap_service.ra.partners import set_password
from soap_service.ra.passphrase_rotation import (
    finish_interrupted_rotation,
    passphrase_file,
    pending_file,
    rotate_passphrase,
)
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.wspassword import decrypt_password, derive_key
from soap_service.storage.models import ApiUser, AuditEvent, CertificateAuthority, OCSPResponder, Partner

ROOT = Path(__file__).resolve().parents[1]
SOAP_SERVICE = Path(sys.executable).with_name("soap-service")


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Installation]:
    """An installation of this test's own whose CA passphrase is the generated file in its data directory."""
    for environ in database_environment(request.param, tmp_path / "data", "rotation"):
        environ.pop("SOAP_SERVICE_CA_PASSPHRASE")
        environ["SOAP_SERVICE_CA_KEY_ALGORITHM"] = "ecdsa-p256"
        installation = build_installation(environ, request.param)
        try:
            yield installation
        finally:
            installation.ra.close()


def reopen(installation: Installation, **changes: str) -> RegistrationAuthority:
    """A new RA on the same installation (a restarted host), with ``changes`` to its environment."""
    environ = {**installation.environ, **changes}
    return RegistrationAuthority.from_settings(load_settings(environ))


def passphrase_in_file(installation: Installation) -> str:
    path = passphrase_file(installation.settings)
    assert path is not None
    return path.read_text().rstrip("\n")


def stored_secrets(ra: RegistrationAuthority) -> dict[str, object]:
    with ra.readers() as session:
        return {
            "cas": [(ca.name, ca.protected_key) for ca in session.scalars(select(CertificateAuthority))],
            "responders": [(r.id, r.protected_key) for r in session.scalars(select(OCSPResponder))],
            "copies": sorted(session.scalars(select(ApiUser.ws_password_copy).where(
                ApiUser.ws_password_copy.is_not(None)))),
        }


def digest_enabled(ra: RegistrationAuthority) -> ApiPartner:
    partner = new_partner(ra)
    set_password(ra, code=partner.code, username=partner.username, password=Secret(partner.password),
                 ws_digest=True)
    return partner


def digest_login(ra: RegistrationAuthority, partner: ApiPartner) -> None:
    """A WS-Security PasswordDigest login (a fresh nonce each time), as api.wssecurity reads it."""
    nonce = secrets.token_bytes(16)
    now = datetime.now(UTC).replace(microsecond=0)
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha1(nonce + created.encode() + partner.password.encode()).digest()
    proof = DigestProof(nonce=nonce, created_text=created, created=now, digest=digest)
    ra.authenticator.authenticate(Credentials(partner.code, partner.username, Secret(""), digest=proof),
                                  channel="api")


def test_after_a_rotation_the_same_keys_sign_and_digest_logins_work(fresh):
    ra = fresh.ra
    partner = digest_enabled(ra)
    digest_login(ra, partner)
    old = passphrase_in_file(fresh)
    before = stored_secrets(ra)

    rotated = rotate_passphrase(ra, new=None)

    new = passphrase_in_file(fresh)
    assert new != old and len(new) >= passphrase_rotation.MIN_PASSPHRASE_LENGTH
    assert rotated.keys == len(before["cas"]) + len(before["responders"]) and rotated.keys >= 4
    assert rotated.password_copies >= 1
    assert rotated.written_to == passphrase_file(fresh.settings)
    assert not pending_file(rotated.written_to).exists()
    assert oct(rotated.written_to.stat().st_mode & 0o777) == "0o600"
    after = stored_secrets(ra)
    assert [name for name, _ in after["cas"]] == [name for name, _ in before["cas"]]

    # The new passphrase opens every key, the old one none; the public keys are the CA certificates'.
    with ra.readers() as session:
        for ca in session.scalars(select(CertificateAuthority)):
            assert not opens(ca.name, ca.protected_key, Secret(old))
            signer = EncryptedKeyBackend(Secret(new)).unlock(ca.name, ca.protected_key)
            certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
            assert signer.public_key == certificate.public_key()
        for responder in session.scalars(select(OCSPResponder)):
            assert opens("responder", responder.protected_key, Secret(new))
            assert not opens("responder", responder.protected_key, Secret(old))
        rows = session.execute(select(Partner.code, ApiUser).join(ApiUser, ApiUser.partner_id == Partner.id)
                               .where(Partner.code == partner.code)).all()
        (code, user), = rows
        assert user.ws_password_copy is not None
        assert decrypt_password(derive_key(Secret(old)), user.ws_password_copy, partner_code=code,
                                username=user.username) is None
        assert decrypt_password(derive_key(Secret(new)), user.ws_password_copy, partner_code=code,
                                username=user.username) == partner.password.encode()

    # A restarted host reads the new file: it signs with the old CA keys, and digest logins work.
    restarted = reopen(fresh)
    try:
        digest_login(restarted, partner)
        outcome = new_order(restarted, new_partner(restarted))
        leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
        with restarted.readers() as session:
            issuers = [x509.load_pem_x509_certificate(ca.certificate_pem.encode())
                       for ca in session.scalars(select(CertificateAuthority))]
        issuer = next(ca for ca in issuers if ca.subject == leaf.issuer)
        leaf.verify_directly_issued_by(issuer)  # the same public key as before the rotation
        with restarted.readers() as session:
            event = session.scalars(select(AuditEvent).where(AuditEvent.action == "rotate-passphrase")).one()
        assert event.channel == "cli" and event.outcome == "success" and new not in event.detail
    finally:
        restarted.close()

    # A host still started with the old passphrase opens no key and no copy.
    stale = reopen(fresh, SOAP_SERVICE_CA_PASSPHRASE=old)
    try:
        with pytest.raises(AuthenticationFailed):
            digest_login(stale, partner)
        with stale.readers() as session, pytest.raises(KeyUnlockFailed) as refused:
            stale.authorities.issuing_ca(session, "GEOTRUST", "OV")
        assert old not in str(refused.value) and new not in str(refused.value)
    finally:
        stale.close()


def test_a_wrong_passphrase_in_use_is_refused_and_nothing_changes(fresh):
    digest_enabled(fresh.ra)
    before = stored_secrets(fresh.ra)
    file_before = passphrase_in_file(fresh)
    (fresh.settings.data_dir / "wrong").write_text("not-the-passphrase-of-these-keys\n")
    wrong = reopen(fresh, SOAP_SERVICE_CA_PASSPHRASE_FILE=str(fresh.settings.data_dir / "wrong"))
    try:
        with pytest.raises(KeyUnlockFailed) as refused:
            rotate_passphrase(wrong, new=None)
        assert "cannot be unlocked" in str(refused.value)
        assert stored_secrets(fresh.ra) == before
        assert (fresh.settings.data_dir / "wrong").read_text() == "not-the-passphrase-of-these-keys\n"
        assert not pending_file(fresh.settings.data_dir / "wrong").exists()
        assert passphrase_in_file(fresh) == file_before
        with fresh.ra.readers() as session:
            assert session.scalars(select(AuditEvent).where(AuditEvent.action == "rotate-passphrase")).all() == []
    finally:
        wrong.close()


def test_a_copy_the_passphrase_in_use_cannot_read_refuses_the_whole_rotation(fresh):
    partner = digest_enabled(fresh.ra)
    with fresh.ra.sessions() as session, session.begin():
        user = session.scalars(select(ApiUser).join(Partner).where(Partner.code == partner.code)).one()
        user.ws_password_copy = "v1:" + "A" * 60  # damaged
    before = stored_secrets(fresh.ra)
    with pytest.raises(InvalidField, match=f"password copy of {partner.code}/api cannot be read"):
        rotate_passphrase(fresh.ra, new=None)
    assert stored_secrets(fresh.ra) == before  # the CA keys rewrapped before it were rolled back
    assert not pending_file(passphrase_file(fresh.settings)).exists()


@pytest.mark.parametrize("new, message", [
    ("short", "20 to 1024 characters"),
    (" leading-space-passphrase-x", "may not begin or end with a space"),
    ("control\x01character-passphrase", "control characters"),
])
def test_a_weak_or_malformed_new_passphrase_is_refused(fresh, new, message):
    before = stored_secrets(fresh.ra)
    with pytest.raises(InvalidField, match=message):
        rotate_passphrase(fresh.ra, new=Secret(new))
    with pytest.raises(InvalidField, match="the one in use"):
        rotate_passphrase(fresh.ra, new=Secret(passphrase_in_file(fresh)))
    assert stored_secrets(fresh.ra) == before


def test_a_passphrase_kept_outside_the_service_is_given_on_stdin_and_not_written(fresh):
    old = passphrase_in_file(fresh)
    external = reopen(fresh, SOAP_SERVICE_CA_PASSPHRASE=old)
    try:
        with pytest.raises(InvalidField, match="--new-passphrase-stdin"):
            rotate_passphrase(external, new=None)
        new = "operator-chosen-" + secrets.token_hex(12)
        rotated = rotate_passphrase(external, new=Secret(new))
        assert rotated.written_to is None
        assert passphrase_in_file(fresh) == old  # the generated file is not the one in use: untouched
    finally:
        external.close()
    after = reopen(fresh, SOAP_SERVICE_CA_PASSPHRASE=new)
    try:
        with after.readers() as session:
            after.authorities.issuing_ca(session, "GEOTRUST", "OV")  # opens with the new one
    finally:
        after.close()


def test_a_crash_between_the_commit_and_the_rename_is_finished_at_the_next_start(fresh, monkeypatch):
    path = passphrase_file(fresh.settings)
    assert path is not None
    old = passphrase_in_file(fresh)

    def crash(source: object, target: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(passphrase_rotation.os, "replace", crash)
    with pytest.raises(SystemExit):
        rotate_passphrase(fresh.ra, new=None)
    monkeypatch.undo()
    assert passphrase_in_file(fresh) == old and pending_file(path).exists()  # committed, not renamed
    new = pending_file(path).read_text().rstrip("\n")

    finished = finish_interrupted_rotation(fresh.ra)
    assert finished.outcome == "completed" and finished.pending == pending_file(path)
    assert passphrase_in_file(fresh) == new and not pending_file(path).exists()
    restarted = reopen(fresh)
    try:
        with restarted.readers() as session:
            restarted.authorities.issuing_ca(session, "GEOTRUST", "OV")
    finally:
        restarted.close()
    assert finish_interrupted_rotation(fresh.ra).outcome == "none"


def test_a_crash_before_the_commit_leaves_the_old_passphrase(fresh):
    path = passphrase_file(fresh.settings)
    assert path is not None
    old = passphrase_in_file(fresh)
    before = stored_secrets(fresh.ra)
    pending_file(path).write_text("a-new-passphrase-never-committed-" + secrets.token_hex(8) + "\n")
    with pytest.raises(InvalidField, match="finish-rotation"):
        rotate_passphrase(fresh.ra, new=None)

    finished = finish_interrupted_rotation(fresh.ra)
    assert finished.outcome == "discarded"
    assert passphrase_in_file(fresh) == old and not pending_file(path).exists()
    assert stored_secrets(fresh.ra) == before


def test_the_command_never_shows_either_passphrase(fresh, caplog):
    """The CLI, its log and its answer: the rotation's, and a refused one's."""
    caplog.set_level(logging.DEBUG)
    old = passphrase_in_file(fresh)
    environ = {**os.environ, **fresh.environ, "SOAP_SERVICE_LOG_LEVEL": "DEBUG"}
    done = subprocess.run([str(SOAP_SERVICE), "ca", "rotate-passphrase"], env=environ, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    new = passphrase_in_file(fresh)
    assert done.returncode == 0, done.stderr
    assert '"keys_reencrypted"' in done.stdout and "sign in again" in done.stdout
    for secret in (old, new):
        assert secret not in done.stdout and secret not in done.stderr

    chosen = "operator-chosen-" + secrets.token_hex(12)
    given = subprocess.run([str(SOAP_SERVICE), "ca", "rotate-passphrase", "--new-passphrase-stdin", "--external"],
                           env={**environ, "SOAP_SERVICE_CA_PASSPHRASE": new}, input=chosen + "\n",
                           capture_output=True, text=True, timeout=120)
    assert given.returncode == 0, given.stderr
    assert '"passphrase_file": null' in given.stdout
    refused = subprocess.run([str(SOAP_SERVICE), "ca", "rotate-passphrase", "--new-passphrase-stdin", "--external"],
                             env={**environ, "SOAP_SERVICE_CA_PASSPHRASE": new}, input=chosen + "-again\n",
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "cannot be unlocked" in refused.stderr  # `new` is no longer in use
    for run in (given, refused):
        for secret in (old, new, chosen):
            assert secret not in run.stdout and secret not in run.stderr
    usage = subprocess.run([str(SOAP_SERVICE), "ca", "rotate-passphrase", "--external"], env=environ,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert usage.returncode == 1 and "--external needs --new-passphrase-stdin" in usage.stderr
    assert all(secret not in caplog.text for secret in (old, new, chosen))


def test_a_commit_that_fails_keeps_the_new_passphrase_for_finish_rotation(fresh, monkeypatch):
    """The commit happened but its answer was lost: the .rotating file must not be removed, or
    nothing would open the keys."""
    from sqlalchemy.orm import SessionTransaction

    path = passphrase_file(fresh.settings)
    assert path is not None
    real_commit = SessionTransaction.commit

    def commit_then_lose_the_answer(self, *args, **kwargs):
        real_commit(self, *args, **kwargs)
        if self._parent is None:  # the transaction's own commit, not a flush's inner one
            raise ConnectionError("the connection dropped before the commit's answer")

    monkeypatch.setattr(SessionTransaction, "commit", commit_then_lose_the_answer)
    with pytest.raises(Exception) as failed:  # SQLAlchemy raises its own as it closes the transaction
        rotate_passphrase(fresh.ra, new=None)
    monkeypatch.undo()
    assert "commit's answer" in repr(failed.value) + repr(failed.value.__context__)
    assert pending_file(path).exists()
    assert finish_interrupted_rotation(fresh.ra).outcome == "completed"
    restarted = reopen(fresh)
    try:
        with restarted.readers() as session:
            restarted.authorities.issuing_ca(session, "GEOTRUST", "OV")
    finally:
        restarted.close()


def test_finish_rotation_decides_nothing_without_the_database(fresh, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from soap_service.storage import key_material

    path = passphrase_file(fresh.settings)
    assert path is not None
    pending_file(path).write_text("a-passphrase-the-database-may-be-under-" + secrets.token_hex(8) + "\n")

    def unreachable(session):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(key_material, "first_authority", unreachable)
    with pytest.raises(OperationalError):
        finish_interrupted_rotation(fresh.ra)
    assert pending_file(path).exists()
    monkeypatch.undo()
    assert finish_interrupted_rotation(fresh.ra).outcome == "discarded"


def test_finish_rotation_before_init_discards_a_leftover_file(tmp_path):
    environ = {"SOAP_SERVICE_DATA_DIR": str(tmp_path / "data")}
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    try:
        path = passphrase_file(ra.settings)
        assert path is not None
        assert finish_interrupted_rotation(ra).outcome == "none"
        pending_file(path).write_text("left-over-from-before-init-" + secrets.token_hex(8) + "\n")
        assert finish_interrupted_rotation(ra).outcome == "discarded"
        assert not pending_file(path).exists()
    finally:
        ra.close()


def test_a_new_passphrase_typed_at_a_terminal_is_asked_twice(monkeypatch):
    """A typo would encrypt every key under a passphrase nobody has: two different entries are refused."""
    import getpass

    from soap_service import cli
    from soap_service.errors import InvalidField

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(cli.sys, "stdin", Terminal())
    typed = iter(["a-long-new-passphrase-1234", "a-long-new-passphrase-1243"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(typed))
    with pytest.raises(InvalidField, match="differ"):
        cli._read_secret("new CA passphrase: ", confirm=True)
    typed = iter(["a-long-new-passphrase-1234", "a-long-new-passphrase-1234"])
    assert cli._read_secret("new CA passphrase: ", confirm=True).reveal() == "a-long-new-passphrase-1234"
