"""Shared fixtures: a real installation (schema, catalogue, CA hierarchy) on SQLite
and, when SOAP_SERVICE_TEST_POSTGRES_URL points at a server, on PostgreSQL too.

Each backend is set up once per test process; tests keep out of each other's way
by making their own partners and orders with unique codes (see ``tests/factory.py``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import audit_guard
from soap_service.config import Settings, load_settings
from soap_service.ra.installation import initialize
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import audit_chain

POSTGRES_URL = os.environ.get("SOAP_SERVICE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgresql"]


@dataclass
class TestInstallation:
    backend: str
    settings: Settings
    environ: dict[str, str]
    ra: RegistrationAuthority


def _postgres_database(name: str) -> Iterator[str]:
    """Create a fresh database on the test server; drop it afterwards."""
    server = make_url(POSTGRES_URL)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_environment(backend: str, data_dir: Path, tag: str) -> Iterator[dict[str, str]]:
    """The SOAP_SERVICE_* variables of a fresh, empty database on ``backend``."""
    environ = {
        "SOAP_SERVICE_DATA_DIR": str(data_dir),
        "SOAP_SERVICE_CA_PASSPHRASE": "test-passphrase-" + secrets.token_hex(8),
        "SOAP_SERVICE_AUTH_CACHE_SECONDS": "60",
    }
    if backend == "sqlite":
        environ["SOAP_SERVICE_DATABASE_URL"] = f"sqlite:///{data_dir / 'soap_service.db'}"
        yield environ
        return
    if not POSTGRES_URL:
        pytest.skip("SOAP_SERVICE_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    name = f"soap_service_test_{tag}_{secrets.token_hex(4)}"
    for url in _postgres_database(name):
        environ["SOAP_SERVICE_DATABASE_URL"] = url
        yield environ


def build_installation(environ: dict[str, str], backend: str) -> TestInstallation:
    settings = load_settings(environ)
    ra = RegistrationAuthority.from_settings(settings)
    initialize(ra)
    return TestInstallation(backend=backend, settings=settings, environ=environ, ra=ra)


@pytest.fixture(scope="session", params=BACKENDS)
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    TestInstallation
]:
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"installation-{backend}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    for environ in database_environment(backend, data_dir, worker):
        inst = build_installation(environ, backend)
        try:
            yield inst
            # Issue 10: the audit chain of the shared installation verifies after every test that used it.
            with inst.ra.readers() as session:
                verdict = audit_chain.walk(session)
            assert verdict.broken is None, f"the audit chain ({backend}) is broken: {verdict.broken}"
        finally:
            inst.ra.close()


@pytest.fixture(scope="session", autouse=True)
def audit_is_the_last_write() -> Iterator[list[str]]:
    """Every transaction of the run writes its audit event last (tests/audit_guard.py)."""
    with audit_guard.watching() as violations:
        yield violations
    assert violations == [], violations


@pytest.fixture
def ra(installation: TestInstallation) -> RegistrationAuthority:
    return installation.ra
