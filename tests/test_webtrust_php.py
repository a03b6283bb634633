"""The drop-in services through PHP's SoapClient (tracker issue 12): the nested arrays the earlier
webtrust API's PHP libraries send, against a real server (``tests/interop/php_webtrust_client.php``
reads a JSON job, prints a JSON report; the assertions are here)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from api_support import RunningServer, running_server
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from interop_support import _PHP_MISSING, INTEROP, NAMES, SCRIPT_TIMEOUT
from soap_service.storage.models import Certificate, Order

pytestmark = [pytest.mark.skipif(_PHP_MISSING is not None, reason=str(_PHP_MISSING))]


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def report(server: RunningServer, installation: Installation) -> dict[str, Any]:
    partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner).order
    replay_order = new_order(installation.ra, partner).order
    job = {
        "base": server.base_url,
        "partner": {"code": partner.code, "username": partner.username, "password": partner.password},
        "order": order.partner_order_id, "csr": fresh_key_csr(NAMES),
        "outside_csr": fresh_key_csr(("other.example.org",)),
        "replay_order": replay_order.partner_order_id, "replay_token": "php-" + secrets.token_hex(8),
        "replay_csr": fresh_key_csr(NAMES), "replay_other_csr": fresh_key_csr(NAMES),
    }
    completed = subprocess.run(["php", str(INTEROP / "php_webtrust_client.php")], input=json.dumps(job),
                               capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=INTEROP)
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout)
    answer["order"], answer["replay_order"] = order, replay_order
    return answer


def _result(report: dict[str, Any], name: str) -> Any:
    outcome = report["calls"][name]
    assert "result" in outcome, outcome
    return outcome["result"]


def test_functions_are_the_wrapped_operations(report: dict[str, Any]) -> None:
    assert "ReissueResponse Reissue(Reissue $parameters)" in report["functions"]["order"]
    assert "helloResponse hello(hello $parameters)" in report["functions"]["query"]
    assert not any("QuickOrder" in f for f in report["functions"]["order"])


def test_hello_and_reissue(report: dict[str, Any]) -> None:
    assert _result(report, "hello")["helloResult"] == "php"
    reissue = _result(report, "reissue")
    assert reissue["OrderResponseHeader"]["SuccessCode"] == 0
    assert reissue["GeoTrustOrderID"] == report["order"].order_id
    assert reissue["Certificate"]["ServerCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(reissue["Certificate"]["CACertificates"]["CACertificate"]) == 2


def test_a_business_error_is_a_list_of_one(report: dict[str, Any]) -> None:
    header = _result(report, "outside")["OrderResponseHeader"]
    assert header["SuccessCode"] == -4010
    assert [e["ErrorCode"] for e in header["Errors"]["Error"]] == [-4010]


def test_queries(report: dict[str, Any]) -> None:
    order = report["order"]
    detail = _result(report, "order")["OrderDetail"]
    assert detail["OrderInfo"]["GeoTrustOrderID"] == order.order_id
    assert detail["Fulfillment"]["PKCS7"].startswith("-----BEGIN PKCS7-----")
    assert len(detail["CertificateHistory"]["Certificate"]) == 2
    modified = _result(report, "modified")
    assert modified["QueryResponseHeader"]["ReturnCount"] >= 1
    assert order.partner_order_id in [d["OrderInfo"]["PartnerOrderID"] for d in modified["OrderDetails"]["OrderDetail"]]
    status = _result(report, "status")["OrderStatus"]
    assert (status["GeoTrustOrderID"], status["CertificateStatus"]) == (order.order_id, "VALID")
    fulfillment = _result(report, "fulfillment")["Fulfillment"]
    assert len(fulfillment["CACertificates"]["CACertificate"]) == 2 and fulfillment["PKCS7"]


def test_revoke_by_pem_then_cancel(report: dict[str, Any]) -> None:
    revoked = _result(report, "revoke")
    # "cessation of service", as the library documents it, is RFC 5280's cessationOfOperation
    assert (revoked["OrderResponseHeader"]["SuccessCode"], revoked["RevokeReason"]) == (0, "cessationOfOperation")
    cancelled = _result(report, "cancel")
    assert cancelled["OrderResponseHeader"]["SuccessCode"] == 0
    assert cancelled["GeoTrustOrderID"] == report["order"].order_id


def test_an_operation_not_offered_fails_in_the_client(report: dict[str, Any]) -> None:
    fault = report["calls"]["quick_order"]["fault"]
    assert "QuickOrder" in fault["string"]


def test_a_replayed_token(report: dict[str, Any], installation: Installation) -> None:
    """SymAPI's ReplayToken option (issue 12): UseReplayToken true and the token in the header; the
    same request again is the first answer byte for byte, one certificate; another request -4016."""
    assert _result(report, "replay_request") is True
    first, again = _result(report, "replay_first"), _result(report, "replay_again")
    assert first["OrderResponseHeader"]["SuccessCode"] == 0
    assert _result(report, "replay_bytes_equal") is True
    assert again["Certificate"]["SerialNumber"] == first["Certificate"]["SerialNumber"]
    other = _result(report, "replay_other")["OrderResponseHeader"]
    assert (other["SuccessCode"], other["Errors"]["Error"][0]["ErrorField"]) == (-4016, "ReplayToken")
    with installation.ra.readers() as session:
        certificates = session.scalar(
            select(func.count(Certificate.id)).join(Order, Certificate.order_pk == Order.id)
            .where(Order.partner_order_id == report["replay_order"].partner_order_id)
        )
    assert certificates == 2  # the order's first certificate and one reissue
