"""A new CA passphrase: every secret encrypted under the old one re-encrypted under the new one in
one transaction, and the new one put where the service reads it (docs/deployment.md, "Rotating
the CA passphrase").

Encrypted under the passphrase, or under a key derived from it: the CA keys and the OCSP responder
keys (PKCS#8, ``ca.keys.rotation``) and the API users' WS-Security password copies (AES-GCM under
``Secret.derive_key``, ``ra.wspassword``). The portal's cookie key is derived from it too and is not
stored: after a rotation the cookies signed before it (the portal's sessions, its forms' CSRF cookie)
no longer verify, so every signed-in visitor signs in again; the links sent by mail stay valid (their
tokens are looked up in the database, not signed).

Where the passphrase lives decides what is written:

- a file (``SOAP_SERVICE_CA_PASSPHRASE_FILE``, or the generated ``<data dir>/ca-passphrase``): the
  new passphrase goes to ``<file>.rotating`` (``0600``, synced) *before* the transaction, and is
  renamed over the file *after* its commit. A crash leaves one of three states, each consistent and
  finished by :func:`finish_interrupted_rotation` (``soap-service ca finish-rotation``, which the
  Docker entry point runs at every start): no ``.rotating`` file (nothing happened, or all of it);
  the old database and a ``.rotating`` file (the transaction never committed: the file opens no key
  and is removed); the new database and a ``.rotating`` file (committed, not renamed: the file opens
  the keys and is renamed). A commit that fails or is interrupted may still have happened: then
  the ``.rotating`` file is kept, never removed, and finish-rotation decides; so does a database
  it cannot read (it refuses, and removes nothing). A rotation holds an exclusive lock on
  ``<file>.rotation-lock`` from before it looks for ``.rotating`` to after the rename, and
  finish-rotation takes the same lock before it decides: a finish-rotation run while a rotation
  is between its file and its commit (a container starting beside an operator's command) is
  refused, instead of removing the file that holds the passphrase about to be committed;
- ``SOAP_SERVICE_CA_PASSPHRASE``, or a file the service must not write (``external``, a Docker
  secret): nothing; the operator gives the new passphrase on stdin and sets it on every host.

The passphrase in use is the one that must open every key: a wrong one is refused, and nothing
changes. Neither passphrase is ever in an answer, a log line or an exception's message.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from soap_service.ca.keys.encrypted import GENERATED_FILE_NAME, load_or_create_passphrase, write_new_passphrase_file
from soap_service.ca.keys.rotation import opens, rewrap
from soap_service.config import ConfigurationError, Secret, Settings
from soap_service.errors import InvalidField
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.wspassword import decrypt_password, derive_key, encrypt_password
from soap_service.storage import audit, key_material

logger = logging.getLogger(__name__)

PENDING_SUFFIX = ".rotating"
LOCK_SUFFIX = ".rotation-lock"
MIN_PASSPHRASE_LENGTH = 20
MAX_PASSPHRASE_LENGTH = 1024
GENERATED_BYTES = 32  # as the first passphrase: 43 URL-safe characters


@dataclass(frozen=True)
class Rotated:
    keys: int
    """CA and OCSP responder keys re-encrypted."""
    password_copies: int
    written_to: Path | None
    """The passphrase file now holding the new passphrase; None when the operator keeps it."""


@dataclass(frozen=True)
class Finished:
    pending: Path | None
    """The ``.rotating`` file found; None when there was none."""
    outcome: str
    """``none``, ``completed`` (the database had the new passphrase: the file was renamed over the
    passphrase file) or ``discarded`` (it had the old one: the file was removed)."""


def passphrase_file(settings: Settings) -> Path | None:
    """The file the service reads the CA passphrase from; None when it is ``SOAP_SERVICE_CA_PASSPHRASE``."""
    if settings.ca_passphrase is not None:
        return None
    if settings.ca_passphrase_file is not None:
        return settings.ca_passphrase_file
    return settings.data_dir / GENERATED_FILE_NAME


def pending_file(passphrase_path: Path) -> Path:
    return passphrase_path.with_name(passphrase_path.name + PENDING_SUFFIX)


def lock_file(passphrase_path: Path) -> Path:
    return passphrase_path.with_name(passphrase_path.name + LOCK_SUFFIX)


class RotationRunning(ConfigurationError):
    """Another process holds the rotation's lock: a rotation is between its steps right now."""


@contextlib.contextmanager
def _rotation_lock(passphrase_path: Path) -> Iterator[None]:
    """The rotation's exclusive lock (``flock`` on ``<file>.rotation-lock``, created ``0600``), held
    for the block; :class:`RotationRunning` at once when another process holds it, never a wait."""
    path = lock_file(passphrase_path)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise InvalidField(
            f"cannot open {path} ({error.strerror}): a passphrase file the service cannot write "
            f"(a Docker secret) is rotated with --external",
            field="passphrase",
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationRunning(
                f"a CA passphrase rotation is running ({path} is locked): let it end, then run this again"
            ) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock


def current_passphrase(settings: Settings) -> Secret:
    return load_or_create_passphrase(settings.ca_passphrase, settings.ca_passphrase_file, settings.data_dir)


def rotate_passphrase(ra: RegistrationAuthority, *, new: Secret | None, external: bool = False) -> Rotated:
    """Re-encrypt everything under ``new`` (a generated passphrase when None and the service writes
    the file), in one transaction, then put it in the passphrase file unless ``external``."""
    path = None if external else passphrase_file(ra.settings)
    if path is None:
        return _rotate(ra, new=new, path=None)
    with _rotation_lock(path):
        return _rotate(ra, new=new, path=path)


def _rotate(ra: RegistrationAuthority, *, new: Secret | None, path: Path | None) -> Rotated:
    settings = ra.settings
    if path is not None and pending_file(path).exists():
        raise InvalidField(
            f"an interrupted rotation left {pending_file(path)}: run `soap-service ca finish-rotation` first",
            field="passphrase",
        )
    current = current_passphrase(settings)
    if new is None:
        if path is None:
            raise InvalidField(
                "the CA passphrase is kept outside the service (SOAP_SERVICE_CA_PASSPHRASE or --external): "
                "give the new one on stdin with --new-passphrase-stdin",
                field="passphrase",
            )
        new = Secret(secrets.token_urlsafe(GENERATED_BYTES))
    _check_new(new, current)
    if path is not None:
        _write_pending(pending_file(path), new)
    progress = _Progress()
    try:
        keys, copies = _reencrypt(ra, current, new, progress)
    except BaseException:
        if path is not None and not progress.committing:
            with contextlib.suppress(FileNotFoundError):
                pending_file(path).unlink()
        elif path is not None:
            # The commit failed or was interrupted: it may have happened. The pending file is
            # kept; finish-rotation tells which passphrase the database is under.
            logger.error("the CA passphrase rotation's commit did not complete: run `soap-service ca "
                         "finish-rotation` before the service starts again")
        raise
    if path is not None:
        os.replace(pending_file(path), path)
        _sync_directory(path.parent)
    logger.info("CA passphrase rotated: %d keys and %d WS-Security password copies re-encrypted", keys, copies)
    return Rotated(keys=keys, password_copies=copies, written_to=path)


def finish_interrupted_rotation(ra: RegistrationAuthority) -> Finished:
    """Complete or undo a rotation a crash stopped between its steps (see the module's docstring)."""
    path = passphrase_file(ra.settings)
    if path is None or not pending_file(path).exists():
        return Finished(pending=None, outcome="none")
    with _rotation_lock(path):  # RotationRunning while a rotation is between its file and its rename
        if not pending_file(path).exists():
            return Finished(pending=None, outcome="none")  # the rotation that held the lock ended
        return _finish(ra, path)


def _finish(ra: RegistrationAuthority, path: Path) -> Finished:
    pending = pending_file(path)
    candidate = load_or_create_passphrase(None, pending, ra.settings.data_dir)
    stored = _one_stored_key(ra)
    if stored is not None and opens(stored[0], stored[1], candidate):
        os.replace(pending, path)
        _sync_directory(path.parent)
        logger.warning("an interrupted CA passphrase rotation was completed: %s now holds the new passphrase", path)
        return Finished(pending=pending, outcome="completed")
    if stored is not None and not opens(stored[0], stored[1], current_passphrase(ra.settings)):
        raise ConfigurationError(
            f"neither {path} nor {pending} opens the CA keys: restore the passphrase file from the backup"
        )
    pending.unlink()
    logger.warning("an interrupted CA passphrase rotation was undone: the database kept the passphrase of %s", path)
    return Finished(pending=pending, outcome="discarded")


def _one_stored_key(ra: RegistrationAuthority) -> tuple[str, bytes] | None:
    """The first CA's name and stored key; None before ``init`` (no schema or no hierarchy yet).
    A database that cannot be read raises: nothing is decided (and no file removed) without it."""
    with ra.readers() as session:
        return key_material.first_authority(session)


def _check_new(new: Secret, current: Secret) -> None:
    value = new.reveal()
    if not MIN_PASSPHRASE_LENGTH <= len(value) <= MAX_PASSPHRASE_LENGTH:
        raise InvalidField(
            f"the new CA passphrase must have {MIN_PASSPHRASE_LENGTH} to {MAX_PASSPHRASE_LENGTH} characters",
            field="passphrase",
        )
    if value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidField(
            "the new CA passphrase may not begin or end with a space, nor hold control characters",
            field="passphrase",
        )
    if new == current:
        raise InvalidField("the new CA passphrase is the one in use", field="passphrase")


def _write_pending(pending: Path, new: Secret) -> None:
    """The new passphrase beside the file, ``0600`` and synced, before the database changes."""
    try:
        write_new_passphrase_file(pending, new)
    except OSError as error:
        raise InvalidField(
            f"cannot write {pending} ({error.strerror}): a passphrase file the service cannot write "
            f"(a Docker secret) is rotated with --external",
            field="passphrase",
        ) from None
    _sync_directory(pending.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class _Progress:
    committing: bool = False
    """Set once every row is rewritten, as the commit begins: from then on a failure may come after
    the database committed, and the pending passphrase file must stay."""


def _reencrypt(ra: RegistrationAuthority, current: Secret, new: Secret, progress: _Progress) -> tuple[int, int]:
    """One transaction: every key and every password copy, or none (the first that ``current``
    does not open refuses the whole rotation)."""
    current_key, new_key = derive_key(current), derive_key(new)
    with ra.sessions() as session, session.begin():
        keys = 0
        for authority in key_material.authorities_for_update(session):
            authority.protected_key = rewrap(authority.name, authority.protected_key, current=current, new=new)
            keys += 1
        for responder in key_material.responders_for_update(session):
            responder.protected_key = rewrap(
                f"{responder.ca_id} (OCSP responder {responder.id})", responder.protected_key, current=current, new=new
            )
            keys += 1
        copies = 0
        for partner_code, user in key_material.password_copies_for_update(session):
            copy = user.ws_password_copy
            plain = None if copy is None else decrypt_password(
                current_key, copy, partner_code=partner_code, username=user.username
            )
            if plain is None:
                raise InvalidField(
                    f"the WS-Security password copy of {partner_code}/{user.username} cannot be read with the "
                    f"CA passphrase in use: set the user's password again first (partner set-password)",
                    field="passphrase",
                )
            user.ws_password_copy = encrypt_password(
                new_key, partner_code=partner_code, username=user.username, password=Secret(plain.decode())
            )
            copies += 1
        audit.append_event(
            session, at=ra.clock(), channel="cli", action="rotate-passphrase", outcome="success", code=0,
            detail=f"{keys} keys and {copies} WS-Security password copies re-encrypted under a new CA passphrase",
        )
        session.flush()
        progress.committing = True
    return keys, copies
