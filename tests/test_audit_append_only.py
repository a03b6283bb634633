"""The audit trail is append-only in the database itself: UPDATE, DELETE (with or
without WHERE) and, on PostgreSQL, TRUNCATE are refused by triggers (issue 6, "Also").
Each statement runs in a transaction that is rolled back, so a missing trigger fails
the test without emptying the shared installation's trail."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError

from conftest import database_environment
from factory import new_partner
from soap_service.storage.schema import alembic_config


def refused(connection: Connection, statement: str) -> None:
    transaction = connection.begin()
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    finally:
        transaction.rollback()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET detail = 'rewritten'",
    "DELETE FROM audit_events WHERE id = (SELECT MIN(id) FROM audit_events)",
    "DELETE FROM audit_events",  # SQLite's truncate optimization is off for a table with triggers
])
def test_audit_rows_cannot_be_changed_or_deleted(ra, statement):
    new_partner(ra)  # at least one event
    with ra.engine.connect() as connection:
        refused(connection, statement)


def test_truncate_of_the_audit_trail_is_refused(ra, installation):
    if installation.backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (DELETE without WHERE is refused, above)")
    new_partner(ra)
    with ra.engine.connect() as connection:
        refused(connection, "TRUNCATE audit_events")
        refused(connection, "TRUNCATE audit_events CASCADE")


def test_the_0002_migration_goes_down_and_up(installation, tmp_path):
    """On a fresh database: up to head, down to 0001 (no TRUNCATE trigger, no pending
    column), and up again."""
    for environ in database_environment(installation.backend, tmp_path, "migration"):
        engine = create_engine(environ["SOAP_SERVICE_DATABASE_URL"])
        try:
            config = alembic_config()
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                command.downgrade(config, "0001")
                columns = [row[1] for row in connection.exec_driver_sql(
                    "SELECT 0, column_name FROM information_schema.columns "
                    "WHERE table_name = 'authentication_failures'")] if installation.backend == "postgresql" else [
                    row[1] for row in connection.exec_driver_sql("PRAGMA table_info(authentication_failures)")]
                assert "pending" not in columns
                command.upgrade(config, "head")
            if installation.backend == "postgresql":
                with engine.connect() as connection:
                    refused(connection, "TRUNCATE audit_events")
        finally:
            engine.dispose()
