"""The demo's credentials, as a new user meets them with `make run` (`soap-service demo`, then
`soap-service serve`): kept in the data directory (0600), shown by every demo and every
banner while they are this database's, never in a log line; the demo and the start say
little, and nothing of Alembic's."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_support import RunningServer, request
from conftest import BACKENDS, database_environment
from soap_service.config import Secret, load_settings
from soap_service.demo import (
    CREDENTIALS_FILE,
    PARTNER_CODE,
    USERNAME,
    DemoCredentials,
    keep_credentials,
    shown_credentials,
)
from soap_service.ra.auth import Credentials
from soap_service.ra.installation import migrate
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.server import banner

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|\{\"ts\": \"\d{4}-\d\d-\d\dT")
"""How every log line starts (the CLI's format; `serve`'s and gunicorn's JSON objects,
``soap_service.logjson``): what is not a log line on a command's output is the operator's own
text (the demo's lines, the banner)."""
PASSWORD_SHOWN = re.compile(r"^partner DEMO / user demo / password (\S+)  \(", re.MULTILINE)
START_TIMEOUT = 120.0


def make_run_environment(database: dict[str, str]) -> dict[str, str]:
    """As `make run` runs: no SOAP_SERVICE_* of the caller but the database's, the default log
    level, and the CA passphrase generated into the data directory."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("SOAP_SERVICE_")}
    environ.update({name: value for name, value in database.items() if name != "SOAP_SERVICE_CA_PASSPHRASE"})
    return environ


def soap_service(environ: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "soap_service.main", *args], text=True, capture_output=True,
                          env=environ, cwd=workdir, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def serve_until_ready(environ: dict[str, str], workdir: Path) -> tuple[str, str]:
    """Start `soap-service serve` (one worker), wait until it serves the WSDL, stop it: its
    stdout (the banner) and its stderr (the log) up to then."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.set_inheritable(True)
    out, err = workdir / "serve.out", workdir / "serve.err"
    command = [sys.executable, "-m", "soap_service.main", "serve", "--bind", f"fd://{listener.fileno()}",
               "--workers", "1", "--threads", "2"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=workdir, env=environ, stdout=stdout, stderr=stderr,
                                   pass_fds=[listener.fileno()])
    server = RunningServer(f"http://127.0.0.1:{listener.getsockname()[1]}", process, out)
    listener.close()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.alive(), err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            try:
                status, _headers, _body = request(server, "GET", "/api/order?wsdl", timeout=5)
            except OSError:
                time.sleep(0.2)
                continue
            assert status == 200
            break
        started = out.read_text(), err.read_text()
    finally:
        server.stop()
    return started


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A fresh data directory (and database) as `make run` sees it, and the directory it runs in."""
    for database in database_environment(request.param, tmp_path / "var", "demo"):
        yield make_run_environment(database), tmp_path


@pytest.mark.slow
def test_make_run_shows_the_demo_credentials_every_time(fresh: tuple[dict[str, str], Path]) -> None:
    environ, workdir = fresh
    kept = workdir / "var" / CREDENTIALS_FILE
    passwords: list[str] = []
    for run in ("first", "second"):
        demo = soap_service(environ, workdir, "demo")
        shown = PASSWORD_SHOWN.findall(demo.stdout)
        assert len(shown) == 1, demo.stdout
        passwords.append(shown[0])
        assert ("created;" if run == "first" else "already present;") in demo.stdout
        # Short: what was made, the credentials, the orders; a warning or two, nothing of Alembic's.
        assert len(demo.stdout.splitlines()) <= 4, demo.stdout
        assert len(demo.stderr.splitlines()) <= 3, demo.stderr
        assert "alembic" not in demo.stderr.lower()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert json.loads(kept.read_text()) == {"partner_code": "DEMO", "username": "demo", "password": shown[0]}

        text, log = serve_until_ready(environ, workdir)
        assert f"  demo partner   PartnerCode DEMO, UserName demo, Password {shown[0]}\n" in text
        assert f"--password '{shown[0]}'" in text and f"sed 's/DEMO-PASSWORD/{shown[0]}/'" in text
        assert "(kept in var/demo-credentials.json;" in text
        # A quiet start: the banner; gunicorn's start, a warning or two, the worker ready; nothing
        # of Alembic's (the request lines are the WSDL asked for to see it ready).
        assert len(text.splitlines()) <= 20, text
        assert "alembic" not in log.lower(), log
        assert len([line for line in log.splitlines() if "soap_service.api.requests" not in line]) <= 10, log
        # The password is shown to the operator, and never reaches a log line.
        for output in (demo.stdout, demo.stderr, text, log):
            assert not [line for line in output.splitlines() if shown[0] in line and LOG_LINE.match(line)]
        assert shown[0] not in demo.stderr + log
    assert passwords[0] == passwords[1]
    # A data directory without the file (a demo of an older version) shows no password.
    kept.unlink()
    demo = soap_service(environ, workdir, "demo")
    assert not PASSWORD_SHOWN.search(demo.stdout) and passwords[0] not in demo.stdout
    assert "its password is not in" in demo.stdout
    assert not kept.exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_the_databases_own_demo_password_is_shown(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for environ in database_environment(backend, tmp_path, "demo-kept"):
        settings = load_settings(environ)
        ra = RegistrationAuthority.from_settings(settings)
        try:
            migrate(ra)
            text = banner(settings, bind="127.0.0.1:8080", workers=1, threads=1)
            assert "  demo partner   PartnerCode DEMO, UserName demo (its password is shown here" in text
            assert "--password 'PASSWORD'" in text

            password = "demo-password-" + os.urandom(6).hex()
            create_partner(ra, code=PARTNER_CODE, name="Demo Reseller", username=USERNAME, password=Secret(password))
            assert shown_credentials(settings) is None  # nothing kept

            others = {
                "another database's": DemoCredentials(PARTNER_CODE, USERNAME, Secret("another-database-password")),
                "another partner's": DemoCredentials("ACME", USERNAME, Secret(password)),
                "another user's": DemoCredentials(PARTNER_CODE, "admin", Secret(password)),
            }
            for wrong in others.values():
                keep_credentials(settings.data_dir, wrong)
                assert shown_credentials(settings) is None
                text = banner(settings, bind="127.0.0.1:8080", workers=1, threads=1)
                assert ", Password " not in text and "--password 'PASSWORD'" in text
            (settings.data_dir / CREDENTIALS_FILE).write_text("not json\n")
            assert shown_credentials(settings) is None

            keep_credentials(settings.data_dir, DemoCredentials(PARTNER_CODE, USERNAME, Secret(password)))
            credentials = shown_credentials(settings)
            assert credentials is not None and credentials.password.reveal() == password
            text = banner(settings, bind="127.0.0.1:8080", workers=1, threads=1)
            assert f"  demo partner   PartnerCode DEMO, UserName demo, Password {password}\n" in text
            assert f"--password '{password}'" in text

            # Checking a kept password is no login: more wrong ones than lock an account count nothing.
            keep_credentials(settings.data_dir, others["another database's"])
            for _ in range(settings.lockout_threshold + 1):
                assert shown_credentials(settings) is None
            user = ra.authenticator.authenticate(Credentials(PARTNER_CODE, USERNAME, Secret(password)), channel="cli")
            assert user.partner_code == PARTNER_CODE
        finally:
            ra.close()
    assert password not in caplog.text


def test_the_kept_credentials_are_the_users_alone_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        (tmp_path / (CREDENTIALS_FILE + ".new")).write_text("left over\n")
        os.chmod(tmp_path / (CREDENTIALS_FILE + ".new"), 0o644)
        path = keep_credentials(tmp_path, DemoCredentials(PARTNER_CODE, USERNAME, Secret("a-demo-password-1")))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["password"] == "a-demo-password-1"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == sorted([CREDENTIALS_FILE, CREDENTIALS_FILE + ".new"])


def test_the_kept_credentials_never_follow_a_planted_link(tmp_path: Path) -> None:
    """Links planted where the credentials are written (the staging name an earlier version
    used, the file itself) are never followed: the file they point at keeps what it held."""
    elsewhere = tmp_path / "elsewhere"
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o700)
    targets = {name: elsewhere / name for name in ("staged", "kept")}
    elsewhere.mkdir()
    for target in targets.values():
        target.write_text("theirs\n")
        target.chmod(0o644)
    (data_dir / (CREDENTIALS_FILE + ".new")).symlink_to(targets["staged"])
    (data_dir / CREDENTIALS_FILE).symlink_to(targets["kept"])
    path = keep_credentials(data_dir, DemoCredentials(PARTNER_CODE, USERNAME, Secret("a-demo-password-2")))
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["password"] == "a-demo-password-2"
    for target in targets.values():
        assert target.read_text() == "theirs\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not [entry.name for entry in data_dir.iterdir() if entry.name.startswith(".")]  # nothing staged is left


def test_migrating_says_nothing_of_alembic_at_the_default_level(tmp_path: Path) -> None:
    """Alembic logs a line per plugin as it loads and per migration as it runs, at INFO: not
    when the installation is checked or migrated at the default level (``serve`` checks it with
    logging already set up), yet its logger's level is left as it was."""
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from soap_service.config import load_settings\n"
        "from soap_service.ra.installation import is_initialized, migrate\n"
        "from soap_service.ra.service import RegistrationAuthority\n"
        "ra = RegistrationAuthority.from_settings(load_settings())\n"
        "assert not is_initialized(ra)\n"
        "migrate(ra)\n"
        "assert logging.getLogger('alembic').level == logging.NOTSET\n"
        "logging.getLogger('soap_service').info('migrated')\n"
    )
    environ = {name: value for name, value in os.environ.items() if not name.startswith("SOAP_SERVICE_")}
    environ["SOAP_SERVICE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], text=True, capture_output=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "INFO:soap_service:migrated" in done.stderr  # INFO lines were shown
    assert "alembic" not in done.stderr.lower(), done.stderr
