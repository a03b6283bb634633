"""Read-only questions a partner may ask: its order, a CSR as the RA reads it."""

from __future__ import annotations

from dataclasses import dataclass

from soap_service.ra.audit import Subject
from soap_service.ra.auth import Credentials
from soap_service.ra.catalogue import PRODUCTS_BY_CODE
from soap_service.ra.csr import ParsedCSR, parse_csr
from soap_service.ra.fields import checked_partner_order_id
from soap_service.ra.issuance import chain_of
from soap_service.ra.orders import show_order
from soap_service.ra.reissue import PartnerRef, run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import ChainCertificate, OrderView


@dataclass(frozen=True)
class OrderAnswer:
    order: OrderView
    chain: tuple[ChainCertificate, ...]  # the chain of the current certificate's issuer


def order_for_partner(
    ra: RegistrationAuthority, credentials: Credentials, partner_order_id: str, *, channel: str
) -> OrderAnswer:
    """The partner's own order with its history; another partner's order is not found."""
    user = ra.authenticator.authenticate(credentials, channel=channel)
    return order_of(ra, PartnerRef(user.partner_id, user.partner_code, user.username), partner_order_id,
                    channel=channel)


def order_of(ra: RegistrationAuthority, partner: PartnerRef, partner_order_id: str, *, channel: str) -> OrderAnswer:
    """:func:`order_for_partner` for a partner already authenticated: a request that reads many
    orders logs in once (a PasswordDigest's nonce is spent by its first check)."""
    subject = Subject(channel=channel, action="order.read", partner_code=partner.code,
                      username=partner.actor, partner_order_id=partner_order_id)

    def read() -> OrderAnswer:
        view = show_order(ra, partner_id=partner.id, partner_order_id=checked_partner_order_id(partner_order_id))
        product = PRODUCTS_BY_CODE[view.product]
        with ra.readers() as session:
            loaded = ra.authorities.issuing_ca(session, view.brand, product.validation_level)
        return OrderAnswer(order=view, chain=chain_of(loaded))

    return run_audited(ra, subject, read)


def parse_csr_for_partner(
    ra: RegistrationAuthority, credentials: Credentials, csr: str, *, channel: str
) -> ParsedCSR:
    """A CSR read as the RA reads it (-4007 when it cannot be, -4009 when its key cannot even be
    loaded); authenticated, nothing stored."""
    user = ra.authenticator.authenticate(credentials, channel=channel)
    subject = Subject(channel=channel, action="csr.parse", partner_code=user.partner_code, username=user.username)
    return run_audited(ra, subject, lambda: ra.key_policy.loaded(parse_csr(csr)))
