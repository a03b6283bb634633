"""The operator's commands, run as an operator runs them: a real process, its
JSON on stdout, its refusals on stderr with exit status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509

from conftest import BACKENDS, database_environment
from factory import fresh_key_csr

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
