"""SOAP_SERVICE_DB_POOL_SIZE: the PostgreSQL connections each process keeps (docs/deployment.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soap_service.config import ConfigurationError, load_settings
from soap_service.ra.service import RegistrationAuthority

# No connection is opened: an engine connects on first use.
URL = "postgresql+psycopg://nobody@127.0.0.1:5432/not_a_database"


def _environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_DATABASE_URL": URL,
            "SOAP_SERVICE_CA_PASSPHRASE": "pool-size-test-passphrase", **extra}


@pytest.mark.parametrize(("setting", "size"), [(None, 5), ("1", 1), ("12", 12), ("100", 100)])
def test_the_pool_of_each_process_has_the_configured_size(tmp_path: Path, setting: str | None, size: int) -> None:
    extra = {} if setting is None else {"SOAP_SERVICE_DB_POOL_SIZE": setting}
    ra = RegistrationAuthority.from_settings(load_settings(_environ(tmp_path, **extra)))
    try:
        assert ra.engine.pool.size() == size  # type: ignore[attr-defined]
        assert ra.engine.pool._max_overflow == size  # type: ignore[attr-defined]
    finally:
        ra.close()


@pytest.mark.parametrize("setting", ["0", "-1", "101", "five", "5.5"])
def test_a_pool_size_out_of_bounds_is_refused(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ConfigurationError, match="SOAP_SERVICE_DB_POOL_SIZE"):
        load_settings(_environ(tmp_path, SOAP_SERVICE_DB_POOL_SIZE=setting))
