"""What the PHP and node-soap interop tests share: the orders a client run works on, the
calls it makes (one JSON job), and running the client script."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from api_support import RunningServer
from factory import TestPartner, fresh_key_csr, new_order
from keyfactory import csr_pem, make_csr
from soap_service.ra.service import RegistrationAuthority

INTEROP = Path(__file__).resolve().parent / "interop"
SCRIPT_TIMEOUT = 60
NAMES = ("example.com", "www.example.com")
OPERATIONS = {"Hello", "Reissue", "ValidateOrderParameters", "ParseCSR", "GetOrderByPartnerOrderID"}
HELLO = "bonjour — ünïcödé ✓ <&>"


@dataclass(frozen=True)
class InteropOrders:
    reissued: Any  # an OrderView reissued by the run
    fresh: Any  # an OrderView left with its one certificate
    reused_key: Any  # an OrderView whose reissue reuses its key
    key: ec.EllipticCurvePrivateKey


def make_orders(ra: RegistrationAuthority, partner: TestPartner) -> InteropOrders:
    key = ec.generate_private_key(ec.SECP256R1())
    return InteropOrders(
        reissued=new_order(ra, partner).order,
        fresh=new_order(ra, partner).order,
        reused_key=new_order(ra, partner, csr=csr_pem(make_csr(key, NAMES))).order,
        key=key,
    )


def client_job(server: RunningServer, partner: TestPartner, orders: InteropOrders, **extra: Any) -> dict[str, Any]:
    """The calls every client makes, each named so that its answer can be found in the report."""
    reissued, fresh = orders.reissued.partner_order_id, orders.fresh.partner_order_id
    return {
        "wsdl": server.wsdl_url,
        "location": server.url,
        "partner": {"code": partner.code, "username": partner.username, "password": partner.password},
        **extra,
        "calls": [
            {"name": "hello", "operation": "Hello", "input": HELLO},
            {"name": "reissue", "operation": "Reissue", "order": reissued, "csr": fresh_key_csr(NAMES)},
            {"name": "wrong_password", "operation": "Reissue", "order": reissued, "csr": fresh_key_csr(NAMES),
             "password": "not-the-password"},
            {"name": "outside_csr", "operation": "Reissue", "order": reissued,
             "csr": fresh_key_csr(("example.com", "other.example.org"))},
            {"name": "outside_dns_names", "operation": "Reissue", "order": reissued, "csr": fresh_key_csr(NAMES),
             "dns_names": ["example.com", "other.example.org"]},
            {"name": "history", "operation": "GetOrderByPartnerOrderID", "order": reissued,
             "options": {"ReturnCertificateInfo": True, "ReturnCertificateHistory": True}},
            {"name": "history_one", "operation": "GetOrderByPartnerOrderID", "order": fresh,
             "options": {"ReturnCertificateHistory": True}},
            {"name": "reused_key", "operation": "Reissue", "order": orders.reused_key.partner_order_id,
             "csr": csr_pem(make_csr(orders.key, NAMES, common_name="example.com"))},
            {"name": "validate", "operation": "ValidateOrderParameters", "order": fresh,
             "csr": fresh_key_csr(("example.com",))},
            {"name": "parse", "operation": "ParseCSR",
             "csr": csr_pem(make_csr(ec.generate_private_key(ec.SECP256R1()), NAMES, common_name="example.com"))},
            {"name": "optional_nulls", "operation": "ValidateOrderParameters", "order": fresh,
             "csr": fresh_key_csr(NAMES), "optional_nulls": True},
            {"name": "fault", "operation": "Hello", "input": "x", "soap_action": "Reissue"},
        ],
    }


@dataclass
class ClientRun:
    """One run of a client script: the orders of its job and what the client answered."""

    reissued_order: Any
    fresh_order: Any
    reused_key_order: Any
    report: dict[str, Any]

    def call(self, name: str) -> dict[str, Any]:
        outcome: dict[str, Any] = self.report["calls"][name]
        return outcome

    def result(self, name: str, key: str) -> Any:
        outcome = self.call(name)
        assert outcome["status"] == 200 and "result" in outcome, outcome
        return outcome["result"][key]

    def dates(self, name: str) -> set[str]:
        return set(self.call(name).get("dates", []))


def run_client(command: list[str], job: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Run a client script on ``job`` (JSON on stdin) and return its report (JSON on stdout)."""
    completed = subprocess.run(command, input=json.dumps(job), capture_output=True, text=True,
                               timeout=SCRIPT_TIMEOUT, cwd=cwd)
    assert completed.returncode == 0, f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr}"
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def when(stamp: str) -> datetime:
    """An xs:dateTime as a client gave it back: it must carry its offset."""
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None, stamp
    return parsed


def assert_reissued_with_the_same_key(run: ClientRun) -> None:
    """The reused-key reissue made a new certificate for the order's existing key."""
    from api_support import load_pem_certificate

    certificate = run.result("reused_key", "ReissueResult")["Certificate"]
    assert certificate["SerialNumber"] != run.reused_key_order.certificate.serial
    issued = load_pem_certificate(certificate["ServerCertificate"]).public_key()
    assert issued == load_pem_certificate(run.reused_key_order.certificate.pem).public_key()


def assert_validated_and_parsed(run: ClientRun) -> None:
    """ValidateOrderParameters and ParseCSR answers, with their values typed by the client."""
    validated = run.result("validate", "ValidateOrderParametersResult")
    assert validated["ReturnsCurrentCertificate"] is False  # xs:boolean arrives as a boolean
    assert validated["OrderID"] == run.fresh_order.order_id
    parsed = run.result("parse", "ParseCSRResult")["ParsedCSR"]
    assert (parsed["KeyAlgorithm"], parsed["KeySize"], parsed["Curve"]) == ("EC", 256, "P-256")
    assert type(parsed["KeySize"]) is int
    assert parsed["CommonName"] == "example.com" and "Organization" not in parsed
