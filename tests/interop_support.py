"""The interop scenario's material: the SOAP clients of other languages it runs (PHP's
SoapClient with and without SOAP_SINGLE_ELEMENT_ARRAYS, node-soap), whether each is installed
here, what each does with a list or a null, the orders a run works on, the calls it makes (one
JSON job) and running a client's script on it. The assertions are in ``tests/test_interop.py``."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from api_support import RunningServer
from factory import TestPartner, fresh_key_csr, new_order
from keyfactory import csr_pem, make_csr
from soap_service.ra.service import RegistrationAuthority

INTEROP = Path(__file__).resolve().parent / "interop"
SCRIPT_TIMEOUT = 60
NAMES = ("example.com", "www.example.com")
OPERATIONS = {
    "Hello", "Reissue", "ValidateOrderParameters", "ParseCSR", "GetOrderByPartnerOrderID",
    "Revoke", "ModifyOrder", "GetModifiedOrders",
}
HELLO = "bonjour — ünïcödé ✓ <&>"


def _php_missing() -> str | None:
    """Why PHP's SoapClient cannot run here, or None."""
    php = shutil.which("php")
    if php is None:
        return "php is not installed (apt-get install php-cli php-soap)"
    try:
        listed = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return f"`php -m` failed: {error}"
    if "soap" not in listed.lower().split():
        return "PHP's soap extension is not loaded (apt-get install php-soap)"
    return None


def _node_missing() -> str | None:
    """Why node-soap cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (INTEROP / "node_modules" / "soap" / "package.json").is_file():
        return "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`"
    return None


@dataclass(frozen=True)
class InteropClient:
    """A SOAP client of another language as an integrator uses it, and what it does with our
    messages (tests/interop/README.md, "What the clients do with our answers")."""

    name: str
    family: Literal["php", "node"]
    command: tuple[str, ...]
    features: tuple[str, ...]
    """PHP SoapClient features, by constant name (PHP only)."""
    one_item_list_is_array: bool
    """A list of one item arrives as an array of one; otherwise as the bare item."""
    empty_list: Any
    """What an empty list element (``<SubjectAttributes/>``) arrives as."""
    reports_dates: bool
    """xs:dateTime arrives as a date object, whose paths the report lists (node: ``Date``); else a string."""
    milliseconds_only: bool
    """Its dates keep milliseconds: a TermStart's microseconds are cut."""
    sends_nil_for_null: bool
    """An optional element given as null is sent as ``xsi:nil="true"`` (else left out)."""
    missing: str | None
    """Why it cannot run here (then the scenario skips it, saying so), or None."""


_PHP_MISSING, _NODE_MISSING = _php_missing(), _node_missing()

CLIENTS = (
    InteropClient(
        name="php-single-element-arrays", family="php", command=("php", str(INTEROP / "php_client.php")),
        features=("SOAP_SINGLE_ELEMENT_ARRAYS",), one_item_list_is_array=True, empty_list={},
        reports_dates=False, milliseconds_only=False, sends_nil_for_null=False, missing=_PHP_MISSING,
    ),
    InteropClient(
        name="php-default-features", family="php", command=("php", str(INTEROP / "php_client.php")),
        features=(), one_item_list_is_array=False, empty_list={},
        reports_dates=False, milliseconds_only=False, sends_nil_for_null=False, missing=_PHP_MISSING,
    ),
    InteropClient(
        name="node-soap", family="node", command=("node", str(INTEROP / "node_client.js")),
        features=(), one_item_list_is_array=True, empty_list=None,
        reports_dates=True, milliseconds_only=True, sends_nil_for_null=True, missing=_NODE_MISSING,
    ),
)


@dataclass(frozen=True)
class InteropOrders:
    reissued: Any  # an OrderView reissued by the run
    fresh: Any  # an OrderView left with its one certificate
    reused_key: Any  # an OrderView whose reissue reuses its key
    key: ec.EllipticCurvePrivateKey
    revoked_by_serial: Any  # an OrderView whose certificate the run revokes by SerialNumber
    revoked_by_pem: Any  # an OrderView whose certificate the run revokes by its PEM alone
    since: datetime  # before the first of them was made


def make_orders(ra: RegistrationAuthority, partner: TestPartner) -> InteropOrders:
    key = ec.generate_private_key(ec.SECP256R1())
    since = datetime.now(UTC) - timedelta(seconds=1)
    return InteropOrders(
        reissued=new_order(ra, partner).order,
        fresh=new_order(ra, partner).order,
        reused_key=new_order(ra, partner, csr=csr_pem(make_csr(key, NAMES))).order,
        key=key,
        revoked_by_serial=new_order(ra, partner).order,
        revoked_by_pem=new_order(ra, partner).order,
        since=since,
    )


def client_job(server: RunningServer, partner: TestPartner, orders: InteropOrders,
               client: InteropClient) -> dict[str, Any]:
    """The calls every client makes, each named so that its answer can be found in the report."""
    reissued, fresh = orders.reissued.partner_order_id, orders.fresh.partner_order_id
    return {
        "wsdl": server.wsdl_url,
        "location": server.url,
        "partner": {"code": partner.code, "username": partner.username, "password": partner.password},
        **({"features": list(client.features)} if client.family == "php" else {}),
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
            {"name": "revoke", "operation": "Revoke", "order": orders.revoked_by_serial.partner_order_id,
             "serial": orders.revoked_by_serial.certificate.serial, "reason": "superseded"},
            {"name": "revoke_again", "operation": "Revoke", "order": orders.revoked_by_serial.partner_order_id,
             "serial": orders.revoked_by_serial.certificate.serial, "reason": "superseded"},
            {"name": "revoke_by_pem", "operation": "Revoke", "certificate": orders.revoked_by_pem.certificate.pem,
             "reason": "cessationOfOperation"},
            {"name": "modified", "operation": "GetModifiedOrders", "from": orders.since.isoformat(),
             "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "page_size": 500},
            *([{"name": "modified_as_date", "operation": "GetModifiedOrders", "from": orders.since.isoformat(),
                "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "as_date": True}]
              if client.family == "node" else []),
        ],
    }


@dataclass
class ClientRun:
    """One run of a client script: the client, the orders of its job and what the client answered."""

    client: InteropClient
    reissued_order: Any
    fresh_order: Any
    reused_key_order: Any
    orders: InteropOrders
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


def run_client(client: InteropClient, server: RunningServer, partner: TestPartner,
               orders: InteropOrders) -> ClientRun:
    """Run the client's script on the job (JSON on stdin), with its report (JSON on stdout)."""
    job = client_job(server, partner, orders, client)
    completed = subprocess.run(client.command, input=json.dumps(job), capture_output=True, text=True,
                               timeout=SCRIPT_TIMEOUT, cwd=INTEROP)
    command = " ".join(client.command)
    assert completed.returncode == 0, f"{command} exited {completed.returncode}:\n{completed.stderr}"
    report: dict[str, Any] = json.loads(completed.stdout)
    return ClientRun(client, orders.reissued, orders.fresh, orders.reused_key, orders, report)


def when(stamp: str) -> datetime:
    """An xs:dateTime as a client gave it back: it must carry its offset."""
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None, stamp
    return parsed


def spyne_named(definitions: etree._Element) -> etree._Element:
    """A copy of the WSDL with the parts named as spyne names them, after their element
    (``<wsdl:part name="Reissue" element="tns:Reissue"/>``), parameterOrder alike: the WSDL as it
    was before soap_service/api/wsdl_parts.py named the operation messages' parts ``parameters``."""
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    document = copy.deepcopy(definitions)
    for part in document.iterfind(f"{{{wsdl}}}message/{{{wsdl}}}part"):
        part.set("name", (part.get("element") or "").split(":")[-1])
    for operation in document.iterfind(f"{{{wsdl}}}portType/{{{wsdl}}}operation"):
        operation.set("parameterOrder", operation.get("name") or "")
    return document
