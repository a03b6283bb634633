"""GetModifiedOrders: the changes of a partner's orders in a window of time (docs/design.md,
"Revocation"), read from the order changes written with each issuance, revocation and
cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from soap_service.errors import InvalidField
from soap_service.ra.audit import Subject
from soap_service.ra.auth import Credentials
from soap_service.ra.reissue import run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import changes

MAX_WINDOW = timedelta(days=31)
MAX_PAGE = 500
EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""FromDate and ToDate fall in these years (as written, in their own time zone): checked before
any conversion to UTC, which overflows at the ends of what a datetime holds (0001-01-01T00:00:00+14:00)."""


@dataclass(frozen=True)
class OrderChangeView:
    order_id: str
    partner_order_id: str
    at: datetime
    change: str  # issued, reissued, revoked, cancelled
    serial_number: str | None
    detail: str | None


@dataclass(frozen=True)
class ChangesPage:
    changes: tuple[OrderChangeView, ...]
    more: bool  # the window holds more than the page: ask again from the last change's time


def check_window(from_date: datetime, to_date: datetime, page_size: int) -> None:
    """-2019 on FromDate/ToDate for a naive, out of EARLIEST_YEAR..LATEST_YEAR, reversed or too wide
    window; on PageSize out of 1..MAX_PAGE."""
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


def modified_orders(
    ra: RegistrationAuthority,
    credentials: Credentials,
    from_date: datetime,
    to_date: datetime,
    *,
    channel: str,
    page_size: int = MAX_PAGE,
) -> ChangesPage:
    """The partner's own order changes with ``from_date <= at < to_date``, oldest first (by time,
    then as written), at most ``page_size`` of them."""
    user = ra.authenticator.authenticate(credentials, channel=channel)
    subject = Subject(channel=channel, action="changes.read", partner_code=user.partner_code,
                      username=user.username)

    def read() -> ChangesPage:
        check_window(from_date, to_date, page_size)
        with ra.readers() as session:
            rows = changes.changes_between(session, partner_id=user.partner_id, from_at=from_date, to_at=to_date,
                                           limit=page_size + 1)
        views = tuple(
            OrderChangeView(order_id=order_id, partner_order_id=partner_order_id, at=row.at, change=row.change,
                            serial_number=row.certificate_serial, detail=row.detail)
            for row, order_id, partner_order_id in rows[:page_size]
        )
        return ChangesPage(changes=views, more=len(rows) > page_size)

    return run_audited(ra, subject, read)
