"""Test data made through the RA's own use cases: partners, orders, CSRs; and the one
organization every test validates (:data:`EV_ORGANIZATION`, :data:`ORGANIZATION`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from keyfactory import csr_pem, make_csr
from soap_service.config import Secret
from soap_service.ra.auth import Credentials
from soap_service.ra.orders import Contact, NewOrder, Organization, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome


@dataclass(frozen=True)
class TestPartner:
    code: str
    username: str
    password: str

    def credentials(self, password: str | None = None) -> Credentials:
        return Credentials(self.code, self.username, Secret(self.password if password is None else password))


def new_partner(ra: RegistrationAuthority) -> TestPartner:
    code = "P" + secrets.token_hex(5).upper()
    password = "pw-" + secrets.token_urlsafe(16)
    create_partner(ra, code=code, name=f"Partner {code}", username="api", password=Secret(password))
    return TestPartner(code=code, username="api", password=password)


EV_ORGANIZATION = Organization(
    name="Example Corporation",
    country="US",
    state="California",
    locality="San Francisco",
    business_category="Private Organization",
    jurisdiction_country="US",
    jurisdiction_state="Delaware",
    registration_number="C1234567",
)
"""The organization of the tests as an EV order validates it, with its business category,
jurisdiction of incorporation and registration number: what an EV leaf's subject carries."""

ORGANIZATION = replace(
    EV_ORGANIZATION, business_category=None, jurisdiction_country=None, jurisdiction_state=None,
    registration_number=None,
)
"""The same organization as an OV or code-signing order validates it: C, ST, L and O only."""


def fresh_key_csr(names: Sequence[str] = ("example.com",), key: CertificateIssuerPrivateKeyTypes | None = None,
                  common_name: str | None = None) -> str:
    """A CSR for a new P-256 key (cheap to make, so every call is a new key)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = key or ec.generate_private_key(ec.SECP256R1())
    return csr_pem(make_csr(key, names=names, common_name=common_name))


def new_order(
    ra: RegistrationAuthority,
    partner: TestPartner,
    *,
    product: str = "QuickSSLPremium",
    names: Sequence[str] = ("example.com", "www.example.com"),
    csr: str | None = None,
    term_days: int = 365,
    partner_order_id: str | None = None,
    admin_email: str = "admin@example.com",
) -> IssuanceOutcome:
    from soap_service.ra.catalogue import PRODUCTS_BY_CODE

    level = PRODUCTS_BY_CODE[product].validation_level
    names = () if level == "CS" else tuple(names)
    return create_order(
        ra,
        NewOrder(
            partner_code=partner.code,
            partner_order_id=partner_order_id or "PO-" + secrets.token_hex(6),
            product=product,
            names=names,
            csr=csr or fresh_key_csr(names),
            contacts=(Contact("admin", admin_email), Contact("technical", "tech@example.com")),
            organization=None if level == "DV" else EV_ORGANIZATION if level == "EV" else ORGANIZATION,
            term_days=term_days,
        ),
    )

