"""The Dockerfile, its entry point and docker-compose.yml, checked against the project (issue 11;
docs/deployment.md, "Docker"), since no Docker engine runs where the tests do.

Every file the image copies exists and is in the build context; the entry point is executable and
runs only real ``soap-service`` commands (parsed by the command's own parser); the HEALTHCHECK asks
a path the WSGI application serves, on the port the server binds and the image exposes; the
server runs as a user that is not root; the compose file is YAML whose settings are ones
``config.load_settings`` reads. And the entry point's own logic runs here, outside Docker, twice on
the same data directory and database: the second run changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select

from conftest import BACKENDS, database_environment
from soap_service.config import PREFIX, load_settings
from soap_service.main import parser
from soap_service.storage.models import Base

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(part, str) for part in value)
        return value


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    found: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def of(keyword: str) -> list[Instruction]:
    return [i for i in instructions() if i.keyword == keyword]


def copy_sources_and_destination(instruction: Instruction) -> tuple[list[str], str, dict[str, str]]:
    words = shlex.split(instruction.arguments)
    flags = dict(word[2:].split("=", 1) for word in words if word.startswith("--"))
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1], paths[-1], flags


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in of("ENV"):
        for word in shlex.split(instruction.arguments):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def entrypoint_script() -> Path:
    """The file the image's ENTRYPOINT runs: the COPY that puts it where the ENTRYPOINT names it."""
    (entrypoint,) = of("ENTRYPOINT")
    command = entrypoint.exec_form()
    assert command, "ENTRYPOINT in exec form, so that the server gets the signals"
    for copy in of("COPY"):
        sources, destination, _ = copy_sources_and_destination(copy)
        if Path(destination).name == Path(command[0]).name and len(sources) == 1:
            return ROOT / sources[0]
    raise AssertionError(f"no COPY puts {command[0]} into the image")


def settings_read() -> set[str]:
    """Every environment variable ``load_settings`` reads: it is run with a mapping that records them."""

    class Recording(dict[str, str]):
        asked: set[str] = set()

        def get(self, key: str, default: Any = None) -> Any:
            self.asked.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            self.asked.add(key)
            return super().__getitem__(key)

    recording = Recording()
    load_settings(recording)
    return set(recording.asked)


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


# ------------------------------------------------------------------------------ the Dockerfile


def test_the_base_image_is_a_slim_python_the_project_supports():
    (base,) = of("FROM")
    assert re.fullmatch(r"python:3\.1[12]-slim", base.arguments), base.arguments


def test_every_copied_file_exists_and_is_in_the_build_context():
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore starts by leaving everything out, then lets in what is copied"
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = of("COPY")
    assert copies
    for copy in copies:
        sources, _, flags = copy_sources_and_destination(copy)
        assert "from" not in flags
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert Path(source).parts[0] in let_in, f"COPY {source}: .dockerignore leaves it out of the context"
    # the Alembic migrations go where soap_service.storage.schema looks for them, beside the package
    from soap_service.storage import schema

    assert schema.MIGRATIONS == Path(schema.__file__).resolve().parents[2] / "migrations"
    assert "migrations" in let_in
    run = " ".join(i.arguments for i in of("RUN"))
    assert "pip install ." in run and 'cp -r migrations "$(python -c' in run and '["purelib"])' in run


def test_the_server_runs_as_a_user_that_is_not_root():
    users = of("USER")
    assert users, "no USER: the server would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in {"root", "0"}
    created = " ".join(i.arguments for i in of("RUN"))
    assert re.search(rf"useradd\b.*\b{re.escape(user)}\b", created), f"the image never creates the user {user}"
    assert re.search(r"--uid (\d+)", created) and re.search(r"--uid (\d+)", created)[1] != "0"
    # the USER comes before the entry point, and after every COPY/RUN that needs root
    keywords = [i.keyword for i in instructions()]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert keywords.index("ENTRYPOINT") > last_user
    assert all(k != "COPY" for k in keywords[last_user:])


def test_the_data_volume_is_the_data_directory_the_settings_read():
    env = dockerfile_env()
    data_dir = env[PREFIX + "DATA_DIR"]
    (volume,) = of("VOLUME")
    assert volume.exec_form() == [data_dir]
    assert f"install -d -o soap -g soap -m 0700 {data_dir}" in " ".join(i.arguments for i in of("RUN"))
    read = settings_read()
    assert {name for name in env if name.startswith(PREFIX)} <= read


def test_the_entry_point_is_executable_and_runs_only_real_commands():
    script = entrypoint_script()
    assert script.is_file()
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    (copy,) = [c for c in of("COPY") if copy_sources_and_destination(c)[0] == [str(script.relative_to(ROOT))]]
    assert copy_sources_and_destination(copy)[2].get("chmod") == "0755"
    assert script.read_text().startswith("#!/bin/sh\n")
    for argv in entrypoint_commands():
        parser().parse_args(argv)  # argparse exits (SystemExit 2) on an unknown command or option


def entrypoint_commands() -> list[list[str]]:
    """Each ``soap-service`` command line of the entry point, its variables at their defaults and the
    image's CMD appended to the server's."""
    (cmd,) = of("CMD")
    extra = cmd.exec_form()
    assert extra is not None
    commands = []
    for line in entrypoint_script().read_text().splitlines():
        line = line.strip()
        if line.startswith("set -- "):
            line = line[len("set -- "):].replace('"$@"', " ".join(extra))
        if not line.startswith("soap-service "):
            continue
        line = re.sub(r'"\$\{[A-Z_]+:-([^}]*)\}"', r"\1", line)
        assert "$" not in line, f"an unexpanded variable in {line!r}"
        commands.append(shlex.split(line)[1:])
    assert [c[:2] for c in commands] == [["ca", "finish-rotation"], ["init"], ["serve", "--bind"]], commands
    return commands


def bind_port() -> int:
    serve = entrypoint_commands()[-1]
    bind = serve[serve.index("--bind") + 1]
    host, _, port = bind.rpartition(":")
    assert host == "0.0.0.0", "the server listens on every interface of the container"
    return int(port)


def test_the_exposed_port_is_the_one_the_server_binds():
    (expose,) = of("EXPOSE")
    assert [int(port.split("/")[0]) for port in expose.arguments.split()] == [bind_port()] == [8080]


def healthcheck_url() -> tuple[int, str]:
    (check,) = of("HEALTHCHECK")
    command = check.arguments.split(" CMD ", 1)[1]
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "slim images have no curl: the check is Python's urllib"
    compile(argv[2], "<healthcheck>", "exec")
    found = re.search(r"'http://127\.0\.0\.1:(\d+)(/[a-z]*)'", argv[2])
    assert found, argv[2]
    return int(found[1]), found[2]


def test_the_healthcheck_asks_the_servers_port():
    port, path = healthcheck_url()
    assert port == bind_port()
    assert path == "/healthz"


def test_the_healthcheck_path_is_served_by_the_wsgi_application(installation):
    from soap_service import wsgi

    _, path = healthcheck_url()
    application = wsgi.create_application(installation.settings)
    answers: list[str] = []
    try:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "8080", "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http",
                   "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
        body = b"".join(application(environ, lambda status, headers, exc_info=None: answers.append(status)))
    finally:
        application.ra.close()
    assert answers and answers[0].startswith("200"), (answers, body[:200])


# ------------------------------------------------------------------------------ docker-compose.yml


def test_the_compose_file_runs_postgresql_15_with_a_health_check():
    db = compose()["services"]["db"]
    assert db["image"] == "postgres:15"
    test = db["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and test[1].startswith("pg_isready ")


def test_the_service_waits_for_a_healthy_database_and_uses_only_real_settings():
    document = compose()
    service = document["services"]["soap-service"]
    assert service["depends_on"] == {"db": {"condition": "service_healthy"}}
    environment = service["environment"]
    assert isinstance(environment, dict)
    names = set(environment)
    assert names <= settings_read(), names - settings_read()
    assert environment[PREFIX + "DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in environment[PREFIX + "DATABASE_URL"]
    # the passphrase is a Docker secret, read where the secret is mounted
    secret = environment[PREFIX + "CA_PASSPHRASE_FILE"]
    assert secret.startswith("/run/secrets/")
    assert Path(secret).name in service["secrets"] and Path(secret).name in document["secrets"]
    assert PREFIX + "CA_PASSPHRASE" not in environment
    # the data volume is mounted on the data directory
    data_dir = environment[PREFIX + "DATA_DIR"]
    assert data_dir == dockerfile_env()[PREFIX + "DATA_DIR"]
    volumes = {mount.split(":")[1]: mount.split(":")[0] for mount in service["volumes"]}
    assert volumes[data_dir] in document["volumes"]
    assert service["ports"] == [f"127.0.0.1:{bind_port()}:{bind_port()}"]  # loopback only: a TLS proxy publishes it


# ------------------------------------------------------------------------------ the entry point, run


def database_rows(url: str) -> dict[str, list[str]]:
    """Every table's rows, sorted, as text: what two runs must leave the same."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {table.name: sorted(repr(tuple(row)) for row in connection.execute(select(table)))
                    for table in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    for environ in database_environment(request.param, tmp_path / "data", "entrypoint"):
        environ.pop(PREFIX + "CA_PASSPHRASE")  # the generated file of the data directory, as in the image
        environ[PREFIX + "CA_KEY_ALGORITHM"] = "ecdsa-p256"
        yield environ


@pytest.mark.slow
def test_the_entry_point_run_twice_sets_up_once_and_then_changes_nothing(empty_database):
    environ = {**os.environ, **empty_database, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
               "SOAP_SERVICE_ENTRYPOINT_DRY_RUN": "1"}
    environ.pop("SOAP_SERVICE_BIND", None)
    script = entrypoint_script()
    (cmd,) = of("CMD")
    arguments = cmd.exec_form() or []

    def run() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(script), *arguments], env=environ, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    first = run()
    assert '"created": true' in first.stdout
    assert first.stdout.rstrip().endswith(
        "exec soap-service serve --bind 0.0.0.0:8080 --quiet " + " ".join(arguments))
    url = empty_database[PREFIX + "DATABASE_URL"]
    passphrase = Path(empty_database[PREFIX + "DATA_DIR"]) / "ca-passphrase"
    rows, secret = database_rows(url), passphrase.read_bytes()
    assert rows["certificate_authorities"] and rows["audit_events"]

    second = run()
    assert '"created": false' in second.stdout and '"outcome": "none"' in second.stdout
    assert database_rows(url) == rows
    assert passphrase.read_bytes() == secret


@pytest.mark.slow
def test_an_installed_copy_of_the_package_finds_the_migrations_the_image_puts_beside_it(tmp_path):
    """``pip install .`` copies the package into site-packages and not ``migrations/``, which
    ``storage.schema`` looks for beside the package: without the Dockerfile's copy ``init`` fails,
    with it ``init`` migrates. The package is copied as the install leaves it (outside the repository)."""
    import shutil

    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "soap_service", site / "soap_service",
                    ignore=shutil.ignore_patterns("__pycache__"))
    environ = {**os.environ, "PYTHONPATH": str(site), PREFIX + "DATA_DIR": str(tmp_path / "data"),
               PREFIX + "CA_KEY_ALGORITHM": "ecdsa-p256"}
    for name in ("DATABASE_URL", "CA_PASSPHRASE", "CA_PASSPHRASE_FILE"):
        environ.pop(PREFIX + name, None)
    init = [sys.executable, "-c", "import sys, soap_service; assert soap_service.__file__.startswith(sys.argv[1]); "
            "from soap_service.main import main; sys.exit(main(['init']))", str(site)]

    without = subprocess.run(init, env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert without.returncode == 3 and "migrations" in without.stderr

    shutil.copytree(ROOT / "migrations", site / "migrations")  # the Dockerfile's `cp -r migrations <purelib>`
    done = subprocess.run(init, env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"created": true' in done.stdout
