"""The CRL of one CA: its revoked certificates, signed through the CA's signer
(docs/design.md, "Status publication").

The profile (RFC 5280 5, the Baseline Requirements 7.2 and 4.9.7):

- version 2; issuer the CA's subject; signature the CA signer's algorithm;
- thisUpdate and nextUpdate to the second, nextUpdate at most :data:`MAX_VALIDITY` (7 days)
  after thisUpdate (the BR allow 10 for a CA that issues to subscribers, and require a new
  CRL at least every 7 days);
- extensions: cRLNumber (the number the caller took, increasing) and the authority key
  identifier (the CA's subject key identifier), both non-critical; nothing else (a full,
  unpartitioned CRL carries no issuingDistributionPoint);
- each entry: the serial and the revocation time (to the second), and a reasonCode only
  when the reason is not ``unspecified`` (BR 7.2.2: unspecified is expressed by leaving the
  extension out; certificateHold is never used). The reasons a CRL may carry are the BR's:
  keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn,
  and cACompromise on a CA's CRL of CA certificates (an ARL); anything else is refused.

``cryptography``'s builder signs with a private key only, and the CA has a signer: the CRL is
built and signed by a throw-away key of the signer's algorithm, then its TBSCertList is signed
by the signer and verified with the CA certificate's key (``ca.signing.sign_trial_crl``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from soap_service.ca.keys.signer import CASigner
from soap_service.ca.leaf import authority_key_identifier
from soap_service.ca.signing import sign_trial_crl, trial_crl

__all__ = ["MAX_VALIDITY", "UNSPECIFIED", "RevokedEntry", "build_crl"]

MAX_VALIDITY = timedelta(days=7)
"""The longest a CRL of this service is valid: nextUpdate - thisUpdate (BR 4.9.7)."""

UNSPECIFIED = "unspecified"

_CRL_REASONS = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}
_ARL_REASONS = {**_CRL_REASONS, "cACompromise": x509.ReasonFlags.ca_compromise}
_MAX_CRL_NUMBER = 2**159  # RFC 5280 5.2.3: at most 20 octets


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as the CRL lists it."""

    serial: int
    revoked_at: datetime
    reason: str  # RFC 5280 spelling: "unspecified", "keyCompromise", ...


def build_crl(
    ca_certificate: x509.Certificate,
    signer: CASigner,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Iterable[RevokedEntry],
    of_ca_certificates: bool = False,
) -> x509.CertificateRevocationList:
    """The CRL of the CA whose certificate is ``ca_certificate``, signed by ``signer``.

    ``of_ca_certificates`` marks a root's CRL of CA certificates (an ARL), which may also carry
    cACompromise. Raises ``ValueError`` for a signer that is not the CA's, a number out of
    range, naive or misordered times, a nextUpdate over :data:`MAX_VALIDITY` ahead, or a reason
    a CRL may not carry.
    """
    if signer.public_key != ca_certificate.public_key():
        raise ValueError("the signer's key is not the CA certificate's")
    if not 0 < number < _MAX_CRL_NUMBER:
        raise ValueError("a CRL number is positive and at most 20 octets")
    this_update, next_update = _second(this_update), _second(next_update)
    if not this_update < next_update <= this_update + MAX_VALIDITY:
        raise ValueError(f"nextUpdate must follow thisUpdate by at most {MAX_VALIDITY.days} days")
    allowed = _ARL_REASONS if of_ca_certificates else _CRL_REASONS
    # The entries given to the builder at once: adding them one by one copies the list each time
    # (quadratic: 50 s for 100,000 entries, bench/scale_curve.py).
    entries = [_revoked_certificate(entry, allowed) for entry in sorted(revoked, key=lambda e: e.serial)]
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=entries)
        .issuer_name(ca_certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(ca_certificate), critical=False)
    )
    return sign_trial_crl(trial_crl(builder, signer), signer, ca_certificate)


def _revoked_certificate(
    entry: RevokedEntry, allowed: dict[str, x509.ReasonFlags]
) -> x509.RevokedCertificate:
    if entry.serial <= 0:
        raise ValueError("a revoked serial is positive")
    revoked = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(_second(entry.revoked_at))
    if entry.reason != UNSPECIFIED:
        flag = allowed.get(entry.reason)
        if flag is None:
            raise ValueError(f"a CRL of this CA may not carry the reason {entry.reason!r}")
        revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
    return revoked.build()


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("CRL times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)
