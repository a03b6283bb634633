"""Bring a database to the newest schema with the project's Alembic migrations.

Every migration runs in one transaction (``migrations/env.py`` opens it with
:func:`schema_change`). On SQLite, Alembic's batch mode changes a table by building a
copy, dropping the original and renaming the copy; with foreign keys enforced, dropping
a table that another table's rows refer to fails (even deferred: the rename does not
restore the references). So, as SQLite's own procedure for schema changes says, foreign
keys are off for the migration's transaction and every reference is checked with
``PRAGMA foreign_key_check`` before it commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class BrokenReferences(RuntimeError):
    """A schema change left rows that refer to rows that do not exist; it is rolled back."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def schema_change(connection: Connection) -> Iterator[None]:
    """One transaction on ``connection`` for a change of the schema, committed when the
    block ends without error.

    On SQLite, foreign keys are off during it and checked before the commit (see the
    module's docstring); they are back on afterwards, whatever happens. A connection
    already in a transaction (a caller's own) is used as it is: SQLite cannot switch
    foreign keys inside a transaction.
    """
    if connection.in_transaction():
        yield
        return
    if connection.dialect.name != "sqlite":
        with connection.begin():
            yield
        return
    # Outside any transaction, on the driver's connection: SQLAlchemy would begin one first.
    driver = connection.connection.driver_connection
    assert driver is not None
    enforced = driver.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            yield
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                tables = sorted({str(row[0]) for row in broken})
                raise BrokenReferences(f"the schema change leaves broken references in {', '.join(tables)}")
    finally:
        if enforced:
            driver.execute("PRAGMA foreign_keys=ON")
