"""Hosts that start at once on one new PostgreSQL database each run ``soap-service init`` (the
Docker entry point does): they take turns under the installation's advisory lock, and exactly one
makes the hierarchy (docs/design.md, "Concurrency and failures"; docs/deployment.md)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import database_environment
from soap_service.config import load_settings
from soap_service.ra.installation import Installation, initialize
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import audit_chain, authorities

HOSTS = 3


@pytest.mark.slow
def test_hosts_initializing_one_new_database_at_once_make_one_hierarchy(tmp_path: Path) -> None:
    for environ in database_environment("postgresql", tmp_path, "initrace"):
        # Each host has its own data directory; they share the database and the CA passphrase.
        hosts = []
        for index in range(HOSTS):
            data_dir = tmp_path / f"host{index}"
            data_dir.mkdir()
            hosts.append(RegistrationAuthority.from_settings(
                load_settings({**environ, "SOAP_SERVICE_DATA_DIR": str(data_dir)})))
        try:
            with ThreadPoolExecutor(HOSTS) as pool:
                results: list[Installation] = list(pool.map(initialize, hosts))
            assert sorted(result.created for result in results) == [False] * (HOSTS - 1) + [True]
            assert len({result.authorities for result in results}) == 1  # all see the same CAs
            with hosts[0].readers() as session:
                names = [ca.name for ca in authorities.list_authorities(session)]
                assert len(names) == len(set(names)) == len(results[0].authorities)
                assert audit_chain.walk(session).broken is None
        finally:
            for host in hosts:
                host.close()
