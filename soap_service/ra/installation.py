"""Setting up an installation: the product catalogue and, once, the CA hierarchy."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import SQLAlchemyError

from soap_service.ca.hierarchy import CAMaterial, create_hierarchy
from soap_service.ra.catalogue import PRODUCTS
from soap_service.ra.ocsp import ensure_responders
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import audit, authorities, catalogue
from soap_service.storage.db import installation_lock
from soap_service.vocabulary import Brand

logger = logging.getLogger(__name__)

ALEMBIC_LOGGER = "alembic"


@dataclass(frozen=True)
class AuthoritySummary:
    name: str
    role: str
    subject: str
    sha256_fingerprint: str


@dataclass(frozen=True)
class Installation:
    created: bool
    authorities: tuple[AuthoritySummary, ...]


def is_initialized(ra: RegistrationAuthority) -> bool:
    """Whether ``soap-service init`` has made the schema and the CA hierarchy."""
    try:
        with ra.readers() as session:
            return bool(authorities.list_authorities(session))
    except SQLAlchemyError:
        return False


def migrate(ra: RegistrationAuthority) -> None:
    """The schema at Alembic's head. Alembic is loaded here, not when this module is (``serve``
    checks :func:`is_initialized` without it), and its INFO lines (a line per plugin as it loads,
    a line per migration) are not shown unless the ``alembic`` logger's level was set: a quiet
    start at the default level."""
    alembic_logger = logging.getLogger(ALEMBIC_LOGGER)
    level = alembic_logger.level
    if level == logging.NOTSET:
        alembic_logger.setLevel(logging.WARNING)
    try:
        from soap_service.storage.schema import upgrade_to_head

        upgrade_to_head(ra.engine)
    finally:
        alembic_logger.setLevel(level)


def initialize(ra: RegistrationAuthority) -> Installation:
    """Migrate the schema, load the catalogue, create the hierarchy unless it exists.

    On PostgreSQL the whole of it runs under the installation's advisory lock
    (:func:`soap_service.storage.db.installation_lock`): several hosts running ``init`` at once
    on one new database take turns, and all but the first find it done. The hierarchy's keys and
    certificates are made before the transaction that records them (no signature under a write
    lock, docs/design.md, "Concurrency and failures")."""
    with installation_lock(ra.engine):
        migrate(ra)
        return _initialize_migrated(ra)


def _initialize_migrated(ra: RegistrationAuthority) -> Installation:
    now = ra.clock()
    materials: list[CAMaterial] | None = None
    installation = secrets.token_hex(4).upper()
    with ra.readers() as session:
        exists = bool(authorities.list_authorities(session))
    if not exists:
        materials = list(create_hierarchy(
            ra.settings.ca_key_algorithm, installation, ra.settings.public_url, now, ra.key_backend
        ))
        for material in materials:
            for finding in ra.linter.ca_findings(material.certificate, material.role):
                logger.warning("CA %s: linter finding %s", material.name, finding)
    created = False
    with ra.sessions() as session, session.begin():
        for brand in Brand:
            catalogue.upsert_brand(session, brand, brand.display_name)
        session.flush()
        for product in PRODUCTS:
            catalogue.upsert_product(
                session,
                code=product.code,
                brand_code=product.brand,
                name=product.name,
                validation_level=product.validation_level,
                wildcard_allowed=product.wildcard_allowed,
                max_names=product.max_names,
            )
        if materials is not None and not authorities.list_authorities(session):
            created = True
            ids: dict[str, int] = {}
            for material in materials:
                parent = None if material.role == "root" else ids["ROOT"]
                record = authorities.add_authority(
                    session,
                    name=material.name,
                    role=material.role,
                    brand_code=material.brand,
                    parent_id=parent,
                    certificate_pem=material.certificate.public_bytes(serialization.Encoding.PEM).decode(),
                    protected_key=material.protected_key,
                    created_at=now,
                )
                ids[material.name] = record.id
            audit.append_event(session, at=now, channel="cli", action="init", outcome="success", code=0,
                               detail=f"installation {installation}, {len(materials)} CAs")
        summaries = tuple(
            _summary(ca.name, ca.role, ca.certificate_pem) for ca in authorities.list_authorities(session)
        )
    # Each issuing CA's OCSP responder certificate, made or renewed after the hierarchy's transaction
    # (an installation made before responders existed gets them here; docs/design.md, "OCSP").
    ensure_responders(ra, now)
    return Installation(created=created, authorities=summaries)


def _summary(name: str, role: str, pem: str) -> AuthoritySummary:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    certificate = x509.load_pem_x509_certificate(pem.encode())
    return AuthoritySummary(
        name=name,
        role=role,
        subject=certificate.subject.rfc4514_string(),
        sha256_fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
    )
