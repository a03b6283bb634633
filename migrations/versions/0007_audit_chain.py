"""the audit trail as a hash chain

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 04:45:00.000000

- ``audit_events.chain_seq`` (1, 2, 3, ... without gaps, unique), ``chain_prev`` and
  ``chain_hash`` (hex SHA-256): each event carries the hash of the one before it
  (docs/design.md, "Audit chain").
- The events already written are chained in id order. The append-only trigger refuses the
  UPDATE that fills them in: it is dropped for the backfill and created again after it, in
  the same transaction (SQLite's table rebuild drops its triggers anyway).

The encoding (version 1) is written out here, not imported from ``storage.audit_chain``:
this migration must not change when the service does; tests/test_audit_chain.py checks
that the chain it writes verifies.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
PAGE = 500

FIELDS = ("channel", "action", "outcome", "code", "partner_code", "username", "order_id",
          "partner_order_id", "certificate_serial", "incident_id")

events = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    *(sa.column(name, sa.Integer() if name == "code" else sa.String()) for name in FIELDS),
    sa.column("detail", sa.Text()),
    sa.column("chain_seq", sa.BigInteger()),
    sa.column("chain_prev", sa.String()),
    sa.column("chain_hash", sa.String()),
)


def _link_hash(row: sa.Row, seq: int, prev: str) -> str:
    at: datetime = row.at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    encoding = {"v": 1, "seq": seq, "prev": prev, "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "detail": row.detail or ""}
    encoding.update({name: getattr(row, name) for name in FIELDS})
    text = json.dumps(encoding, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _drop_append_only_trigger() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")  # its function stays: TRUNCATE's uses it
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")


def _create_append_only_trigger() -> None:
    # As 0001 creates them.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
            )


def _backfill() -> None:
    connection = op.get_bind()
    seq, prev, after = 0, GENESIS, -1
    while True:
        rows = connection.execute(
            sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(PAGE)
        ).all()
        if not rows:
            return
        links = []
        for row in rows:
            seq += 1
            link = _link_hash(row, seq, prev)
            links.append({"row_id": row.id, "seq": seq, "prev": prev, "link": link})
            prev = link
        # One executemany a page (the driver batches it), not a round trip an event.
        connection.execute(
            events.update().where(events.c.id == sa.bindparam("row_id")).values(
                chain_seq=sa.bindparam("seq"), chain_prev=sa.bindparam("prev"), chain_hash=sa.bindparam("link")),
            links,
        )
        after = rows[-1].id


def upgrade() -> None:
    _drop_append_only_trigger()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain_seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('chain_prev', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('chain_hash', sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('chain_seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('chain_prev', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('chain_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_chain_seq'), ['chain_seq'])
    _create_append_only_trigger()


def downgrade() -> None:
    _drop_append_only_trigger()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_events_chain_seq'), type_='unique')
        batch_op.drop_column('chain_hash')
        batch_op.drop_column('chain_prev')
        batch_op.drop_column('chain_seq')
    _create_append_only_trigger()
