"""WS-Security UsernameToken: nonces seen, and the password copies PasswordDigest needs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 05:00:00.000000

- ``ws_nonces``: the SHA-256 of each UsernameToken that authenticated (its digest and nonce,
  for every account alike), its primary key refusing a second use on every worker and host, kept
  until its token's Created is out of the accepted skew and a margin (docs/design.md, "Authentication").
- ``api_users.ws_password_copy``: the password encrypted under the installation's key, only
  for users the operator enabled with ``partner set-password --ws-digest``; NULL otherwise.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ws_nonces',
    sa.Column('nonce_digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nonce_digest', name=op.f('pk_ws_nonces'))
    )
    with op.batch_alter_table('ws_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_ws_nonces_expires_at', ['expires_at'], unique=False)

    with op.batch_alter_table('api_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ws_password_copy', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_users', schema=None) as batch_op:
        batch_op.drop_column('ws_password_copy')

    with op.batch_alter_table('ws_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_ws_nonces_expires_at')

    op.drop_table('ws_nonces')
