"""The installation's certificate authorities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from soap_service.storage.models import CertificateAuthority


def list_authorities(session: Session) -> list[CertificateAuthority]:
    return list(session.scalars(select(CertificateAuthority).order_by(CertificateAuthority.id)))


def add_authority(
    session: Session,
    *,
    name: str,
    role: str,
    brand_code: str | None,
    parent_id: int | None,
    certificate_pem: str,
    protected_key: bytes,
    created_at: datetime,
) -> CertificateAuthority:
    authority = CertificateAuthority(
        name=name,
        role=role,
        brand_code=brand_code,
        parent_id=parent_id,
        certificate_pem=certificate_pem,
        protected_key=protected_key,
        created_at=created_at,
    )
    session.add(authority)
    session.flush()
    return authority
