"""Orders as the operator enters and reads them.

An order enters completed, with its first certificate signed from the CSR given,
under the same CSR, key and name rules as a reissue.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from soap_service import metrics
from soap_service.ca.profiles import SubjectOrganization
from soap_service.errors import InvalidField, OrderNotFound
from soap_service.ra.audit import Subject
from soap_service.ra.catalogue import PRODUCTS_BY_CODE, ProductSpec
from soap_service.ra.csr import ParsedCSR
from soap_service.ra.fields import (
    MAX_EMAIL_CHARS,
    MAX_PARTNER_CODE_CHARS,
    MAX_PARTNER_ORDER_ID_CHARS,
    MAX_PRODUCT_CODE_CHARS,
    bounded,
    checked_partner_order_id,
    is_clean_text,
    is_country_code,
    is_email,
)
from soap_service.ra.issuance import (
    chain_of,
    examine_csr,
    plan_leaf,
    record_certificate,
    refuse_blocked_key,
    refuse_key_of_another_partner,
    sign_leaf,
)
from soap_service.ra.names import order_names, requested_names
from soap_service.ra.reissue import run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome, OrderView
from soap_service.storage import audit, certificates, orders, partners
from soap_service.storage.errors import DuplicateOrder, OrderIdTaken
from soap_service.storage.models import Order, OrderContact, OrderName, Partner
from soap_service.vocabulary import OrderStatus, ValidationLevel

MAX_TERM_DAYS = 5 * 366

# The most characters of each organization field: the X.520 upper bound of the subject
# attribute it becomes (ub-organization-name 64, ub-state-name and ub-locality-name 128),
# or the column's where that is shorter (business category, registration number: 64).
ORGANIZATION_FIELD_CHARS: dict[str, tuple[str, int]] = {
    "name": ("Organization", 64),
    "country": ("Country", 2),
    "state": ("State", 128),
    "locality": ("Locality", 128),
    "business_category": ("BusinessCategory", 64),
    "jurisdiction_country": ("JurisdictionCountry", 2),
    "jurisdiction_state": ("JurisdictionState", 128),
    "jurisdiction_locality": ("JurisdictionLocality", 128),
    "registration_number": ("RegistrationNumber", 64),
}

# The most characters of a contact's fields (the columns' sizes); the e-mail address has its own rule.
CONTACT_FIELD_CHARS: dict[str, int] = {"first_name": 100, "last_name": 100, "phone": 40}


@dataclass(frozen=True)
class Contact:
    role: str  # admin, technical, billing
    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


# The organization an order validates is exactly what its certificates' subjects carry.
Organization = SubjectOrganization


@dataclass(frozen=True)
class NewOrder:
    partner_code: str
    partner_order_id: str
    product: str
    names: tuple[str, ...]
    csr: str
    contacts: tuple[Contact, ...]
    organization: Organization | None = None
    term_days: int = 365
    extra: dict[str, str] = field(default_factory=dict)


def _check_organization(product: ProductSpec, organization: Organization | None) -> None:
    level = product.validation_level
    if level == ValidationLevel.DV:
        return
    if organization is None:
        raise InvalidField(f"a {level} product needs the validated organization", field="Organization")
    for attribute, (field_name, limit) in ORGANIZATION_FIELD_CHARS.items():
        value = getattr(organization, attribute)
        if value is not None:
            bounded(value, limit, field_name)
    if not organization.name.strip():
        raise InvalidField(f"a {level} product needs the validated organization", field="Organization")
    if not all(is_clean_text(value) for value in vars(organization).values() if value is not None):
        raise InvalidField("an organization field holds control or invalid characters", field="Organization")
    if not is_country_code(organization.country):
        raise InvalidField("country is a two-letter ISO 3166 code in capitals", field="Country")
    if level in (ValidationLevel.OV, ValidationLevel.EV) and not (organization.state or organization.locality):
        raise InvalidField("an OV or EV order needs a state or a locality", field="Locality")
    if level == ValidationLevel.EV:
        if not organization.business_category:
            raise InvalidField("an EV order needs a business category", field="BusinessCategory")
        if not organization.jurisdiction_country or not is_country_code(organization.jurisdiction_country):
            raise InvalidField("an EV order needs a jurisdiction country", field="JurisdictionCountry")
        if not organization.registration_number:
            raise InvalidField("an EV order needs a registration number", field="RegistrationNumber")


def _check_contacts(contacts: tuple[Contact, ...]) -> None:
    roles = {c.role for c in contacts}
    for contact in contacts:
        if contact.role not in ("admin", "technical", "billing"):
            raise InvalidField("unknown contact role: admin, technical or billing", field="Contacts")
        bounded(contact.email, MAX_EMAIL_CHARS, "Email")
        for attribute, limit in CONTACT_FIELD_CHARS.items():
            value = getattr(contact, attribute)
            if value is not None:
                bounded(value, limit, "Contacts")
        for value in (contact.email, contact.first_name, contact.last_name, contact.phone):
            if value is not None and not is_clean_text(value):
                raise InvalidField("a contact field holds control or invalid characters", field="Contacts")
        if not is_email(contact.email):
            raise InvalidField(f"{contact.email!r} is not an e-mail address", field="Email")
    for needed in ("admin", "technical"):
        if needed not in roles:
            raise InvalidField(f"an order needs a {needed} contact with an e-mail address", field="Contacts")


def create_order(ra: RegistrationAuthority, new: NewOrder) -> IssuanceOutcome:
    subject = Subject(channel="cli", action="order.create", partner_code=new.partner_code,
                      username="operator", partner_order_id=new.partner_order_id)
    return run_audited(ra, subject, lambda: _create(ra, new))


def _create(ra: RegistrationAuthority, new: NewOrder) -> IssuanceOutcome:
    bounded(new.partner_code, MAX_PARTNER_CODE_CHARS, "PartnerCode")
    new = dataclasses.replace(new, partner_order_id=checked_partner_order_id(new.partner_order_id))
    product = PRODUCTS_BY_CODE.get(bounded(new.product, MAX_PRODUCT_CODE_CHARS, "Product"))
    if product is None:
        raise InvalidField(f"unknown product {new.product!r}", field="Product")
    if not 1 <= new.term_days <= MAX_TERM_DAYS:
        raise InvalidField(f"the term is 1 to {MAX_TERM_DAYS} days", field="term-days")
    names = order_names(new.names, product)
    _check_organization(product, new.organization)
    _check_contacts(new.contacts)
    examined = examine_csr(ra.key_policy, new.csr)
    csr = examined.accepted()
    chosen = requested_names(validated=names, product=product, dns_names=None,
                             csr_names=[*csr.san_dns_names, *csr.common_names])
    now = ra.clock()
    with ra.sessions() as session, session.begin():  # the rules, and the serial reserved
        partner = _ordering_partner(ra, session, new, csr, now)
        planned = plan_leaf(ra, session, order=_order_row(partner.id, product, new, names, now), product=product,
                            csr=csr, names=chosen, now=now)
    leaf = sign_leaf(ra, planned)  # no transaction open (docs/design.md, "Concurrency and failures")
    with ra.sessions() as session, session.begin():  # the rules again, then the order and its certificate
        partner = _ordering_partner(ra, session, new, csr, now)
        order = _insert_order(session, partner.id, partner.code, product, new, names, now)
        issued = record_certificate(ra, session, order=order, planned=planned, leaf=leaf, csr=csr, replaces=None,
                                    now=now)
        if not orders.set_current_certificate(session, order=order, certificate_id=issued.id,
                                              expected_version=1, at=now):
            raise RuntimeError("the new order changed under its creation")
        audit.append_event(session, at=now, channel="cli", action="order.create", outcome="success", code=0,
                           partner_code=partner.code, username="operator", order_id=order.order_id,
                           partner_order_id=order.partner_order_id, certificate_serial=issued.serial)
        session.refresh(order)
        view = OrderView.of(order, certificates.order_history(session, order.id))
    metrics.certificate_issued(product.brand)  # committed
    assert view.certificate is not None
    return IssuanceOutcome(order=view, certificate=view.certificate, chain=chain_of(planned.ca))


def _ordering_partner(ra: RegistrationAuthority, session: Session, new: NewOrder, csr: ParsedCSR,
                      now: datetime) -> Partner:
    """The partner, who has no order of this PartnerOrderID yet, and a key it may have certified."""
    partner = partners.get_partner(session, new.partner_code)
    if partner is None:
        raise InvalidField(f"no partner with code {new.partner_code!r}", field="PartnerCode")
    if orders.find_order(session, partner_id=partner.id, partner_order_id=new.partner_order_id) is not None:
        raise _already_ordered(partner.code, new.partner_order_id)
    refuse_blocked_key(ra.key_policy, session, csr)
    refuse_key_of_another_partner(ra.key_policy, session, csr, partner_id=partner.id, now=now)
    return partner


MAX_DRAWS = 5
"""Draws of a random order ID before a new order gives up (each draw
collides with a probability below 10**-5 even with a million orders)."""


def _already_ordered(partner_code: str, partner_order_id: str) -> InvalidField:
    return InvalidField(f"partner {partner_code} already has an order {partner_order_id}", field="PartnerOrderID")


def _insert_order(
    session: Session,
    partner_id: int,
    partner_code: str,
    product: ProductSpec,
    new: NewOrder,
    names: tuple[str, ...],
    now: datetime,
) -> Order:
    """The order, completed, under a random order ID that no other order has."""
    for _draw in range(MAX_DRAWS):
        try:
            return orders.add_order(session, _order_row(partner_id, product, new, names, now))
        except DuplicateOrder:  # another transaction entered it since this one looked
            raise _already_ordered(partner_code, new.partner_order_id) from None
        except OrderIdTaken:
            continue
    raise RuntimeError(f"no free order ID in {MAX_DRAWS} draws")


def _order_row(partner_id: int, product: ProductSpec, new: NewOrder, names: tuple[str, ...], now: datetime) -> Order:
    org = new.organization if product.validation_level != ValidationLevel.DV else None
    order = Order(
        order_id=_new_order_id(),
        partner_id=partner_id,
        partner_order_id=new.partner_order_id,
        brand_code=product.brand,
        product_code=product.code,
        status=OrderStatus.COMPLETED,
        term_start=now,
        term_end=now + timedelta(days=new.term_days),
        organization_name=org.name if org else None,
        country=org.country if org else None,
        state=org.state if org else None,
        locality=org.locality if org else None,
        business_category=org.business_category if org else None,
        jurisdiction_country=org.jurisdiction_country if org else None,
        jurisdiction_state=org.jurisdiction_state if org else None,
        jurisdiction_locality=org.jurisdiction_locality if org else None,
        registration_number=org.registration_number if org else None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    order.names = [OrderName(name=name, position=i) for i, name in enumerate(names)]
    order.contacts = [
        OrderContact(role=c.role, email=c.email, first_name=c.first_name, last_name=c.last_name, phone=c.phone)
        for c in new.contacts
    ]
    return order


def show_order(ra: RegistrationAuthority, *, partner_id: int, partner_order_id: str) -> OrderView:
    """The order with its whole certificate history; another partner's order is not found."""
    bounded(partner_order_id, MAX_PARTNER_ORDER_ID_CHARS, "PartnerOrderID")
    with ra.readers() as session:
        order = orders.find_order(session, partner_id=partner_id, partner_order_id=partner_order_id)
        if order is None:
            raise OrderNotFound()
        return OrderView.of(order, certificates.order_history(session, order.id))


def show_order_by_operator(ra: RegistrationAuthority, *, partner_code: str, partner_order_id: str) -> OrderView:
    with ra.readers() as session:
        partner = partners.get_partner(session, partner_code)
    if partner is None:
        raise InvalidField(f"no partner with code {partner_code!r}", field="PartnerCode")
    return show_order(ra, partner_id=partner.id, partner_order_id=partner_order_id)


def _new_order_id() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


def order_exists(ra: RegistrationAuthority, *, partner_code: str, partner_order_id: str) -> bool:
    with ra.readers() as session:
        partner = partners.get_partner(session, partner_code)
        return partner is not None and (
            orders.find_order(session, partner_id=partner.id, partner_order_id=partner_order_id) is not None
        )
