"""The audit trail's hash chain: each event carries the hash of the one before it
(docs/design.md, "Audit chain").

One chain per installation. ``chain_seq`` numbers the events 1, 2, 3, ... without gaps,
``chain_prev`` is the previous event's ``chain_hash`` (:data:`GENESIS` for the first) and
``chain_hash`` is the SHA-256 of :func:`link_encoding`: a versioned JSON object of the
sequence number, the previous hash and every field of the event but its id (a surrogate key
that PostgreSQL may hand out in another order than the commits). A row changed, deleted,
inserted or moved in the database breaks a link that :func:`walk` reports; a chain rewritten
from its start with recomputed hashes is caught by an anchor, a (seq, hash) exported earlier
and kept elsewhere (``soap-service audit head``).

The rows are append-only (the triggers refuse an UPDATE), so a link is computed *before* its
INSERT, under a lock that serializes the appends: :func:`lock_chain` on PostgreSQL, the
writer transaction's ``BEGIN IMMEDIATE`` on SQLite. On PostgreSQL the chain's lock is the last
lock a writer takes, after the change feed's (``storage.changes``): the audit event is the last
row a transaction writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from soap_service.storage.db import advisory_lock
from soap_service.storage.models import AuditEvent

CHAIN_LOCK = (0x6F63_6667, 2)
"""The advisory lock of the chain on PostgreSQL, in the two-integer key space next to the
change feed's ``(0x6F636667, 1)``; taken exclusive, to the transaction's end."""

GENESIS = "0" * 64
"""The ``chain_prev`` of the first event."""

ENCODING_VERSION = 1

PAGE = 500
"""Events read per query while walking the chain."""


def format_at(at: datetime) -> str:
    """``at`` in UTC with microseconds, as both databases give it back."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given where UTC is required")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link_encoding(event: AuditEvent, *, seq: int, prev: str) -> bytes:
    """The bytes hashed for ``event`` as link ``seq`` after ``prev`` (version 1): JSON with sorted
    keys, ASCII only, no spaces, so that no field's content can move a boundary between fields."""
    return json.dumps(
        {
            "v": ENCODING_VERSION,
            "seq": seq,
            "prev": prev,
            "at": format_at(event.at),
            "channel": event.channel,
            "action": event.action,
            "outcome": event.outcome,
            "code": event.code,
            "partner_code": event.partner_code,
            "username": event.username,
            "order_id": event.order_id,
            "partner_order_id": event.partner_order_id,
            "certificate_serial": event.certificate_serial,
            "incident_id": event.incident_id,
            "detail": event.detail,  # NULL (no append writes one) is null, not "": another value
        },
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode("ascii")


def link_hash(event: AuditEvent, *, seq: int, prev: str) -> str:
    return hashlib.sha256(link_encoding(event, seq=seq, prev=prev)).hexdigest()


def lock_chain(session: Session) -> None:
    """On PostgreSQL: flush what the transaction wrote so far (its rows are locked before the
    chain's lock, never after), then take the chain's lock, held to the commit. SQLite: the
    writer transaction already holds the database's write lock."""
    advisory_lock(session, CHAIN_LOCK)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    at: datetime | None


def read_head(session: Session) -> Head:
    """The last link (seq 0 and :data:`GENESIS` for an empty chain)."""
    row = session.execute(
        select(AuditEvent.chain_seq, AuditEvent.chain_hash, AuditEvent.at)
        .order_by(AuditEvent.chain_seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return Head(0, GENESIS, None)
    return Head(row[0], row[1], row[2])


def chain(session: Session, event: AuditEvent) -> None:
    """Give ``event`` (not yet added to the session) its link after the current head, and add it.
    Call it under :func:`lock_chain`."""
    if event.detail is None:  # the column's default, given here: it is hashed as written
        event.detail = ""
    head = read_head(session)
    seq = head.seq + 1
    event.chain_seq = seq
    event.chain_prev = head.hash
    event.chain_hash = link_hash(event, seq=seq, prev=head.hash)
    session.add(event)


@dataclass(frozen=True)
class Break:
    """The first broken link: the event (its seq and id; None where the event is missing) and what."""

    seq: int
    id: int | None
    problem: str  # "hash mismatch", "prev mismatch", "gap", "duplicate", "seq out of range", "unreadable",
    # "anchor mismatch", "anchor missing"
    detail: str


@dataclass(frozen=True)
class Verdict:
    checked: int
    head: Head
    broken: Break | None
    anchor_checked: bool


def walk(session: Session, *, anchor: tuple[int, str] | None = None, page: int = PAGE) -> Verdict:
    """Check every link in ``chain_seq`` order, one page at a time; stop at the first broken one.
    With ``anchor`` (seq, hash), also check that link ``seq`` still has that hash.

    The walk reads every row, from the lowest ``chain_seq`` whatever it is: a row written with a
    seq below 1 (which no append gives) is a broken link too, not a row the walk skips. A row the
    database cannot give back as an event (a time that is not one, a seq that is not a number) is
    named as "unreadable", not an exception."""
    expected_seq = 1
    prev = GENESIS
    last = Head(0, GENESIS, None)
    checked = 0
    anchor_checked = False
    after: tuple[int, int] | None = None  # (seq, id) of the last row read: a duplicated seq is read, not skipped
    while True:
        try:
            rows = _page(session, after, page)
        except (*_UNREADABLE, OperationalError) as error:
            if isinstance(error, OperationalError) and not _undecodable(error):
                raise
            seq, culprit = _unreadable_row(session, after, page, expected_seq)
            return Verdict(checked, last, Break(seq, culprit, "unreadable",
                                                "a row of the chain cannot be read as an event"), False)
        if not rows:
            break
        for event in rows:
            seq = event.chain_seq
            if not isinstance(seq, int) or isinstance(seq, bool):
                return Verdict(checked, last, Break(expected_seq, event.id, "unreadable",
                                                    "chain_seq is not a whole number"), False)
            if seq < 1:
                return Verdict(checked, last, Break(seq, event.id, "seq out of range", f"seq {seq} is below 1"), False)
            if seq < expected_seq:
                return Verdict(checked, last, Break(seq, event.id, "duplicate", f"seq {seq} appears again"), False)
            if seq > expected_seq:
                return Verdict(
                    checked, last, Break(expected_seq, None, "gap", f"seq {expected_seq} to {seq - 1} missing"), False
                )
            if event.chain_prev != prev:
                return Verdict(
                    checked, last, Break(seq, event.id, "prev mismatch", "chain_prev is not the previous event's hash"),
                    False,
                )
            try:
                hashed = link_hash(event, seq=seq, prev=prev)
            except _UNREADABLE:
                return Verdict(checked, last, Break(seq, event.id, "unreadable",
                                                    "the event's fields cannot be encoded"), False)
            if hashed != event.chain_hash:
                return Verdict(
                    checked, last, Break(seq, event.id, "hash mismatch", "the event's fields do not give its hash"),
                    False,
                )
            if anchor is not None and seq == anchor[0]:
                if event.chain_hash != anchor[1]:
                    return Verdict(
                        checked, last, Break(seq, event.id, "anchor mismatch", "the anchored link has another hash"),
                        False,
                    )
                anchor_checked = True
            prev = event.chain_hash
            last = Head(seq, event.chain_hash, event.at)
            checked += 1
            expected_seq += 1
        after = (rows[-1].chain_seq, rows[-1].id)
        for event in rows:
            session.expunge(event)
    if anchor is not None and not anchor_checked:
        return Verdict(
            checked, last, Break(anchor[0], None, "anchor missing", f"the chain ends at seq {last.seq}"), False
        )
    return Verdict(checked, last, None, anchor_checked)


_UNREADABLE = (ValueError, TypeError, OverflowError)
"""What reading or encoding a row the database holds but no append wrote can raise (SQLite keeps
any value in any column: a time that does not parse, text where a number goes, bytes that are no
UTF-8 where text goes, which its driver refuses with an OperationalError: :func:`_undecodable`)."""


def _after(after: tuple[int, int] | None) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if after is not None:
        query = query.where(
            or_(AuditEvent.chain_seq > after[0], and_(AuditEvent.chain_seq == after[0], AuditEvent.id > after[1]))
        )
    return query.order_by(AuditEvent.chain_seq, AuditEvent.id)


def _page(session: Session, after: tuple[int, int] | None, page: int) -> list[AuditEvent]:
    return list(session.scalars(_after(after).limit(page)))


def _unreadable_row(
    session: Session, after: tuple[int, int] | None, page: int, expected_seq: int
) -> tuple[int, int | None]:
    """The seq and id of the first row of the page that cannot be read as an event (its id and
    seq always can; a seq that is no number is given as the one expected there)."""
    keys = session.execute(_after(after).with_only_columns(AuditEvent.id, AuditEvent.chain_seq).limit(page)).all()
    for row_id, seq in keys:
        try:
            session.scalars(select(AuditEvent).where(AuditEvent.id == row_id)).all()
        except (*_UNREADABLE, OperationalError) as error:
            if isinstance(error, OperationalError) and not _undecodable(error):
                raise
            return (seq if isinstance(seq, int) else expected_seq), row_id
    return expected_seq, None


def _undecodable(error: OperationalError) -> bool:
    """SQLite's driver refusing a TEXT value that is not UTF-8 (the database keeps any bytes)."""
    return str(error.orig).startswith("Could not decode to UTF-8")


def iter_events(session: Session, *, after_seq: int = 0, page: int = PAGE) -> Iterator[AuditEvent]:
    """Every event past ``after_seq``, in chain order, one page at a time."""
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.chain_seq > after_seq).order_by(AuditEvent.chain_seq).limit(page)
            )
        )
        yield from rows
        if len(rows) < page:
            return
        after_seq = rows[-1].chain_seq
