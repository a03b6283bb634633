"""The End User Portal's use cases in the RA (docs/design.md, "End User Portal"), on SQLite and
PostgreSQL: the limits counted in the database, a link that works once even when followed twice at
once, a session's idle end, a contact removed, and the pruning of what expired."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, event, func, select

from factory import new_order, new_partner
from soap_service.ra.portal import (
    ACCESS_LINK_LIFETIME,
    FORMS_PER_LOOKUP,
    MAILS_PER_ADDRESS,
    PORTALS,
    PRUNE_AFTER,
    SESSION_IDLE_TIMEOUT,
    SESSION_LIFETIME,
    PortalDesk,
    PortalRefusal,
)
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import (
    MailMessage,
    OrderContact,
    PortalAccessToken,
    PortalRateEvent,
    PortalSession,
)

GEOTRUST = PORTALS["geotrust"]


def desk_of(ra: RegistrationAuthority, **settings: object) -> PortalDesk:
    changed = dataclasses.replace(ra.settings, test_captcha="12345", **settings)  # type: ignore[arg-type]
    return PortalDesk(dataclasses.replace(ra, settings=changed))


def ask(desk: PortalDesk, order_id: str, address: str, client: str = "192.0.2.50") -> None:
    """Request Access, and wait for the desk's thread to have handled it."""
    desk.request_access(GEOTRUST, order_id=order_id, email=address, client=client)
    desk.wait_for_background()


def lookup(desk: PortalDesk, query: str, email: str, client: str = "192.0.2.1") -> object:
    challenge = desk.new_captcha()
    return desk.lookup(GEOTRUST, query=query, email=email, captcha_token=challenge.token, captcha_answer="12345",
                       client=client)


def mailed_token(ra: RegistrationAuthority, order_id: str) -> str:
    with ra.readers() as session:
        body = session.scalars(select(MailMessage.body).where(MailMessage.subject.contains(order_id))
                               .order_by(MailMessage.id.desc())).first()
    assert body is not None
    line = next(line for line in body.splitlines() if "/access/" in line)
    return line.rsplit("/access/", 1)[1].strip()


def test_lookups_past_the_client_limit_are_refused(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra, portal_lookups_per_client=2)
    address = f"lookups-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    client = f"198.51.100.{secrets.randbelow(250)}"
    assert len(lookup(desk, created.order.order_id, address, client)) == 1  # type: ignore[arg-type]
    lookup(desk, created.order.order_id, address, client)
    with pytest.raises(PortalRefusal, match="Too many requests"):
        lookup(desk, created.order.order_id, address, client)
    with ra.readers() as session:  # counted as hashes, never the address itself
        subjects = session.scalars(select(PortalRateEvent.subject)).all()
    assert client not in subjects and all(len(s) == 64 for s in subjects)


def test_mails_past_the_contacts_limit_are_dropped_not_refused(ra: RegistrationAuthority) -> None:
    """Three links an hour to one contact of one order; a fourth request is answered as any other and
    sends nothing (the contact holds three working links), so nobody is locked out by it."""
    desk = desk_of(ra)
    address = f"limited-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    for _ in range(MAILS_PER_ADDRESS + 2):
        ask(desk, created.order.order_id, address, "203.0.113.9")
    with ra.readers() as session:
        assert session.scalar(select(func.count()).select_from(MailMessage).where(
            MailMessage.recipient == address)) == MAILS_PER_ADDRESS


def test_requests_for_a_made_up_order_do_not_lock_the_contact_out(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"victim-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    for i in range(MAILS_PER_ADDRESS * 3):
        ask(desk, f"NO-SUCH-{i}", address, "198.18.0.1")
    ask(desk, created.order.order_id, address.upper(), "198.18.0.2")
    with ra.readers() as session:
        assert session.scalars(select(MailMessage.recipient).where(MailMessage.recipient == address)).all() == [
            address]


def test_a_request_does_the_same_work_whether_or_not_a_mail_goes_out(ra: RegistrationAuthority) -> None:
    """The statements Request Access runs before it answers are the same for a contact and for a
    stranger: whether a mail goes out is decided on the desk's own thread, after the answer."""
    desk = desk_of(ra)
    address = f"timing-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    caller = threading.get_ident()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if threading.get_ident() == caller:
            statements.append(statement.split()[0].upper())

    event.listen(ra.engine, "before_cursor_execute", count)
    try:
        runs = []
        for email in (address, "stranger@example.org"):
            statements.clear()
            desk.request_access(GEOTRUST, order_id=created.order.order_id, email=email, client="192.0.2.60")
            runs.append(list(statements))
            desk.wait_for_background()
    finally:
        event.remove(ra.engine, "before_cursor_execute", count)
    assert runs[0] == runs[1] and runs[0]


@pytest.mark.parametrize("address", ["kate@\u212aodak.com", "k\u00e5te@example.com", "kate@example.com\u200b"])
def test_an_address_that_is_not_plain_ascii_is_refused(ra: RegistrationAuthority, address: str) -> None:
    """U+212A KELVIN SIGN lowers to "k": compared without case it would match kate@kodak.com."""
    desk = desk_of(ra)
    with pytest.raises(PortalRefusal):
        desk.request_access(GEOTRUST, order_id="X", email=address, client="192.0.2.61")
    with pytest.raises(PortalRefusal) as refused:
        lookup(desk, "kodak.com", address)
    assert refused.value.field == "email"


def test_no_mail_for_an_address_that_is_no_contact(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    created = new_order(ra, new_partner(ra))
    ask(desk, created.order.order_id, "stranger@example.org", "192.0.2.7")
    with ra.readers() as session:
        assert not session.scalars(select(MailMessage).where(MailMessage.recipient == "stranger@example.org")).all()


def test_a_link_followed_twice_at_once_opens_one_session(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"race-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    ask(desk, created.order.order_id, address, "192.0.2.8")
    token = mailed_token(ra, created.order.order_id)
    barrier, outcomes = threading.Barrier(6), []

    def follow() -> None:
        barrier.wait()
        try:
            outcomes.append(desk.open_link(GEOTRUST, token))
        except PortalRefusal as refusal:
            outcomes.append(refusal)

    threads = [threading.Thread(target=follow) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(not isinstance(o, PortalRefusal) for o in outcomes) == 1 and len(outcomes) == 6


def test_a_session_ends_after_its_idle_time_and_a_removed_contact_opens_nothing(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"idle-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    ask(desk, created.order.order_id, address, "192.0.2.9")
    session_token, _access = desk.open_link(GEOTRUST, mailed_token(ra, created.order.order_id))
    assert desk.access(GEOTRUST, session_token) is not None
    assert desk.access(PORTALS["thawte"], session_token) is None  # another brand family's portal
    now = ra.clock()
    later = PortalDesk(dataclasses.replace(ra, clock=lambda: now + SESSION_IDLE_TIMEOUT + timedelta(seconds=1)))
    assert later.access(GEOTRUST, session_token) is None
    # a new link, then the address stops being a contact before it is followed
    ask(desk, created.order.order_id, address, "192.0.2.9")
    token = mailed_token(ra, created.order.order_id)
    with ra.sessions() as session, session.begin():
        session.execute(delete(OrderContact).where(OrderContact.email == address))
    with pytest.raises(PortalRefusal, match="expired or was already used"):
        desk.open_link(GEOTRUST, token)


def test_prune_drops_what_expired_a_day_ago(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"prune-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    lookup(desk, created.order.order_id, address, "192.0.2.77")
    ask(desk, created.order.order_id, address, "192.0.2.77")
    desk.open_link(GEOTRUST, mailed_token(ra, created.order.order_id))
    now = ra.clock()
    later = PortalDesk(dataclasses.replace(ra, clock=lambda: now + PRUNE_AFTER + timedelta(days=2)))
    later.prune()
    with ra.readers() as session:
        assert not session.scalars(select(PortalRateEvent).where(PortalRateEvent.at <= now)).all()
        assert not session.scalars(select(PortalAccessToken).where(PortalAccessToken.email == address)).all()
        assert not session.scalars(select(PortalSession).where(PortalSession.email == address)).all()


def test_a_link_past_its_24_hours_opens_nothing(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"expired-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    ask(desk, created.order.order_id, address, "192.0.2.31")
    token = mailed_token(ra, created.order.order_id)
    now = ra.clock()
    late = PortalDesk(dataclasses.replace(ra, clock=lambda: now + ACCESS_LINK_LIFETIME + timedelta(seconds=1)))
    with pytest.raises(PortalRefusal, match="expired or was already used"):
        late.open_link(GEOTRUST, token)
    just_in_time = PortalDesk(dataclasses.replace(ra, clock=lambda: now + ACCESS_LINK_LIFETIME - timedelta(seconds=1)))
    session_token, access = just_in_time.open_link(GEOTRUST, token)
    assert session_token and access.email == address


def test_a_session_ends_12_hours_after_its_link_and_when_the_contact_is_removed(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra)
    address = f"lifetime-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    ask(desk, created.order.order_id, address, "192.0.2.70")
    session_token, _access = desk.open_link(GEOTRUST, mailed_token(ra, created.order.order_id))
    now = ra.clock()
    for minutes in range(10, 12 * 60, 10):  # used every 10 minutes: never idle, still ended at 12 hours
        busy = PortalDesk(dataclasses.replace(ra, clock=lambda m=minutes: now + timedelta(minutes=m)))
        assert busy.access(GEOTRUST, session_token) is not None
    ended = PortalDesk(dataclasses.replace(ra, clock=lambda: now + SESSION_LIFETIME + timedelta(seconds=1)))
    assert ended.access(GEOTRUST, session_token) is None
    ask(desk, created.order.order_id, address, "192.0.2.70")
    second_token, _ = desk.open_link(GEOTRUST, mailed_token(ra, created.order.order_id))
    assert desk.access(GEOTRUST, second_token) is not None
    with ra.sessions() as session, session.begin():
        session.execute(delete(OrderContact).where(OrderContact.email == address))
    assert desk.access(GEOTRUST, second_token) is None


def test_lookup_forms_past_three_per_allowed_lookup_are_refused(ra: RegistrationAuthority) -> None:
    desk = desk_of(ra, portal_lookups_per_client=2)
    client = f"198.51.100.{secrets.randbelow(250)}"
    for _ in range(2 * FORMS_PER_LOOKUP):
        desk.new_captcha(client)
    with pytest.raises(PortalRefusal, match="Too many requests"):
        desk.new_captcha(client)


def test_a_page_view_writes_the_sessions_use_at_most_once_a_minute(ra: RegistrationAuthority) -> None:
    """Every portal page checks the session; only a check a minute after the last write writes
    (SQLite's write lock is the reissues' too)."""
    desk = desk_of(ra)
    address = f"touch-{secrets.token_hex(4)}@example.com"
    created = new_order(ra, new_partner(ra), admin_email=address)
    ask(desk, created.order.order_id, address, "192.0.2.80")
    session_token, _access = desk.open_link(GEOTRUST, mailed_token(ra, created.order.order_id))
    now = ra.clock()
    writes: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "BEGIN IMMEDIATE")):
            writes.append(statement)

    event.listen(ra.engine, "before_cursor_execute", record)
    try:
        soon = PortalDesk(dataclasses.replace(ra, clock=lambda: now + timedelta(seconds=30)))
        assert soon.access(GEOTRUST, session_token) is not None
        assert writes == []
        later = PortalDesk(dataclasses.replace(ra, clock=lambda: now + timedelta(minutes=2)))
        assert later.access(GEOTRUST, session_token) is not None
        assert any(w.lstrip().upper().startswith("UPDATE") for w in writes)
    finally:
        event.remove(ra.engine, "before_cursor_execute", record)
