"""Signing a leaf: build it from the request, lint the very same TBS, then sign it."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from soap_service import metrics
from soap_service.ca.keys.signer import CASigner
from soap_service.ca.leaf import leaf_builder
from soap_service.ca.lint import PreIssuanceLinter
from soap_service.ca.locations import ca_certificate_url, crl_url, ocsp_url
from soap_service.ca.profiles import LeafRequest
from soap_service.ca.signing import sign_trial, trial_certificate
from soap_service.errors import LintRefused

__all__ = ["Issuer", "IssuingCA", "ca_certificate_url", "crl_url", "ocsp_url"]


@dataclass(frozen=True)
class IssuingCA:
    name: str  # e.g. "GEOTRUST-TLS"
    certificate: x509.Certificate
    signer: CASigner  # from the key backend; the private key stays there
    chain: tuple[x509.Certificate, ...]  # issuers above it, nearest first, ending with the root

    def __post_init__(self) -> None:
        if self.signer.public_key != self.certificate.public_key():
            raise ValueError(f"the signer's key of CA {self.name} does not match its certificate")


class Issuer:
    """Issues leaves from :class:`LeafRequest`; refuses whatever the pre-issuance linter refuses."""

    def __init__(self, public_url: str, linter: PreIssuanceLinter) -> None:
        self._public_url = public_url
        self._linter = linter

    def issue(self, ca: IssuingCA, request: LeafRequest) -> x509.Certificate:
        """The signed leaf; raises :class:`~soap_service.errors.LintRefused` on an ERROR or FATAL finding.
        Timed whole, and its lint alone, in the metrics (``soap_service.metrics``)."""
        with metrics.timed_issuance():
            builder = leaf_builder(request, ca.certificate, ca.name, self._public_url)
            trial = trial_certificate(builder, ca.signer)
            with metrics.timed_lint():
                findings = self._linter.findings(trial, request.level)
            if findings:
                raise LintRefused(findings)
            certificate = sign_trial(trial, ca.signer, ca.certificate)
            if certificate.tbs_certificate_bytes != trial.tbs_certificate_bytes:
                raise RuntimeError("the signed TBS differs from the linted one")
            return certificate
