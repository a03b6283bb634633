"""Partners and their API users, as the operator manages them."""

from __future__ import annotations

from dataclasses import dataclass

from soap_service.config import Secret
from soap_service.errors import InvalidField
from soap_service.ra.auth import hash_password, password_matches
from soap_service.ra.fields import MAX_PARTNER_NAME_CHARS, bounded, is_clean_text, is_partner_code, is_user_name
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.wspassword import encrypt_password
from soap_service.storage import audit, partners
from soap_service.storage.db import SessionFactory


@dataclass(frozen=True)
class PartnerCreated:
    code: str
    name: str
    username: str


def create_partner(
    ra: RegistrationAuthority, *, code: str, name: str, username: str, password: Secret
) -> PartnerCreated:
    if not is_partner_code(code):
        raise InvalidField("a partner code is 2-64 letters, digits, '.', '_' or '-'", field="PartnerCode")
    if not bounded(name, MAX_PARTNER_NAME_CHARS, "name").strip():
        raise InvalidField("a partner needs a name", field="name")
    if not is_clean_text(name):
        raise InvalidField("a partner name holds control or invalid characters", field="name")
    if not is_user_name(username):
        raise InvalidField("a user name is 1-128 letters, digits, '.', '_', '@' or '-'", field="UserName")
    password_hash = hash_password(password)
    now = ra.clock()
    with ra.sessions() as session, session.begin():
        if partners.get_partner(session, code) is not None:
            raise InvalidField(f"partner {code} already exists", field="PartnerCode")
        partner = partners.add_partner(session, code=code, name=name.strip(), created_at=now)
        partners.add_api_user(session, partner=partner, username=username, password_hash=password_hash,
                              created_at=now)
        audit.append_event(session, at=now, channel="cli", action="partner.create", outcome="success", code=0,
                           partner_code=code, username=username)
    return PartnerCreated(code=code, name=name.strip(), username=username)


@dataclass(frozen=True)
class PasswordSet:
    code: str
    username: str
    ws_digest: bool


def set_password(
    ra: RegistrationAuthority, *, code: str, username: str, password: Secret, ws_digest: bool
) -> PasswordSet:
    """A new password for partner ``code``'s API user ``username``: its argon2 hash, and with
    ``ws_digest`` also a copy encrypted under the installation's key, which WS-Security
    PasswordDigest tokens need (docs/design.md, "Authentication"); without it any copy is removed,
    and digest tokens of this user fail. Audited."""
    if not is_partner_code(code):
        raise InvalidField("a partner code is 2-64 letters, digits, '.', '_' or '-'", field="PartnerCode")
    if not is_user_name(username):
        raise InvalidField("a user name is 1-128 letters, digits, '.', '_', '@' or '-'", field="UserName")
    if not is_clean_text(password.reveal()):
        raise InvalidField("a password holds control or invalid characters", field="Password")
    password_hash = hash_password(password)
    copy = (
        encrypt_password(ra.ws_password_key, partner_code=code, username=username, password=password)
        if ws_digest else None
    )
    now = ra.clock()
    with ra.sessions() as session, session.begin():
        found = partners.get_api_user(session, code, username)
        if found is None:
            raise InvalidField(f"partner {code} has no API user {username}", field="UserName")
        found[1].password_hash = password_hash
        found[1].ws_password_copy = copy
        session.flush()
        audit.append_event(session, at=now, channel="cli", action="partner.set-password", outcome="success", code=0,
                           partner_code=code, username=username,
                           detail="with a copy for WS-Security PasswordDigest" if ws_digest else "hash only")
    return PasswordSet(code=code, username=username, ws_digest=ws_digest)


def partner_exists(ra: RegistrationAuthority, code: str) -> bool:
    with ra.readers() as session:
        return partners.get_partner(session, code) is not None


def api_user_password_matches(readers: SessionFactory, *, code: str, username: str, password: Secret) -> bool:
    """Whether partner ``code`` has the API user ``username`` and ``password`` is its password: a
    read and one argon2 verification. Not a login (see ``auth``): nothing is counted, audited or
    cached, and the account's status is not looked at; for the demo's kept credentials."""
    with readers() as session:
        found = partners.get_api_user(session, code, username)
    return found is not None and password_matches(found[1].password_hash, password)
