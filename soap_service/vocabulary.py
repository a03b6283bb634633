"""The words every layer shares, each defined once: the brands, the validation levels,
and the statuses of an order and of a certificate (docs/design.md, "Layers").

Each is a ``StrEnum`` whose members are spelled the same as their names
(``OrderStatus.COMPLETED == "COMPLETED"``): the database stores that spelling (an
``Enum`` column with a CHECK constraint, ``soap_service.storage.models``), the code
compares against the member, and the SOAP answers show it as it is. The operator
commands' JSON prints a certificate's status in lower case, as it always has
(``soap_service.ra.views``).
"""

from __future__ import annotations

from enum import StrEnum


class Brand(StrEnum):
    """The brands the CA sells under, in the order of the installation's TLS issuing CAs."""

    SYMANTEC = "SYMANTEC"
    THAWTE = "THAWTE"
    GEOTRUST = "GEOTRUST"
    RAPIDSSL = "RAPIDSSL"

    @property
    def display_name(self) -> str:
        """The brand as people write it: ``GeoTrust``, ``RapidSSL``."""
        return _DISPLAY_NAMES[self]


_DISPLAY_NAMES = {
    Brand.SYMANTEC: "Symantec",
    Brand.THAWTE: "Thawte",
    Brand.GEOTRUST: "GeoTrust",
    Brand.RAPIDSSL: "RapidSSL",
}


class ValidationLevel(StrEnum):
    """What a product's certificates assert: domain (DV), organization (OV), extended (EV)
    validation of a TLS server, or a code-signing (CS) organization."""

    DV = "DV"
    OV = "OV"
    EV = "EV"
    CS = "CS"


class OrderStatus(StrEnum):
    """An order's state. Only a COMPLETED order is reissued (docs/design.md, "Reissue rules")."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REVOKED = "REVOKED"


class CertificateStatus(StrEnum):
    """A certificate's state. Expiry is not a status: it is read from ``not_after``."""

    VALID = "VALID"
    REVOKED = "REVOKED"
