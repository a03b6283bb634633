"""SOAP clients of other languages against the real server: the WSDL as gunicorn serves it,
every answer as the client gives it to an integrator. One scenario, run by each client:

- PHP's ``SoapClient`` (``tests/interop/php_client.php``, built from ``<server>/api/order?wsdl``
  with ``location`` set to the test server), once with ``SOAP_SINGLE_ELEMENT_ARRAYS`` (what
  docs/soap-api.md tells integrators to set) and once without, to pin down what PHP does with
  a list of one item then;
- node-soap (``tests/interop/node_client.js``, ``soap.createClientAsync`` with ``endpoint`` set
  to the test server; pinned in ``tests/interop/package.json`` / ``package-lock.json``), whose
  report also lists the paths of the values it made ``Date`` objects.

The WSDL's ``soap:address`` is ``SOAP_SERVICE_PUBLIC_URL``, hence the location. Each client
makes the calls of one JSON job and prints what it answered as JSON
(``tests/interop_support.py``, ``tests/interop/README.md``). A client that is not installed is
skipped with the reason (``apt-get install php-cli php-soap``; ``npm ci --prefix tests/interop``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from api_support import RunningServer, assert_issued_chain, load_pem_certificate, running_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import new_partner
from interop_support import (
    CLIENTS,
    HELLO,
    INTEROP,
    NAMES,
    OPERATIONS,
    ClientRun,
    InteropClient,
    make_orders,
    run_client,
    when,
)

Run = ClientRun


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(
            client,
            id=client.name,
            marks=pytest.mark.skipif(client.missing is not None, reason=f"{client.name} interop: {client.missing}"),
        )
        for client in CLIENTS
    ],
)
def run(request: pytest.FixtureRequest, installation: Installation, server: RunningServer, partner: Partner) -> Run:
    client: InteropClient = request.param
    return run_client(client, server, partner, make_orders(installation.ra, partner))


# ------------------------------------------------------------------------------------- helpers


def _many(value: Any, length: int) -> list[Any]:
    """A list of ``length`` (two or more) items: an array in every client."""
    assert isinstance(value, list) and len(value) == length, value
    return value


def _one(run: Run, value: Any) -> Any:
    """The single item of a one-item list, checking its shape: an array of one with node-soap
    (1.13 reads maxOccurs from the WSDL) and with PHP's SOAP_SINGLE_ELEMENT_ARRAYS, the item
    itself (an object, or a string) with PHP's default features."""
    if run.client.one_item_list_is_array:
        assert isinstance(value, list) and len(value) == 1, value
        return value[0]
    assert not isinstance(value, list), value
    return value


def _date(run: Run, name: str, path: str, value: Any) -> Any:
    """An xs:dateTime of call ``name`` at ``path``: a Date for node-soap (listed in the report),
    a string with its offset for PHP; both given back here as ISO 8601 with the offset."""
    if run.client.reports_dates:
        assert path in run.dates(name), (path, run.dates(name))
    return when(value)


def _header(run: Run, name: str, result: str, header: str = "OrderResponseHeader") -> dict[str, Any]:
    found: dict[str, Any] = run.result(name, result)[header]
    assert type(found["SuccessCode"]) is int, found  # xs:int arrives as a PHP int or a JS number, not a string
    _date(run, name, f"{result}.{header}.Timestamp", found["Timestamp"])
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


def test_loads_the_served_wsdl_and_lists_the_eight_operations(run: Run) -> None:
    report = run.report
    assert report["load_error"] is None
    assert report["warnings"] == []
    assert set(report["operations"]) == OPERATIONS and len(report["operations"]) == 8, report
    if run.client.family == "php":
        # __getFunctions() names the argument after the WSDL part (WS-I: parameters); a call passes it by position
        assert "ReissueResponse Reissue(Reissue $parameters)" in report["functions"]
    else:
        pinned = json.loads((INTEROP / "package.json").read_text())["dependencies"]["soap"]
        assert report["client"].split()[-1] == pinned


def test_hello_echoes(run: Run) -> None:
    assert run.result("hello", "HelloResult") == HELLO


def test_reissue_returns_a_certificate_its_chain_and_a_pkcs7(run: Run) -> None:
    header = _header(run, "reissue", "ReissueResult")
    assert (header["SuccessCode"], header["PartnerOrderID"]) == (0, run.reissued_order.partner_order_id)
    assert "Errors" not in header and "Warnings" not in header
    result = run.result("reissue", "ReissueResult")
    assert result["OrderID"] == run.reissued_order.order_id
    issued = result["Certificate"]
    assert issued["ServerCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    leaf = load_pem_certificate(issued["ServerCertificate"])
    assert issued["SerialNumber"] == format(leaf.serial_number, "x")
    not_before = _date(run, "reissue", "ReissueResult.Certificate.NotBefore", issued["NotBefore"])
    not_after = _date(run, "reissue", "ReissueResult.Certificate.NotAfter", issued["NotAfter"])
    assert (not_before, not_after) == (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    chain = _many(issued["CACertificates"]["CACertificate"], 2)
    assert_issued_chain(issued["ServerCertificate"], [(c["Type"], c["CACert"]) for c in chain], issued["PKCS7"])


def test_a_wrong_password_is_an_answer_with_errors_not_a_fault(run: Run) -> None:
    assert run.call("wrong_password")["status"] == 200
    error = _refusal(run, "wrong_password")
    assert error["ErrorCode"] == -4001
    assert "ErrorField" not in error


def test_a_name_outside_the_order_is_refused_with_its_field(run: Run) -> None:
    from_csr = _refusal(run, "outside_csr")
    assert (from_csr["ErrorCode"], from_csr["ErrorField"]) == (-4010, "CSR")
    assert "other.example.org" in from_csr["ErrorMessage"]
    from_list = _refusal(run, "outside_dns_names")  # DNSNames/DNSName sent from a PHP or JS array
    assert (from_list["ErrorCode"], from_list["ErrorField"]) == (-4010, "DNSNames")


def test_reads_a_certificate_history_of_two_entries(run: Run) -> None:
    header = _header(run, "history", "GetOrderByPartnerOrderIDResult", "QueryResponseHeader")
    assert header["SuccessCode"] == 0
    detail = run.result("history", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    reissued = run.result("reissue", "ReissueResult")["Certificate"]["SerialNumber"]
    original = run.reissued_order.certificate.serial
    info = detail["OrderInfo"]
    assert info["OrderID"] == run.reissued_order.order_id
    # TermStart/TermEnd carry microseconds on the wire; a JS Date keeps milliseconds.
    term_start = run.reissued_order.term_start
    if run.client.milliseconds_only:
        term_start = term_start.replace(microsecond=term_start.microsecond // 1000 * 1000)
    assert when(info["TermStart"]) == term_start
    assert detail["CertificateInfo"]["SerialNumber"] == reissued
    entries = {entry["SerialNumber"]: entry for entry in _many(detail["CertificateHistory"]["Certificate"], 2)}
    assert set(entries) == {original, reissued}
    assert entries[reissued]["ReplacesSerialNumber"] == original
    assert "ReplacesSerialNumber" not in entries[original]  # an absent optional element: no property, no key
    assert {entry["CertificateStatus"] for entry in entries.values()} == {"VALID"}
    history = "GetOrderByPartnerOrderIDResult.OrderDetail.CertificateHistory.Certificate"
    for index, entry in enumerate(detail["CertificateHistory"]["Certificate"]):
        assert _many(entry["DNSNames"]["DNSName"], 2) == list(NAMES)
        _date(run, "history", f"{history}[{index}].NotBefore", entry["NotBefore"])


def test_one_item_lists_and_empty_lists(run: Run) -> None:
    """A list of one item (a history of one certificate, one Error, one DNSName, one
    SubjectAttribute) is an array of one with node-soap and with PHP's
    SOAP_SINGLE_ELEMENT_ARRAYS; with PHP's default features it is the bare item, so an
    integrator's ``foreach ($h->Certificate as $c)`` walks the properties of one certificate.
    An empty list element is an object without the item's property in PHP (both modes), null
    in node-soap."""
    detail = run.result("history_one", "GetOrderByPartnerOrderIDResult")["OrderDetail"]
    entry = _one(run, detail["CertificateHistory"]["Certificate"])
    assert entry["SerialNumber"] == run.fresh_order.certificate.serial
    assert "ReplacesSerialNumber" not in entry

    _one(run, run.result("wrong_password", "ReissueResult")["OrderResponseHeader"]["Errors"]["Error"])

    validated = run.result("validate", "ValidateOrderParametersResult")
    assert _one(run, validated["CertificateDNSNames"]["DNSName"]) == "example.com"
    assert _one(run, validated["ParsedCSR"]["DNSNames"]["DNSName"]) == "example.com"
    assert validated["ParsedCSR"]["SubjectAttributes"] == run.client.empty_list  # <SubjectAttributes/>

    parsed = run.result("parse", "ParseCSRResult")["ParsedCSR"]
    assert _one(run, parsed["SubjectAttributes"]["SubjectAttribute"]) == {"Name": "CN", "Value": "example.com"}
    assert _many(parsed["DNSNames"]["DNSName"], 2) == list(NAMES)


def test_a_reused_key_succeeds_with_warning_1001(run: Run) -> None:
    header = _header(run, "reused_key", "ReissueResult")
    assert header["SuccessCode"] == 1 and "Errors" not in header
    warning = _one(run, header["Warnings"]["Warning"])
    assert warning["WarningCode"] == 1001 and type(warning["WarningCode"]) is int
    assert warning["WarningMessage"]
    # a new certificate for the order's existing key
    certificate = run.result("reused_key", "ReissueResult")["Certificate"]
    assert certificate["SerialNumber"] != run.reused_key_order.certificate.serial
    issued = load_pem_certificate(certificate["ServerCertificate"]).public_key()
    assert issued == load_pem_certificate(run.reused_key_order.certificate.pem).public_key()


def test_validate_and_parse_csr_answer_typed_values(run: Run) -> None:
    header = _header(run, "validate", "ValidateOrderParametersResult")
    assert header["SuccessCode"] == 0
    assert _header(run, "parse", "ParseCSRResult", "QueryResponseHeader")["SuccessCode"] == 0
    validated = run.result("validate", "ValidateOrderParametersResult")
    assert validated["ReturnsCurrentCertificate"] is False  # xs:boolean arrives as a boolean
    assert validated["OrderID"] == run.fresh_order.order_id
    parsed = run.result("parse", "ParseCSRResult")["ParsedCSR"]
    assert (parsed["KeyAlgorithm"], parsed["KeySize"], parsed["Curve"]) == ("EC", 256, "P-256")
    assert type(parsed["KeySize"]) is int
    assert parsed["CommonName"] == "example.com" and "Organization" not in parsed


def test_a_soap_fault_is_the_clients_own_error_with_the_fault(run: Run) -> None:
    """PHP raises ``SoapFault``; node-soap rejects with ``err.root.Envelope.Body.Fault``."""
    outcome = run.call("fault")
    assert outcome["status"] == 500 and "result" not in outcome
    fault = outcome["fault"]
    # Both keep the prefix of the fault's QName as the answer spells it (spyne's soap11env).
    assert fault["code"].split(":", 1)[1] == "Client.SOAPActionMismatch", fault
    assert "does not name the operation" in fault["string"]


def test_an_optional_element_given_as_null(run: Run) -> None:
    """ReplayToken, DNSNames, SignatureHashAlgorithm and ReissueEmail passed as null. The schema
    makes them optional and not nillable (docs/soap-api.md: leave an optional element out).
    PHP sends none of them, and the call succeeds. node-soap sends each as
    ``<X xsi:nil="true"/>``: the guard refuses the message before any work, a
    Client.SchemaValidationError fault, HTTP 500 (leaving the key out, or undefined, works:
    every other call of the job does so)."""
    outcome = run.call("optional_nulls")
    sent = outcome["request"]
    if not run.client.sends_nil_for_null:
        assert _header(run, "optional_nulls", "ValidateOrderParametersResult")["SuccessCode"] == 0
        assert "nil" not in sent
        for element in ("ReplayToken", "DNSNames", "SignatureHashAlgorithm", "ReissueEmail"):
            assert f":{element}" not in sent, sent
        return
    assert 'xsi:nil="true"' in sent
    assert outcome["status"] == 500 and "result" not in outcome, outcome
    fault = outcome["fault"]
    assert fault["code"].split(":", 1)[1] == "Client.SchemaValidationError", fault
    assert "carries xsi:nil, which no element allows" in fault["string"]


def test_revokes_by_serial_then_is_refused_4014_and_revokes_by_pem_alone(run: Run) -> None:
    """Revoke from each client: by SerialNumber within the order; the same again is -4014 on
    SerialNumber (one Error); by the certificate's PEM with no PartnerOrderID, whose answer
    names the order the certificate belongs to. RevokedAt is a date like every other."""
    by_serial = run.orders.revoked_by_serial
    header = _header(run, "revoke", "RevokeResult")
    assert (header["SuccessCode"], header["PartnerOrderID"]) == (0, by_serial.partner_order_id)
    assert "Errors" not in header
    result = run.result("revoke", "RevokeResult")
    assert (result["OrderID"], result["SerialNumber"], result["RevokeReason"]) == (
        by_serial.order_id, by_serial.certificate.serial, "superseded")
    revoked_at = _date(run, "revoke", "RevokeResult.RevokedAt", result["RevokedAt"])
    assert revoked_at.tzinfo is not None
    assert "AlsoRevoked" not in result  # left out when nothing else was revoked

    again = run.result("revoke_again", "RevokeResult")
    assert set(again) == {"OrderResponseHeader"}, again
    error = _one(run, _header(run, "revoke_again", "RevokeResult")["Errors"]["Error"])
    assert (error["ErrorCode"], error["ErrorField"]) == (-4014, "SerialNumber")

    by_pem = run.orders.revoked_by_pem
    assert "PartnerOrderID" not in run.call("revoke_by_pem")["request"]
    header = _header(run, "revoke_by_pem", "RevokeResult")
    assert (header["SuccessCode"], header["PartnerOrderID"]) == (0, by_pem.partner_order_id)
    result = run.result("revoke_by_pem", "RevokeResult")
    assert (result["OrderID"], result["SerialNumber"], result["RevokeReason"]) == (
        by_pem.order_id, by_pem.certificate.serial, "cessationOfOperation")


def test_reads_the_change_feed_sent_with_its_dates(run: Run) -> None:
    """GetModifiedOrders with FromDate and ToDate as each client passes a date (PHP: an ISO 8601
    string with its offset; node-soap: a Date): the partner's changes, oldest first, the
    revocations of this run among them; every ChangedAt a date."""
    header = _header(run, "modified", "GetModifiedOrdersResult", "QueryResponseHeader")
    assert header["SuccessCode"] == 0 and "Errors" not in header
    result = run.result("modified", "GetModifiedOrdersResult")
    assert result["More"] is False
    changes = result["OrderChanges"]["OrderChange"]
    assert isinstance(changes, list) and len(changes) > 2, changes
    times = [_date(run, "modified", f"GetModifiedOrdersResult.OrderChanges.OrderChange[{index}].ChangedAt",
                   change["ChangedAt"]) for index, change in enumerate(changes)]
    assert times == sorted(times)
    change_ids = [change["ChangeID"] for change in changes]
    assert all(type(i) is int for i in change_ids)  # xs:int: a PHP int or a JS number, not a string
    assert change_ids == sorted(change_ids) and len(set(change_ids)) == len(change_ids)
    covered_until = _date(run, "modified", "GetModifiedOrdersResult.CoveredUntil", result["CoveredUntil"])
    assert times[-1] < covered_until
    ours = {run.orders.revoked_by_serial.partner_order_id, run.orders.revoked_by_pem.partner_order_id}
    revoked = {(c["PartnerOrderID"], c["SerialNumber"], c.get("Detail")) for c in changes
               if c["Change"] == "revoked" and c["PartnerOrderID"] in ours}  # the other clients' runs share the partner
    assert revoked == {
        (run.orders.revoked_by_serial.partner_order_id, run.orders.revoked_by_serial.certificate.serial, "superseded"),
        (run.orders.revoked_by_pem.partner_order_id, run.orders.revoked_by_pem.certificate.serial,
         "cessationOfOperation"),
    }


def test_node_soap_sends_a_date_object_empty(run: Run) -> None:
    """node-soap 1.13 writes a JavaScript Date given for an xs:dateTime of a request as an empty
    element, which the schema refuses (a Client.SchemaValidationError fault naming FromDate):
    docs/soap-api.md tells node integrators to pass ISO 8601 strings with their zone."""
    if run.client.family != "node":
        pytest.skip("node-soap only: PHP passes the dates as strings")
    outcome = run.call("modified_as_date")
    assert "<FromDate></FromDate>" in outcome["request"], outcome["request"]
    assert outcome["status"] == 500 and "result" not in outcome
    assert outcome["fault"]["code"].split(":", 1)[1] == "Client.SchemaValidationError"
    assert "GetModifiedOrders/Request/FromDate: is not a date and time" in outcome["fault"]["string"]
