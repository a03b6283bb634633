"""``soap-service audit``: verify, head and tail of the audit trail's hash chain
(docs/design.md, "Audit chain").

- ``audit verify [--anchor SEQ:HASH]`` walks the chain a page at a time and prints a JSON
  summary: exit 0 when every link holds (and the anchored link has its hash), 1 with the first
  broken link named (its seq, its id, what is wrong);
- ``audit head`` prints the last link, ``{"seq", "hash", "at"}``, for the operator to keep
  elsewhere (docs/security.md);
- ``audit tail [--order ID] [--partner CODE] [-n N] [--follow]`` prints events as JSON lines,
  the last N, then (with ``--follow``) each new one until interrupted.

They only read, through the service's database URL, in read-only transactions; they need no CA
passphrase. Exit 2: a bad setting, argument or a database that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any, TextIO

from sqlalchemy import Select, select
from sqlalchemy.exc import SQLAlchemyError

from soap_service.config import ConfigurationError, load_settings
from soap_service.storage import audit_chain
from soap_service.storage.db import SessionFactory, create_database_engine, create_reader_factory
from soap_service.storage.models import AuditEvent

EXIT_BROKEN = 1
EXIT_USAGE = 2

ANCHOR = re.compile(r"([0-9]{1,19}):([0-9a-f]{64})")
MAX_LINES = 100_000
MAX_ANCHOR_CHARS = 100
FOLLOW_INTERVAL_SECONDS = 1.0

Command = Callable[[argparse.Namespace, SessionFactory, TextIO], int]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` (verify, head, tail), each with its handler, to ``soap-service``'s commands."""
    audit = commands.add_parser("audit", help="verify and read the audit trail's hash chain").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser("verify", help="check every link of the chain; exit 1 at the first broken one")
    verify.add_argument("--anchor", type=_anchor, metavar="SEQ:HASH",
                        help="a head exported earlier (audit head): the chain must still hold it")
    verify.set_defaults(handler=lambda args: _run(args, _verify))
    head = audit.add_parser("head", help="print the chain's last link (seq, hash, at) to keep elsewhere")
    head.set_defaults(handler=lambda args: _run(args, _head))
    tail = audit.add_parser("tail", help="print audit events as JSON lines")
    tail.add_argument("--order", metavar="ID", type=_bounded(32), help="only the events of this order ID")
    tail.add_argument("--partner", metavar="CODE", type=_bounded(64), help="only the events of this partner code")
    tail.add_argument("-n", "--lines", type=_count, default=20, help="how many of the last events (default 20)")
    tail.add_argument("--follow", action="store_true", help="then print new events as they come, until interrupted")
    tail.set_defaults(handler=lambda args: _run(args, _tail))


def _anchor(value: str) -> tuple[int, str]:
    # Bounded before the pattern sees it: a longer argument is refused whole, never cut to fit.
    found = ANCHOR.fullmatch(value.strip().lower()) if len(value) <= MAX_ANCHOR_CHARS else None
    if found is None or int(found[1]) < 1:
        raise argparse.ArgumentTypeError("an anchor is SEQ:HASH, as `audit head` prints them (seq >= 1, 64 hex digits)")
    return int(found[1]), found[2]


def _bounded(length: int) -> Callable[[str], str]:
    def checked(value: str) -> str:
        if len(value) > length:
            raise argparse.ArgumentTypeError(f"at most {length} characters")
        return value

    return checked


def _count(value: str) -> int:
    if not value.isdigit() or len(value) > 6 or not 0 <= int(value) <= MAX_LINES:
        raise argparse.ArgumentTypeError(f"a count from 0 to {MAX_LINES}")
    return int(value)


def _run(args: argparse.Namespace, command: Command) -> int:
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    engine = create_database_engine(settings.database_url, pool_size=1)
    try:
        return command(args, create_reader_factory(engine), sys.stdout)
    except SQLAlchemyError as error:  # no schema yet, no server: the class only, never the URL
        print(f"error: cannot read the audit trail ({error.__class__.__name__}); "
              "is SOAP_SERVICE_DATABASE_URL an initialized database?", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    finally:
        engine.dispose()


def _verify(args: argparse.Namespace, readers: SessionFactory, out: TextIO) -> int:
    with readers() as session:
        verdict = audit_chain.walk(session, anchor=args.anchor)
    summary: dict[str, Any] = {
        "verified": verdict.broken is None,
        "events_checked": verdict.checked,
        "head": _head_json(verdict.head),
    }
    if args.anchor is not None:
        summary["anchor"] = {"seq": args.anchor[0], "hash": args.anchor[1], "found": verdict.anchor_checked}
    if verdict.broken is not None:
        broken = verdict.broken
        summary["broken"] = {"seq": broken.seq, "id": broken.id, "problem": broken.problem, "detail": broken.detail}
    _print(out, summary, indent=2)
    return 0 if verdict.broken is None else EXIT_BROKEN


def _head(_args: argparse.Namespace, readers: SessionFactory, out: TextIO) -> int:
    with readers() as session:
        head = audit_chain.read_head(session)
    _print(out, _head_json(head), indent=2)
    return 0


def _tail(args: argparse.Namespace, readers: SessionFactory, out: TextIO) -> int:
    with readers() as session:
        head = audit_chain.read_head(session).seq  # first: the events read next are at or below it
        query = _filtered(args).where(AuditEvent.chain_seq <= head)
        for event in reversed(list(session.scalars(query.order_by(AuditEvent.chain_seq.desc()).limit(args.lines)))):
            _print(out, event_json(event))
    last = head
    while args.follow:
        time.sleep(FOLLOW_INTERVAL_SECONDS)
        last = _print_after(args, readers, out, last)
    return 0


def _print_after(args: argparse.Namespace, readers: SessionFactory, out: TextIO, after: int) -> int:
    """Print the events (of the filter) past seq ``after``, a page per query, until none is left;
    returns the head they were read up to. The chain's lock makes what a reader sees a prefix of
    the chain (seq N+1 commits after N), so nothing below that head can appear later, and a filter
    that matches nothing does not make each poll read from further back."""
    while True:
        with readers() as session:
            head = audit_chain.read_head(session).seq
            page = list(session.scalars(
                _filtered(args).where(AuditEvent.chain_seq > after, AuditEvent.chain_seq <= head)
                .order_by(AuditEvent.chain_seq).limit(audit_chain.PAGE)
            ))
        for event in page:
            _print(out, event_json(event))
        if len(page) < audit_chain.PAGE:
            return head
        after = page[-1].chain_seq


def _filtered(args: argparse.Namespace) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if args.order is not None:
        query = query.where(AuditEvent.order_id == args.order)
    if args.partner is not None:
        query = query.where(AuditEvent.partner_code == args.partner)
    return query


def event_json(event: AuditEvent) -> dict[str, Any]:
    """One event as ``audit tail`` prints it: its fields and its link (audit events hold no secret)."""
    return {
        "seq": event.chain_seq,
        "at": event.at.astimezone(UTC).isoformat(),
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
        "detail": event.detail,
        "hash": event.chain_hash,
    }


def _head_json(head: audit_chain.Head) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash, "at": None if head.at is None else head.at.astimezone(UTC).isoformat()}


def _print(out: TextIO, value: dict[str, Any], *, indent: int | None = None) -> None:
    json.dump(value, out, indent=indent, ensure_ascii=True)
    out.write("\n")
    out.flush()
