"""ReplayToken: a partner's idempotent requests and their stored answers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:30:00.000000

- ``replay_tokens``: one row per partner and ReplayToken (unique), the operation and the SHA-256
  of the request it was first used with, ``pending`` while that request is served and ``done``
  with its answer afterwards; pruned by ``created_at`` once older than
  ``SOAP_SERVICE_REPLAY_TOKEN_HOURS`` (docs/design.md, "Concurrency and failures").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('replay_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('request_sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answer_code', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_replay_tokens_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replay_tokens')),
    sa.UniqueConstraint('partner_id', 'token', name=op.f('uq_replay_tokens_partner_id_token'))
    )
    with op.batch_alter_table('replay_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_replay_tokens_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('replay_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_replay_tokens_created_at')

    op.drop_table('replay_tokens')
