"""How long a new certificate may be valid (docs/design.md, "Certificate profiles")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from soap_service.errors import TermEnded

# The CA/Browser Forum's maximum TLS validity by date of issuance (BR 6.3.2), newest first.
TLS_MAXIMUM_DAYS: tuple[tuple[datetime, int], ...] = (
    (datetime(2029, 3, 15, tzinfo=UTC), 47),
    (datetime(2027, 3, 15, tzinfo=UTC), 100),
    (datetime(2026, 3, 15, tzinfo=UTC), 200),
)
TLS_MAXIMUM_DAYS_BEFORE_2026 = 398
CODE_SIGNING_MAXIMUM_DAYS = 459


def maximum_days(level: str, now: datetime) -> int:
    """The longest validity allowed on ``now``, one day under the Forum's maximum for TLS."""
    if level == "CS":
        return CODE_SIGNING_MAXIMUM_DAYS
    for since, days in TLS_MAXIMUM_DAYS:
        if now >= since:
            return days - 1
    return TLS_MAXIMUM_DAYS_BEFORE_2026 - 1


def validity_window(level: str, now: datetime, term_end: datetime) -> tuple[datetime, datetime]:
    """notBefore and notAfter: from now to the term's end, capped at the maximum (inclusive)."""
    not_before = now.astimezone(UTC).replace(microsecond=0)
    if term_end <= not_before:
        raise TermEnded()
    cap = not_before + timedelta(days=maximum_days(level, not_before)) - timedelta(seconds=1)
    not_after = min(cap, term_end.astimezone(UTC).replace(microsecond=0))
    return not_before, not_after
