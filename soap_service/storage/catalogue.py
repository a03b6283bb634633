"""Brands and products."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from soap_service.storage.models import Brand, Product
from soap_service.vocabulary import ValidationLevel


def upsert_brand(session: Session, code: str, name: str) -> None:
    brand = session.get(Brand, code)
    if brand is None:
        session.add(Brand(code=code, name=name))
    else:
        brand.name = name


def upsert_product(
    session: Session,
    *,
    code: str,
    brand_code: str,
    name: str,
    validation_level: ValidationLevel,
    wildcard_allowed: bool,
    max_names: int,
) -> None:
    product = session.get(Product, code)
    if product is None:
        product = Product(code=code)
        session.add(product)
    product.brand_code = brand_code
    product.name = name
    product.validation_level = validation_level
    product.wildcard_allowed = wildcard_allowed
    product.max_names = max_names


def get_product(session: Session, code: str) -> Product | None:
    return session.get(Product, code)


def list_products(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.brand_code, Product.code)))
