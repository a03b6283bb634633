"""Where relying parties fetch the CA certificates, CRLs and OCSP answers.

The URLs are built from ``SOAP_SERVICE_PUBLIC_URL``. The Baseline Requirements allow
only plain ``http`` in the AIA and CRL distribution point extensions (BR 7.1.2.7.7,
7.1.2.11.2; pkilint reports https there as an error), so an ``https`` public URL is
published with the ``http`` scheme on the same host and path.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID


def distribution_base(public_url: str) -> str:
    """The ``http`` base URL for certificates, CRLs and OCSP on the public URL's host."""
    parts = urlsplit(public_url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the public URL must be an http(s) URL, got {public_url!r}")
    return urlunsplit(("http", parts.netloc, parts.path, "", ""))


def ca_certificate_url(public_url: str, ca_name: str) -> str:
    """The AIA caIssuers URL of the CA named ``ca_name``."""
    return f"{distribution_base(public_url)}/ca/{ca_name}.crt"


def crl_url(public_url: str, ca_name: str) -> str:
    """The CRL distribution point of the CA named ``ca_name``."""
    return f"{distribution_base(public_url)}/crl/{ca_name}.crl"


def ocsp_url(public_url: str) -> str:
    """The OCSP responder URL (one responder for every issuing CA)."""
    return f"{distribution_base(public_url)}/ocsp"


def public_host(public_url: str) -> str:
    """The host name of the public URL, lower case, as it appears in the published URLs."""
    return (urlsplit(public_url).hostname or "").lower()


def crl_distribution_points(public_url: str, ca_name: str) -> x509.CRLDistributionPoints:
    """The CRL distribution point extension of a certificate issued by ``ca_name``."""
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url(public_url, ca_name))],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def authority_information_access(
    public_url: str, ca_name: str, *, with_ocsp: bool
) -> x509.AuthorityInformationAccess:
    """The AIA extension of a certificate issued by ``ca_name``: its caIssuers URL, and the
    OCSP responder first when ``with_ocsp`` (end-entity certificates)."""
    descriptions = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(ca_certificate_url(public_url, ca_name)),
        )
    ]
    if with_ocsp:
        ocsp = x509.UniformResourceIdentifier(ocsp_url(public_url))
        descriptions.insert(0, x509.AccessDescription(AuthorityInformationAccessOID.OCSP, ocsp))
    return x509.AuthorityInformationAccess(descriptions)
