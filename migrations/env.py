"""Alembic environment: the database comes from SOAP_SERVICE_DATABASE_URL (or the
default SQLite file), or from a connection handed in by ``soap_service.storage.schema``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from soap_service.config import load_settings
from soap_service.storage.db import create_database_engine
from soap_service.storage.models import Base
from soap_service.storage.schema import schema_change

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection)
        return
    engine = create_database_engine(load_settings().database_url)
    with engine.connect() as conn:
        _run_migrations(conn)
    engine.dispose()


def _run_migrations(connection: Connection) -> None:
    # One transaction; on SQLite with foreign keys off during it and checked before it commits.
    with schema_change(connection):
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
