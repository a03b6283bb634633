"""login attempts reserved before the hash, failures pruned by time, audit TRUNCATE refused

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000

- ``authentication_failures.pending``: a login attempt is reserved (pending) in one short
  write transaction before its password hash and settled in another after it; a pending
  row counts for the lockout like a failure (docs/design.md, authentication).
- ``ix_authentication_failures_at``: rows older than the lockout window are pruned by time.
- PostgreSQL: the audit trail's append-only trigger covered UPDATE and DELETE (per row);
  TRUNCATE, which fires no row trigger, is now refused by a statement-level trigger.
  SQLite has no TRUNCATE: its "truncate optimization" of a DELETE without WHERE is off
  for a table with triggers, so the BEFORE DELETE trigger of 0001 refuses it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('authentication_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_authentication_failures_at', ['at'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The function of 0001 raises whatever the statement: it serves a statement-level trigger too.
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    with op.batch_alter_table('authentication_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_authentication_failures_at')
        batch_op.drop_column('pending')
