"""The operation messages' single part is named ``parameters`` (soap_service/api/wsdl_parts.py,
docs/design.md, "The SOAP contract"): the WS-I wrapped convention that .NET's proxy generators
need to unwrap ``ReissueResult Reissue(ReissueRequest)``. A part name never reaches the wire in
document/literal: zeep and suds, built from the WSDL with spyne's part names and from the published
one, write the same bytes for every operation. (PHP, node-soap and Mono's proxy run against the
published WSDL in tests/test_interop.py and tests/test_interop_dotnet.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree
from suds.client import Client as SudsClient

from api_support import BINDING, SOAP_ENV, WSDL_FILE
from interop_support import spyne_named
from soap_service.api.service import OPERATIONS
from soap_service.api.wsdl_parts import name_parts_parameters

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
TNS = "urn:soap-service:order:v1"
ADDRESS = "http://127.0.0.1:9/api/order"
AUTH = {"UserName": "api", "Password": "secret"}
HEADER = {"PartnerCode": "P1", "AuthToken": AUTH}
ORDER_HEADER = {**HEADER, "PartnerOrderID": "PO-1"}
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
CALLS: dict[str, dict[str, Any]] = {
    "Hello": {"Input": "bonjour — ✓ <&>"},
    "Reissue": {"Request": {"OrderRequestHeader": ORDER_HEADER,
                            "OrderParameters": {"CSR": CSR, "DNSNames": {"DNSName": ["a.example", "b.example"]}},
                            "ReissueEmail": "ops@example.com"}},
    "ValidateOrderParameters": {"Request": {"OrderRequestHeader": ORDER_HEADER, "OrderParameters": {"CSR": CSR}}},
    "ParseCSR": {"Request": {"QueryRequestHeader": HEADER, "CSR": CSR}},
    "GetOrderByPartnerOrderID": {"Request": {"QueryRequestHeader": HEADER, "PartnerOrderID": "PO-1",
                                             "OrderQueryOptions": {"ReturnCertificateHistory": True}}},
    "Revoke": {"Request": {"OrderRequestHeader": HEADER, "SerialNumber": "1f", "RevokeReason": "superseded"}},
    "ModifyOrder": {"Request": {"OrderRequestHeader": ORDER_HEADER, "ModifyOrderOperation": "CANCEL"}},
    "GetModifiedOrders": {"Request": {"QueryRequestHeader": HEADER, "FromDate": "2026-12-01T00:00:00Z",
                                      "ToDate": "2026-12-02T00:00:00Z", "PageSize": 10}},
}


def _published() -> etree._Element:
    return etree.fromstring(WSDL_FILE.read_bytes())


def _message_part(definitions: etree._Element, reference: str | None) -> list[tuple[str | None, str | None]]:
    message = definitions.find(f"{{{WSDL}}}message[@name='{(reference or '').split(':')[-1]}']")
    assert message is not None, reference
    return [(part.get("name"), part.get("element")) for part in message.iterfind(f"{{{WSDL}}}part")]


def test_every_operation_message_has_one_part_named_parameters() -> None:
    definitions = _published()
    operations = definitions.findall(f"{{{WSDL}}}portType/{{{WSDL}}}operation")
    assert {operation.get("name") for operation in operations} == set(OPERATIONS)
    for operation in operations:
        name = operation.get("name")
        request, response = (operation.find(f"{{{WSDL}}}{direction}") for direction in ("input", "output"))
        assert request is not None and response is not None
        assert _message_part(definitions, request.get("message")) == [("parameters", f"tns:{name}")]
        assert _message_part(definitions, response.get("message")) == [("parameters", f"tns:{name}Response")]
        assert operation.get("parameterOrder") == "parameters"
    # the fault message is no operation message: its part keeps its name
    assert _message_part(definitions, "tns:InternalError") == [("InternalError", "tns:InternalError")]


def test_renaming_spynes_wsdl_gives_the_published_one() -> None:
    definitions = spyne_named(_published())
    name_parts_parameters(definitions)
    assert etree.tostring(definitions) == etree.tostring(_published())


def test_a_soap_body_naming_the_part_follows_it() -> None:
    definitions = spyne_named(_published())
    body = definitions.find(f"{{{WSDL}}}binding/{{{WSDL}}}operation[@name='Reissue']/{{{WSDL}}}input/"
                            f"{{{SOAP_BINDING}}}body")
    assert body is not None
    body.set("parts", "Reissue")
    name_parts_parameters(definitions)
    assert body.get("parts") == "parameters"


def test_an_operation_message_without_its_wrapper_element_is_refused() -> None:
    definitions = spyne_named(_published())
    part = definitions.find(f"{{{WSDL}}}message[@name='Reissue']/{{{WSDL}}}part")
    assert part is not None
    part.set("element", "tns:ReissueRequest")
    with pytest.raises(RuntimeError, match="message Reissue has 0 parts of element Reissue"):
        name_parts_parameters(definitions)


def _zeep_bytes(wsdl: Path, operation: str) -> bytes:
    client = zeep.Client(str(wsdl))
    service = client.create_service(BINDING, ADDRESS)
    message = client.create_message(service, operation, **CALLS[operation])
    return bytes(etree.tostring(message, encoding="UTF-8"))


def _suds_bytes(wsdl: Path, operation: str) -> bytes:
    client = SudsClient(wsdl.as_uri(), cache=None, nosend=True, location=ADDRESS)
    request = getattr(client.service, operation)(**CALLS[operation])
    envelope: bytes = request.envelope
    return envelope


def _body_element(sent: bytes) -> str:
    """The tag of the one element in the sent envelope's Body."""
    body = etree.fromstring(sent).find(f"{{{SOAP_ENV}}}Body")
    assert body is not None and len(body) == 1, sent
    return str(body[0].tag)


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_zeep_and_suds_send_the_same_bytes_whatever_the_part_is_named(operation: str, tmp_path: Path) -> None:
    before = tmp_path / "spyne-named.wsdl"
    before.write_bytes(etree.tostring(spyne_named(_published()), xml_declaration=True, encoding="UTF-8"))
    assert b'name="parameters"' not in before.read_bytes()
    zeep_sent = _zeep_bytes(WSDL_FILE, operation)
    assert _body_element(zeep_sent) == f"{{{TNS}}}{operation}"
    assert zeep_sent == _zeep_bytes(before, operation)
    suds_sent = _suds_bytes(WSDL_FILE, operation)
    assert _body_element(suds_sent) == f"{{{TNS}}}{operation}"
    assert suds_sent == _suds_bytes(before, operation)
