"""ReplayToken on the Order API (docs/soap-api.md, "ReplayToken";
docs/design.md, "Concurrency and failures"): with UseReplayToken true, the same token and the
same request are answered with the first answer, byte for byte, the work done once; a different
request is -4016, a request still being served -4017; tokens are per partner, checked after the
credentials, expire, and a stale or failed claim does not hold the token. In-process calls of the
WSGI application, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select, update

from api_support import TNS, envelope
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner
from inprocess_api import call, success_code
from soap_service.api.application import create_wsgi_app
from soap_service.api.guard import SOAPGuard
from soap_service.config import ConfigurationError, load_settings
from soap_service.errors import ReplayTokenInProgress, ReplayTokenReused
from soap_service.ra import replay
from soap_service.ra.reissue import Reissuer
from soap_service.storage import audit
from soap_service.storage.models import Certificate, Order, ReplayToken
from soap_service.storage.models import Partner as PartnerRow
from soap_service.webtrust.application import DropInApplication


@pytest.fixture(scope="module")
def app(installation: Installation) -> SOAPGuard:
    return create_wsgi_app(installation.ra)


@pytest.fixture
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


def _header(partner: Partner, poid: str | None, *, token: str | None = None, use: bool | None = True,
            password: str | None = None, product_code: str | None = None) -> str:
    parts = [f"<o:PartnerCode>{partner.code}</o:PartnerCode>",
             f"<o:AuthToken><o:UserName>{partner.username}</o:UserName>"
             f"<o:Password>{partner.password if password is None else password}</o:Password></o:AuthToken>"]
    if poid is not None:
        parts.append(f"<o:PartnerOrderID>{poid}</o:PartnerOrderID>")
    if token is not None:
        parts.append(f"<o:ReplayToken>{token}</o:ReplayToken>")
    if use is not None:
        parts.append(f"<o:UseReplayToken>{'true' if use else 'false'}</o:UseReplayToken>")
    if product_code is not None:
        parts.append(f"<o:ProductCode>{product_code}</o:ProductCode><o:ApiVersion>4.0</o:ApiVersion>")
    return "<o:OrderRequestHeader>" + "".join(parts) + "</o:OrderRequestHeader>"


def reissue_body(partner: Partner, poid: str, csr: str, **header: Any) -> bytes:
    return envelope("Reissue", f"<o:Request>{_header(partner, poid, **header)}"
                               f"<o:OrderParameters><o:CSR>{csr}</o:CSR></o:OrderParameters></o:Request>")


def revoke_body(partner: Partner, poid: str, reason: str = "superseded", **header: Any) -> bytes:
    return envelope("Revoke", f"<o:Request>{_header(partner, poid, **header)}"
                              f"<o:RevokeReason>{reason}</o:RevokeReason></o:Request>")


def cancel_body(partner: Partner, poid: str, **header: Any) -> bytes:
    return envelope("ModifyOrder", f"<o:Request>{_header(partner, poid, **header)}"
                                   "<o:ModifyOrderOperation>CANCEL</o:ModifyOrderOperation></o:Request>")


def answer_of(app: SOAPGuard, body: bytes) -> bytes:
    status, answer = call(app, body)
    assert status.startswith("200"), answer[:500]
    return answer


def error_of(answer: bytes) -> tuple[int, str | None]:
    root = etree.fromstring(answer)
    return int(root.findtext(f".//{{{TNS}}}ErrorCode") or "0"), root.findtext(f".//{{{TNS}}}ErrorField")


def certificates_of(installation: Installation, poid: str) -> int:
    with installation.ra.readers() as session:
        return session.scalar(
            select(func.count(Certificate.id)).join(Order, Certificate.order_pk == Order.id)
            .where(Order.partner_order_id == poid)
        ) or 0


def events(installation: Installation, partner: Partner, action: str) -> list[tuple[str, int, str]]:
    with installation.ra.readers() as session:
        return [(event.outcome, event.code, event.detail) for event in audit.list_events(session, action=action)
                if event.partner_code == partner.code]


def token_rows(installation: Installation, partner: Partner) -> list[ReplayToken]:
    with installation.ra.readers() as session:
        return list(session.scalars(
            select(ReplayToken).join(PartnerRow, ReplayToken.partner_id == PartnerRow.id)
            .where(PartnerRow.code == partner.code)
        ))


def age_token(installation: Installation, partner: Partner, by: timedelta, *, state: str | None = None) -> None:
    (row,) = token_rows(installation, partner)
    values: dict[str, Any] = {"created_at": row.created_at - by}
    if state is not None:
        values["state"] = state
    with installation.ra.sessions() as session, session.begin():
        session.execute(update(ReplayToken).where(ReplayToken.id == row.id).values(**values))


def new_token() -> str:
    return "tok-" + secrets.token_hex(8)


def test_the_same_token_and_request_is_answered_byte_for_byte_with_the_work_done_once(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    body = reissue_body(partner, poid, fresh_key_csr(("example.com",)), token=new_token(), product_code="X")
    first = answer_of(app, body)
    assert success_code(first) == 0
    again = answer_of(app, body)
    assert again == first  # the stored answer: its Timestamp is the first answer's
    assert certificates_of(installation, poid) == 2  # the order's first certificate and one reissue
    outcomes = events(installation, partner, "reissue")
    assert [o for o, _, _ in outcomes] == ["success", "replayed"]
    assert "ReplayToken" in outcomes[1][2]
    (row,) = token_rows(installation, partner)
    assert (row.state, row.operation, row.answer_code) == ("done", "Reissue", 0)


def test_revoke_and_cancel_replayed_answer_success_again_instead_of_refusing(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    revoked_poid = new_order(installation.ra, partner).order.partner_order_id
    revoke = revoke_body(partner, revoked_poid, token=new_token())
    first = answer_of(app, revoke)
    assert success_code(first) == 0
    assert answer_of(app, revoke) == first  # without the token: -4014, already revoked
    cancelled_poid = new_order(installation.ra, partner).order.partner_order_id
    cancel = cancel_body(partner, cancelled_poid, token=new_token())
    first = answer_of(app, cancel)
    assert success_code(first) == 0
    assert answer_of(app, cancel) == first  # without the token: -4012, already cancelled
    assert [o for o, _, _ in events(installation, partner, "revoke")] == ["success", "replayed"]
    assert [o for o, _, _ in events(installation, partner, "cancel")] == ["success", "replayed"]


def test_without_use_replay_token_the_token_is_ignored_as_before(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    token = new_token()
    assert success_code(answer_of(app, revoke_body(partner, poid, token=token, use=None))) == 0
    assert error_of(answer_of(app, revoke_body(partner, poid, token=token, use=False)))[0] == -4014
    assert token_rows(installation, partner) == []


def test_a_refusal_is_stored_and_replayed_too(app: SOAPGuard, installation: Installation, partner: Partner) -> None:
    body = revoke_body(partner, "PO-none-" + secrets.token_hex(4), token=new_token())
    first = answer_of(app, body)
    assert error_of(first) == (-4003, "PartnerOrderID")
    assert answer_of(app, body) == first
    assert [o for o, _, _ in events(installation, partner, "revoke")] == ["refused", "replayed"]


def test_the_same_token_with_another_request_is_4016_and_nothing_is_done(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    token = new_token()
    assert success_code(answer_of(app, reissue_body(partner, poid, fresh_key_csr(), token=token))) == 0
    other = answer_of(app, reissue_body(partner, poid, fresh_key_csr(), token=token))
    assert error_of(other) == (ReplayTokenReused.code, "ReplayToken") == (-4016, "ReplayToken")
    assert certificates_of(installation, poid) == 2
    # Another operation with the token is another request too.
    assert error_of(answer_of(app, revoke_body(partner, poid, token=token)))[0] == -4016
    assert certificates_of(installation, poid) == 2
    assert [(o, c) for o, c, _ in events(installation, partner, "revoke")] == [("refused", -4016)]


def test_the_digest_leaves_out_credentials_but_covers_the_rest(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    token = new_token()
    first = answer_of(app, revoke_body(partner, poid, token=token))
    # The same request with other whitespace and the extra header fields is the same request.
    spaced = revoke_body(partner, poid, token=token).replace(b"<o:RevokeReason>", b"\n  <o:RevokeReason>")
    assert answer_of(app, spaced) == first
    # ProductCode and ApiVersion are ignored by the service: a retry that adds or changes them is
    # the same request (docs/soap-api.md, "ReplayToken").
    assert answer_of(app, revoke_body(partner, poid, token=token, product_code="SSL123")) == first
    assert error_of(answer_of(app, revoke_body(partner, poid, "keyCompromise", token=token)))[0] == -4016


def test_tokens_are_per_partner(app: SOAPGuard, installation: Installation, partner: Partner) -> None:
    other = new_partner(installation.ra)
    token = new_token()
    mine = new_order(installation.ra, partner).order.partner_order_id
    theirs = new_order(installation.ra, other).order.partner_order_id
    assert success_code(answer_of(app, revoke_body(partner, mine, token=token))) == 0
    answer = answer_of(app, revoke_body(other, theirs, token=token))
    assert success_code(answer) == 0
    assert theirs.encode() in answer and mine.encode() not in answer
    assert len(token_rows(installation, partner)) == len(token_rows(installation, other)) == 1


def test_a_wrong_password_is_4001_never_the_stored_answer(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    token = new_token()
    first = answer_of(app, revoke_body(partner, poid, token=token))
    refused = answer_of(app, revoke_body(partner, poid, token=token, password="wrong-password-123"))
    assert error_of(refused)[0] == -4001
    assert poid.encode() not in refused.split(b"PartnerOrderID>", 2)[-1] and b"SerialNumber" not in refused
    assert answer_of(app, revoke_body(partner, poid, token=token)) == first


def test_an_expired_token_is_not_answered_from_and_the_work_is_done_again(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    body = revoke_body(partner, poid, token=new_token())
    assert success_code(answer_of(app, body)) == 0
    age_token(installation, partner, replay.token_lifetime(installation.ra) + timedelta(minutes=1))
    assert error_of(answer_of(app, body))[0] == -4014  # revoked again: already revoked
    (row,) = token_rows(installation, partner)
    assert (row.state, row.answer_code) == ("done", -4014)


def test_expired_tokens_are_pruned_when_tokens_are_recorded(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    assert success_code(answer_of(app, revoke_body(partner, poid, token=new_token()))) == 0
    age_token(installation, partner, replay.token_lifetime(installation.ra) + timedelta(hours=1))
    for _ in range(replay.replay_tokens.PRUNED_PER_TOKEN):  # each new token prunes the oldest expired ones
        answer_of(app, revoke_body(partner, "PO-none-" + secrets.token_hex(4), token=new_token()))
    assert all(row.operation == "Revoke" and row.answer_code == -4003 for row in token_rows(installation, partner))


class Held:
    """The first reissue that starts waits, with its token claimed, until :attr:`release` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    hold = Held()
    original = Reissuer.reissue_for

    def waiting(self: Reissuer, *args: Any, **kwargs: Any) -> Any:
        with hold._lock:
            first = not hold.entered.is_set()
            hold.entered.set()
        if first:
            assert hold.release.wait(60)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Reissuer, "reissue_for", waiting)
    yield hold
    hold.release.set()


def test_a_request_still_served_is_4017_and_a_stale_claim_is_taken_over(
    app: SOAPGuard, installation: Installation, partner: Partner, held: Held
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    body = reissue_body(partner, poid, fresh_key_csr(), token=new_token())
    answers: list[bytes] = []
    first = threading.Thread(target=lambda: answers.append(answer_of(app, body)))
    first.start()
    try:
        assert held.entered.wait(60)
        in_progress = answer_of(app, body)
        assert error_of(in_progress) == (ReplayTokenInProgress.code, "ReplayToken") == (-4017, "ReplayToken")
        assert certificates_of(installation, poid) == 1
        # The first request's worker is taken for dead once its claim is older than the bound.
        age_token(installation, partner, replay.STALE_PENDING + timedelta(seconds=1))
        taken_over = answer_of(app, body)
        assert success_code(taken_over) == 0
        assert certificates_of(installation, poid) == 2
    finally:
        held.release.set()
        first.join(60)
    # The first request ends (rule 8 answers its CSR with the current certificate) and stores nothing
    # over the claim that took its token over.
    assert len(answers) == 1 and success_code(answers[0]) == 0
    assert certificates_of(installation, poid) == 2
    (row,) = token_rows(installation, partner)
    assert row.state == "done"
    assert answer_of(app, body) == taken_over


def test_an_incident_gives_the_token_back_and_a_retry_does_the_work(
    app: SOAPGuard, installation: Installation, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    body = reissue_body(partner, poid, fresh_key_csr(), token=new_token())
    original = Reissuer.reissue_for

    def failing(self: Reissuer, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Reissuer, "reissue_for", failing)
    status, answer = call(app, body)
    assert status.startswith("500") and b"-9000" in answer
    assert token_rows(installation, partner) == []
    monkeypatch.setattr(Reissuer, "reissue_for", original)
    assert success_code(answer_of(app, body)) == 0
    assert certificates_of(installation, poid) == 2


@pytest.mark.parametrize("token", ["x" * 65, "x" * 100_000, "bad\u0001token", " padded", ""])
def test_a_bad_token_is_refused_before_the_credentials_are_looked_at(
    app: SOAPGuard, installation: Installation, partner: Partner, token: str
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    escaped = token.replace("\u0001", "&#1;")
    status, answer = call(app, revoke_body(partner, poid, token=escaped, password="wrong-password-123"))
    if status.startswith("500"):
        # XML 1.0 forbids the control character: refused by the parser; a token longer than the
        # replay core's bound is refused by the published schema, before anything reads it.
        assert "\u0001" in token or (len(token) > replay.MAX_REPLAY_TOKEN_CHARS
                                     and b"SchemaValidationError" in answer), answer[-300:]
    else:
        assert error_of(answer) == (-2019, "ReplayToken")
    assert events(installation, partner, "authenticate") == []
    assert token_rows(installation, partner) == []
    assert success_code(answer_of(app, revoke_body(partner, poid, token=None, use=None))) == 0  # not revoked before


def test_the_longest_token_is_accepted(app: SOAPGuard, installation: Installation, partner: Partner) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    body = revoke_body(partner, poid, token="t" * replay.MAX_REPLAY_TOKEN_CHARS)
    first = answer_of(app, body)
    assert success_code(first) == 0 and answer_of(app, body) == first


def _at_once(app: SOAPGuard, body: bytes, count: int) -> list[bytes]:
    barrier = threading.Barrier(count)
    answers: list[bytes] = []

    def one() -> None:
        barrier.wait(30)
        answers.append(answer_of(app, body))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == count
    return answers


def test_concurrent_requests_with_one_token_do_the_work_once(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    poid = new_order(installation.ra, partner).order.partner_order_id
    answers = _at_once(app, reissue_body(partner, poid, fresh_key_csr(), token=new_token()), 6)
    codes = sorted(success_code(answer) for answer in answers)
    assert set(codes) <= {0, -4017}, codes
    assert len({answer for answer in answers if success_code(answer) == 0}) == 1  # one answer, stored
    assert certificates_of(installation, poid) == 2
    assert [o for o, _, _ in events(installation, partner, "reissue")].count("success") == 1
    revoked = new_order(installation.ra, partner).order.partner_order_id
    answers = _at_once(app, revoke_body(partner, revoked, token=new_token()), 6)
    codes = sorted(success_code(answer) for answer in answers)
    assert set(codes) <= {0, -4017} and 0 in codes, codes  # never -4014: revoked once


@pytest.mark.parametrize("value", ["0", "169", "a day"])
def test_the_token_lifetime_setting_is_bounded(value: str) -> None:
    assert load_settings({}).replay_token_hours == 24
    assert load_settings({"SOAP_SERVICE_REPLAY_TOKEN_HOURS": "168"}).replay_token_hours == 168
    with pytest.raises(ConfigurationError, match="SOAP_SERVICE_REPLAY_TOKEN_HOURS"):
        load_settings({"SOAP_SERVICE_REPLAY_TOKEN_HOURS": value})


def _post(app: Any, path: str, body: bytes) -> bytes:
    captured: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append(status)
        return lambda _data: None

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }
    answer = b"".join(app(environ, start_response))
    assert captured[0].startswith("200"), answer[:500]
    return answer


def test_a_token_used_on_one_api_is_4016_on_the_other(
    app: SOAPGuard, installation: Installation, partner: Partner
) -> None:
    """/api/order and the drop-in /webtrust/order keep their tokens under operation names of their
    own (Reissue, webtrust.Reissue): the same token on the other API is -4016, nothing done, even
    for a request that reads the same (the two answer in different shapes)."""
    drop_in = DropInApplication(installation.ra, fallback=app)
    poid = new_order(installation.ra, partner).order.partner_order_id
    native = reissue_body(partner, poid, fresh_key_csr(("example.com",)), token=new_token())
    assert success_code(_post(drop_in, "/api/order", native)) == 0
    assert error_of(_post(drop_in, "/webtrust/order", native)) == (-4016, "ReplayToken")
    webtrust = reissue_body(partner, poid, fresh_key_csr(("example.com",)), token=new_token())
    first = _post(drop_in, "/webtrust/order", webtrust)
    assert success_code(first) == 0
    assert _post(drop_in, "/webtrust/order", webtrust) == first
    assert error_of(_post(drop_in, "/api/order", webtrust)) == (-4016, "ReplayToken")
    assert certificates_of(installation, poid) == 3  # the first certificate and one reissue on each API
    assert sorted(row.operation for row in token_rows(installation, partner)) == ["Reissue", "webtrust.Reissue"]
    assert [o for o, _, _ in events(installation, partner, "reissue")] == [
        "success", "refused", "success", "replayed", "refused"]
