"""The brands and products the CA sells, and what each product may carry."""

from __future__ import annotations

from dataclasses import dataclass

BRAND_NAMES = {
    "SYMANTEC": "Symantec",
    "THAWTE": "Thawte",
    "GEOTRUST": "GeoTrust",
    "RAPIDSSL": "RapidSSL",
}


@dataclass(frozen=True)
class ProductSpec:
    code: str
    brand: str
    name: str
    validation_level: str  # DV, OV, EV, CS
    wildcard_allowed: bool
    max_names: int


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("RapidSSL", "RAPIDSSL", "RapidSSL Standard", "DV", False, 2),
    ProductSpec("RapidSSLWildcard", "RAPIDSSL", "RapidSSL Wildcard", "DV", True, 2),
    ProductSpec("QuickSSLPremium", "GEOTRUST", "GeoTrust QuickSSL Premium", "DV", False, 5),
    ProductSpec("TrueBizID", "GEOTRUST", "GeoTrust True BusinessID", "OV", False, 25),
    ProductSpec("TrueBizIDWildcard", "GEOTRUST", "GeoTrust True BusinessID Wildcard", "OV", True, 25),
    ProductSpec("TrueBizIDEV", "GEOTRUST", "GeoTrust True BusinessID with EV", "EV", False, 25),
    ProductSpec("SSL123", "THAWTE", "Thawte SSL123", "DV", False, 2),
    ProductSpec("SSLWebServer", "THAWTE", "Thawte SSL Web Server", "OV", False, 25),
    ProductSpec("SSLWebServerEV", "THAWTE", "Thawte SSL Web Server with EV", "EV", False, 25),
    ProductSpec("ThawteCodeSigning", "THAWTE", "Thawte Code Signing", "CS", False, 0),
    ProductSpec("SecureSite", "SYMANTEC", "Symantec Secure Site", "OV", False, 25),
    ProductSpec("SecureSitePro", "SYMANTEC", "Symantec Secure Site Pro", "OV", False, 25),
    ProductSpec("SecureSiteEV", "SYMANTEC", "Symantec Secure Site with EV", "EV", False, 25),
    ProductSpec("SymantecCodeSigning", "SYMANTEC", "Symantec Code Signing", "CS", False, 0),
)

PRODUCTS_BY_CODE = {product.code: product for product in PRODUCTS}
