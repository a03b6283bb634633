"""order status, certificate status and validation level: one spelling, checked by the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00.000000

The three columns hold members of ``soap_service.vocabulary``'s enums, each spelled as its
name, and a CHECK constraint on each refuses anything else (``soap_service.storage.types.
enum_column``):

- ``certificates.status``: ``valid`` and ``revoked`` become ``VALID`` and ``REVOKED``
  (``ck_certificates_certificate_status``);
- ``orders.status`` (``ck_orders_order_status``) and ``products.validation_level``
  (``ck_products_validation_level``) were already spelled so; they are upper-cased all the
  same, so the constraint holds for any row written by hand.

A row with another value makes the upgrade fail on its constraint, and nothing changes.
On SQLite, adding a CHECK constraint rebuilds the table (batch mode); ``migrations/env.py``
turns foreign keys off for the migration's transaction and checks them before it commits.
The downgrade drops the constraints and writes certificate statuses in lower case again.
The values are written out here, not imported: this migration must not change when the
enums grow.
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, constraint, allowed values)
CONSTRAINTS = (
    ("orders", "status", "ck_orders_order_status", ("PENDING", "COMPLETED", "CANCELLED", "REVOKED")),
    ("certificates", "status", "ck_certificates_certificate_status", ("VALID", "REVOKED")),
    ("products", "validation_level", "ck_products_validation_level", ("DV", "OV", "EV", "CS")),
)


def upgrade() -> None:
    for table, column, name, values in CONSTRAINTS:
        op.execute(f"UPDATE {table} SET {column} = UPPER({column})")
        allowed = ", ".join(f"'{value}'" for value in values)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(op.f(name), f"{column} IN ({allowed})")


def downgrade() -> None:
    for table, _column, name, _values in reversed(CONSTRAINTS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(name), type_='check')
    op.execute("UPDATE certificates SET status = LOWER(status)")
