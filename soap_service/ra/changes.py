"""GetModifiedOrders: the changes of a partner's orders in a window of time (docs/design.md,
"Revocation"), read from the order changes written with each issuance, revocation and
cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from soap_service.errors import InvalidField
from soap_service.ra.audit import Subject
from soap_service.ra.auth import Credentials
from soap_service.ra.reissue import PartnerRef, run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import changes

MAX_WINDOW = timedelta(days=31)
MAX_PAGE = 500
EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""FromDate and ToDate fall in these years (as written, in their own time zone): checked before
any conversion to UTC, which overflows at the ends of what a datetime holds (0001-01-01T00:00:00+14:00)."""


MAX_CHANGE_ID = 2**31 - 1
"""ChangeID and AfterChangeID are xs:int, as every integer of the contract."""


@dataclass(frozen=True)
class OrderChangeView:
    change_id: int  # the position to ask again after (AfterChangeID)
    order_id: str
    partner_order_id: str
    at: datetime
    change: str  # issued, reissued, revoked, cancelled
    serial_number: str | None
    detail: str | None


@dataclass(frozen=True)
class ChangesPage:
    changes: tuple[OrderChangeView, ...]
    more: bool  # the window holds more than the page: ask again after the last change's change_id
    covered_until: datetime
    """Every change of the window stamped before this is in the answer (with ``more``, in its
    pages): ToDate, or the server's time when it read if ToDate is later. The next poll's FromDate."""


def check_window(from_date: datetime, to_date: datetime, page_size: int, after_change_id: int | None = None) -> None:
    """-2019 on FromDate/ToDate for a naive, out of EARLIEST_YEAR..LATEST_YEAR, reversed or too wide
    window; on PageSize out of 1..MAX_PAGE; on AfterChangeID out of 1..MAX_CHANGE_ID."""
    for field_name, value in (("FromDate", from_date), ("ToDate", to_date)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidField(f"{field_name} needs a time zone (e.g. Z)", field=field_name)
        if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            raise InvalidField(f"{field_name} is not in the years {EARLIEST_YEAR} to {LATEST_YEAR}", field=field_name)
    if to_date <= from_date:
        raise InvalidField("ToDate is not after FromDate", field="ToDate")
    if to_date - from_date > MAX_WINDOW:
        raise InvalidField(f"the window is at most {MAX_WINDOW.days} days", field="ToDate")
    if not 1 <= page_size <= MAX_PAGE:
        raise InvalidField(f"the page size is 1 to {MAX_PAGE}", field="PageSize")
    if after_change_id is not None and not 1 <= after_change_id <= MAX_CHANGE_ID:
        raise InvalidField("AfterChangeID is not a change of your orders", field="AfterChangeID")


def modified_orders(
    ra: RegistrationAuthority,
    credentials: Credentials,
    from_date: datetime,
    to_date: datetime,
    *,
    channel: str,
    page_size: int = MAX_PAGE,
    after_change_id: int | None = None,
) -> ChangesPage:
    """The partner's own order changes with ``from_date <= at < to_date``, oldest first (by time,
    then as written), after the change ``after_change_id`` when given, at most ``page_size`` of
    them. Only what no later commit can join is read: up to the horizon of ``changes.settle``."""
    user = ra.authenticator.authenticate(credentials, channel=channel)
    partner = PartnerRef(user.partner_id, user.partner_code, user.username)
    return modified_orders_of(ra, partner, from_date, to_date, channel=channel, page_size=page_size,
                              after_change_id=after_change_id)


def modified_orders_of(
    ra: RegistrationAuthority,
    partner: PartnerRef,
    from_date: datetime,
    to_date: datetime,
    *,
    channel: str,
    page_size: int = MAX_PAGE,
    after_change_id: int | None = None,
) -> ChangesPage:
    """:func:`modified_orders` for a partner already authenticated."""
    subject = Subject(channel=channel, action="changes.read", partner_code=partner.code, username=partner.actor)

    def read() -> ChangesPage:
        check_window(from_date, to_date, page_size, after_change_id)
        after = None
        if after_change_id is not None:  # checked before the settle, which every writer may wait for
            with ra.readers() as session:
                at = changes.change_position(session, partner_id=partner.id, change_id=after_change_id)
            if at is None:  # another partner's change and no change at all read the same
                raise InvalidField("AfterChangeID is not a change of your orders", field="AfterChangeID")
            after = (at, after_change_id)
        with ra.sessions() as session, session.begin():
            horizon = changes.settle(session, ra.clock)
        covered_until = max(from_date, min(to_date, horizon))
        with ra.readers() as session:
            rows = changes.changes_between(session, partner_id=partner.id, from_at=from_date,
                                           to_at=covered_until, limit=page_size + 1, after=after)
        views = tuple(
            OrderChangeView(change_id=row.id, order_id=order_id, partner_order_id=partner_order_id, at=row.at,
                            change=row.change, serial_number=row.certificate_serial, detail=row.detail)
            for row, order_id, partner_order_id in rows[:page_size]
        )
        return ChangesPage(changes=views, more=len(rows) > page_size, covered_until=covered_until)

    return run_audited(ra, subject, read)
