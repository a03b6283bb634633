"""The certificate authority: signing only.

It builds certificates from what the registration authority tells it, lints every
one before signing and keeps the CA keys. It knows nothing of partners, orders,
SOAP or SQL (docs/design.md, "Layers" and "Certificate profiles").
"""
