"""`soap-service order revoke` and `order cancel` (docs/design.md, "Revocation"), run as an
operator runs them: a real process, JSON on stdout, a refusal on stderr with exit status 1
and nothing changed; `order show` then shows each certificate's revoked_at and
revocation_reason. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from test_cli import PASSWORD, Operator

from conftest import BACKENDS, database_environment
from soap_service.main import parser


@pytest.fixture(scope="module", params=BACKENDS)
def operator(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"cli-revocation-{request.param}")
    for environ in database_environment(request.param, data_dir, "clirevoke"):
        op = Operator(environ, data_dir)
        op.json("init")
        op.json("partner", "create", "--code", "ACME", "--name", "Acme Hosting", "--username", "acme",
                stdin=PASSWORD + "\n")
        op.json("partner", "create", "--code", "OTHER", "--name", "Other Hosting", "--username", "other",
                stdin=PASSWORD + "\n")
        yield op


def create(operator: Operator, poid: str, partner: str = "ACME") -> dict:
    return operator.json("order", "create", "--partner", partner, "--partner-order-id", poid, "--product",
                         "RapidSSL", "--name", "example.com", "--admin-email", "a@example.com", "--tech-email",
                         "t@example.com", "--csr", operator.csr_file(["example.com"]))


def refused(operator: Operator, code: int, *args: str) -> str:
    done = operator.run(*args, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error {code}: "), line
    return line


def test_order_revoke_by_serial_and_show(operator):
    first = create(operator, "R-1")["certificate"]
    second = operator.json("order", "reissue", "--partner", "ACME", "--partner-order-id", "R-1",
                           "--csr", operator.csr_file(["example.com"]))["certificate"]
    revoked = operator.json("order", "revoke", "--partner", "ACME", "--partner-order-id", "R-1",
                            "--serial", first["serial"], "--reason", "superseded")
    assert (revoked["serial"], revoked["revocation_reason"], revoked["also_revoked"]) == (
        first["serial"], "superseded", [])
    assert datetime.fromisoformat(revoked["revoked_at"].replace("Z", "+00:00")).tzinfo is not None
    shown = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "R-1")
    old, new = shown["certificates"]
    assert (old["status"], old["revoked_at"], old["revocation_reason"]) == (
        "revoked", revoked["revoked_at"], "superseded")
    assert new["status"] == "valid" and "revoked_at" not in new and new["serial"] == second["serial"]
    # the current one: reissue refused afterwards
    current = operator.json("order", "revoke", "--partner", "ACME", "--partner-order-id", "R-1",
                            "--reason", "cessationOfOperation")
    assert current["serial"] == second["serial"]
    refused(operator, -4011, "order", "reissue", "--partner", "ACME", "--partner-order-id", "R-1",
            "--csr", operator.csr_file(["example.com"]))


def test_order_revoke_refusals_exit_1_and_change_nothing(operator):
    create(operator, "R-2")
    create(operator, "R-3", partner="OTHER")
    before = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "R-2")
    base = ["order", "revoke", "--partner", "ACME", "--partner-order-id", "R-2"]
    assert "RevokeReason" in refused(operator, -2019, *base, "--reason", "certificateHold")
    refused(operator, -2019, *base, "--serial", "not-hex", "--reason", "superseded")
    refused(operator, -4003, *base, "--serial", "abc", "--reason", "superseded")
    refused(operator, -4003, "order", "revoke", "--partner", "ACME", "--partner-order-id", "R-3",
            "--reason", "superseded")  # another partner's order
    assert operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "R-2") == before
    operator.json(*base, "--reason", "unspecified")
    refused(operator, -4014, *base, "--reason", "unspecified")


def test_order_cancel(operator):
    created = create(operator, "R-4")
    cancelled = operator.json("order", "cancel", "--partner", "ACME", "--partner-order-id", "R-4")
    assert (cancelled["order_id"], cancelled["status"], cancelled["revoked"]) == (
        created["order_id"], "CANCELLED", [created["certificate"]["serial"]])
    shown = operator.json("order", "show", "--partner", "ACME", "--partner-order-id", "R-4")
    assert shown["status"] == "CANCELLED"
    assert shown["certificates"][0]["revocation_reason"] == "cessationOfOperation"
    refused(operator, -4012, "order", "cancel", "--partner", "ACME", "--partner-order-id", "R-4")
    refused(operator, -4012, "order", "reissue", "--partner", "ACME", "--partner-order-id", "R-4",
            "--csr", operator.csr_file(["example.com"]))
    refused(operator, -4003, "order", "cancel", "--partner", "OTHER", "--partner-order-id", "R-4")


def test_revoke_and_cancel_parse_as_their_own_commands():
    revoke = parser().parse_args(["order", "revoke", "--partner", "A", "--partner-order-id", "1",
                                  "--reason", "keyCompromise"])
    cancel = parser().parse_args(["order", "cancel", "--partner", "A", "--partner-order-id", "1"])
    assert revoke.handler.args[0] == "order revoke" and revoke.serial is None
    assert cancel.handler.args[0] == "order cancel"
