"""The tables, as typed SQLAlchemy 2 mappings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from soap_service.storage.types import UTCDateTime, enum_column
from soap_service.vocabulary import CertificateStatus, OrderStatus, ValidationLevel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Wide integer primary keys on PostgreSQL, SQLite's rowid alias on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Brand(Base):
    __tablename__ = "brands"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Product(Base):
    __tablename__ = "products"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    brand_code: Mapped[str] = mapped_column(ForeignKey("brands.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    validation_level: Mapped[ValidationLevel] = mapped_column(enum_column(ValidationLevel, "validation_level", 2))
    wildcard_allowed: Mapped[bool] = mapped_column(Boolean)
    max_names: Mapped[int] = mapped_column(Integer)


class CertificateAuthority(Base):
    """One CA of the installation's hierarchy, its certificate and protected key."""

    __tablename__ = "certificate_authorities"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # root, tls, codesigning
    brand_code: Mapped[str | None] = mapped_column(ForeignKey("brands.code"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("certificate_authorities.id"))
    certificate_pem: Mapped[str] = mapped_column(Text)
    protected_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    api_users: Mapped[list[ApiUser]] = relationship(back_populates="partner")


class ApiUser(Base):
    __tablename__ = "api_users"
    __table_args__ = (UniqueConstraint("partner_id", "username"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    username: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ws_password_copy: Mapped[str | None] = mapped_column(Text, default=None)
    """The password encrypted under the installation's key (AES-256-GCM, ``ra.wspassword``), for
    WS-Security PasswordDigest tokens; only when the operator asked (``partner set-password
    --ws-digest``), else NULL (docs/design.md, "Authentication")."""

    partner: Mapped[Partner] = relationship(back_populates="api_users")


class WsNonce(Base):
    """A WS-Security UsernameToken nonce that authenticated (the SHA-256 of the token's digest and
    nonce, for every account: ``ra.auth``), kept until no Created it came with could be accepted
    again: the primary key refuses a second use on every worker and host."""

    __tablename__ = "ws_nonces"
    __table_args__ = (Index("ix_ws_nonces_expires_at", "expires_at"),)

    nonce_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReplayToken(Base):
    """A partner's ReplayToken (ra.replay): the request it was first used with (operation and the
    SHA-256 of the request without credentials), ``pending`` while that request is served, then
    ``done`` with the answer given, which a retry of the same request is answered with. Unique per
    partner, so every worker and host sees it; pruned once older than the setting's hours."""

    __tablename__ = "replay_tokens"
    __table_args__ = (
        UniqueConstraint("partner_id", "token"),
        Index("ix_replay_tokens_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    token: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8))  # pending, done
    answer: Mapped[str | None] = mapped_column(Text)
    answer_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthenticationFailure(Base):
    """One failed login, or a login attempt still being checked (``pending``): both count
    for the lockout, across processes. Rows older than the lockout window are pruned (by
    ``at``); the audit trail keeps its own record of every failure."""

    __tablename__ = "authentication_failures"
    __table_args__ = (
        Index("ix_authentication_failures_account", "partner_code", "username", "at"),
        Index("ix_authentication_failures_at", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_code: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Reserved before the password hash and settled after it; a crash in between leaves it
    # pending, and it counts as a failure.
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("partner_id", "partner_order_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    partner_order_id: Mapped[str] = mapped_column(String(64))
    brand_code: Mapped[str] = mapped_column(ForeignKey("brands.code"))
    product_code: Mapped[str] = mapped_column(ForeignKey("products.code"))
    status: Mapped[OrderStatus] = mapped_column(enum_column(OrderStatus, "order_status", 16))
    term_start: Mapped[datetime] = mapped_column(UTCDateTime())
    term_end: Mapped[datetime] = mapped_column(UTCDateTime())
    organization_name: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    state: Mapped[str | None] = mapped_column(String(128))
    locality: Mapped[str | None] = mapped_column(String(128))
    business_category: Mapped[str | None] = mapped_column(String(64))
    jurisdiction_country: Mapped[str | None] = mapped_column(String(2))
    jurisdiction_state: Mapped[str | None] = mapped_column(String(128))
    jurisdiction_locality: Mapped[str | None] = mapped_column(String(128))
    registration_number: Mapped[str | None] = mapped_column(String(64))
    current_certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificates.id", use_alter=True, name="fk_orders_current_certificate_id_certificates")
    )
    # Bumped by every change of the current certificate: a compare-and-set that
    # serializes concurrent reissues of one order on every backend.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    partner: Mapped[Partner] = relationship()
    product: Mapped[Product] = relationship()
    names: Mapped[list[OrderName]] = relationship(order_by="OrderName.position", cascade="all, delete-orphan")
    contacts: Mapped[list[OrderContact]] = relationship(
        order_by="OrderContact.id", cascade="all, delete-orphan"
    )


class OrderName(Base):
    """A DNS name (or wildcard) validated for an order."""

    __tablename__ = "order_names"
    __table_args__ = (UniqueConstraint("order_pk", "name"), Index("ix_order_names_name", "name"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    name: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer)


class OrderContact(Base):
    __tablename__ = "order_contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # admin, technical, billing
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))


class IssuedSerial(Base):
    """A serial number, recorded before the signature that uses it."""

    __tablename__ = "issued_serials"
    __table_args__ = (UniqueConstraint("ca_id", "serial"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("certificate_authorities.id"))
    serial: Mapped[str] = mapped_column(String(40))  # lowercase hex, no leading zeros
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial"),
        # The CRL's freshness check on every fetch (storage.status.revocation_state) reads the CA's
        # revoked rows alone, from the index: 7.5 ms instead of 158 ms at 100,000 certificates a CA.
        Index("ix_certificates_ca_status_revoked", "ca_id", "status", "revoked_at", "revocation_reason"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("certificate_authorities.id"))
    serial: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text)
    names: Mapped[str] = mapped_column(Text)  # the dNSNames, one per line
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    pem: Mapped[str] = mapped_column(Text)
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    csr_pem: Mapped[str] = mapped_column(Text)
    csr_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[CertificateStatus] = mapped_column(
        enum_column(CertificateStatus, "certificate_status", 16), default=CertificateStatus.VALID
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())

    authority: Mapped[CertificateAuthority] = relationship()
    replaces: Mapped[Certificate | None] = relationship(remote_side=[id])

    @property
    def name_list(self) -> list[str]:
        return [name for name in self.names.split("\n") if name]


class OrderChange(Base):
    """One change of an order that a partner polling GetModifiedOrders learns of: a
    certificate issued, reissued or revoked, the order cancelled. Written in the same
    transaction as the change itself; read by (partner, time)."""

    __tablename__ = "order_changes"
    __table_args__ = (Index("ix_order_changes_partner_at", "partner_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    change: Mapped[str] = mapped_column(String(16))  # issued, reissued, revoked, cancelled
    certificate_serial: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(64))  # e.g. the revocation reason


class CRLState(Base):
    """The last CRL number an issuing CA used: every CRL it signs takes the next one, across
    processes and hosts (RFC 5280 5.2.3: monotonically increasing)."""

    __tablename__ = "crl_states"

    ca_id: Mapped[int] = mapped_column(ForeignKey("certificate_authorities.id"), primary_key=True)
    crl_number: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OCSPResponder(Base):
    """A delegated OCSP responder certificate of an issuing CA (id-kp-OCSPSigning,
    id-pkix-ocsp-nocheck) and its key, protected by the key backend like a CA key."""

    __tablename__ = "ocsp_responders"
    __table_args__ = (Index("ix_ocsp_responders_ca_not_after", "ca_id", "not_after"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("certificate_authorities.id"))
    certificate_pem: Mapped[str] = mapped_column(Text)
    protected_key: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BlockedKey(Base):
    """A public key refused forever, by the SHA-256 of its SubjectPublicKeyInfo."""

    __tablename__ = "blocked_keys"

    spki_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    blocked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))


class AuditEvent(Base):
    """Append-only: the migrations add triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
    Each event is a link of one hash chain (``storage.audit_chain``; docs/design.md, "Audit chain"):
    ``chain_seq`` numbers the events 1, 2, 3, ... without gaps, ``chain_prev`` is the previous
    event's ``chain_hash``, ``chain_hash`` the SHA-256 of this event's fields with both."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # api, portal, cli
    action: Mapped[str] = mapped_column(String(32))  # authenticate, reissue, ...
    outcome: Mapped[str] = mapped_column(String(16))  # success, refused, failed
    code: Mapped[int] = mapped_column(Integer)
    partner_code: Mapped[str | None] = mapped_column(String(64), index=True)
    username: Mapped[str | None] = mapped_column(String(128))
    order_id: Mapped[str | None] = mapped_column(String(32), index=True)
    partner_order_id: Mapped[str | None] = mapped_column(String(64))
    certificate_serial: Mapped[str | None] = mapped_column(String(40))
    incident_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    chain_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    chain_prev: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))


class PortalCaptcha(Base):
    """A captcha the End User Portal showed: its challenge (the random token in the form, hashed)
    and its answer (hashed with the challenge); single use, until it expires."""

    __tablename__ = "portal_captchas"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    answer_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PortalAccessToken(Base):
    """A link the portal e-mailed to an order's contact: the random token hashed, bound to the
    order and the address; single use, valid until it expires."""

    __tablename__ = "portal_access_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PortalSession(Base):
    """A contact's access to one order after following its link: the session cookie's random
    token hashed, its CSRF token, the last request (the idle timeout counts from it), its end."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MailMessage(Base):
    """An e-mail to send: kept until the SMTP server accepted it, retried with backoff."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200))


class PortalRateEvent(Base):
    """One counted portal action (a lookup, an access e-mail) by one subject (a client address,
    an e-mail address), for the rate limits that hold across workers and hosts."""

    __tablename__ = "portal_rate_events"
    __table_args__ = (Index("ix_portal_rate_events_kind_subject_at", "kind", "subject", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of "client:<address>" or "email:<address>"
    at: Mapped[datetime] = mapped_column(UTCDateTime())
