"""``soap-service demo``: an installation to play with, made idempotently.

A partner DEMO with API user ``demo`` and one completed order per product,
``DEMO-<product>``. The demo's subscriber keys are made here, for the demo's first
CSRs only, and discarded.

The demo partner's password is generated here and kept in the data directory
(:data:`CREDENTIALS_FILE`, mode 0600 in a 0700 directory: ``soap_service.datadir``), so that
every ``soap-service demo`` and every banner of ``soap-service serve`` can show it to the local
operator. It is shown only while it is this database's: the demo partner and user exist and the
kept password verifies against the stored hash (one argon2 verification, no login:
``ra.partners.api_user_password_matches``); a file from another database, or a password changed
since, is never shown. The password goes to the operator's terminal (stdout), never to a log.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.exc import SQLAlchemyError

from soap_service.config import Secret, Settings
from soap_service.datadir import FILE_MODE
from soap_service.ra.catalogue import PRODUCTS, ProductSpec
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, Organization, create_order, order_exists
from soap_service.ra.partners import api_user_password_matches, create_partner, partner_exists
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.db import SessionFactory, create_database_engine, create_reader_factory

PARTNER_CODE = "DEMO"
USERNAME = "demo"
ADMIN_EMAIL = "admin@example.com"
TECH_EMAIL = "tech@example.com"
EXAMPLE_ORDER = "DEMO-SSL123"
CREDENTIALS_FILE = "demo-credentials.json"
"""The demo partner's credentials, in the data directory: ``{"partner_code", "username", "password"}``."""


@dataclass(frozen=True)
class DemoCredentials:
    partner_code: str
    username: str
    password: Secret


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def keep_credentials(data_dir: Path, credentials: DemoCredentials) -> Path:
    """Write ``credentials`` to :data:`CREDENTIALS_FILE` (mode 0600), replacing it whole."""
    path = credentials_path(data_dir)
    # A new file of a name nobody could have chosen (O_EXCL, mode 0600): never a file or a
    # symbolic link that was there before, whoever made it.
    descriptor, staged = tempfile.mkstemp(prefix=f".{CREDENTIALS_FILE}.", suffix=".new", dir=data_dir)
    try:
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump({"partner_code": credentials.partner_code, "username": credentials.username,
                       "password": credentials.password.reveal()}, out)
            out.write("\n")
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return path


def _read_kept(data_dir: Path) -> DemoCredentials | None:
    """The credentials in :data:`CREDENTIALS_FILE`, or None when there is none or it cannot be read."""
    try:
        kept = json.loads(credentials_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict):
        return None
    code, username, password = kept.get("partner_code"), kept.get("username"), kept.get("password")
    if not (isinstance(code, str) and isinstance(username, str) and isinstance(password, str)):
        return None
    return DemoCredentials(code, username, Secret(password))


def kept_credentials(data_dir: Path, readers: SessionFactory) -> DemoCredentials | None:
    """The demo partner's credentials kept in ``data_dir`` when they are those of the database
    ``readers`` read: the demo partner and user exist and the kept password is the user's."""
    kept = _read_kept(data_dir)
    if kept is None or (kept.partner_code, kept.username) != (PARTNER_CODE, USERNAME):
        return None
    matches = api_user_password_matches(readers, code=kept.partner_code, username=kept.username,
                                        password=kept.password)
    return kept if matches else None


def shown_credentials(settings: Settings) -> DemoCredentials | None:
    """:func:`kept_credentials` for ``soap-service serve``'s banner, from the settings alone. The
    database is opened only when the data directory holds the file; an unreadable database shows
    nothing."""
    if not credentials_path(settings.data_dir).is_file():
        return None
    engine = create_database_engine(settings.database_url)
    try:
        return kept_credentials(settings.data_dir, create_reader_factory(engine))
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def order_names(product: ProductSpec) -> tuple[str, ...]:
    if product.validation_level == "CS":
        return ()
    label = product.code.lower()
    if product.wildcard_allowed:
        return (f"*.{label}.example.com", f"{label}.example.com")
    return (f"{label}.example.com", f"www.{label}.example.com")


def organization(product: ProductSpec) -> Organization | None:
    if product.validation_level == "DV":
        return None
    ev = product.validation_level == "EV"
    return Organization(
        name="Example Corporation",
        country="US",
        state="California",
        locality="San Francisco",
        business_category="Private Organization" if ev else None,
        jurisdiction_country="US" if ev else None,
        registration_number="C1234567" if ev else None,
    )


def demo_csr(names: tuple[str, ...]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "Example Corporation")])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def run(ra: RegistrationAuthority, out: TextIO) -> None:
    """Make what is missing of the demo and say so in a few lines, the credentials among them."""
    data_dir = ra.settings.data_dir
    installation = initialize(ra)
    out.write("CA hierarchy: " + ("created" if installation.created else "already present") + "\n")
    if not partner_exists(ra, PARTNER_CODE):
        # Kept before the partner exists: a failure in between leaves a password that verifies
        # against nothing (never shown), never a partner whose password is lost.
        credentials = DemoCredentials(PARTNER_CODE, USERNAME, Secret(secrets.token_urlsafe(18)))
        path = keep_credentials(data_dir, credentials)
        create_partner(ra, code=PARTNER_CODE, name="Demo Reseller", username=USERNAME,
                       password=credentials.password)
        out.write(f"partner {PARTNER_CODE} / user {USERNAME} / password {credentials.password.reveal()}"
                  f"  (created; kept in {path}, shown by every `soap-service serve`)\n")
    else:
        kept = kept_credentials(data_dir, ra.readers)
        if kept is not None:
            out.write(f"partner {PARTNER_CODE} / user {USERNAME} / password {kept.password.reveal()}"
                      f"  (already present; kept in {credentials_path(data_dir)})\n")
        else:
            out.write(f"partner {PARTNER_CODE} / user {USERNAME}: already present; its password is not in "
                      f"{credentials_path(data_dir)} (a demo of an older version, or another database): "
                      "a new data directory makes a new demo partner\n")
    created = 0
    for product in PRODUCTS:
        partner_order_id = f"DEMO-{product.code}"
        if order_exists(ra, partner_code=PARTNER_CODE, partner_order_id=partner_order_id):
            continue
        names = order_names(product)
        create_order(
            ra,
            NewOrder(
                partner_code=PARTNER_CODE,
                partner_order_id=partner_order_id,
                product=product.code,
                names=names,
                csr=demo_csr(names),
                contacts=(Contact("admin", ADMIN_EMAIL), Contact("technical", TECH_EMAIL)),
                organization=organization(product),
            ),
        )
        created += 1
    out.write(f"demo orders: DEMO-<product> for each of the {len(PRODUCTS)} products ({created} created now), "
              f"e.g. {EXAMPLE_ORDER}\n")
