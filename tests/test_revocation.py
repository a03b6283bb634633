"""docs/design.md, "Revocation": Revoke and Cancel rule by rule, through the RA's use cases, on
SQLite and PostgreSQL, with real keys, CSRs and certificates."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from factory import fresh_key_csr, new_order, new_partner
from soap_service.errors import (
    AlreadyRevoked,
    AuthenticationFailed,
    CertificateExpired,
    CertificateRevoked,
    InvalidField,
    KeyRefused,
    OrderNotFound,
    OrderStateInvalid,
    ServiceError,
)
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.revocation import REVOCATION_REASONS, Revoker, RevokeRequest
from soap_service.storage.models import AuditEvent, BlockedKey, Certificate, Order, OrderChange
from soap_service.vocabulary import CertificateStatus, OrderStatus


def revoke(ra, partner, poid=None, *, serial=None, pem=None, reason="superseded"):
    return Revoker(ra).revoke(partner.credentials(), RevokeRequest(poid, serial, pem, reason), channel="api")


def reissue(ra, partner, poid, csr=None):
    return Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, csr or fresh_key_csr()), channel="api")


def certificate(ra, serial: str) -> Certificate:
    with ra.sessions() as session:
        found = session.scalar(select(Certificate).where(Certificate.serial == serial))
        assert found is not None
        return found


def order_row(ra, poid: str) -> Order:
    with ra.sessions() as session:
        found = session.scalar(select(Order).where(Order.partner_order_id == poid))
        assert found is not None
        return found


def state(ra, poid: str) -> tuple[object, ...]:
    """Everything a refusal must leave as it was: the order and each certificate's status."""
    with ra.sessions() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == poid))
        assert order is not None
        certs = session.scalars(select(Certificate).where(Certificate.order_pk == order.id).order_by(Certificate.id))
        changes = session.scalars(select(OrderChange.id).where(OrderChange.order_pk == order.id))
        return (order.status, order.version, order.current_certificate_id,
                [(c.status, c.revoked_at, c.revocation_reason) for c in certs], len(list(changes)))


def refused(ra, partner, poid, error: type[ServiceError], **kwargs) -> ServiceError:
    before = state(ra, poid)
    with pytest.raises(error) as caught:
        revoke(ra, partner, poid, **kwargs)
    assert state(ra, poid) == before
    return caught.value


def test_the_reasons_are_the_five_a_subscriber_may_give():
    assert REVOCATION_REASONS == (
        "unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation")


# Rule 1: credentials first ------------------------------------------------------------------


def test_bad_credentials_are_refused_before_anything_else(ra):
    partner = new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    with pytest.raises(AuthenticationFailed):
        Revoker(ra).revoke(partner.credentials("wrong"), RevokeRequest(poid, None, None, "nonsense"), channel="api")
    with pytest.raises(AuthenticationFailed):
        Revoker(ra).cancel(partner.credentials("wrong"), poid, channel="api")


# Rule 2: the fields ---------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"reason": "certificateHold"}, "RevokeReason"),
    ({"reason": "removeFromCRL"}, "RevokeReason"),
    ({"reason": "privilegeWithdrawn"}, "RevokeReason"),
    ({"reason": ""}, "RevokeReason"),
    ({"reason": "x" * 33}, "RevokeReason"),
    ({"serial": "1" * 45}, "SerialNumber"),
    ({"serial": "1" * 41}, "SerialNumber"),
    ({"serial": "xyz"}, "SerialNumber"),
    ({"serial": "12\x0034"}, "SerialNumber"),
    ({"pem": "A" * (64 * 1024 + 1)}, "Certificate"),
    ({"pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "Certificate"),
])
def test_fields_out_of_bounds_or_shape_are_refused_2019(ra, kwargs, field):
    partner = new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    error = refused(ra, partner, poid, InvalidField, **kwargs)
    assert (error.code, error.field) == (-2019, field)


def test_a_too_long_partner_order_id_is_refused_before_the_reason_is_read(ra):
    partner = new_partner(ra)
    with pytest.raises(InvalidField) as caught:
        revoke(ra, partner, "P" * 65, reason="nonsense")
    assert caught.value.field == "PartnerOrderID"


def test_serial_and_certificate_together_or_neither_with_the_order_are_refused(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    refused(ra, partner, poid, InvalidField, serial=created.certificate.serial, pem=created.certificate.pem)
    with pytest.raises(InvalidField) as caught:
        revoke(ra, partner, None)
    assert caught.value.field == "PartnerOrderID"


# Rules 3 and 4: the order and the certificate, no oracle ------------------------------------


def test_a_serial_of_no_certificate_of_the_order_is_refused_as_a_missing_order(ra):
    partner, other = new_partner(ra), new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    sibling = new_order(ra, partner)  # the same partner's other order
    foreign = new_order(ra, other)
    with pytest.raises(OrderNotFound) as caught:
        revoke(ra, partner, "PO-none-" + secrets.token_hex(4))
    missing = caught.value
    for serial in ("abcdef", sibling.certificate.serial, foreign.certificate.serial):
        error = refused(ra, partner, poid, OrderNotFound, serial=serial)
        assert (error.code, error.message, error.field) == (missing.code, missing.message, missing.field)
    # another partner's order by its own PartnerOrderID
    error = refused(ra, partner, foreign.order.partner_order_id, OrderNotFound)
    assert (error.code, error.message, error.field) == (missing.code, missing.message, missing.field)
    assert certificate(ra, foreign.certificate.serial).status == CertificateStatus.VALID


def test_a_pem_of_another_partner_is_refused_as_a_missing_order(ra):
    partner, other = new_partner(ra), new_partner(ra)
    mine = new_order(ra, partner)
    foreign = new_order(ra, other)
    with pytest.raises(OrderNotFound):
        revoke(ra, partner, None, pem=foreign.certificate.pem)
    with pytest.raises(OrderNotFound):  # with the partner's own order named
        revoke(ra, partner, mine.order.partner_order_id, pem=foreign.certificate.pem)
    assert certificate(ra, foreign.certificate.serial).status == CertificateStatus.VALID


def test_a_pem_of_another_order_of_the_partner_is_not_found_under_the_order_named(ra):
    partner = new_partner(ra)
    first, second = new_order(ra, partner), new_order(ra, partner)
    refused(ra, partner, first.order.partner_order_id, OrderNotFound, pem=second.certificate.pem)


def test_revoke_by_pem_needs_no_partner_order_id(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    revoked = revoke(ra, partner, None, pem=created.certificate.pem, reason="affiliationChanged")
    assert (revoked.order_id, revoked.partner_order_id, revoked.serial_number) == (
        created.order.order_id, created.order.partner_order_id, created.certificate.serial)
    stored = certificate(ra, created.certificate.serial)
    assert (stored.status, stored.revocation_reason) == (CertificateStatus.REVOKED, "affiliationChanged")


def test_a_serial_is_read_in_any_case_with_0x_or_leading_zeros(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    padded = "0x" + created.certificate.serial.upper().zfill(40)
    revoked = revoke(ra, partner, created.order.partner_order_id, serial=padded)
    assert revoked.serial_number == created.certificate.serial


# Rule 5: a cancelled order -----------------------------------------------------------------


def test_a_cancelled_order_refuses_revocation_4012_and_reissue_4012(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    Revoker(ra).cancel(partner.credentials(), poid, channel="api")
    error = refused(ra, partner, poid, OrderStateInvalid, serial=created.certificate.serial)
    assert error.code == -4012
    with pytest.raises(OrderStateInvalid):
        reissue(ra, partner, poid)
    with pytest.raises(OrderStateInvalid):
        Revoker(ra).cancel(partner.credentials(), poid, channel="api")


# Rule 6: already revoked -------------------------------------------------------------------


def test_revoking_twice_is_refused_4014_unless_the_reason_becomes_key_compromise(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    first = revoke(ra, partner, poid, reason="superseded")
    error = refused(ra, partner, poid, AlreadyRevoked, reason="unspecified")
    assert (error.code, error.field) == (-4014, "SerialNumber")
    refused(ra, partner, poid, AlreadyRevoked, reason="superseded")
    changed = revoke(ra, partner, poid, reason="keyCompromise")
    assert changed.revoked_at == first.revoked_at
    stored = certificate(ra, created.certificate.serial)
    assert (stored.revoked_at, stored.revocation_reason) == (first.revoked_at, "keyCompromise")
    with ra.sessions() as session:
        assert session.get(BlockedKey, stored.spki_sha256) is not None
    refused(ra, partner, poid, AlreadyRevoked, reason="keyCompromise")


def test_an_expired_certificate_is_refused_4015_but_key_compromise_still_blocks_its_key(ra):
    """Past its notAfter a certificate is no longer accepted by anyone: revoking it is refused
    (-4015), nothing written; keyCompromise is still taken, for the key's sake (blocked, and its
    other certificates revoked). At notAfter itself the certificate is still valid (RFC 5280)."""
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    not_after = certificate(ra, created.certificate.serial).not_after
    expired = dataclasses.replace(ra, clock=lambda: not_after + timedelta(seconds=1))
    error = refused(expired, partner, poid, CertificateExpired, reason="superseded")
    assert (error.code, error.field) == (-4015, "SerialNumber")
    at_the_end = dataclasses.replace(ra, clock=lambda: not_after)
    assert revoke(at_the_end, partner, poid, reason="superseded").serial_number == created.certificate.serial
    other = new_order(ra, partner)
    other_poid = other.order.partner_order_id
    not_after = certificate(ra, other.certificate.serial).not_after
    expired = dataclasses.replace(ra, clock=lambda: not_after + timedelta(days=1))
    revoke(expired, partner, other_poid, reason="keyCompromise")
    stored = certificate(ra, other.certificate.serial)
    assert (stored.status, stored.revocation_reason) == (CertificateStatus.REVOKED, "keyCompromise")
    with ra.sessions() as session:
        assert session.get(BlockedKey, stored.spki_sha256) is not None


# Rule 7: the revocation and what it does to reissues -----------------------------------------


def test_revoking_the_current_certificate_blocks_reissue_4011(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    revoked = revoke(ra, partner, poid, reason="unspecified")
    assert revoked.serial_number == created.certificate.serial
    assert revoked.also_revoked == ()
    stored = certificate(ra, created.certificate.serial)
    assert (stored.status, stored.revoked_at, stored.revocation_reason) == (
        CertificateStatus.REVOKED, revoked.revoked_at, "unspecified")
    with pytest.raises(CertificateRevoked):
        reissue(ra, partner, poid)


def test_revoking_the_original_after_a_reissue_leaves_the_new_one_reissuable(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    second = reissue(ra, partner, poid)
    revoke(ra, partner, poid, serial=created.certificate.serial, reason="superseded")
    assert certificate(ra, created.certificate.serial).status == CertificateStatus.REVOKED
    assert certificate(ra, second.certificate.serial).status == CertificateStatus.VALID
    third = reissue(ra, partner, poid)
    assert third.certificate.replaces == second.certificate.serial


def test_a_revocation_moves_the_order_version_and_audits(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    version = order_row(ra, poid).version
    revoke(ra, partner, poid, reason="superseded")
    with pytest.raises(AlreadyRevoked):
        revoke(ra, partner, poid, reason="superseded")
    assert order_row(ra, poid).version == version + 1
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.partner_order_id == poid, AuditEvent.action == "revoke").order_by(AuditEvent.id)))
    assert [(e.outcome, e.code, e.certificate_serial) for e in events] == [
        ("success", 0, created.certificate.serial), ("refused", -4014, None)]


# keyCompromise --------------------------------------------------------------------------------


def test_key_compromise_blocks_the_key_everywhere_and_revokes_its_other_certificates(ra, monkeypatch):
    partner, other = new_partner(ra), new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    names = ("example.com", "www.example.com")
    mine = new_order(ra, partner, csr=fresh_key_csr(names, key=key))
    mine_too = new_order(ra, partner, csr=fresh_key_csr(names, key=key))
    # Another partner's certificate for the same key: refused at issuance now (reissue rule 7,
    # docs/design.md, "Reissue rules"), but certificates issued before that rule can hold it.
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr("soap_service.ra.orders.refuse_key_of_another_partner", lambda *_, **__: None)
        theirs = new_order(ra, other, csr=fresh_key_csr(names, key=key))
    unrelated = new_order(ra, other)
    revoked = revoke(ra, partner, mine.order.partner_order_id, reason="keyCompromise")
    assert revoked.also_revoked == (mine_too.certificate.serial,)  # never the other partner's serial
    for created in (mine, mine_too, theirs):
        stored = certificate(ra, created.certificate.serial)
        assert (stored.status, stored.revocation_reason, stored.revoked_at) == (
            CertificateStatus.REVOKED, "keyCompromise", revoked.revoked_at)
    assert certificate(ra, unrelated.certificate.serial).status == CertificateStatus.VALID
    compromised = certificate(ra, mine.certificate.serial)
    theirs_partner_id = order_row(ra, theirs.order.partner_order_id).partner_id
    with ra.sessions() as session:
        blocked = session.get(BlockedKey, compromised.spki_sha256)
        assert blocked is not None
        assert (blocked.reason, blocked.certificate_id) == ("keyCompromise", compromised.id)
        theirs_change = session.scalar(select(OrderChange).where(
            OrderChange.certificate_serial == theirs.certificate.serial, OrderChange.change == "revoked"))
        assert theirs_change is not None and theirs_change.detail == "keyCompromise"
        assert theirs_change.partner_id == theirs_partner_id
    # the other partner: order entry and reissue with that key are refused
    with pytest.raises(KeyRefused):
        new_order(ra, other, csr=fresh_key_csr(names, key=key))
    with pytest.raises(KeyRefused):
        reissue(ra, other, unrelated.order.partner_order_id, fresh_key_csr(names, key=key))


def test_key_compromise_of_an_already_blocked_key_is_fine(ra):
    partner = new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    first = new_order(ra, partner, csr=fresh_key_csr(key=key))
    poid = first.order.partner_order_id
    second = reissue(ra, partner, poid, fresh_key_csr(("example.com",), key=key))  # the same key again (1001)
    revoke(ra, partner, poid, serial=first.certificate.serial, reason="superseded")
    revoked = revoke(ra, partner, poid, reason="keyCompromise")
    assert revoked.serial_number == second.certificate.serial
    revoke(ra, partner, poid, serial=first.certificate.serial, reason="keyCompromise")  # key already blocked
    assert certificate(ra, first.certificate.serial).revocation_reason == "keyCompromise"


# Cancel ---------------------------------------------------------------------------------------


def test_cancel_ends_the_order_and_revokes_its_valid_certificates(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    second = reissue(ra, partner, poid)
    third = reissue(ra, partner, poid)
    revoke(ra, partner, poid, serial=created.certificate.serial, reason="superseded")
    cancelled = Revoker(ra).cancel(partner.credentials(), poid, channel="api")
    assert cancelled.revoked == (second.certificate.serial, third.certificate.serial)
    assert order_row(ra, poid).status == OrderStatus.CANCELLED
    assert certificate(ra, created.certificate.serial).revocation_reason == "superseded"
    for serial in cancelled.revoked:
        stored = certificate(ra, serial)
        assert (stored.status, stored.revoked_at, stored.revocation_reason) == (
            CertificateStatus.REVOKED, cancelled.cancelled_at, "cessationOfOperation")


def test_another_partner_can_neither_revoke_nor_cancel(ra):
    partner, other = new_partner(ra), new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    before = state(ra, poid)
    with pytest.raises(OrderNotFound):
        revoke(ra, other, poid)
    with pytest.raises(OrderNotFound):
        revoke(ra, other, None, pem=created.certificate.pem)
    with pytest.raises(OrderNotFound):
        Revoker(ra).cancel(other.credentials(), poid, channel="api")
    assert state(ra, poid) == before


def test_the_operator_revokes_and_cancels_by_partner_code(ra):
    partner = new_partner(ra)
    created = new_order(ra, partner)
    poid = created.order.partner_order_id
    revoked = Revoker(ra).revoke_by_operator(partner.code, RevokeRequest(poid, None, None, "superseded"))
    assert revoked.serial_number == created.certificate.serial
    cancelled = Revoker(ra).cancel_by_operator(partner.code, poid)
    assert cancelled.revoked == ()
    with pytest.raises(InvalidField):
        Revoker(ra).cancel_by_operator("NO-SUCH-" + secrets.token_hex(3), poid)
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.partner_order_id == poid, AuditEvent.channel == "cli",
            AuditEvent.action.in_(("revoke", "cancel"))).order_by(AuditEvent.id)))
    assert [(e.action, e.outcome, e.username) for e in events] == [
        ("revoke", "success", "operator"), ("cancel", "success", "operator")]


def test_expired_certificates_are_left_as_they_are_by_cancel_and_key_compromise(ra):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    partner = new_partner(ra)
    key = ec.generate_private_key(ec.SECP256R1())
    compromised = new_order(ra, partner, csr=fresh_key_csr(key=key))
    expired_same_key = new_order(ra, partner, csr=fresh_key_csr(key=key))
    cancelled = new_order(ra, partner)
    poid = cancelled.order.partner_order_id
    newer = reissue(ra, partner, poid)
    past = datetime.now(UTC) - timedelta(days=1)
    with ra.sessions() as session, session.begin():
        session.execute(update(Certificate).where(Certificate.serial.in_(
            (expired_same_key.certificate.serial, cancelled.certificate.serial))).values(not_after=past))
    assert revoke(ra, partner, compromised.order.partner_order_id, reason="keyCompromise").also_revoked == ()
    assert Revoker(ra).cancel(partner.credentials(), poid, channel="api").revoked == (newer.certificate.serial,)
    for serial in (expired_same_key.certificate.serial, cancelled.certificate.serial):
        assert certificate(ra, serial).status == CertificateStatus.VALID


def test_a_failure_inside_a_revocation_is_an_audited_incident_and_changes_nothing(ra, monkeypatch):
    from soap_service.errors import InternalError
    from soap_service.storage import certificates as certificate_store

    partner = new_partner(ra)
    poid = new_order(ra, partner).order.partner_order_id
    before = state(ra, poid)

    def failing(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(certificate_store, "revoke", failing)
    with pytest.raises(InternalError) as caught:
        revoke(ra, partner, poid)
    monkeypatch.undo()
    assert "disk full" not in caught.value.message
    assert state(ra, poid) == before
    with ra.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.partner_order_id == poid,
                                                         AuditEvent.action == "revoke")).one()
    assert (event.outcome, event.code, event.incident_id) == ("failed", -9000, caught.value.incident_id)
