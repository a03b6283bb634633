"""The data directory is private (docs/security.md): 0700, and every file the
service creates in it (the SQLite database, its WAL and shared memory, the generated CA
passphrase) 0600, whatever umask the operator's shell had; a directory made readable
before is tightened at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from soap_service.config import load_settings
from soap_service.ra.installation import initialize
from soap_service.ra.service import RegistrationAuthority


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The umask of a usual login shell (022) while the test runs, as an operator would have."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def sqlite_environ(data_dir: Path) -> dict[str, str]:
    # No CA passphrase given: the service generates its passphrase file in the data directory.
    return {"SOAP_SERVICE_DATA_DIR": str(data_dir), "SOAP_SERVICE_LOG_LEVEL": "INFO"}


def test_every_file_the_service_creates_is_private(tmp_path: Path, shell_umask: None) -> None:
    data_dir = tmp_path / "var"
    ra = RegistrationAuthority.from_settings(load_settings(sqlite_environ(data_dir)))
    try:
        initialize(ra)
        with ra.sessions() as session, session.begin():  # a connection holds the WAL and -shm open
            session.execute(text("SELECT 1"))
            files = sorted(path.name for path in data_dir.iterdir())
            assert {"soap_service.db", "soap_service.db-wal", "soap_service.db-shm", "ca-passphrase"} <= set(files)
            assert mode(data_dir) == 0o700
            assert {name: mode(data_dir / name) for name in files} == {name: 0o600 for name in files}
    finally:
        ra.close()


def test_a_readable_data_dir_is_tightened_at_start(tmp_path: Path, shell_umask: None) -> None:
    data_dir = tmp_path / "var"
    environ = {**os.environ, **sqlite_environ(data_dir)}
    command = [sys.executable, "-m", "soap_service.main", "init"]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "soap_service.db") == 0o600
    # As an older version (or `mkdir` and `cp` under umask 022) would have left them.
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert mode(data_dir) == 0o700
    assert {path.name: mode(path) for path in data_dir.iterdir()} == {
        path.name: 0o600 for path in data_dir.iterdir()
    }
    assert f"{data_dir} was accessible to other users (mode 0755): now 0700" in done.stderr
    passphrase = (data_dir / "ca-passphrase").read_text().strip()
    assert passphrase not in done.stderr + done.stdout


def test_a_database_outside_the_data_dir_is_tightened_too(tmp_path: Path, shell_umask: None) -> None:
    elsewhere = tmp_path / "db"
    elsewhere.mkdir(mode=0o755)
    database = elsewhere / "orders.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    environ = {**sqlite_environ(tmp_path / "var"), "SOAP_SERVICE_DATABASE_URL": f"sqlite:///{database}"}
    ra = RegistrationAuthority.from_settings(load_settings(environ))
    ra.close()
    assert mode(database) == 0o600
    assert mode(elsewhere) == 0o755  # the operator's directory: not ours to change


def test_a_data_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    """Another user who owns the directory can read it or plant links in it whatever its mode:
    the service refuses it, before it writes anything there."""
    if os.geteuid() == 0:
        data_dir = tmp_path / "theirs"
        data_dir.mkdir(mode=0o777)
        os.chown(data_dir, 65534, 65534)  # nobody's
    else:
        data_dir = Path("/")  # root's, and not this user's
    before = sorted(path.name for path in data_dir.iterdir())
    environ = {**os.environ, **sqlite_environ(data_dir)}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "init"], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    owner = data_dir.stat().st_uid
    assert f"the data directory {data_dir} belongs to another user (uid {owner})" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in data_dir.iterdir()) == before
