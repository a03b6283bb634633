"""The drop-in services in process (tracker issue 12, docs/migration.md): their checked-in WSDLs are
the served ones, the type names are those the earlier API's clients create, and the Order API's
guard protects ``/webtrust/*`` as it protects ``/api/order`` (DOCTYPE, schema bounds, SOAPAction,
operations not offered, one log line per request)."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from api_support import REPO, SOAP_ENV, TNS
from conftest import TestInstallation as Installation
from inprocess_api import request_wsgi
from soap_service import metrics
from soap_service.api.application import create_wsgi_app
from soap_service.main import run
from soap_service.webtrust.application import SERVICES, DropInApplication, wsdl_document
from soap_service.webtrust.service import NOT_OFFERED

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
PUBLIC_URL = "http://127.0.0.1:8080"
FILES = {name: REPO / "wsdl" / f"webtrust-{name}.wsdl" for name in SERVICES}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_checked_in_wsdl_is_the_served_one(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert FILES[name].read_bytes() == wsdl_document(name, PUBLIC_URL), (
        f"wsdl/webtrust-{name}.wsdl is stale: regenerate it with `make wsdl`"
    )
    assert run(["wsdl", "--webtrust", name, "--public-url", PUBLIC_URL]) == 0
    assert capsys.readouterr().out.encode() == FILES[name].read_bytes()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_soap_address_is_the_public_url_and_the_endpoint(name: str) -> None:
    definitions = etree.fromstring(wsdl_document(name, "https://api.example.net"))
    address = definitions.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{SOAP_BINDING}}}address")
    assert address is not None
    assert address.get("location") == f"https://api.example.net/webtrust/{name}"


def _type_names(name: str) -> set[str]:
    definitions = etree.fromstring(FILES[name].read_bytes())
    return {str(t.get("name")) for t in definitions.iter(f"{{{XS}}}complexType")}


def test_type_names_are_those_clients_create() -> None:
    order, query = _type_names("order"), _type_names("query")
    assert {"ReissueInput", "ModifyOrderInput", "RevokeInput", "ValidateOrderParametersInput",
            "orderRequestHeader", "orderResponseHeader", "authToken"} <= order
    assert {"GetOrderByPartnerOrderIDInput", "GetModifiedOrdersInput", "GetModifiedOrderSummaryInput",
            "ParseCSRInput", "CheckStatusInput", "GetFulfillmentInput", "queryRequestHeader",
            "queryResponseHeader", "authToken"} <= query
    for offered in (order, query):
        assert not {"QuickOrder", "QuickInvite", "OrderPreAuthentication"} & offered
    # what SymAPI creates by name (Python 1.3 with suds; the PHP 1.2 library sends the same elements)
    assert {"ReissueInput", "ValidateOrderParametersInput", "RevokeInput", "ModifyOrderInput",
            "orderRequestHeader", "authToken"} <= order
    assert {"GetOrderByPartnerOrderIDInput", "CheckStatusInput", "GetFulfillmentInput", "GetModifiedOrdersInput",
            "GetModifiedOrderSummaryInput", "ParseCSRInput", "queryRequestHeader", "authToken"} <= query
    not_offered = {name + "Input" for name in NOT_OFFERED} | {"AuthOrderInput", "ValidateAuthDataInput"}
    assert not not_offered & (order | query)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_operations_not_offered_are_not_in_the_wsdls(name: str) -> None:
    definitions = etree.fromstring(wsdl_document(name, PUBLIC_URL))
    operations = {op.get("name") for op in definitions.iter(f"{{{WSDL}}}operation")}
    assert operations and not operations & set(NOT_OFFERED)


_call = request_wsgi


@pytest.fixture
def app(installation: Installation) -> DropInApplication:
    return DropInApplication(installation.ra, fallback=create_wsgi_app(installation.ra))


def _envelope(operation: str, inner: str, *, prolog: str = "") -> bytes:
    return (f'{prolog}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{TNS}"><soap:Body>'
            f"<t:{operation}>{inner}</t:{operation}></soap:Body></soap:Envelope>").encode()


def _faultcode(answer: bytes) -> str:
    return etree.fromstring(answer).findtext(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultcode") or ""


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_wsdl_is_served_at_the_jws_url(app: DropInApplication, installation: Installation, name: str) -> None:
    status, answer = _call(app, "GET", f"/webtrust/{name}.jws", query="WSDL")
    assert status.startswith("200")
    assert answer == wsdl_document(name, installation.ra.settings.public_url)
    assert _call(app, "GET", f"/webtrust/{name}", query="wsdl")[1] == answer
    assert _call(app, "GET", "/webtrust/other.jws", query="WSDL")[0].startswith("404")


def _count(sample: str) -> float:
    for line in metrics.exposition(lambda: None).decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_hello_echoes_and_logs_one_line_naming_the_service(
        app: DropInApplication, caplog: pytest.LogCaptureFixture) -> None:
    """Operators tell the APIs apart (docs/operations.md): the line names the service, the metrics
    count each drop-in operation under a label of its own, never ``other``."""
    hello = 'soap_service_requests_total{front_end="soap",operation="webtrust-query.hello",outcome="0"}'
    before = _count(hello)
    with caplog.at_level(logging.INFO):
        status, answer = _call(app, "POST", "/webtrust/query", _envelope("hello", "<t:Input>ping</t:Input>"),
                               action='"hello"')
    assert status.startswith("200"), answer
    assert etree.fromstring(answer).findtext(f".//{{{TNS}}}helloResult") == "ping"
    lines = [r for r in caplog.records if r.name == "soap_service.api.requests"]
    assert len(lines) == 1
    assert lines[0].fields["service"] == "webtrust-query"  # type: ignore[attr-defined]
    assert lines[0].getMessage().endswith(" service=webtrust-query")
    assert _count(hello) - before == 1
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _call(app, "GET", "/webtrust/order.jws", query="WSDL")
        _call(app, "POST", "/api/order", b"", action='"Hello"')
    services = [r.fields["service"] for r in caplog.records  # type: ignore[attr-defined]
                if r.name == "soap_service.api.requests"]
    assert services == ["webtrust-order", "api"]


@pytest.mark.parametrize(("path", "body", "action", "faultcode"), [
    ("/webtrust/query", _envelope("hello", "<t:Input>x</t:Input>", prolog='<!DOCTYPE x [<!ENTITY a "b">]>'),
     None, "Client.DTDNotAllowed"),
    ("/webtrust/query", _envelope("hello", f"<t:Input>{'x' * 257}</t:Input>"), None, "Client.SchemaValidationError"),
    ("/webtrust/query", _envelope("hello", "<t:Input>x</t:Input>"), '"Reissue"', "Client.SOAPActionMismatch"),
    ("/webtrust/order", _envelope("hello", "<t:Input>x</t:Input>"), None, "Client.UnknownOperation"),
    ("/webtrust/order", _envelope("QuickOrder", "<t:Request/>"), None, "Client.UnknownOperation"),
    ("/webtrust/order", _envelope("Reissue", (
        "<t:Request><t:OrderRequestHeader><t:PartnerCode>P</t:PartnerCode>"
        f"<t:ReplayToken>{'r' * 65}</t:ReplayToken></t:OrderRequestHeader>"
        "<t:OrderParameters><t:CSR>x</t:CSR></t:OrderParameters></t:Request>")),
     None, "Client.SchemaValidationError"),
])
def test_the_guard_protects_the_drop_in_services(
    app: DropInApplication, path: str, body: bytes, action: str | None, faultcode: str
) -> None:
    status, answer = _call(app, "POST", path, body, action=action)
    assert status.startswith("500")
    assert _faultcode(answer).split(":", 1)[1] == faultcode, answer
