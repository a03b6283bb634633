"""PHP's SoapClient against the real server: the WSDL as gunicorn serves it, every answer
as PHP gives it to an integrator.

``tests/interop/php_client.php`` builds a ``SoapClient`` from ``<server>/api/order?wsdl``
(``location`` set to the test server: the WSDL's ``soap:address`` is
``SOAP_SERVICE_PUBLIC_URL``), makes the calls of a JSON job and prints what PHP answered
as JSON. It runs once with ``SOAP_SINGLE_ELEMENT_ARRAYS`` (what docs/soap-api.md tells
integrators to set) and once without, to pin down what PHP does with a list of one item
then. Skipped where ``php`` or its soap extension is missing
(``apt-get install php-cli php-soap``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
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

SCRIPT = INTEROP / "php_client.php"
MODES = {"single-element-arrays": ["SOAP_SINGLE_ELEMENT_ARRAYS"], "default-features": []}


def _php_missing() -> str | None:
    """Why the PHP tests cannot run here, or None."""
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


PHP_MISSING = _php_missing()
pytestmark = pytest.mark.skipif(PHP_MISSING is not None, reason=f"PHP SoapClient interop: {PHP_MISSING}")


@dataclass
class Run(ClientRun):
    """A run of php_client.php, with or without SOAP_SINGLE_ELEMENT_ARRAYS."""

    mode: str = ""
    single_element_arrays: bool = False


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


@pytest.fixture(scope="module", params=list(MODES))
def run(request: pytest.FixtureRequest, installation: Installation, server: RunningServer, partner: Partner) -> Run:
    mode: str = request.param
    orders = make_orders(installation.ra, partner)
    report = run_client(["php", str(SCRIPT)], client_job(server, partner, orders, features=MODES[mode]), INTEROP)
    return Run(orders.reissued, orders.fresh, orders.reused_key, report, mode, bool(MODES[mode]))


# ------------------------------------------------------------------------------------- helpers


def _many(value: Any) -> list[Any]:
    """A list of two or more items: an array in PHP whatever the features."""
    assert isinstance(value, list), value
    return value


def _one(run: Run, value: Any) -> Any:
    """The single item of a one-item list, checking its shape: an array of one with
    SOAP_SINGLE_ELEMENT_ARRAYS, the item itself (an object, or a string) without."""
    if run.single_element_arrays:
        assert isinstance(value, list) and len(value) == 1, value
        return value[0]
    assert not isinstance(value, list), value
    return value





def _header(run: Run, name: str, result: str, header: str = "OrderResponseHeader") -> dict[str, Any]:
    found: dict[str, Any] = run.result(name, result)[header]
    assert type(found["SuccessCode"]) is int, found  # xs:int arrives as a PHP int
    when(found["Timestamp"])
    return found


def _refusal(run: Run, name: str) -> dict[str, Any]:
    """The one Error of a refused Reissue, whose other parts are absent."""
    result = run.result(name, "ReissueResult")
    assert set(result) == {"OrderResponseHeader"}, result
    header = _header(run, name, "ReissueResult")
    assert "Warnings" not in header
    error: dict[str, Any] = _one(run, header["Errors"]["Error"])
    assert header["SuccessCode"] == error["ErrorCode"]
    assert error["ErrorMessage"]
    return error


# --------------------------------------------------------------------------------------- tests


def test_php_loads_the_served_wsdl_and_lists_the_five_operations(run: Run) -> None:
    report = run.report
    assert report["load_error"] is None
    assert report["warnings"] == []
    assert set(report["operations"]) == OPERATIONS and len(report["operations"]) == 5, report["functions"]
    assert "ReissueResponse Reissue(Reissue $Reissue)" in report["functions"]


def test_php_hello_echoes(run: Run) -> None:
    assert run.result("hello", "HelloResult") == HELLO


def test_php_reissue_returns_a_certificate_its_chain_and_a_pkcs7(run: Run) -> None:
    header = _header(run, "reissue", "ReissueResult")
    assert (header["SuccessCode"], header["PartnerOrderID"]) == (0, run.reissued_order.partner_order_id)
    assert "Errors" not in header and "Warnings" not in header
    result = run.result("reissue", "ReissueResult")
    assert result["OrderID"] == run.reissued_order.order_id
    issued = result["Certificate"]
    assert issued["ServerCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    leaf = load_pem_certificate(issued["ServerCertificate"])
    assert issued["SerialNumber"] == format(leaf.serial_number, "x")
    assert when(issued["NotBefore"]) == leaf.not_valid_before_utc
    assert when(issued["NotAfter"]) == leaf.not_valid_after_utc
    chain = _many(issued["CACertificates"]["CACertificate"])
    assert_issued_chain(issued["ServerCertificate"], [(c["Type"], c["CACert"]) for c in chain], issued["PKCS7"])


def test_php_a_wrong_password_is_an_answer_with_errors_not_a_fault(run: Run) -> None:
    assert run.call("wrong_password")["status"] == 200
    error = _refusal(run, "wrong_password")
    assert error["ErrorCode"] == -4001
    assert "ErrorField" not in error


def test_php_a_name_outside_the_order_is_refused_with_its_field(run: Run) -> None:
    from_csr = _refusal(run, "outside_csr")
    assert (from_csr["ErrorCode"], from_csr["ErrorField"]) == (-4010, "CSR")
    assert "other.example.org" in from_csr["ErrorMessage"]
    from_list = _refusal(run, "outside_dns_names")  # DNSNames/DNSName sent from a PHP array
    assert (from_list["ErrorCode"], from_list["ErrorField"]) == (-4010, "DNSNames")


def test_php_reads_a_certificate_history_of_two_entries(run: Run) -> None:
    header = _header(run, "history", "GetOrderByPartnerOrderIDResult", "QueryResponseHeader")
    assert header["SuccessCode"] == 0
    detail = run.result("history", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    reissued = run.result("reissue", "ReissueResult")["Certificate"]["SerialNumber"]
    original = run.reissued_order.certificate.serial
    assert detail["OrderInfo"]["OrderID"] == run.reissued_order.order_id
    assert detail["CertificateInfo"]["SerialNumber"] == reissued
    entries = {entry["SerialNumber"]: entry for entry in _many(detail["CertificateHistory"]["Certificate"])}
    assert set(entries) == {original, reissued}
    assert entries[reissued]["ReplacesSerialNumber"] == original
    assert "ReplacesSerialNumber" not in entries[original]  # an absent optional element: no property
    assert {entry["CertificateStatus"] for entry in entries.values()} == {"VALID"}
    for entry in entries.values():
        assert _many(entry["DNSNames"]["DNSName"]) == list(NAMES)
        when(entry["NotBefore"])


def test_php_one_item_lists_are_arrays_only_with_single_element_arrays(run: Run) -> None:
    """Without SOAP_SINGLE_ELEMENT_ARRAYS, every list of one item (a history of one
    certificate, one Error, one DNSName, one SubjectAttribute) is the bare item: an
    integrator's ``foreach ($h->Certificate as $c)`` then walks the properties of one
    certificate. With it, an array of one. An empty list is an object without the
    item's property in both modes."""
    detail = run.result("history_one", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    entry = _one(run, detail["CertificateHistory"]["Certificate"])
    assert entry["SerialNumber"] == run.fresh_order.certificate.serial
    assert "ReplacesSerialNumber" not in entry

    _one(run, run.result("wrong_password", "ReissueResult")["OrderResponseHeader"]["Errors"]["Error"])

    validated = run.result("validate", "ValidateOrderParametersResult")
    assert _one(run, validated["CertificateDNSNames"]["DNSName"]) == "example.com"
    assert _one(run, validated["ParsedCSR"]["DNSNames"]["DNSName"]) == "example.com"
    assert validated["ParsedCSR"]["SubjectAttributes"] == {}  # <SubjectAttributes/>: no SubjectAttribute at all

    parsed = run.result("parse", "ParseCSRResult")["ParsedCSR"]
    assert _one(run, parsed["SubjectAttributes"]["SubjectAttribute"]) == {"Name": "CN", "Value": "example.com"}
    assert _many(parsed["DNSNames"]["DNSName"]) == list(NAMES)


def test_php_a_reused_key_succeeds_with_warning_1001(run: Run) -> None:
    header = _header(run, "reused_key", "ReissueResult")
    assert header["SuccessCode"] == 1 and "Errors" not in header
    warning = _one(run, header["Warnings"]["Warning"])
    assert warning["WarningCode"] == 1001 and type(warning["WarningCode"]) is int
    assert warning["WarningMessage"]
    assert_reissued_with_the_same_key(run)


def test_php_validate_and_parse_csr_answer_typed_values(run: Run) -> None:
    header = _header(run, "validate", "ValidateOrderParametersResult")
    assert header["SuccessCode"] == 0
    assert _header(run, "parse", "ParseCSRResult", "QueryResponseHeader")["SuccessCode"] == 0
    assert_validated_and_parsed(run)


def test_php_a_soap_fault_raises_soapfault(run: Run) -> None:
    outcome = run.call("fault")
    assert outcome["status"] == 500 and "result" not in outcome
    fault = outcome["fault"]
    # PHP keeps the prefix of the fault's QName as the answer spells it (spyne's soap11env).
    assert fault["code"].split(":", 1)[1] == "Client.SOAPActionMismatch", fault
    assert "does not name the operation" in fault["string"]


def test_php_leaves_out_an_optional_element_given_as_null(run: Run) -> None:
    """ReplayToken, DNSNames, SignatureHashAlgorithm and ReissueEmail passed as null: PHP sends
    none of them (the schema makes them optional and not nillable), and the call succeeds."""
    assert _header(run, "optional_nulls", "ValidateOrderParametersResult")["SuccessCode"] == 0
    sent = run.call("optional_nulls")["request"]
    assert "nil" not in sent
    for element in ("ReplayToken", "DNSNames", "SignatureHashAlgorithm", "ReissueEmail"):
        assert f":{element}" not in sent, sent
