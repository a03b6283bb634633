"""The registration authority as one object: settings, database, CA keys, issuer and
credential checks, built once per process and shared by every front end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from soap_service.ca.issuer import Issuer
from soap_service.ca.keys import EncryptedKeyBackend, load_or_create_passphrase
from soap_service.ca.keys.backend import KeyBackend
from soap_service.ca.lint import PreIssuanceLinter
from soap_service.config import Settings
from soap_service.datadir import secure_data_dir
from soap_service.ra.auth import Authenticator
from soap_service.ra.authorities import AuthorityRegistry
from soap_service.ra.clock import Clock, utc_now
from soap_service.ra.keypolicy import KeyPolicy
from soap_service.ra.wspassword import derive_key as derive_ws_password_key
from soap_service.storage.db import (
    SessionFactory,
    create_database_engine,
    create_reader_factory,
    create_session_factory,
    sqlite_database_path,
)

logger = logging.getLogger(__name__)


COOKIE_KEY_LABEL = b"soap_service: End User Portal cookies"


@dataclass
class RegistrationAuthority:
    settings: Settings
    engine: Engine
    sessions: SessionFactory
    readers: SessionFactory
    clock: Clock
    key_backend: KeyBackend
    authorities: AuthorityRegistry
    issuer: Issuer
    linter: PreIssuanceLinter
    authenticator: Authenticator
    key_policy: KeyPolicy
    cookie_key: bytes = field(repr=False)
    """Signs the End User Portal's cookies (ra.portal): derived from the CA passphrase, so every
    host of an installation has the same, and a copy of the database alone has none."""
    ws_password_key: bytes = field(repr=False)
    """Encrypts the API users' password copies for WS-Security PasswordDigest (ra.wspassword):
    derived from the CA passphrase too, with a label of its own."""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Clock = utc_now, engine: Engine | None = None
    ) -> RegistrationAuthority:
        # Before anything is created in it: the data directory is the service user's alone.
        secure_data_dir(settings.data_dir, sqlite_database=sqlite_database_path(settings.database_url))
        engine = engine or create_database_engine(settings.database_url, pool_size=settings.db_pool_size)
        sessions = create_session_factory(engine)
        readers = create_reader_factory(engine)
        passphrase = load_or_create_passphrase(
            settings.ca_passphrase, settings.ca_passphrase_file, settings.data_dir
        )
        key_policy = KeyPolicy(require_blocklist=settings.require_key_blocklist)
        key_backend = EncryptedKeyBackend(passphrase)
        linter = PreIssuanceLinter(settings.public_url)
        ws_password_key = derive_ws_password_key(passphrase)
        if settings.public_url_is_internal:
            logger.warning(
                "SOAP_SERVICE_PUBLIC_URL %s is an internal address: certificates will carry AIA and CRL "
                "URLs that relying parties on the Internet cannot reach; set a public name in production",
                settings.public_url,
            )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            readers=readers,
            clock=clock,
            key_backend=key_backend,
            authorities=AuthorityRegistry(key_backend),
            issuer=Issuer(settings.public_url, linter),
            linter=linter,
            authenticator=Authenticator(sessions, readers, settings, clock, ws_password_key=ws_password_key),
            key_policy=key_policy,
            cookie_key=passphrase.derive_key(COOKIE_KEY_LABEL),
            ws_password_key=ws_password_key,
        )

    def prepare(self) -> None:
        """Build what the first request would otherwise pay for: the linter's validators and
        the key checks' tables. Called where a worker starts, before it serves."""
        self.linter.prepare()
        self.key_policy.prepare()

    def close(self) -> None:
        self.engine.dispose()
