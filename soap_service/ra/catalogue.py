"""The products the CA sells, and what each product may carry (the brands are
``soap_service.vocabulary.Brand``)."""

from __future__ import annotations

from dataclasses import dataclass

from soap_service.vocabulary import Brand, ValidationLevel

_DV, _OV, _EV, _CS = ValidationLevel.DV, ValidationLevel.OV, ValidationLevel.EV, ValidationLevel.CS


@dataclass(frozen=True)
class ProductSpec:
    code: str
    brand: Brand
    name: str
    validation_level: ValidationLevel
    wildcard_allowed: bool
    max_names: int


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("RapidSSL", Brand.RAPIDSSL, "RapidSSL Standard", _DV, False, 2),
    ProductSpec("RapidSSLWildcard", Brand.RAPIDSSL, "RapidSSL Wildcard", _DV, True, 2),
    ProductSpec("QuickSSLPremium", Brand.GEOTRUST, "GeoTrust QuickSSL Premium", _DV, False, 5),
    ProductSpec("TrueBizID", Brand.GEOTRUST, "GeoTrust True BusinessID", _OV, False, 25),
    ProductSpec("TrueBizIDWildcard", Brand.GEOTRUST, "GeoTrust True BusinessID Wildcard", _OV, True, 25),
    ProductSpec("TrueBizIDEV", Brand.GEOTRUST, "GeoTrust True BusinessID with EV", _EV, False, 25),
    ProductSpec("SSL123", Brand.THAWTE, "Thawte SSL123", _DV, False, 2),
    ProductSpec("SSLWebServer", Brand.THAWTE, "Thawte SSL Web Server", _OV, False, 25),
    ProductSpec("SSLWebServerEV", Brand.THAWTE, "Thawte SSL Web Server with EV", _EV, False, 25),
    ProductSpec("ThawteCodeSigning", Brand.THAWTE, "Thawte Code Signing", _CS, False, 0),
    ProductSpec("SecureSite", Brand.SYMANTEC, "Symantec Secure Site", _OV, False, 25),
    ProductSpec("SecureSitePro", Brand.SYMANTEC, "Symantec Secure Site Pro", _OV, False, 25),
    ProductSpec("SecureSiteEV", Brand.SYMANTEC, "Symantec Secure Site with EV", _EV, False, 25),
    ProductSpec("SymantecCodeSigning", Brand.SYMANTEC, "Symantec Code Signing", _CS, False, 0),
)

PRODUCTS_BY_CODE = {product.code: product for product in PRODUCTS}
