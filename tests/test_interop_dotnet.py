"""The classic .NET ASMX client against the real server: Mono's ``wsdl`` tool generates a C# proxy
from the served WSDL alone (``wsdl -out:Proxy.cs <server>/api/order?wsdl``), ``mcs`` compiles it
with ``tests/interop/dotnet/Client.cs`` and ``mono`` runs it; the program prints what it read as
JSON. The scenario of tracker issue 10: Hello; Reissue with its chain and PKCS#7; a business error
(-4010) read from ``Errors``; a SOAP fault as ``System.Web.Services.Protocols.SoapException``;
GetOrderByPartnerOrderID with a history of one certificate and of two; Revoke.

The proxy has the wrapped signatures (``ReissueResult Reissue(ReissueRequest Request)``) because the
WSDL names each operation message's part ``parameters`` (soap_service/api/wsdl_parts.py).
Without ``wsdl``, ``mcs`` or ``mono`` (Debian: ``apt-get install mono-devel``) the tests skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from lxml import etree

from api_support import WSDL_FILE, RunningServer, assert_issued_chain, load_pem_certificate, running_server
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from interop_support import HELLO, INTEROP, NAMES, spyne_named

TOOLS = ("wsdl", "mcs", "mono")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
TOOL_TIMEOUT = 120
CLIENT = INTEROP / "dotnet" / "Client.cs"

pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f".NET interop: {', '.join(MISSING)} not installed (apt-get install mono-devel)")


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


def _tool(command: list[str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class DotnetRun:
    proxy: str
    """Proxy.cs as Mono's wsdl tool generated it from the served WSDL."""
    report: dict[str, Any]
    orders: dict[str, Any]

    def result(self, name: str) -> Any:
        outcome = self.report[name]
        assert "fault" not in outcome, outcome
        return outcome["result"]


@pytest.fixture(scope="module")
def run(installation: Installation, server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> DotnetRun:
    """Generate, compile and run the client once per backend: every test reads its report."""
    build = tmp_path_factory.mktemp("dotnet")
    _tool(["wsdl", "-nologo", "-out:Proxy.cs", server.wsdl_url], build)
    shutil.copy(CLIENT, build / "Client.cs")
    _tool(["mcs", "-r:System.Web.Services", "-out:client.exe", "Proxy.cs", "Client.cs"], build)
    partner = new_partner(installation.ra)
    orders = {name: new_order(installation.ra, partner).order for name in ("reissue", "outside", "one", "revoke")}
    job = {
        "partner": partner.code, "username": partner.username, "password": partner.password, "hello": HELLO,
        "reissue_order": orders["reissue"].partner_order_id, "reissue_csr": fresh_key_csr(NAMES),
        "outside_order": orders["outside"].partner_order_id,
        "outside_csr": fresh_key_csr(("example.com", "other.example.org")),
        "history_one_order": orders["one"].partner_order_id,
        "revoke_order": orders["revoke"].partner_order_id, "revoke_serial": orders["revoke"].certificate.serial,
    }
    lines = "".join(f"{key}={quote(value, safe='')}\n" for key, value in job.items())
    report = json.loads(_tool(["mono", "client.exe", server.url], build, stdin=lines))
    return DotnetRun(proxy=(build / "Proxy.cs").read_text(), report=report, orders=orders)


def _when(value: dict[str, str]) -> datetime:
    """An xs:dateTime as the proxy gave it: a DateTime of Kind Local, the instant in UTC."""
    assert value["kind"] == "Local", value
    return datetime.fromisoformat(value["utc"])


def test_the_proxy_has_the_wrapped_signatures(run: DotnetRun) -> None:
    signatures = set(re.findall(r"public (\w+) (\w+)\((\w+) (\w+)\) \{", run.proxy))
    assert ("ReissueResult", "Reissue", "ReissueRequest", "Request") in signatures
    assert ("string", "Hello", "string", "Input") in signatures
    assert ("GetOrderByPartnerOrderIDResult", "GetOrderByPartnerOrderID", "GetOrderByPartnerOrderIDRequest",
            "Request") in signatures
    assert ("RevokeResult", "Revoke", "RevokeRequest", "Request") in signatures
    assert "ReissueResponse Reissue(" not in run.proxy  # the extra wrapper layer of element-named parts
    assert "class OrderService : System.Web.Services.Protocols.SoapHttpClientProtocol" in run.proxy


def test_parts_named_after_their_elements_give_an_extra_wrapper_layer(tmp_path: Path) -> None:
    """Why the parts are named ``parameters``: from the same WSDL with spyne's part names, Mono's
    wsdl tool does not recognise the wrapped pattern and makes the wrapper elements the types."""
    spyne_wsdl = tmp_path / "spyne-named.wsdl"
    spyne_wsdl.write_bytes(etree.tostring(spyne_named(etree.parse(WSDL_FILE).getroot()), xml_declaration=True,
                                          encoding="UTF-8"))
    _tool(["wsdl", "-nologo", "-out:Proxy.cs", spyne_wsdl.name], tmp_path)
    proxy = (tmp_path / "Proxy.cs").read_text()
    assert re.search(r"public ReissueResponse Reissue\(\[[^]]*\] Reissue Reissue1\) \{", proxy), proxy[:2000]
    assert "ReissueResult Reissue(" not in proxy


def test_hello_echoes(run: DotnetRun) -> None:
    assert run.result("hello") == HELLO


def test_reissue_returns_a_certificate_its_chain_and_a_pkcs7(run: DotnetRun) -> None:
    result = run.result("reissue")
    order = run.orders["reissue"]
    header = result["header"]
    assert (header["SuccessCode"], header["PartnerOrderID"], header["Errors"]) == (0, order.partner_order_id, None)
    assert result["OrderID"] == order.order_id
    issued = result["Certificate"]
    leaf = load_pem_certificate(issued["ServerCertificate"])
    assert issued["SerialNumber"] == format(leaf.serial_number, "x")
    assert (_when(issued["NotBefore"]), _when(issued["NotAfter"])) == (leaf.not_valid_before_utc,
                                                                       leaf.not_valid_after_utc)
    chain = [(ca["Type"], ca["CACert"]) for ca in issued["CACertificates"]]
    assert_issued_chain(issued["ServerCertificate"], chain, issued["PKCS7"])


def test_a_name_outside_the_order_is_error_4010_read_from_errors(run: DotnetRun) -> None:
    result = run.result("outside")
    assert result["Certificate"] is None
    header = result["header"]
    assert header["SuccessCode"] == -4010
    [error] = header["Errors"]  # Error[] of one
    assert (error["ErrorCode"], error["ErrorField"]) == (-4010, "CSR")
    assert "other.example.org" in error["ErrorMessage"]


def test_a_soap_fault_is_a_soap_exception(run: DotnetRun) -> None:
    """Hello with an Input over the schema's 256 characters: the guard's SOAP fault, caught as
    ``SoapException``; its Code is the fault code as a qualified name, its Message the
    faultstring. The fault carries an empty ``<detail>``, as SOAP 1.1 requires of a fault about the
    Body (section 4.4): without it the proxy throws the subclass ``SoapHeaderException``, a header
    error (as .NET Framework's ASMX client does too)."""
    outcome = run.report["fault"]
    assert "result" not in outcome
    fault = outcome["fault"]
    assert fault["caught_as"] == "System.Web.Services.Protocols.SoapException"
    assert fault["type"] == "System.Web.Services.Protocols.SoapException"
    assert fault["detail"] is not None and fault["detail"].startswith("<detail")
    assert (fault["code_namespace"], fault["code_name"]) == (
        "http://schemas.xmlsoap.org/soap/envelope/", "Client.SchemaValidationError")
    assert "Hello/Input" in fault["message"]


def test_reads_a_history_of_one_certificate(run: DotnetRun) -> None:
    result = run.result("history_one")
    order = run.orders["one"]
    assert result["header"]["SuccessCode"] == 0 and result["OrderID"] == order.order_id
    assert _when(result["TermStart"]) == order.term_start  # ticks of 100 ns: microseconds kept
    [entry] = result["CertificateHistory"]  # CertificateHistoryEntry[] of one
    assert entry["SerialNumber"] == order.certificate.serial
    assert entry["ReplacesSerialNumber"] is None and entry["RevokedAtSpecified"] is False
    assert entry["DNSNames"] == list(NAMES)


def test_reads_a_history_of_two_certificates(run: DotnetRun) -> None:
    original = run.orders["reissue"].certificate.serial
    reissued = run.result("reissue")["Certificate"]["SerialNumber"]
    entries = {entry["SerialNumber"]: entry for entry in run.result("history_many")["CertificateHistory"]}
    assert set(entries) == {original, reissued}
    assert entries[reissued]["ReplacesSerialNumber"] == original
    assert {entry["CertificateStatus"] for entry in entries.values()} == {"VALID"}


def test_an_option_without_its_specified_companion_is_not_sent(run: DotnetRun) -> None:
    """``ReturnCertificateHistory = true`` alone: XmlSerializer leaves an optional xs:boolean out
    unless ``ReturnCertificateHistorySpecified`` is set, so no history comes back."""
    result = run.result("history_unspecified")
    assert result["header"]["SuccessCode"] == 0
    assert result["CertificateHistory"] is None


def test_revokes_by_serial_then_is_refused_4014(run: DotnetRun) -> None:
    order = run.orders["revoke"]
    result = run.result("revoke")
    assert result["header"]["SuccessCode"] == 0
    assert (result["OrderID"], result["SerialNumber"], result["RevokeReason"]) == (
        order.order_id, order.certificate.serial, "superseded")
    assert result["RevokedAtSpecified"] is True
    _when(result["RevokedAt"])
    again = run.result("revoke_again")
    [error] = again["header"]["Errors"]
    assert (error["ErrorCode"], error["ErrorField"]) == (-4014, "SerialNumber")
