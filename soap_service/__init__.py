"""soap_service: a certificate authority's Partner Order API."""

__version__ = "0.1.0"
