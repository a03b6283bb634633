"""GetModifiedOrders' dates over the wire (gunicorn on a loopback port): an ``xs:dateTime``
the published schema accepts but a Python datetime cannot hold is a client's schema fault
naming the element, before authentication, never an incident; a date a datetime holds but
outside the feed's years is -2019 on its field (docs/design.md, "Error model")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from api_support import TNS, RunningServer, envelope, fault_of, post, running_server
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import new_order, new_partner
from soap_service.api.envelope import _utc_if_spyne_misreads
from soap_service.api.schema import UNREADABLE_DATETIME
from soap_service.storage.models import OrderChange
from soap_service.storage.models import Partner as Partner_


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2)


def feed_envelope(code: str, username: str, password: str, start: str, end: str) -> bytes:
    return envelope(
        "GetModifiedOrders",
        f"<o:Request><o:QueryRequestHeader><o:PartnerCode>{code}</o:PartnerCode><o:AuthToken>"
        f"<o:UserName>{username}</o:UserName><o:Password>{password}</o:Password></o:AuthToken>"
        f"</o:QueryRequestHeader><o:FromDate>{start}</o:FromDate><o:ToDate>{end}</o:ToDate></o:Request>",
    )


def assert_no_incident(server: RunningServer, mark: int, outcome: str) -> None:
    lines = server.request_lines(mark)
    assert len(lines) == 1 and f"outcome={outcome} " in lines[0] and " incident=- " in lines[0], lines
    assert "Traceback" not in server.log(mark), server.log(mark)


@pytest.mark.parametrize(("start", "end", "field"), [
    ("2026-12-01T24:00:00Z", "2026-12-03T00:00:00Z", "FromDate"),  # the schema's next day's midnight
    ("2026-12-01T00:00:00Z", "2026-12-03T24:00:00+05:00", "ToDate"),
    ("10000-01-01T00:00:00Z", "10000-01-02T00:00:00Z", "FromDate"),  # a year of five digits
    ("-0001-01-01T00:00:00Z", "2026-12-03T00:00:00Z", "FromDate"),  # a year before 0001
])
def test_a_datetime_python_cannot_hold_is_a_schema_fault_even_anonymously(
    server: RunningServer, start: str, end: str, field: str
) -> None:
    mark = server.log_mark()
    answer = post(server, feed_envelope("NOBODY", "nobody", "wrong-password", start, end))
    assert answer.status == 500
    code, message = fault_of(answer)
    assert (code, message) == (
        "soap11env:Client.SchemaValidationError",
        f"the request does not follow the schema: GetModifiedOrders/Request/{field}: {UNREADABLE_DATETIME}",
    )
    assert_no_incident(server, mark, "fault:Client.SchemaValidationError")


def _answer_of(server: RunningServer, body: bytes) -> tuple[str, list[tuple[str, str]]]:
    answer = post(server, body)
    assert answer.status == 200 and answer.root is not None, answer.body[:500]
    header = answer.root.find(f".//{{{TNS}}}QueryResponseHeader")
    assert header is not None, answer.body[:500]
    errors = [(error.findtext(f"{{{TNS}}}ErrorCode") or "", error.findtext(f"{{{TNS}}}ErrorField") or "")
              for error in header.iter(f"{{{TNS}}}Error")]
    return header.findtext(f"{{{TNS}}}SuccessCode") or "", errors


@pytest.mark.parametrize(("start", "end", "field"), [
    ("0001-01-01T00:00:00+14:00", "0001-01-02T00:00:00+14:00", "FromDate"),  # UTC is before year 1
    ("2026-12-31T00:00:00Z", "9999-12-31T23:00:00-14:00", "ToDate"),  # UTC is after year 9999
    ("1999-12-31T00:00:00Z", "2000-01-01T00:00:00Z", "FromDate"),
])
def test_a_date_outside_the_feeds_years_is_2019_on_its_field(
    server: RunningServer, installation: Installation, start: str, end: str, field: str
) -> None:
    partner: Partner = new_partner(installation.ra)
    mark = server.log_mark()
    success, errors = _answer_of(server, feed_envelope(partner.code, partner.username, partner.password, start, end))
    assert (success, errors) == ("-2019", [("-2019", field)])
    assert_no_incident(server, mark, "-2019")


def test_the_last_hour_of_a_day_is_read(server: RunningServer, installation: Installation) -> None:
    partner: Partner = new_partner(installation.ra)
    success, errors = _answer_of(server, feed_envelope(
        partner.code, partner.username, partner.password, "2026-12-01T23:59:59.9999999Z", "2026-12-03T00:00:00Z"))
    assert (success, errors) == ("0", [])



@pytest.mark.parametrize("offset", ["-03:30", "-00:30", "-09:30", "+05:45", "-05:00"])
def test_a_time_zone_with_minutes_is_read_as_written(
    server: RunningServer, installation: Installation, offset: str
) -> None:
    """spyne 2.14 reads ``-03:30`` as ``-02:30`` and ``-00:30`` as ``+00:30``: the guard writes such a
    time as the same instant in UTC before spyne reads it (envelope.spyne_envelope). A window of one
    second around a change, written in that zone, finds it (read an hour off, it would not)."""
    partner: Partner = new_partner(installation.ra)
    new_order(installation.ra, partner)
    with installation.ra.readers() as session:
        at = session.scalars(select(OrderChange.at).join(Partner_, Partner_.id == OrderChange.partner_id)
                             .where(Partner_.code == partner.code)).one()
    sign = -1 if offset[0] == "-" else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    start, end = at.astimezone(zone), (at + timedelta(seconds=1)).astimezone(zone)
    assert start.isoformat().endswith(offset)
    answer = post(server, feed_envelope(partner.code, partner.username, partner.password,
                                        start.isoformat(), end.isoformat()))
    assert answer.status == 200 and answer.root is not None, answer.body[:500]
    assert answer.root.findtext(f".//{{{TNS}}}SuccessCode") == "0"
    assert [c.findtext(f"{{{TNS}}}Change") for c in answer.root.iter(f"{{{TNS}}}OrderChange")] == ["issued"]
    covered = datetime.fromisoformat(answer.root.findtext(f".//{{{TNS}}}CoveredUntil") or "")
    assert at < covered <= end  # ToDate, or the time of the read if that is earlier


def test_only_negative_zones_with_minutes_are_rewritten() -> None:
    assert _utc_if_spyne_misreads("2026-03-15T10:00:00-03:30") == "2026-03-15T13:30:00Z"
    assert _utc_if_spyne_misreads("2026-03-15T10:00:00.25-00:30") == "2026-03-15T10:30:00.250000Z"
    for unchanged in ("2026-03-15T10:00:00-05:00", "2026-03-15T10:00:00+05:30", "2026-03-15T10:00:00Z",
                      "2026-03-15T10:00:00", "9999-12-31T23:00:00-14:30"):
        assert _utc_if_spyne_misreads(unchanged) == unchanged
