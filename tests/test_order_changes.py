"""docs/design.md, "Revocation", the change feed: what issuance, reissue, revocation and
cancellation write to order_changes, and what GetModifiedOrders (ra.changes.modified_orders)
answers from it, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import AuthenticationFailed, InvalidField
from soap_service.ra.changes import EARLIEST_YEAR, LATEST_YEAR, MAX_PAGE, MAX_WINDOW, ChangesPage, modified_orders
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.revocation import Revoker, RevokeRequest
from soap_service.storage import changes as change_storage
from soap_service.storage.models import AuditEvent, Order, OrderChange


def feed(ra, partner, start: datetime, end: datetime, page_size: int = MAX_PAGE, after: int | None = None
         ) -> ChangesPage:
    return modified_orders(ra, partner.credentials(), start, end, channel="api", page_size=page_size,
                           after_change_id=after)


def rows_of(ra, poid: str) -> list[OrderChange]:
    with ra.sessions() as session:
        order_pk = session.scalar(select(Order.id).where(Order.partner_order_id == poid))
        return list(session.scalars(select(OrderChange).where(OrderChange.order_pk == order_pk)
                                    .order_by(OrderChange.id)))


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


def test_each_change_is_written_with_its_order(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    csr = fresh_key_csr()
    reissued = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
    replayed = Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")
    assert replayed.replayed
    Revoker(ra).revoke(partner.credentials(), RevokeRequest(poid, created.certificate.serial, None, "superseded"),
                       channel="api")
    Revoker(ra).cancel(partner.credentials(), poid, channel="api")
    rows = rows_of(ra, poid)
    assert [(r.change, r.certificate_serial, r.detail) for r in rows] == [
        ("issued", created.certificate.serial, None),
        ("reissued", reissued.certificate.serial, None),  # the replay wrote nothing
        ("revoked", created.certificate.serial, "superseded"),
        ("revoked", reissued.certificate.serial, "cessationOfOperation"),
        ("cancelled", None, None),
    ]
    with ra.sessions() as session:
        partner_id = session.scalar(select(Order.partner_id).where(Order.partner_order_id == poid))
    assert {r.partner_id for r in rows} == {partner_id}


def test_a_refused_reissue_or_revocation_writes_no_change(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    before = len(rows_of(ra, poid))
    with pytest.raises(InvalidField):
        Revoker(ra).revoke(partner.credentials(), RevokeRequest(poid, None, None, "certificateHold"), channel="api")
    assert len(rows_of(ra, poid)) == before


def test_the_feed_answers_the_partners_changes_in_order(ra):
    partner = new_partner(ra)
    start, end = window()
    first = new_order(ra, partner)
    second = new_order(ra, partner)
    Revoker(ra).revoke(partner.credentials(), RevokeRequest(first.order.partner_order_id, None, None,
                                                            "unspecified"), channel="api")
    page = feed(ra, partner, start, end)
    assert not page.more
    assert [(c.partner_order_id, c.change, c.serial_number, c.detail) for c in page.changes] == [
        (first.order.partner_order_id, "issued", first.certificate.serial, None),
        (second.order.partner_order_id, "issued", second.certificate.serial, None),
        (first.order.partner_order_id, "revoked", first.certificate.serial, "unspecified"),
    ]
    assert page.changes[0].order_id == first.order.order_id
    assert [c.at for c in page.changes] == sorted(c.at for c in page.changes)
    assert all(c.at.tzinfo is not None for c in page.changes)


def test_from_is_inclusive_and_to_exclusive(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    at = rows_of(ra, created.order.partner_order_id)[0].at
    assert [c.serial_number for c in feed(ra, partner, at, at + timedelta(seconds=1)).changes] == [
        created.certificate.serial]
    assert feed(ra, partner, at - timedelta(days=1), at).changes == ()


def test_pages_say_when_more_changes_are_left(ra):
    partner = new_partner(ra)
    start, end = window()
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    for _ in range(3):
        Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, fresh_key_csr()), channel="api")
    whole = feed(ra, partner, start, end)
    assert len(whole.changes) == 4 and not whole.more
    first = feed(ra, partner, start, end, page_size=3)
    assert (first.changes, first.more) == (whole.changes[:3], True)
    again = feed(ra, partner, start, end, page_size=3, after=first.changes[-1].change_id)
    assert (again.changes, again.more) == (whole.changes[3:], False)
    exact = feed(ra, partner, start, end, page_size=4)
    assert (exact.changes, exact.more) == (whole.changes, False)


def test_another_partner_sees_none_of_them(ra):
    partner, other = new_partner(ra), new_partner(ra)
    start, end = window()
    created = new_order(ra, partner)
    Revoker(ra).cancel(partner.credentials(), created.order.partner_order_id, channel="api")
    assert feed(ra, other, start, end).changes == ()


@pytest.mark.parametrize(("shift", "field"), [
    ("naive-from", "FromDate"),
    ("naive-to", "ToDate"),
    ("reversed", "ToDate"),
    ("empty", "ToDate"),
    ("too-wide", "ToDate"),
])
def test_windows_out_of_bounds_are_refused_2019(ra, shift, field):
    partner = new_partner(ra)
    now = datetime.now(UTC)
    start, end = {
        "naive-from": (now.replace(tzinfo=None), now + timedelta(hours=1)),
        "naive-to": (now, (now + timedelta(hours=1)).replace(tzinfo=None)),
        "reversed": (now, now - timedelta(hours=1)),
        "empty": (now, now),
        "too-wide": (now, now + MAX_WINDOW + timedelta(seconds=1)),
    }[shift]
    with pytest.raises(InvalidField) as caught:
        feed(ra, partner, start, end)
    assert (caught.value.code, caught.value.field) == (-2019, field)


@pytest.mark.parametrize(("start", "end", "field"), [
    # Converting either end to UTC overflows a datetime: refused before any conversion.
    ("0001-01-01T00:00:00+14:00", "0001-01-02T00:00:00+14:00", "FromDate"),
    ("9999-12-31T00:00:00-14:00", "9999-12-31T23:00:00-14:00", "FromDate"),
    ("2026-12-31T00:00:00Z", "9999-12-31T23:00:00-14:00", "ToDate"),
    (f"{EARLIEST_YEAR - 1}-12-31T00:00:00Z", f"{EARLIEST_YEAR}-01-01T00:00:00Z", "FromDate"),
    (f"{LATEST_YEAR}-12-31T00:00:00Z", f"{LATEST_YEAR + 1}-01-01T00:00:00Z", "ToDate"),
])
def test_dates_outside_the_years_are_refused_2019_before_any_conversion(ra, start, end, field):
    partner = new_partner(ra)
    with pytest.raises(InvalidField) as caught:
        feed(ra, partner, datetime.fromisoformat(start), datetime.fromisoformat(end))
    assert (caught.value.code, caught.value.field) == (-2019, field)


def test_the_first_and_last_years_are_allowed(ra):
    partner = new_partner(ra)
    first = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
    last = datetime(LATEST_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert feed(ra, partner, first, first + MAX_WINDOW).changes == ()
    assert feed(ra, partner, last - MAX_WINDOW, last).changes == ()


def test_the_widest_window_is_allowed(ra):
    partner = new_partner(ra)
    now = datetime.now(UTC)
    assert feed(ra, partner, now - MAX_WINDOW, now).changes == ()


@pytest.mark.parametrize("size", [0, -1, MAX_PAGE + 1])
def test_page_sizes_out_of_bounds_are_refused_2019(ra, size):
    partner = new_partner(ra)
    start, end = window()
    with pytest.raises(InvalidField) as caught:
        feed(ra, partner, start, end, page_size=size)
    assert caught.value.field == "PageSize"


def test_the_feed_authenticates_and_audits(ra):
    partner = new_partner(ra)
    start, end = window()
    with pytest.raises(AuthenticationFailed):
        modified_orders(ra, partner.credentials("wrong"), start, end, channel="api")
    feed(ra, partner, start, end)
    with pytest.raises(InvalidField):
        feed(ra, partner, end, start)
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.partner_code == partner.code, AuditEvent.action == "changes.read").order_by(AuditEvent.id)))
    assert [(e.outcome, e.code) for e in events] == [("refused", -2019)]


def test_changes_sharing_one_time_are_paged_through_once_each_by_change_id(ra):
    """More changes at one instant than a page holds (a keyCompromise or a cancellation writes many
    in one transaction): asking again after the last ChangeID walks through them, none twice, none
    left; asking again from the last change's time would answer the same page for ever."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    instant = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    with ra.sessions() as session, session.begin():
        order = session.scalars(select(Order).where(Order.partner_order_id == created.order.partner_order_id)).one()
        for i in range(7):
            change_storage.add_change(session, order=order, clock=lambda: instant, change="revoked",
                                      certificate_serial=f"{i + 1:x}", detail="keyCompromise")
    start, end = instant - timedelta(minutes=1), instant + timedelta(seconds=1)
    same_time = feed(ra, partner, instant, end, page_size=3)
    assert feed(ra, partner, same_time.changes[-1].at, end, page_size=3).changes == same_time.changes
    seen, after, pages = [], None, 0
    while True:
        page = feed(ra, partner, start, end, page_size=3, after=after)
        seen.extend(c.serial_number for c in page.changes)
        pages += 1
        if not page.more:
            break
        after = page.changes[-1].change_id
    assert seen == [f"{i + 1:x}" for i in range(7)] and pages == 3


def test_after_change_id_of_another_partner_or_of_nothing_is_refused_alike(ra):
    partner, other = new_partner(ra), new_partner(ra)
    start, end = window()
    new_order(ra, partner)
    new_order(ra, other)
    theirs = feed(ra, other, start, end).changes[0].change_id
    messages = []
    for after in (theirs, theirs + 10_000_000, 0, -1, 2**31):
        with pytest.raises(InvalidField) as refused:
            feed(ra, partner, start, end, after=after)
        messages.append((refused.value.field, refused.value.message))
    assert set(messages) == {("AfterChangeID", "AfterChangeID is not a change of your orders")}


def test_covered_until_is_to_date_or_the_time_of_the_read(ra):
    partner = new_partner(ra)
    new_order(ra, partner)
    past_start, past_end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    assert feed(ra, partner, past_start, past_end).covered_until == past_end
    before = datetime.now(UTC)
    start, end = window()
    page = feed(ra, partner, start, end)
    assert before <= page.covered_until <= datetime.now(UTC)
    assert all(c.at < page.covered_until for c in page.changes) and page.changes
    future = feed(ra, partner, end, end + timedelta(hours=1))
    assert future.covered_until == end and future.changes == ()


def test_a_change_stamped_before_a_read_but_committed_after_it_is_not_lost(ra, monkeypatch):
    """A writer stamps its change, then (signing, auditing) commits a little later. A poll in between
    waits for it (changes.settle), so that polling window after window, each from the last one's
    CoveredUntil, never skips a change committed behind a later one."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    stamped, release = threading.Event(), threading.Event()
    real_add_change = change_storage.add_change

    def add_change_then_pause(session, **kwargs):
        at = real_add_change(session, **kwargs)
        if threading.current_thread().name == "slow-writer":
            stamped.set()
            assert release.wait(30)
        return at

    monkeypatch.setattr(change_storage, "add_change", add_change_then_pause)
    start = datetime.now(UTC) - timedelta(seconds=1)
    outcome: list[object] = []
    writer = threading.Thread(name="slow-writer", target=lambda: outcome.append(Revoker(ra).revoke(
        partner.credentials(), RevokeRequest(created.order.partner_order_id, None, None, "superseded"), channel="api")))
    writer.start()
    assert stamped.wait(30)
    polled: list[ChangesPage] = []
    poller = threading.Thread(target=lambda: polled.append(feed(ra, partner, start, start + timedelta(hours=1))))
    poller.start()
    poller.join(0.5)
    release.set()
    writer.join(30)
    poller.join(30)
    assert outcome and polled
    first = polled[0]
    second = feed(ra, partner, first.covered_until, first.covered_until + timedelta(hours=1))
    seen = [c.change for c in first.changes + second.changes]
    assert seen == ["issued", "revoked"]  # each once


def test_a_poll_never_waits_for_a_writer_that_waits_for_a_row(ra, monkeypatch):
    """PostgreSQL: a keyCompromise revocation writes the other certificates of its key, rows that a
    plain revocation may hold. The feed's lock is its writers' last lock, so the keyCompromise
    waiting for such a row does not hold it yet, and a poll is answered meanwhile. (Taken earlier,
    the poll waited for the keyCompromise, the plain revocation's stamp queued behind the poll, and
    everything stood until PostgreSQL's deadlock detector moved it, after a second.)"""
    if ra.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: no writer waits for another's row")
    partner = new_partner(ra)
    csr = fresh_key_csr()
    first = new_order(ra, partner, csr=csr)
    second = new_order(ra, partner, csr=csr)  # the same key on two orders of one partner
    reached, release = threading.Event(), threading.Event()
    real_add_change = change_storage.add_change

    def pause_the_plain_revocation(session, **kwargs):
        if threading.current_thread().name == "plain" and not reached.is_set():
            reached.set()  # its certificate's row written and locked, its change not yet stamped
            assert release.wait(30)
        return real_add_change(session, **kwargs)

    monkeypatch.setattr(change_storage, "add_change", pause_the_plain_revocation)
    results: dict[str, object] = {}

    def run(name, call):
        try:
            results[name] = call()
        except Exception as failure:
            results[name] = failure

    def revoke(poid, reason):
        return Revoker(ra).revoke(partner.credentials(), RevokeRequest(poid, None, None, reason), channel="api")

    plain = threading.Thread(name="plain", target=run, args=(
        "plain", lambda: revoke(second.order.partner_order_id, "superseded")))
    plain.start()
    assert reached.wait(30)
    compromise = threading.Thread(name="compromise", target=run, args=(
        "compromise", lambda: revoke(first.order.partner_order_id, "keyCompromise")))
    compromise.start()
    deadline = time.monotonic() + 30
    with ra.engine.connect() as watcher:  # until the keyCompromise waits for the held row
        while not watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )).scalar():
            assert time.monotonic() < deadline, "the keyCompromise revocation never waited"
            time.sleep(0.02)
    start = datetime.now(UTC) - timedelta(minutes=1)
    poller = threading.Thread(target=run, args=("poll", lambda: feed(ra, partner, start, start + timedelta(hours=1))))
    poller.start()
    poller.join(20)
    answered = not poller.is_alive()
    release.set()
    for thread in (plain, compromise, poller):
        thread.join(30)
    assert answered, "the poll waited for a writer that waited for a row"
    assert isinstance(results["poll"], ChangesPage)
    assert not isinstance(results["plain"], Exception) and not isinstance(results["compromise"], Exception), results
