"""WS-Security UsernameToken instead of the AuthToken (issue 10; docs/design.md, "Authentication").

Three layers: reading the ``wsse:Security`` header (``api.wssecurity``: bounds, the profile's
URIs, Created without a pattern, messages that never quote the token), the RA's digest login
(``ra.auth``: the encrypted password copy, the skew, the nonce recorded once across RA instances
on one database, every refusal counted for the lockout and audited), and the operator's
``partner set-password``. The real server and real clients are in tests/test_ws_security_clients.py.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from lxml import etree
from sqlalchemy import select

from factory import TestPartner as ApiPartner
from factory import new_partner
from soap_service.api.service import credentials_of
from soap_service.api.wssecurity import (
    BASE64_BINARY,
    PASSWORD_DIGEST,
    PASSWORD_TEXT,
    WSSE,
    WSU,
    MalformedSecurity,
    UsernameToken,
    read_security,
)
from soap_service.config import Secret
from soap_service.errors import AccountLocked, AuthenticationFailed, InvalidField
from soap_service.ra.auth import WS_CREATED_SKEW, WS_NONCE_MARGIN, Authenticator, Credentials, DigestProof
from soap_service.ra.partners import set_password
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.wspassword import decrypt_password, derive_key, encrypt_password
from soap_service.storage.models import ApiUser, AuditEvent, Partner, WsNonce

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


# ------------------------------------------------------------------------------ building tokens


def digest_of(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_xml(
    username: str = "api",
    password: str | None = "secret-password",
    *,
    password_type: str | None = PASSWORD_TEXT,
    nonce: str | None = None,
    nonce_encoding: str | None = BASE64_BINARY,
    created: str | None = None,
    actor: str | None = None,
    extra: str = "",
    tokens: int = 1,
) -> str:
    parts = [f"<wsse:Username>{username}</wsse:Username>"]
    if password is not None:
        kind = f' Type="{password_type}"' if password_type is not None else ""
        parts.append(f"<wsse:Password{kind}>{password}</wsse:Password>")
    if nonce is not None:
        encoding = f' EncodingType="{nonce_encoding}"' if nonce_encoding is not None else ""
        parts.append(f"<wsse:Nonce{encoding}>{nonce}</wsse:Nonce>")
    if created is not None:
        parts.append(f"<wsu:Created>{created}</wsu:Created>")
    token = f"<wsse:UsernameToken>{''.join(parts)}</wsse:UsernameToken>"
    actor_attribute = f' soap:actor="{actor}"' if actor else ""
    return (f'<wsse:Security soap:mustUnderstand="1"{actor_attribute}>{token * tokens}{extra}</wsse:Security>')


def envelope(*headers: str) -> etree._Element:
    text = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}">'
        f'<soap:Header>{"".join(headers)}</soap:Header><soap:Body/></soap:Envelope>'
    )
    return etree.fromstring(text.encode())


def digest_header(username: str, password: str, *, created: datetime | None = None,
                  nonce: bytes | None = None) -> str:
    nonce = nonce if nonce is not None else secrets.token_bytes(16)
    created_text = stamp(created or datetime.now(UTC))
    return token_xml(username, digest_of(nonce, created_text, password), password_type=PASSWORD_DIGEST,
                     nonce=base64.b64encode(nonce).decode(), created=created_text)


def malformed(*headers: str) -> str:
    with pytest.raises(MalformedSecurity) as caught:
        read_security(envelope(*headers))
    return caught.value.message


# ------------------------------------------------------------------------------ the header


def test_no_security_header_is_none():
    assert read_security(envelope()) is None
    assert read_security(envelope("<other xmlns='urn:x'/>")) is None


def test_a_password_text_token_is_ordinary_credentials():
    token = read_security(envelope(token_xml("api", "secret-password")))
    assert token is not None and token.digest is None
    assert token.credentials("P1") == Credentials("P1", "api", Secret("secret-password"))


def test_a_password_without_type_is_text():
    token = read_security(envelope(token_xml("api", "secret-password", password_type=None)))
    assert token is not None and token.digest is None and token.password.reveal() == "secret-password"


def test_a_password_digest_token_carries_its_proof():
    nonce, created = b"0123456789abcdef", "2026-12-03T05:00:00.123Z"
    header = token_xml("api", digest_of(nonce, created, "pw"), password_type=PASSWORD_DIGEST,
                       nonce=base64.b64encode(nonce).decode(), created=created)
    token = read_security(envelope(header))
    assert isinstance(token, UsernameToken) and token.digest is not None
    assert token.password.reveal() == ""
    assert token.digest.nonce == nonce and token.digest.created_text == created
    assert token.digest.created == datetime(2026, 12, 3, 5, 0, 0, 123000, tzinfo=UTC)
    assert token.digest.digest == hashlib.sha1(nonce + created.encode() + b"pw").digest()


def test_a_nonce_without_encoding_type_is_base64():
    nonce = base64.b64encode(b"0123456789abcdef").decode()
    header = token_xml("api", digest_of(b"x", "c", "p"), password_type=PASSWORD_DIGEST, nonce=nonce,
                       nonce_encoding=None, created="2026-12-03T05:00:00+01:00")
    token = read_security(envelope(header))
    assert token is not None and token.digest is not None
    assert token.digest.created == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)


def test_a_security_block_for_another_actor_is_not_ours():
    assert read_security(envelope(token_xml(actor="urn:someone-else"))) is None
    other = token_xml(actor="urn:someone-else")
    assert read_security(envelope(other, token_xml("api", "secret-password"))) is not None


def test_other_security_content_such_as_a_timestamp_is_left_alone():
    timestamp = "<wsu:Timestamp><wsu:Created>2026-12-03T05:00:00Z</wsu:Created></wsu:Timestamp>"
    assert read_security(envelope(token_xml("api", "secret-password", extra=timestamp))) is not None


DIGEST = digest_of(b"n", "c", "p")
NONCE = base64.b64encode(b"0123456789abcdef").decode()
CREATED = "2026-12-03T05:00:00Z"


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        (token_xml(tokens=2), "exactly one wsse:UsernameToken"),
        (token_xml(tokens=0), "exactly one wsse:UsernameToken"),
        (token_xml(password=None), "exactly one wsse:Password"),
        (token_xml("u" * 129), "Username is longer than 128"),
        (token_xml(password="p" * 1025), "Password is longer than 1024"),
        (token_xml(password_type=PASSWORD_TEXT + "x"), "#PasswordText or #PasswordDigest"),
        (token_xml(password_type="p" * 300), "longer than any the profile defines"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, created=CREATED), "exactly one wsse:Nonce"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE), "exactly one wsu:Created"),
        (token_xml(password="a" * 65, password_type=PASSWORD_DIGEST, nonce=NONCE, created=CREATED),
         "Password is longer than 64"),
        (token_xml(password="not base64!", password_type=PASSWORD_DIGEST, nonce=NONCE, created=CREATED),
         "Password must be Base64"),
        (token_xml(password=base64.b64encode(b"short").decode(), password_type=PASSWORD_DIGEST, nonce=NONCE,
                   created=CREATED), "20-byte SHA-1"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce="A" * 257, created=CREATED),
         "Nonce is longer than 256"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce="AAAA", created=CREATED),
         "at least 8 bytes"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, nonce_encoding="urn:hex",
                   created=CREATED), "#Base64Binary"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, created="2" * 41),
         "Created is longer than 40"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, created="2026-12-03T05:00:00"),
         "xs:dateTime with a time zone"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, created="2026-13-03T05:00:00Z"),
         "xs:dateTime with a time zone"),
        (token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, created="yesterday at noon Z"),
         "xs:dateTime with a time zone"),
        (token_xml(username="<b>api</b>"), "Username must hold text only"),
    ],
    ids=[
        "two-tokens", "no-token", "no-password", "long-username", "long-password", "unknown-type", "long-type",
        "digest-no-nonce", "digest-no-created", "long-digest", "digest-not-base64", "short-digest",
        "long-nonce", "short-nonce", "nonce-encoding", "long-created", "created-without-zone",
        "created-month-13", "created-words", "username-element",
    ],
)
def test_a_malformed_token_is_refused_naming_the_rule(header: str, rule: str):
    message = malformed(header)
    assert message.startswith("the wsse:Security header cannot be used: ")
    assert rule in message, message


def test_two_security_blocks_for_this_service_are_refused():
    assert "one wsse:Security header block" in malformed(token_xml(), token_xml())


def test_a_refusal_never_quotes_the_token():
    secret = "Sup3r-secret-value"
    for header in (
        token_xml(secret, password="p" * 1025),
        token_xml(password=secret, password_type="urn:" + secret),
        token_xml(password=secret + "!", password_type=PASSWORD_DIGEST, nonce=NONCE, created=CREATED),
        token_xml(password=DIGEST, password_type=PASSWORD_DIGEST, nonce=NONCE, created=secret),
    ):
        assert secret not in malformed(header)


def test_the_token_does_not_print_its_password():
    token = read_security(envelope(token_xml("api", "Sup3r-secret-value")))
    assert "Sup3r-secret-value" not in repr(token) and "Sup3r-secret-value" not in repr(token.credentials("P"))


def test_exactly_one_of_auth_token_and_username_token_is_accepted():
    """The service's choice (api.service): both, neither, or a malformed header are -4001."""
    auth_token = SimpleNamespace(UserName="api", Password="secret-password")
    token = read_security(envelope(token_xml("api", "secret-password")))
    with_token = SimpleNamespace(PartnerCode="P1", AuthToken=auth_token)
    without = SimpleNamespace(PartnerCode="P1", AuthToken=None)
    assert credentials_of(with_token, None) == Credentials("P1", "api", Secret("secret-password"))
    assert credentials_of(without, token) == Credentials("P1", "api", Secret("secret-password"))
    for header, security, rule in (
        (with_token, token, "not both"),
        (without, None, "send an AuthToken in the request header or a wsse:Security UsernameToken"),
        (without, MalformedSecurity("a rule"), "the wsse:Security header cannot be used: a rule"),
    ):
        with pytest.raises(AuthenticationFailed) as caught:
            credentials_of(header, security)
        assert caught.value.code == -4001 and rule in caught.value.message


# ------------------------------------------------------------------------------ the copy


def test_the_copy_decrypts_only_for_its_own_user_and_installation():
    key = derive_key(Secret("passphrase-one"))
    copy = encrypt_password(key, partner_code="P1", username="api", password=Secret("the-password"))
    assert "the-password" not in copy
    assert decrypt_password(key, copy, partner_code="P1", username="api") == b"the-password"
    assert decrypt_password(key, copy, partner_code="P1", username="other") is None
    assert decrypt_password(key, copy, partner_code="P2", username="api") is None
    assert decrypt_password(derive_key(Secret("passphrase-two")), copy, partner_code="P1", username="api") is None
    assert decrypt_password(key, "v1:!!", partner_code="P1", username="api") is None
    assert decrypt_password(key, copy[3:], partner_code="P1", username="api") is None


def test_the_copy_key_is_not_the_cookie_key(ra):
    assert ra.ws_password_key != ra.cookie_key and len(ra.ws_password_key) == 32


# ------------------------------------------------------------------------------ the RA


def digest_enabled(ra: RegistrationAuthority) -> ApiPartner:
    partner = new_partner(ra)
    set_password(ra, code=partner.code, username=partner.username, password=Secret(partner.password),
                 ws_digest=True)
    return partner


def digest_credentials(partner: ApiPartner, *, password: str | None = None, created: datetime | None = None,
                       nonce: bytes | None = None) -> Credentials:
    token = read_security(envelope(digest_header(partner.username, password or partner.password,
                                                 created=created, nonce=nonce)))
    assert token is not None
    return token.credentials(partner.code)


def authenticate(ra: RegistrationAuthority, credentials: Credentials):
    return ra.authenticator.authenticate(credentials, channel="api")


def refusals(ra: RegistrationAuthority, partner: ApiPartner) -> list[str]:
    with ra.readers() as session:
        return list(session.scalars(
            select(AuditEvent.detail).where(AuditEvent.partner_code == partner.code,
                                            AuditEvent.action == "authenticate").order_by(AuditEvent.id)
        ))


def test_a_digest_token_authenticates_a_user_with_the_copy(ra):
    partner = digest_enabled(ra)
    user = authenticate(ra, digest_credentials(partner))
    assert (user.partner_code, user.username) == (partner.code, partner.username)


def test_a_text_token_and_the_auth_token_still_work_with_the_copy(ra):
    partner = digest_enabled(ra)
    token = read_security(envelope(token_xml(partner.username, partner.password)))
    assert token is not None
    assert authenticate(ra, token.credentials(partner.code)).partner_code == partner.code
    assert authenticate(ra, partner.credentials()).partner_code == partner.code


def test_a_digest_token_of_a_user_without_the_copy_fails(ra):
    partner = new_partner(ra)
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, digest_credentials(partner))
    assert refusals(ra, partner) == [
        "authentication failed: the user has no password copy for PasswordDigest (partner set-password --ws-digest)"
    ]


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("wrong digest", "the UsernameToken's PasswordDigest does not match"),
        ("stale", "the UsernameToken's Created is outside the accepted skew"),
        ("future", "the UsernameToken's Created is outside the accepted skew"),
    ],
)
def test_a_wrong_digest_or_a_created_outside_the_skew_fails_and_is_audited(ra, case, detail):
    partner = digest_enabled(ra)
    now = datetime.now(UTC)
    credentials = {
        "wrong digest": lambda: digest_credentials(partner, password="not-the-password"),
        "stale": lambda: digest_credentials(partner, created=now - WS_CREATED_SKEW - timedelta(seconds=5)),
        "future": lambda: digest_credentials(partner, created=now + WS_CREATED_SKEW + timedelta(seconds=5)),
    }[case]()
    with pytest.raises(AuthenticationFailed) as caught:
        authenticate(ra, credentials)
    assert caught.value.message == "authentication failed"  # the answer does not say which
    assert refusals(ra, partner) == [f"authentication failed: {detail}"]


def test_a_created_just_inside_the_skew_is_accepted(ra):
    partner = digest_enabled(ra)
    edge = datetime.now(UTC) - WS_CREATED_SKEW + timedelta(seconds=30)
    assert authenticate(ra, digest_credentials(partner, created=edge)).partner_code == partner.code


def test_a_nonce_is_accepted_once_across_registration_authorities(ra, installation):
    """A second RA on the same database (another worker or host) refuses the replay."""
    partner = digest_enabled(ra)
    credentials = digest_credentials(partner)
    other = RegistrationAuthority.from_settings(installation.settings)
    try:
        assert authenticate(other, credentials).partner_code == partner.code
        with pytest.raises(AuthenticationFailed):
            authenticate(ra, credentials)
        with pytest.raises(AuthenticationFailed):
            authenticate(other, credentials)
    finally:
        other.close()
    assert refusals(ra, partner) == ["authentication failed: the UsernameToken's nonce was used before"] * 2


def test_the_same_nonce_of_another_user_or_a_new_nonce_is_fine(ra):
    first, second = digest_enabled(ra), digest_enabled(ra)
    nonce = secrets.token_bytes(16)
    assert authenticate(ra, digest_credentials(first, nonce=nonce))
    assert authenticate(ra, digest_credentials(second, nonce=nonce))
    assert authenticate(ra, digest_credentials(first))


def test_a_captured_digest_token_is_not_accepted_again_for_another_account_with_the_same_password(ra):
    """The digest covers nonce, Created and password, not the user name: a token captured from one
    account authenticates any account with the same password (here another partner's user). It is
    still accepted once in all, not once per account."""
    first, second = digest_enabled(ra), new_partner(ra)
    set_password(ra, code=second.code, username=second.username, password=Secret(first.password), ws_digest=True)
    captured = digest_credentials(first)
    assert authenticate(ra, captured).partner_code == first.code
    assert captured.digest is not None
    elsewhere = Credentials(second.code, second.username, Secret(""), captured.digest)
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, elsewhere)
    assert refusals(ra, second) == ["authentication failed: the UsernameToken's nonce was used before"]
    own = digest_credentials(second, password=first.password)  # its own tokens work
    assert authenticate(ra, own).partner_code == second.code


def test_a_refused_digest_records_no_nonce(ra):
    """Only a nonce that authenticated is kept: wrong guesses do not fill the table."""
    partner = digest_enabled(ra)
    nonce = secrets.token_bytes(16)
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, digest_credentials(partner, password="not-the-password", nonce=nonce))
    assert authenticate(ra, digest_credentials(partner, nonce=nonce)).partner_code == partner.code


def test_expired_nonces_are_pruned_as_new_ones_are_recorded(ra):
    partner = digest_enabled(ra)
    old = datetime.now(UTC) - timedelta(hours=1)
    stale = [f"{secrets.token_hex(31)}00" for _ in range(3)]
    with ra.sessions() as session, session.begin():
        session.add_all(WsNonce(nonce_digest=digest, expires_at=old) for digest in stale)
    authenticate(ra, digest_credentials(partner))
    with ra.readers() as session:
        kept = set(session.scalars(select(WsNonce.nonce_digest).where(WsNonce.nonce_digest.in_(stale))))
    assert kept == set()


def test_a_nonce_outlives_its_skew_so_that_a_late_replay_finds_it_after_a_prune(ra):
    """The nonce is kept past Created + skew (``WS_NONCE_MARGIN``): a replay whose clock still says
    Created + skew (a host whose clock is a second behind, or a request that read the clock before
    its reservation and argon2, and reached its insert later) is refused even after another login,
    on a clock past Created + skew, pruned the expired rows. A day back, so that this nonce is the
    oldest row the prune finds."""
    victim, other = digest_enabled(ra), digest_enabled(ra)
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    def authenticator_at(moment: datetime) -> Authenticator:
        return Authenticator(ra.sessions, ra.readers, ra.settings, lambda: moment, ws_password_key=ra.ws_password_key)

    captured = digest_credentials(victim, created=created)
    assert authenticator_at(created).authenticate(captured, channel="api").partner_code == victim.code
    later = created + WS_CREATED_SKEW + timedelta(seconds=1)
    authenticator_at(later).authenticate(digest_credentials(other, created=later), channel="api")  # prunes
    with pytest.raises(AuthenticationFailed):
        authenticator_at(created + WS_CREATED_SKEW).authenticate(captured, channel="api")
    assert refusals(ra, victim) == ["authentication failed: the UsernameToken's nonce was used before"]


def test_a_replay_that_reaches_its_settle_after_the_window_is_refused(ra):
    """A replay that read the clock within the window but reached its settle later than the margin
    (locks, a loaded host), after another login pruned the nonce: Created is checked again in the
    settling transaction. Three days back, so that the nonce is the oldest row the prune finds."""
    victim, other = digest_enabled(ra), digest_enabled(ra)
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    pruned_at = created + WS_CREATED_SKEW + WS_NONCE_MARGIN + timedelta(seconds=1)

    def authenticator_reading(*moments: datetime) -> Authenticator:
        readings = list(moments)
        return Authenticator(ra.sessions, ra.readers, ra.settings,
                             lambda: readings.pop(0) if len(readings) > 1 else readings[0],
                             ws_password_key=ra.ws_password_key)

    captured = digest_credentials(victim, created=created)
    authenticator_reading(created).authenticate(captured, channel="api")
    authenticator_reading(pruned_at).authenticate(digest_credentials(other, created=pruned_at), channel="api")
    with pytest.raises(AuthenticationFailed):
        authenticator_reading(created + WS_CREATED_SKEW, pruned_at).authenticate(captured, channel="api")
    assert refusals(ra, victim) == ["authentication failed: the UsernameToken's Created is outside the accepted skew"]


def test_a_nonce_is_pruned_once_its_margin_has_passed(ra):
    partner, other = digest_enabled(ra), digest_enabled(ra)
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    credentials = digest_credentials(partner, created=created)
    Authenticator(ra.sessions, ra.readers, ra.settings, lambda: created,
                  ws_password_key=ra.ws_password_key).authenticate(credentials, channel="api")
    with ra.readers() as session:
        kept_until = session.scalars(select(WsNonce.expires_at).order_by(WsNonce.expires_at)).first()
    assert kept_until == created + WS_CREATED_SKEW + WS_NONCE_MARGIN
    later = created + WS_CREATED_SKEW + WS_NONCE_MARGIN + timedelta(seconds=1)
    Authenticator(ra.sessions, ra.readers, ra.settings, lambda: later, ws_password_key=ra.ws_password_key
                  ).authenticate(digest_credentials(other, created=later), channel="api")
    with ra.readers() as session:
        assert session.scalars(select(WsNonce.expires_at).where(WsNonce.expires_at == kept_until)).first() is None


@pytest.mark.parametrize("failure", ["wrong digest", "stale", "replay"])
def test_digest_failures_count_towards_the_lockout(ra, failure):
    settings = dataclasses.replace(ra.settings, lockout_threshold=3)
    authenticator = Authenticator(ra.sessions, ra.readers, settings, ra.clock, ws_password_key=ra.ws_password_key)
    partner = digest_enabled(ra)
    replayed = digest_credentials(partner)
    if failure == "replay":
        authenticator.authenticate(replayed, channel="api")
    for _ in range(3):
        credentials = {
            "wrong digest": lambda: digest_credentials(partner, password="not-the-password"),
            "stale": lambda: digest_credentials(partner, created=datetime.now(UTC) - timedelta(hours=1)),
            "replay": lambda: replayed,
        }[failure]()
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(credentials, channel="api")
    with pytest.raises(AccountLocked):
        authenticator.authenticate(digest_credentials(partner), channel="api")
    with pytest.raises(AccountLocked):
        authenticator.authenticate(partner.credentials(), channel="api")


def test_a_digest_login_is_never_served_from_the_cache(ra):
    """The cache holds passwords' HMACs; a digest has none: each digest login is checked, and a
    cached AuthToken login does not let a replayed digest through."""
    partner = digest_enabled(ra)
    authenticate(ra, partner.credentials())
    credentials = digest_credentials(partner)
    authenticate(ra, credentials)
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, credentials)


def test_an_unreadable_copy_fails_and_tells_the_operator(ra, caplog):
    partner = digest_enabled(ra)
    other_key = derive_key(Secret("another-installation"))
    with ra.sessions() as session, session.begin():
        user = session.scalars(select(ApiUser).join(Partner).where(Partner.code == partner.code)).one()
        user.ws_password_copy = encrypt_password(other_key, partner_code=partner.code, username=partner.username,
                                                 password=Secret(partner.password))
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, digest_credentials(partner))
    assert "cannot be decrypted" in caplog.text and partner.password not in caplog.text


def test_a_digest_proof_does_not_print_its_digest():
    proof = DigestProof(b"n" * 16, CREATED, datetime.now(UTC), b"d" * 20)
    assert "ddd" not in repr(proof) and "nnn" not in repr(proof)


# ------------------------------------------------------------------------------ set-password


def stored(ra: RegistrationAuthority, partner: ApiPartner) -> ApiUser:
    with ra.readers() as session:
        return session.scalars(select(ApiUser).join(Partner).where(Partner.code == partner.code)).one()


def test_set_password_replaces_the_hash_and_keeps_a_copy_only_with_ws_digest(ra):
    partner = new_partner(ra)
    set_password(ra, code=partner.code, username=partner.username, password=Secret("a-new-password-1"),
                 ws_digest=True)
    copy = stored(ra, partner).ws_password_copy
    assert copy is not None and "a-new-password-1" not in copy
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, partner.credentials())
    renamed = dataclasses.replace(partner, password="a-new-password-1")
    assert authenticate(ra, renamed.credentials()).partner_code == partner.code
    assert authenticate(ra, digest_credentials(renamed)).partner_code == partner.code

    set_password(ra, code=partner.code, username=partner.username, password=Secret("a-new-password-2"),
                 ws_digest=False)
    assert stored(ra, partner).ws_password_copy is None
    again = dataclasses.replace(partner, password="a-new-password-2")
    with pytest.raises(AuthenticationFailed):
        authenticate(ra, digest_credentials(again))
    assert authenticate(ra, again.credentials()).partner_code == partner.code


def test_set_password_is_audited_without_the_password(ra):
    partner = new_partner(ra)
    set_password(ra, code=partner.code, username=partner.username, password=Secret("a-new-password-1"),
                 ws_digest=True)
    with ra.readers() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.partner_code == partner.code,
                                                                AuditEvent.action == "partner.set-password")))
    assert [(e.outcome, e.channel, e.detail) for e in events] == [
        ("success", "cli", "with a copy for WS-Security PasswordDigest")
    ]
    assert "a-new-password-1" not in repr(vars(events[0]))


@pytest.mark.parametrize(
    ("code", "username", "password", "field"),
    [
        ("NOSUCH", "api", "a-long-enough-password", "UserName"),
        (None, "nobody", "a-long-enough-password", "UserName"),
        (None, "api", "short", "Password"),
        (None, "api", "a-long-enough\x00password", "Password"),
        ("bad code!", "api", "a-long-enough-password", "PartnerCode"),
    ],
    ids=["unknown-partner", "unknown-user", "short-password", "control-character", "bad-code"],
)
def test_set_password_refuses_and_changes_nothing(ra, code, username, password, field):
    partner = new_partner(ra)
    with pytest.raises(InvalidField) as caught:
        set_password(ra, code=code or partner.code, username=username, password=Secret(password), ws_digest=True)
    assert caught.value.field == field
    assert stored(ra, partner).ws_password_copy is None
    assert authenticate(ra, partner.credentials()).partner_code == partner.code
