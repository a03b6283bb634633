"""``soap-service demo``: an installation to play with, made idempotently.

A partner DEMO with API user ``demo`` (its password printed once, when it is
created) and one completed order per product, ``DEMO-<product>``. The demo's
subscriber keys are made here, for the demo's first CSRs only, and discarded.
"""

from __future__ import annotations

import secrets
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from soap_service.config import Secret
from soap_service.ra.catalogue import PRODUCTS, ProductSpec
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, Organization, create_order, order_exists
from soap_service.ra.partners import create_partner, partner_exists
from soap_service.ra.service import RegistrationAuthority

PARTNER_CODE = "DEMO"
USERNAME = "demo"
ADMIN_EMAIL = "admin@example.com"
TECH_EMAIL = "tech@example.com"


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
    installation = initialize(ra)
    out.write("CA hierarchy: " + ("created" if installation.created else "already present") + "\n")
    if partner_exists(ra, PARTNER_CODE):
        out.write(f"partner {PARTNER_CODE} / user {USERNAME}: already present (its password was shown once)\n")
    else:
        password = secrets.token_urlsafe(18)
        create_partner(ra, code=PARTNER_CODE, name="Demo Reseller", username=USERNAME, password=Secret(password))
        out.write(f"partner {PARTNER_CODE} / user {USERNAME} / password {password}\n")
        out.write("(the password is shown this once: note it now)\n")
    for product in PRODUCTS:
        partner_order_id = f"DEMO-{product.code}"
        if order_exists(ra, partner_code=PARTNER_CODE, partner_order_id=partner_order_id):
            continue
        names = order_names(product)
        outcome = create_order(
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
        out.write(f"order {partner_order_id}: {product.code}, names {', '.join(names) or '-'}, "
                  f"certificate {outcome.certificate.serial}\n")
    out.write("demo orders: " + ", ".join(f"DEMO-{p.code}" for p in PRODUCTS) + "\n")
