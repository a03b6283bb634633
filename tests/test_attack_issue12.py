"""Attacks on the surfaces of tracker issue 12 by a partner holding its own credentials: the
drop-in services at ``/webtrust/order`` and ``/webtrust/query`` (paths, methods, SOAPActions,
operations of one service posted to the other) and the ReplayToken core (``ra.replay``,
``storage.replay_tokens``: tokens per partner, a token given back or pruned while another request
claims it). In-process calls of the WSGI applications, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import delete, event, select

from api_support import SOAP_ENV, TNS
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import new_order, new_partner
from inprocess_api import request_wsgi
from soap_service.api.application import create_wsgi_app
from soap_service.api.wssecurity import PASSWORD_DIGEST, WSSE, WSU
from soap_service.config import Secret
from soap_service.ra import replay
from soap_service.ra.audit import Subject
from soap_service.ra.partners import set_password
from soap_service.ra.reissue import PartnerRef
from soap_service.storage.models import Partner as PartnerRow
from soap_service.storage.models import ReplayToken
from soap_service.storage.replay_tokens import Claimed
from soap_service.webtrust.application import DropInApplication
from soap_service.wsgi import Dispatcher

_call = request_wsgi


@pytest.fixture(scope="module")
def webtrust(installation: Installation) -> DropInApplication:
    return DropInApplication(installation.ra, fallback=create_wsgi_app(installation.ra))


@pytest.fixture(scope="module")
def dispatcher(installation: Installation, webtrust: DropInApplication) -> Dispatcher:
    soap = create_wsgi_app(installation.ra)
    return Dispatcher(installation.ra, soap=soap, status=soap, ocsp=soap, webtrust=webtrust)


@pytest.fixture
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


def _envelope(operation: str, inner: str, *, header: str = "") -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{TNS}">{header}<soap:Body>'
            f"<t:{operation}>{inner}</t:{operation}></soap:Body></soap:Envelope>").encode()


def _faultcode(answer: bytes) -> str:
    return etree.fromstring(answer).findtext(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultcode") or ""


def _success_code(answer: bytes) -> int:
    return int(etree.fromstring(answer).findtext(f".//{{{TNS}}}SuccessCode") or "")


HELLO = _envelope("hello", "<t:Input>ping</t:Input>")


# ------------------------------------------------------------------------ paths and methods


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/webtrust/order.jws", "WSDL", "200"),
    ("GET", "/webtrust/order.jws", "wsdl=1", "200"),
    ("HEAD", "/webtrust/query.jws", "WSDL", "200"),
    ("GET", "/webtrust/order/", "WSDL", "404"),
    ("GET", "//webtrust/order", "WSDL", "404"),
    ("GET", "/webtrust/order.JWS", "WSDL", "404"),
    ("GET", "/webtrust/order.jws/", "WSDL", "404"),
    ("GET", "/webtrust/", "", "404"),
    ("GET", "/webtrust", "", "404"),
    ("GET", "/webtrust/query", "", "405"),
    ("GET", "/webtrust/query", "WSDL&x=1", "405"),
    ("PUT", "/webtrust/query", "", "405"),
    ("OPTIONS", "/webtrust/order", "", "405"),
])
def test_paths_and_methods_of_the_drop_in_services(
    dispatcher: Dispatcher, method: str, path: str, query: str, expected: str
) -> None:
    status, answer = _call(dispatcher, method, path, HELLO if method == "PUT" else b"", query=query)
    assert status.startswith(expected), (status, answer[:200])
    if method == "HEAD":
        assert answer == b""


@pytest.mark.parametrize(("path", "body", "action", "faultcode"), [
    ("/webtrust/order", HELLO, '"hello"', "Client.UnknownOperation"),
    ("/webtrust/order.jws", HELLO, '"hello"', "Client.UnknownOperation"),
    ("/api/order", HELLO, '"hello"', "Client.UnknownOperation"),
    ("/webtrust/query", _envelope("Revoke", "<t:Request/>"), '"Revoke"', "Client.UnknownOperation"),
    ("/webtrust/query", HELLO, '"Reissue"', "Client.SOAPActionMismatch"),
    ("/webtrust/query", HELLO, '"GetFulfillment"', "Client.SOAPActionMismatch"),
])
def test_an_operation_of_one_service_is_refused_by_the_other(
    dispatcher: Dispatcher, path: str, body: bytes, action: str, faultcode: str
) -> None:
    status, answer = _call(dispatcher, "POST", path, body, action=action)
    assert status.startswith("500")
    assert _faultcode(answer).split(":", 1)[1] == faultcode, answer


# ------------------------------------------------------------------------ GetModifiedOrders


def _digest_security(partner: Partner) -> str:
    nonce = secrets.token_bytes(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    proof = hashlib.sha1(nonce + created.encode() + partner.password.encode()).digest()
    return (f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
            f"<wsse:Username>{partner.username}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{base64.b64encode(proof).decode()}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
            "</wsse:UsernameToken></wsse:Security></soap:Header>")


def _modified(operation: str, partner: Partner, start: datetime, end: datetime) -> bytes:
    return _envelope(operation, (
        f"<t:Request><t:QueryRequestHeader><t:PartnerCode>{partner.code}</t:PartnerCode></t:QueryRequestHeader>"
        f"<t:FromDate>{start.isoformat()}</t:FromDate><t:ToDate>{end.isoformat()}</t:ToDate>"
        + ("<t:OrderQueryOptions/>" if operation == "GetModifiedOrders" else "") + "</t:Request>"
    ), header=_digest_security(partner))


def test_get_modified_orders_with_a_password_digest_answers_and_locks_nobody_out(
    webtrust: DropInApplication, installation: Installation, partner: Partner
) -> None:
    set_password(installation.ra, code=partner.code, username=partner.username, password=Secret(partner.password),
                 ws_digest=True)
    start = datetime.now(UTC) - timedelta(minutes=1)
    new_order(installation.ra, partner)
    new_order(installation.ra, partner)
    end = datetime.now(UTC) + timedelta(minutes=1)
    status, answer = _call(webtrust, "POST", "/webtrust/query", _modified("GetModifiedOrderSummary", partner, start,
                                                                          end))
    assert status.startswith("200") and _success_code(answer) == 0, answer
    for _ in range(installation.ra.settings.lockout_threshold):
        status, answer = _call(webtrust, "POST", "/webtrust/query", _modified("GetModifiedOrders", partner, start,
                                                                              end))
        assert status.startswith("200") and _success_code(answer) == 0, answer
    status, answer = _call(webtrust, "POST", "/webtrust/query", _modified("GetModifiedOrderSummary", partner, start,
                                                                          end))
    assert _success_code(answer) == 0, answer  # not -4002: the polling did not lock the account


# ------------------------------------------------------------------------ the replay core


def _partner_ref(installation: Installation, partner: Partner) -> PartnerRef:
    with installation.ra.readers() as session:
        row = session.scalars(select(PartnerRow).where(PartnerRow.code == partner.code)).one()
        return PartnerRef(id=row.id, code=row.code, actor=partner.username)


@pytest.fixture
def removed_after_insert(installation: Installation) -> Iterator[list[str]]:
    """Once armed (a token appended), the first INSERT into replay_tokens that finds the token's
    row already there is followed, before the claim reads that row, by another transaction that
    deletes it and commits: what a failed request giving its token back, or a prune of an expired
    token, does at that instant. PostgreSQL only (SQLite's writers take turns)."""
    if installation.backend != "postgresql":
        pytest.skip("SQLite serializes writers: no other transaction can delete between the two statements")
    engine = installation.ra.engine
    armed: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not armed or not statement.lstrip().upper().startswith("INSERT INTO REPLAY_TOKENS"):
            return
        if cursor.rowcount != 0:
            return
        token = armed.pop()
        with engine.connect() as other, other.begin():
            other.execute(delete(ReplayToken).where(ReplayToken.token == token))

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield armed
    finally:
        event.remove(engine, "after_cursor_execute", after)


def test_a_token_given_back_while_it_is_claimed_again_is_claimed_not_an_incident(
    installation: Installation, partner: Partner, removed_after_insert: list[str]
) -> None:
    ra = installation.ra
    ref = _partner_ref(installation, partner)
    token = "tok-" + secrets.token_hex(8)
    wanted = replay.ReplayRequest(token, "Revoke", replay.request_digest(b"<Revoke/>"))
    subject = Subject(channel="api", action="revoke", partner_code=partner.code, username=partner.username)
    first = replay.claim(ra, ref, wanted, subject)
    assert isinstance(first, Claimed)  # pending: its request is being served, or its worker failed
    removed_after_insert.append(token)
    second = replay.claim(ra, ref, wanted, subject)
    assert not removed_after_insert, "the race was not staged"
    assert isinstance(second, Claimed)
    with ra.readers() as session:
        rows = list(session.scalars(select(ReplayToken).where(ReplayToken.token == token)))
    assert [(row.id, row.state) for row in rows] == [(second.row_id, "pending")]


# ------------------------------------------------------------------------ another partner's orders


def _auth(partner: Partner) -> str:
    return (f"<t:PartnerCode>{partner.code}</t:PartnerCode><t:AuthToken><t:UserName>{partner.username}</t:UserName>"
            f"<t:Password>{partner.password}</t:Password></t:AuthToken>")


def test_another_partners_order_is_not_found_through_the_drop_in_services(
    dispatcher: Dispatcher, installation: Installation, partner: Partner
) -> None:
    """Every operation of the drop-in services that names an order or a certificate, sent by one
    partner for another's: -4003, as for an order that does not exist, and nothing changes."""
    victim = new_partner(installation.ra)
    issued = new_order(installation.ra, victim)
    poid, pem = issued.order.partner_order_id, issued.certificate.pem
    token = "<t:ReplayToken>{}</t:ReplayToken><t:UseReplayToken>true</t:UseReplayToken>"
    requests = [
        ("/webtrust/query", "CheckStatus", f"<t:Request><t:QueryRequestHeader>{_auth(partner)}</t:QueryRequestHeader>"
                                           f"<t:PartnerOrderID>{poid}</t:PartnerOrderID></t:Request>"),
        ("/webtrust/query", "GetFulfillment", f"<t:Request><t:QueryRequestHeader>{_auth(partner)}"
                                              f"</t:QueryRequestHeader><t:PartnerOrderID>{poid}</t:PartnerOrderID>"
                                              "<t:ReturnCACerts>true</t:ReturnCACerts></t:Request>"),
        ("/webtrust/query", "GetOrderByPartnerOrderID", (
            f"<t:Request><t:QueryRequestHeader>{_auth(partner)}</t:QueryRequestHeader>"
            f"<t:PartnerOrderID>{poid}</t:PartnerOrderID><t:OrderQueryOptions><t:ReturnFulfillment>true"
            "</t:ReturnFulfillment></t:OrderQueryOptions></t:Request>")),
        ("/webtrust/order", "Revoke", f"<t:Request><t:OrderRequestHeader>{_auth(partner)}{token.format('t-revoke')}"
                                     f"</t:OrderRequestHeader><t:Certificate>{pem}</t:Certificate></t:Request>"),
        ("/webtrust/order", "Revoke", f"<t:Request><t:OrderRequestHeader>{_auth(partner)}"
                                     f"<t:PartnerOrderID>{poid}</t:PartnerOrderID></t:OrderRequestHeader>"
                                     f"<t:SerialNumber>{issued.certificate.serial}</t:SerialNumber></t:Request>"),
        ("/webtrust/order", "ModifyOrder", f"<t:Request><t:OrderRequestHeader>{_auth(partner)}"
                                          f"<t:PartnerOrderID>{poid}</t:PartnerOrderID>{token.format('t-cancel')}"
                                          "</t:OrderRequestHeader>"
                                          "<t:ModifyOrderOperation>CANCEL</t:ModifyOrderOperation></t:Request>"),
    ]
    for path, operation, inner in requests:
        status, answer = _call(dispatcher, "POST", path, _envelope(operation, inner), action=f'"{operation}"')
        assert status.startswith("200"), answer
        assert _success_code(answer) == -4003, (operation, answer)
        assert issued.certificate.serial.encode() not in answer and issued.order.order_id.encode() not in answer
    status, answer = _call(dispatcher, "POST", "/webtrust/query", _envelope("CheckStatus", (
        f"<t:Request><t:QueryRequestHeader>{_auth(victim)}</t:QueryRequestHeader>"
        f"<t:PartnerOrderID>{poid}</t:PartnerOrderID></t:Request>")), action='"CheckStatus"')
    assert _success_code(answer) == 0
    status_of = etree.fromstring(answer).find(f".//{{{TNS}}}OrderStatus")
    assert status_of is not None
    assert status_of.findtext(f"{{{TNS}}}CertificateStatus") == "VALID", answer


# ------------------------------------------------------------------------ the header's new fields


@pytest.mark.parametrize("field", ["ProductCode", "ApiVersion", "ReplayToken"])
def test_the_order_apis_new_header_fields_are_bounded_before_anything_reads_them(
    dispatcher: Dispatcher, installation: Installation, partner: Partner, field: str
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    inner = (f"<t:Request><t:OrderRequestHeader>{_auth(partner)}<t:PartnerOrderID>{poid}</t:PartnerOrderID>"
             f"<t:{field}>{'x' * 100_000}</t:{field}></t:OrderRequestHeader>"
             "<t:RevokeReason>superseded</t:RevokeReason></t:Request>")
    for path in ("/webtrust/order", "/api/order"):
        status, answer = _call(dispatcher, "POST", path, _envelope("Revoke", inner), action='"Revoke"')
        assert status.startswith("500") and _faultcode(answer).endswith("Client.SchemaValidationError"), (
            path, answer[-400:])


def test_a_reissue_with_more_order_changes_than_the_schema_bounds_is_a_schema_fault(
    dispatcher: Dispatcher, installation: Installation, partner: Partner
) -> None:
    """OrderChanges is refused whatever it holds (-2019); the schema bounds its length too, so
    that 90,000 empty Change elements are not all parsed before the login (the review measured
    2.5 s of parsing per 1 MiB request)."""
    from soap_service.webtrust.models import MAX_ORDER_CHANGES

    poid = new_order(installation.ra, partner).order.partner_order_id
    inner = (f"<t:Request><t:OrderRequestHeader>{_auth(partner)}<t:PartnerOrderID>{poid}</t:PartnerOrderID>"
             "</t:OrderRequestHeader><t:OrderParameters><t:CSR>x</t:CSR></t:OrderParameters>"
             "<t:OrderChanges>" + "<t:Change/>" * (MAX_ORDER_CHANGES + 1) + "</t:OrderChanges></t:Request>")
    status, answer = _call(dispatcher, "POST", "/webtrust/order", _envelope("Reissue", inner), action='"Reissue"')
    assert status.startswith("500") and _faultcode(answer).endswith("Client.SchemaValidationError"), answer[-400:]
