"""node-soap against the real server: the WSDL as gunicorn serves it, every answer as
node-soap gives it to an integrator.

``tests/interop/node_client.js`` builds a client with ``soap.createClientAsync`` from
``<server>/api/order?wsdl`` (``endpoint`` set to the test server: the WSDL's
``soap:address`` is ``SOAP_SERVICE_PUBLIC_URL``), makes the calls of a JSON job and prints
what node-soap answered as JSON, with the paths of the values it made Date objects.
node-soap is pinned in ``tests/interop/package.json`` / ``package-lock.json``; skipped where
``node`` or ``tests/interop/node_modules`` is missing (``npm ci --prefix tests/interop``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from api_support import RunningServer, assert_issued_chain, load_pem_certificate, running_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import new_partner
from interop_support import (
    HELLO,
    INTEROP,
    NAMES,
    OPERATIONS,
    ClientRun,
    assert_reissued_with_the_same_key,
    assert_validated_and_parsed,
    client_job,
    make_orders,
    run_client,
    when,
)

SCRIPT = INTEROP / "node_client.js"


def _node_missing() -> str | None:
    """Why the node-soap tests cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (INTEROP / "node_modules" / "soap" / "package.json").is_file():
        return "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`"
    return None


NODE_MISSING = _node_missing()
pytestmark = pytest.mark.skipif(NODE_MISSING is not None, reason=f"node-soap interop: {NODE_MISSING}")


Run = ClientRun


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


@pytest.fixture(scope="module")
def run(installation: Installation, server: RunningServer, partner: Partner) -> Run:
    orders = make_orders(installation.ra, partner)
    report = run_client(["node", str(SCRIPT)], client_job(server, partner, orders), INTEROP)
    return Run(orders.reissued, orders.fresh, orders.reused_key, report)


# ------------------------------------------------------------------------------------- helpers


def _list(value: Any, length: int) -> list[Any]:
    """node-soap (1.13) gives every maxOccurs="unbounded" element as an array, even of one item."""
    assert isinstance(value, list) and len(value) == length, value
    return value





def _header(run: Run, name: str, result: str, header: str = "OrderResponseHeader") -> dict[str, Any]:
    found: dict[str, Any] = run.result(name, result)[header]
    assert type(found["SuccessCode"]) is int, found  # xs:int arrives as a JS number, not a string
    assert f"{result}.{header}.Timestamp" in run.dates(name)  # xs:dateTime arrives as a Date
    return found


def _refusal(run: Run, name: str) -> dict[str, Any]:
    """The one Error of a refused Reissue, whose other parts are absent."""
    result = run.result(name, "ReissueResult")
    assert set(result) == {"OrderResponseHeader"}, result
    header = _header(run, name, "ReissueResult")
    assert "Warnings" not in header
    (error,) = _list(header["Errors"]["Error"], 1)
    assert header["SuccessCode"] == error["ErrorCode"]
    assert error["ErrorMessage"]
    return dict(error)


# --------------------------------------------------------------------------------------- tests


def test_node_loads_the_served_wsdl_and_lists_the_five_operations(run: Run) -> None:
    report = run.report
    assert report["load_error"] is None
    assert report["warnings"] == []
    assert set(report["operations"]) == OPERATIONS and len(report["operations"]) == 5, report["operations"]
    assert report["client"].split()[-1] == json.loads((INTEROP / "package.json").read_text())["dependencies"]["soap"]


def test_node_hello_echoes(run: Run) -> None:
    assert run.result("hello", "HelloResult") == HELLO


def test_node_reissue_returns_a_certificate_its_chain_and_a_pkcs7(run: Run) -> None:
    header = _header(run, "reissue", "ReissueResult")
    assert (header["SuccessCode"], header["PartnerOrderID"]) == (0, run.reissued_order.partner_order_id)
    assert "Errors" not in header and "Warnings" not in header
    result = run.result("reissue", "ReissueResult")
    assert result["OrderID"] == run.reissued_order.order_id
    issued = result["Certificate"]
    assert issued["ServerCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    leaf = load_pem_certificate(issued["ServerCertificate"])
    assert issued["SerialNumber"] == format(leaf.serial_number, "x")
    assert {"ReissueResult.Certificate.NotBefore", "ReissueResult.Certificate.NotAfter"} <= run.dates("reissue")
    assert when(issued["NotBefore"]) == leaf.not_valid_before_utc
    assert when(issued["NotAfter"]) == leaf.not_valid_after_utc
    chain = _list(issued["CACertificates"]["CACertificate"], 2)
    assert_issued_chain(issued["ServerCertificate"], [(c["Type"], c["CACert"]) for c in chain], issued["PKCS7"])


def test_node_a_wrong_password_is_an_answer_with_errors_not_a_fault(run: Run) -> None:
    assert run.call("wrong_password")["status"] == 200
    error = _refusal(run, "wrong_password")
    assert error["ErrorCode"] == -4001
    assert "ErrorField" not in error


def test_node_a_name_outside_the_order_is_refused_with_its_field(run: Run) -> None:
    from_csr = _refusal(run, "outside_csr")
    assert (from_csr["ErrorCode"], from_csr["ErrorField"]) == (-4010, "CSR")
    assert "other.example.org" in from_csr["ErrorMessage"]
    from_list = _refusal(run, "outside_dns_names")  # DNSNames/DNSName sent from a JS array
    assert (from_list["ErrorCode"], from_list["ErrorField"]) == (-4010, "DNSNames")


def test_node_reads_a_certificate_history_of_two_entries(run: Run) -> None:
    header = _header(run, "history", "GetOrderByPartnerOrderIDResult", "QueryResponseHeader")
    assert header["SuccessCode"] == 0
    detail = run.result("history", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    reissued = run.result("reissue", "ReissueResult")["Certificate"]["SerialNumber"]
    original = run.reissued_order.certificate.serial
    info = detail["OrderInfo"]
    assert info["OrderID"] == run.reissued_order.order_id
    # TermStart/TermEnd carry microseconds on the wire; a JS Date keeps milliseconds.
    term_start = run.reissued_order.term_start
    assert when(info["TermStart"]) == term_start.replace(microsecond=term_start.microsecond // 1000 * 1000)
    assert detail["CertificateInfo"]["SerialNumber"] == reissued
    entries = {entry["SerialNumber"]: entry for entry in _list(detail["CertificateHistory"]["Certificate"], 2)}
    assert set(entries) == {original, reissued}
    assert entries[reissued]["ReplacesSerialNumber"] == original
    assert "ReplacesSerialNumber" not in entries[original]  # an absent optional element: no key
    assert {entry["CertificateStatus"] for entry in entries.values()} == {"VALID"}
    for entry in entries.values():
        assert _list(entry["DNSNames"]["DNSName"], 2) == list(NAMES)
    dates = run.dates("history")
    assert "GetOrderByPartnerOrderIDResult.OrderDetail.CertificateHistory.Certificate[0].NotBefore" in dates


def test_node_one_item_lists_are_arrays_and_empty_lists_null(run: Run) -> None:
    """Unlike PHP without SOAP_SINGLE_ELEMENT_ARRAYS, node-soap keeps a list of one item
    an array (it reads maxOccurs from the WSDL). An empty list element is null."""
    detail = run.result("history_one", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    (entry,) = _list(detail["CertificateHistory"]["Certificate"], 1)
    assert entry["SerialNumber"] == run.fresh_order.certificate.serial

    validated = run.result("validate", "ValidateOrderParametersResult")
    assert _list(validated["CertificateDNSNames"]["DNSName"], 1) == ["example.com"]
    assert _list(validated["ParsedCSR"]["DNSNames"]["DNSName"], 1) == ["example.com"]
    assert validated["ParsedCSR"]["SubjectAttributes"] is None  # <SubjectAttributes/>

    parsed = run.result("parse", "ParseCSRResult")["ParsedCSR"]
    assert _list(parsed["SubjectAttributes"]["SubjectAttribute"], 1) == [{"Name": "CN", "Value": "example.com"}]


def test_node_a_reused_key_succeeds_with_warning_1001(run: Run) -> None:
    header = _header(run, "reused_key", "ReissueResult")
    assert header["SuccessCode"] == 1 and "Errors" not in header
    (warning,) = _list(header["Warnings"]["Warning"], 1)
    assert warning["WarningCode"] == 1001 and type(warning["WarningCode"]) is int
    assert warning["WarningMessage"]
    assert_reissued_with_the_same_key(run)


def test_node_validate_and_parse_csr_answer_typed_values(run: Run) -> None:
    header = _header(run, "validate", "ValidateOrderParametersResult")
    assert header["SuccessCode"] == 0
    assert _header(run, "parse", "ParseCSRResult", "QueryResponseHeader")["SuccessCode"] == 0
    assert_validated_and_parsed(run)


def test_node_a_soap_fault_rejects_with_the_fault(run: Run) -> None:
    outcome = run.call("fault")
    assert outcome["status"] == 500 and "result" not in outcome
    fault = outcome["fault"]  # err.root.Envelope.Body.Fault
    # node-soap keeps the prefix of the fault's QName as the answer spells it (spyne's soap11env).
    assert fault["code"].split(":", 1)[1] == "Client.SOAPActionMismatch", fault
    assert "does not name the operation" in fault["string"]


def test_node_sends_xsi_nil_for_an_optional_element_given_as_null_and_gets_a_fault(run: Run) -> None:
    """node-soap sends a null value as <X xsi:nil="true"/> although the schema says no element
    is nillable (docs/soap-api.md: leave an optional element out). The guard refuses the
    message before any work: a Client.SchemaValidationError fault, HTTP 500. Leaving the key
    out (or undefined) works: every other call of this module does so."""
    outcome = run.call("optional_nulls")
    assert 'xsi:nil="true"' in outcome["request"]
    assert outcome["status"] == 500 and "result" not in outcome, outcome
    fault = outcome["fault"]
    assert fault["code"].split(":", 1)[1] == "Client.SchemaValidationError", fault
    assert "carries xsi:nil, which no element allows" in fault["string"]
