"""Pre-issuance linting with pkilint (docs/design.md, "Certificate profiles").

pkilint's validators cost 0.2-0.4 s to build, so each :class:`PreIssuanceLinter`
builds them once per certificate type, on first use or in :meth:`~PreIssuanceLinter.prepare`,
and keeps them; a lint then costs 5-10 ms.

One exception to the findings, and only one: a demo or test installation publishes
its AIA, OCSP and CRL URLs on an internal host (the loopback default of
``SOAP_SERVICE_PUBLIC_URL``), which pkilint reports as ``cabf.internal_domain_name``
(its URI check looks the URL's host up in the public suffix list, so an IP literal
such as 127.0.0.1 is reported under that code too; ``cabf.internal_ip_address`` is
only raised for iPAddress names and never for a URL). That finding is dropped when
it is raised on a URI whose host is the public URL's host, and in no other case.
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint import finding_filter, loader
from pkilint.cabf import cabf_name, serverauth
from pkilint.cabf.serverauth.serverauth_constants import CertificateType
from pkilint.common import alternative_name
from pkilint.pkix import certificate as pkix_certificate
from pkilint.pkix import extension as pkix_extension
from pkilint.pkix import name as pkix_name
from pkilint.validation import ValidationFindingSeverity, ValidationResult
from pyasn1_alt_modules import rfc5280

from soap_service.ca.locations import public_host
from soap_service.vocabulary import ValidationLevel

CAKind = Literal["root", "tls", "codesigning"]

# The pkilint codes raised for an internal name; only the URI one can come from the public URL.
INTERNAL_URL_FINDING_CODES = frozenset({cabf_name.VALIDATION_INTERNAL_DOMAIN_NAME.code})

_LEAF_TYPES: dict[ValidationLevel, CertificateType] = {
    ValidationLevel.DV: CertificateType.DV_FINAL_CERTIFICATE,
    ValidationLevel.OV: CertificateType.OV_FINAL_CERTIFICATE,
    ValidationLevel.EV: CertificateType.EV_FINAL_CERTIFICATE,
}
_CA_TYPES: dict[CAKind, CertificateType] = {
    "root": CertificateType.ROOT_CA,
    "tls": CertificateType.INTERNAL_UNCONSTRAINED_TLS_CA,
    "codesigning": CertificateType.NON_TLS_CA,
}
_PKIX = "PKIX"
# The extensions whose URLs are built from the public URL (AIA caIssuers and OCSP, CRL DP).
_PUBLISHED_URL_EXTENSIONS = (rfc5280.AuthorityInfoAccessSyntax, rfc5280.CRLDistributionPoints)


class _Profile:
    """The built validator of one certificate type and the finding filters that go with it."""

    def __init__(self, validator: Any, filters: Sequence[Any]) -> None:
        self.validator = validator
        self.filters = list(filters)

    def run(self, certificate: x509.Certificate) -> list[ValidationResult]:
        document = loader.load_der_certificate(certificate.public_bytes(Encoding.DER), "certificate")
        results: list[ValidationResult] = self.validator.validate(document.root)
        if self.filters:
            results, _ = finding_filter.filter_results(self.filters, results)
        return results


def share_public_suffix_lists() -> None:
    """One parsed Public Suffix List for all of pkilint's name validators.

    pkilint makes a ``PublicSuffixList`` (the whole list parsed anew, 50 ms) in each of the 30
    name validators that the serverAuth profiles build: 1.5 s of a worker's 2 s start, paid again
    each time gunicorn recycles a worker (``max_requests``), while that worker serves nothing. A
    parsed list is read-only (frozensets looked up), so one per set of arguments serves them all.
    Where pkilint no longer imports the module this way, nothing is changed (only slower).
    """
    module = getattr(alternative_name, "publicsuffixlist", None)
    if isinstance(module, types.ModuleType) and hasattr(module, "PublicSuffixList"):
        shared = functools.cache(module.PublicSuffixList)  # one per set of arguments
        alternative_name.publicsuffixlist = types.SimpleNamespace(PublicSuffixList=shared)


share_public_suffix_lists()


def _serverauth_profile(certificate_type: CertificateType) -> _Profile:
    validator = pkix_certificate.create_pkix_certificate_validator_container(
        serverauth.create_decoding_validators(), serverauth.create_validators(certificate_type)
    )
    return _Profile(validator, serverauth.create_serverauth_finding_filters(certificate_type))


def _pkix_profile() -> _Profile:
    validator = pkix_certificate.create_pkix_certificate_validator_container(
        pkix_certificate.create_decoding_validators(
            pkix_name.ATTRIBUTE_TYPE_MAPPINGS, pkix_extension.EXTENSION_MAPPINGS
        ),
        [
            pkix_certificate.create_issuer_validator_container([]),
            pkix_certificate.create_validity_validator_container(),
            pkix_certificate.create_subject_validator_container([]),
            pkix_certificate.create_extensions_validator_container([]),
            pkix_certificate.create_spki_validator_container([]),
        ],
    )
    return _Profile(validator, [])


class PreIssuanceLinter:
    """Lints certificates before they are signed; thread-safe, one per process is enough."""

    def __init__(self, public_url: str) -> None:
        self._public_host = public_host(public_url)
        self._profiles: dict[CertificateType | str, _Profile] = {}
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Build every validator now (at start, before a server forks its workers) instead of on first use."""
        for level in ValidationLevel:
            self._leaf_profile(level)
        for kind in _CA_TYPES:
            self._ca_profile(kind)

    def findings(self, certificate: x509.Certificate, level: ValidationLevel) -> list[str]:
        """The ERROR and FATAL findings on a leaf of ``level``, as ``"SEVERITY code: message"``."""
        results = self._leaf_profile(level).run(certificate)
        return self._describe(results, ValidationFindingSeverity.ERROR)

    def ca_findings(self, certificate: x509.Certificate, kind: CAKind) -> list[str]:
        """The findings at WARNING or above on a CA certificate of ``kind``."""
        results = self._ca_profile(kind).run(certificate)
        return self._describe(results, ValidationFindingSeverity.WARNING)

    def _leaf_profile(self, level: ValidationLevel) -> _Profile:
        if level == ValidationLevel.CS:
            return self._profile(_PKIX, _pkix_profile)
        certificate_type = _LEAF_TYPES[level]
        return self._profile(certificate_type, lambda: _serverauth_profile(certificate_type))

    def _ca_profile(self, kind: CAKind) -> _Profile:
        certificate_type = _CA_TYPES[kind]
        return self._profile(certificate_type, lambda: _serverauth_profile(certificate_type))

    def _profile(self, key: CertificateType | str, build: Callable[[], _Profile]) -> _Profile:
        profile = self._profiles.get(key)
        if profile is None:
            with self._lock:
                profile = self._profiles.get(key)
                if profile is None:
                    profile = build()
                    self._profiles[key] = profile
        return profile

    def _describe(self, results: Sequence[ValidationResult], threshold: ValidationFindingSeverity) -> list[str]:
        described = []
        for result in results:
            for description in result.finding_descriptions:
                finding = description.finding
                if finding.severity > threshold or self._is_public_url_finding(result, finding.code):
                    continue
                message = f": {description.message}" if description.message else ""
                described.append(f"{finding.severity} {finding.code}{message}")
        return described

    def _is_public_url_finding(self, result: ValidationResult, code: str) -> bool:
        """True for an internal-name finding on an AIA or CRL DP URI whose host is the public URL's."""
        node = result.node
        if code not in INTERNAL_URL_FINDING_CODES or not self._public_host:
            return False
        if node.name != "uniformResourceIdentifier":
            return False
        if not any(isinstance(parent.pdu, _PUBLISHED_URL_EXTENSIONS) for parent in node.parents):
            return False
        return (urlsplit(str(node.pdu)).hostname or "").lower() == self._public_host
