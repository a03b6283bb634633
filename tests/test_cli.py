"""The operator's commands, run as an operator runs them: a real process, its
JSON on stdout, its refusals on stderr with exit status 1, its incidents with exit
status 3; and the one parser of ``soap-service``, whose every command is listed and
whose unknown commands are usage errors (exit status 2)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import create_engine, text

from conftest import BACKENDS, database_environment
from factory import fresh_key_csr
from soap_service.main import parser

PASSWORD = "operator-chosen-password-1"


class Operator:
    def __init__(self, environ: dict[str, str], workdir: Path) -> None:
        self.environ = {**os.environ, **environ, "SOAP_SERVICE_LOG_LEVEL": "DEBUG"}
        self.workdir = workdir
        self.logs: list[str] = []

    def run(self, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "soap_service.main", *args], input=stdin, text=True,
                              capture_output=True, env=self.environ, cwd=self.workdir, timeout=120)
        self.logs.append(done.stderr)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def json(self, *args: str, stdin: str = "") -> dict:
        return json.loads(self.run(*args, stdin=stdin).stdout)

    def csr_file(self, names: list[str]) -> str:
        path = self.workdir / f"csr-{len(list(self.workdir.glob('csr-*')))}.pem"
        path.write_text(fresh_key_csr(names))
        return str(path)


@pytest.fixture(scope="module", params=BACKENDS)
def operator(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"cli-{request.param}")
    for environ in database_environment(request.param, data_dir, "cli"):
        op = Operator(environ, data_dir)
        init = op.json("init")
        assert init["created"] is True
        assert {a["name"] for a in init["authorities"]} == {
            "ROOT", "SYMANTEC-TLS", "THAWTE-TLS", "GEOTRUST-TLS", "RAPIDSSL-TLS", "THAWTE-CS", "SYMANTEC-CS"}
        assert op.json("init")["created"] is False  # once only
        created = op.json("partner", "create", "--code", "ACME", "--name", "Acme Hosting", "--username", "acme",
                          stdin=PASSWORD + "\n")
        assert created == {"code": "ACME", "name": "Acme Hosting", "username": "acme"}
        yield op


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_order_create_show_and_reissue(operator):
    created = operator.json(
        "order", "create", "--partner", "ACME", "--partner-order-id", "A-1", "--product", "TrueBizID",
        "--name", "example.com", "--name", "www.example.com", "--organization", "Acme Inc", "--country", "US",
        "--state", "Texas", "--locality", "Austin", "--admin-email", "admin@example.com",
        "--tech-email", "tech@example.com", "--csr", operator.csr_file(["example.com", "www.example.com"]))
    for key in ("order_id", "partner_order_id", "brand", "product", "status", "names", "certificate", "warnings"):
        assert key in created
    assert (created["brand"], created["product"], created["status"]) == ("GEOTRUST", "TrueBizID", "COMPLETED")
    first = created["certificate"]
    assert first["status"] == "valid" and first["serial"] == first["serial"].lower()
    leaf = x509.load_pem_x509_certificate(first["pem"].encode())
    assert format(leaf.serial_number, "x") == first["serial"]
    assert iso(first["not_before"]) == leaf.not_valid_before_utc

    reissued = operator.json("order", "reissue", "--partner", "ACME", "--partner-order-id", "A-1",
                             "--csr", operator.csr_file(["www.example.com"]))
    assert reissued["certificate"]["serial"] != first["serial"]
    assert reissued["warnings"] == []

    shown = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "A-1")
    history = shown["certificates"]
    assert [c["serial"] for c in history] == [first["serial"], reissued["certificate"]["serial"]]
    assert history[1]["replaces"] == first["serial"] and history[0]["replaces"] is None
    assert [c["status"] for c in history] == ["valid", "valid"]
    assert shown["certificate"]["serial"] == reissued["certificate"]["serial"]


def test_reissue_with_chosen_names(operator):
    operator.json("order", "create", "--partner", "ACME", "--partner-order-id", "A-2", "--product", "RapidSSL",
                  "--name", "shop.example.com", "--name", "www.shop.example.com", "--admin-email",
                  "a@example.com", "--tech-email", "t@example.com", "--csr", operator.csr_file(["shop.example.com"]))
    reissued = operator.json("order", "reissue", "--partner", "ACME", "--partner-order-id", "A-2", "--csr",
                             operator.csr_file([]), "--name", "www.shop.example.com")
    assert reissued["certificate"]["names"] == ["www.shop.example.com"]


def test_a_refusal_exits_1_with_its_code_and_changes_nothing(operator):
    operator.json("order", "create", "--partner", "ACME", "--partner-order-id", "A-3", "--product", "SSL123",
                  "--name", "blog.example.com", "--admin-email", "a@example.com", "--tech-email", "t@example.com",
                  "--csr", operator.csr_file(["blog.example.com"]))
    before = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "A-3")
    refused = operator.run("order", "reissue", "--partner", "ACME", "--partner-order-id", "A-3", "--csr",
                           operator.csr_file(["evil.example.org"]), check=False)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.strip().splitlines()[-1].startswith("error -4010: ")
    missing = operator.run("order", "show", "--partner", "ACME", "--partner-order-id", "NOPE", check=False)
    assert missing.returncode == 1 and "error -4003: " in missing.stderr
    assert operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "A-3") == before


def test_order_create_refuses_bad_input_and_creates_nothing(operator):
    base = ["order", "create", "--partner", "ACME", "--admin-email", "a@example.com", "--tech-email",
            "t@example.com"]
    operator.json(*base, "--partner-order-id", "DUP-1", "--product", "RapidSSL", "--name", "example.com",
                  "--csr", operator.csr_file(["example.com"]))
    cases = [
        (["--partner-order-id", "B-1", "--product", "NoSuchProduct", "--name", "example.com"], "-2019"),
        (["--partner-order-id", "B-2", "--product", "RapidSSL", "--name", "*.example.com"], "-2019"),
        (["--partner-order-id", "B-3", "--product", "TrueBizID", "--name", "example.com"], "-2019"),
        (["--partner-order-id", "DUP-1", "--product", "RapidSSL", "--name", "example.com"], "-2019"),
        (["--partner-order-id", "B-4", "--product", "RapidSSL", "--name", "other.example.org"], "-4010"),
    ]
    for extra, code in cases:
        csr = operator.csr_file(["example.com"])
        done = operator.run(*base, *extra, "--csr", csr, check=False)
        assert done.returncode == 1, extra
        assert f"error {code}: " in done.stderr, (extra, done.stderr)
    for poid in ("B-1", "B-2", "B-3", "B-4"):
        shown = operator.run("order", "show", "--partner", "ACME", "--partner-order-id", poid, check=False)
        assert shown.returncode == 1 and "error -4003: " in shown.stderr


def test_partner_set_password_keeps_the_digest_copy_only_with_ws_digest(operator):
    """issue 10: ``--ws-digest`` keeps the password encrypted for WS-Security PasswordDigest; without
    it the copy is removed; the password is read on stdin and reaches neither output nor log."""
    engine = create_engine(operator.environ["SOAP_SERVICE_DATABASE_URL"])

    def copy() -> str | None:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT u.ws_password_copy FROM api_users u JOIN partners p ON p.id = u.partner_id "
                "WHERE p.code = 'ACME' AND u.username = 'acme'"
            )).scalar_one()

    try:
        new = "a-digest-enabled-password-2"
        done = operator.json("partner", "set-password", "--code", "ACME", "--username", "acme", "--ws-digest",
                             stdin=new + "\n")
        assert done == {"code": "ACME", "username": "acme", "ws_digest": True}
        kept = copy()
        assert kept is not None and kept.startswith("v1:") and new not in kept
        done = operator.json("partner", "set-password", "--code", "ACME", "--username", "acme",
                             stdin=PASSWORD + "\n")
        assert done == {"code": "ACME", "username": "acme", "ws_digest": False}
        assert copy() is None
        refused = operator.run("partner", "set-password", "--code", "ACME", "--username", "nobody", "--ws-digest",
                               stdin=new + "\n", check=False)
        assert refused.returncode == 1 and "error -2019: partner ACME has no API user nobody" in refused.stderr
        assert not any(new in log for log in operator.logs)
    finally:
        engine.dispose()


def test_ev_and_code_signing_orders(operator):
    ev = operator.json(
        "order", "create", "--partner", "ACME", "--partner-order-id", "EV-1", "--product", "SecureSiteEV",
        "--name", "bank.example.com", "--organization", "Acme Bank", "--country", "US", "--state", "Delaware",
        "--locality", "Wilmington", "--business-category", "Private Organization", "--jurisdiction-country", "US",
        "--registration-number", "5551234", "--admin-email", "a@example.com", "--tech-email", "t@example.com",
        "--csr", operator.csr_file(["bank.example.com"]))
    subject = x509.load_pem_x509_certificate(ev["certificate"]["pem"].encode()).subject
    assert subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == "5551234"
    cs = operator.json(
        "order", "create", "--partner", "ACME", "--partner-order-id", "CS-1", "--product", "ThawteCodeSigning",
        "--organization", "Acme Software", "--country", "US", "--state", "Texas", "--locality", "Austin",
        "--admin-email", "a@example.com", "--tech-email", "t@example.com", "--csr", operator.csr_file([]))
    assert cs["names"] == [] and cs["certificate"]["issuer"] == "THAWTE-CS"


def test_no_secret_reaches_the_logs(operator):
    logs = "\n".join(operator.logs)
    assert "soap_service" in logs  # the commands did log (at DEBUG): the check below has something to read
    assert PASSWORD not in logs
    assert operator.environ["SOAP_SERVICE_CA_PASSPHRASE"] not in logs
    assert "PRIVATE KEY" not in logs


def test_demo_is_idempotent_and_shows_its_kept_password_each_time(tmp_path):
    """The password is generated once, kept in the data directory (0600) and shown by every run
    (tests/test_demo.py: and by every banner); it never reaches the logs, even at DEBUG."""
    for environ in database_environment("sqlite", tmp_path, "demo"):
        op = Operator(environ, tmp_path)
        first = op.run("demo").stdout
        said = [line for line in first.splitlines() if line.startswith("partner DEMO / user demo / password ")]
        assert len(said) == 1 and "(created; kept in " in said[0]
        password = said[0].split()[7]
        kept = tmp_path / "demo-credentials.json"
        assert oct(kept.stat().st_mode & 0o777) == oct(0o600)
        second = op.run("demo").stdout
        assert f"partner DEMO / user demo / password {password}  (already present; kept in {kept})" in second
        assert len(first.splitlines()) == len(second.splitlines()) == 3
        shown = op.json("order", "show", "--partner", "DEMO", "--partner-order-id", "DEMO-RapidSSL")
        assert len(shown["certificates"]) == 1
        assert password not in "\n".join(op.logs)


# ------------------------------------------------------------------- incidents (docs/design.md, "Error model")

FAILING_NAME = "fail-injection.example.com"
INCIDENT_LINE = re.compile(r"error -9000: internal error, incident (INC-[0-9A-F]{12}) \(details in the log above\)")


@contextmanager
def certificate_insert_failure(url: str) -> Iterator[None]:
    """A real database failure after signing: the certificate row naming FAILING_NAME cannot be written."""
    backend = url.split(":", 1)[0].split("+", 1)[0]
    install, remove = {
        "sqlite": (
            [f"CREATE TRIGGER cli_inject_failure BEFORE INSERT ON certificates WHEN instr(NEW.names, "
             f"'{FAILING_NAME}') > 0 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
            ["DROP TRIGGER cli_inject_failure"],
        ),
        "postgresql": (
            ["CREATE FUNCTION cli_inject_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             f"IF strpos(NEW.names, '{FAILING_NAME}') > 0 THEN RAISE EXCEPTION 'injected failure'; END IF; "
             "RETURN NEW; END $$",
             "CREATE TRIGGER cli_inject_failure BEFORE INSERT ON certificates FOR EACH ROW "
             "EXECUTE FUNCTION cli_inject_failure()"],
            ["DROP TRIGGER cli_inject_failure ON certificates", "DROP FUNCTION cli_inject_failure()"],
        ),
    }[backend]
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in install:
                connection.exec_driver_sql(statement)
        yield
        with engine.begin() as connection:
            for statement in remove:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_an_incident_in_a_use_case_exits_3_with_the_incident_the_log_and_the_audit_hold(operator):
    """The reissue's own incident reaches the operator as it is: one ID, in the log with its
    traceback, in the audit trail, and in the last line; no second incident at the edge."""
    url = operator.environ["SOAP_SERVICE_DATABASE_URL"]
    operator.json("order", "create", "--partner", "ACME", "--partner-order-id", "INC-1", "--product", "RapidSSL",
                  "--name", "example.com", "--name", FAILING_NAME, "--admin-email", "a@example.com",
                  "--tech-email", "t@example.com", "--csr", operator.csr_file(["example.com"]))
    before = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "INC-1")
    with certificate_insert_failure(url):
        failed = operator.run("order", "reissue", "--partner", "ACME", "--partner-order-id", "INC-1",
                              "--csr", operator.csr_file([FAILING_NAME]), check=False)
    assert failed.returncode == 3, failed.stderr
    assert failed.stdout == ""
    last = failed.stderr.strip().splitlines()[-1]
    matched = INCIDENT_LINE.fullmatch(last)
    assert matched, last
    incident = matched.group(1)
    log = failed.stderr[: failed.stderr.rindex(last)]
    assert set(re.findall(r"INC-[0-9A-F]{12}", log)) == {incident}  # opened once, by the use case
    assert f"reissue failed, incident {incident}" in log and "Traceback" in log
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            events = connection.execute(
                text("SELECT action, outcome, code, channel FROM audit_events WHERE incident_id = :incident"),
                {"incident": incident},
            ).all()
    finally:
        engine.dispose()
    assert [tuple(event) for event in events] == [("reissue", "failed", -9000, "cli")]
    assert operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "INC-1") == before


def test_a_failure_outside_a_use_case_opens_an_incident_at_the_edge(tmp_path):
    """A database nobody listens on: the command opens the incident itself, says so, exits 3;
    the URL's password reaches neither the log nor the message."""
    environ = {**os.environ, "SOAP_SERVICE_DATA_DIR": str(tmp_path),
               "SOAP_SERVICE_DATABASE_URL": "postgresql+psycopg://operator:s3cret-db-password@127.0.0.1:1/nowhere"}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "init"], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    matched = INCIDENT_LINE.fullmatch(last)
    assert matched, last
    log = done.stderr[: done.stderr.rindex(last)]
    assert f"soap-service init failed, incident {matched.group(1)}" in log and "OperationalError" in log
    assert "s3cret-db-password" not in done.stderr


# ------------------------------------------------------------------------------- one parser


COMMANDS = ("init", "demo", "partner", "order", "ca", "crl", "audit", "serve", "wsdl")


def test_help_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^ {4}(\w+) +\S", done.stdout, flags=re.MULTILINE)
    assert tuple(listed) == COMMANDS, done.stdout
    assert "{" + ",".join(COMMANDS) + "}" in done.stdout


def test_every_command_has_its_own_handler():
    handlers = set()
    for argv in (["init"], ["demo"], ["partner", "create", "--code", "A", "--name", "A", "--username", "a"],
                 ["partner", "set-password", "--code", "A", "--username", "a"],
                 ["order", "create", "--partner", "A", "--partner-order-id", "1", "--product", "RapidSSL",
                  "--admin-email", "a@example.com", "--tech-email", "t@example.com", "--csr", "x.pem"],
                 ["order", "show", "--partner", "A", "--partner-order-id", "1"],
                 ["order", "reissue", "--partner", "A", "--partner-order-id", "1", "--csr", "x.pem"],
                 ["crl", "--brand", "thawte"], ["audit", "verify"], ["audit", "head"], ["audit", "tail"],
                 ["serve"], ["wsdl"]):
        args = parser().parse_args(argv)
        handlers.add(getattr(args.handler, "args", (args.handler,)))  # cli's handlers are partials of one runner
    assert len(handlers) == 13


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "argument command: invalid choice: 'bogus'"),
        ([], "the following arguments are required: command"),
        (["order"], "the following arguments are required: action"),
        (["order", "delete"], "argument action: invalid choice: 'delete'"),
        (["partner", "show"], "argument action: invalid choice: 'show'"),
        (["wsdl", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_an_unknown_command_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser().parse_args(argv)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: soap-service") and message in captured.err


def test_an_unknown_command_exits_2_from_the_real_command():
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "serve-all"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "invalid choice: 'serve-all'" in done.stderr and "Traceback" not in done.stderr
