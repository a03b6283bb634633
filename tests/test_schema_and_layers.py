"""The database schema comes from the migrations and matches the models; the
package's layers hold (docs/design.md, "Layers")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from soap_service.storage.schema import alembic_config

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_and_models_do_not_drift(installation):
    """``alembic check`` against the database the tests built with ``alembic upgrade head``."""
    config = alembic_config()
    with installation.ra.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.check(config)


def test_the_schema_has_every_table(installation):
    tables = set(inspect(installation.ra.engine).get_table_names())
    assert {"brands", "products", "partners", "api_users", "orders", "order_names", "order_contacts",
            "certificates", "issued_serials", "certificate_authorities", "blocked_keys", "audit_events",
            "authentication_failures", "alembic_version"} <= tables


def test_sqlite_runs_in_wal_mode_with_foreign_keys(installation):
    if installation.backend != "sqlite":
        return
    with installation.ra.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_import_layers_hold():
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_ca_private_keys_are_stored_encrypted(installation):
    from soap_service.storage.models import CertificateAuthority

    with installation.ra.sessions() as session:
        keys = [ca.protected_key for ca in session.query(CertificateAuthority)]
    assert len(keys) == 7
    assert all(b"ENCRYPTED PRIVATE KEY" in key for key in keys)
