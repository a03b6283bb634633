"""CRLs (docs/design.md, "Status publication"): the profile (CRL number, AKI, reasons as the
Baseline Requirements want them, nextUpdate at most 7 days ahead), the signature through the
CA's signer, pkilint's BR CRL profile on every CA's CRL, the CRL numbers across processes, the
per-process cache and what invalidates it, expired entries, and ``soap-service crl``.
Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pkilint.bin import lint_crl
from sqlalchemy import update

from ca_support import hierarchy
from conftest import TestInstallation as Installation
from factory import new_order, new_partner
from soap_service.ca.crl import MAX_VALIDITY, RevokedEntry, build_crl
from soap_service.ca.keys.signer import InProcessSigner
from soap_service.ca.signing import SignatureMismatch
from soap_service.ra.crls import CA_NAMES, CRLPublisher, UnknownAuthority
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import Certificate
from soap_service.vocabulary import CertificateStatus

NOW = datetime.now(UTC).replace(microsecond=0)
REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation")

# One product per issuing CA
PRODUCTS = {
    "SYMANTEC-TLS": "SecureSite", "THAWTE-TLS": "SSL123", "GEOTRUST-TLS": "QuickSSLPremium",
    "RAPIDSSL-TLS": "RapidSSL", "THAWTE-CS": "ThawteCodeSigning", "SYMANTEC-CS": "SymantecCodeSigning",
}


def _revoke(ra: RegistrationAuthority, serial: str, reason: str, *, at: datetime | None = None) -> None:
    """Mark a certificate revoked as the revocation use case does (status, time, reason)."""
    with ra.sessions() as session, session.begin():
        session.execute(
            update(Certificate).where(Certificate.serial == serial).values(
                status=CertificateStatus.REVOKED, revoked_at=at or ra.clock(), revocation_reason=reason
            )
        )


def _lint(crl: x509.CertificateRevocationList, kind: str, tmp_path: Path) -> str:
    """pkilint's ``lint_crl -p BR`` at WARNING: its output (empty when it finds nothing)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    path = tmp_path / f"{kind}-{crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number}.crl"
    path.write_bytes(crl.public_bytes(Encoding.DER))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = lint_crl.main(["lint", "-t", kind, "-p", "BR", "-s", "WARNING", str(path)])
    return out.getvalue().strip() + ("" if code == 0 else f" (exit {code})")


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


# ----------------------------------------------------------------------------- the CA's CRL profile


@pytest.mark.parametrize("algorithm", ["rsa-2048", "ecdsa-p384"])
def test_profile_and_signature(algorithm: str, tmp_path: Path):
    materials = hierarchy(algorithm)
    ca = materials["THAWTE-TLS"]
    entries = [RevokedEntry(1000 + i, NOW - timedelta(hours=i), reason) for i, reason in enumerate(REASONS)]
    crl = build_crl(ca.certificate, ca.signer, number=7, this_update=NOW, next_update=NOW + MAX_VALIDITY,
                    revoked=entries)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.signature_algorithm_oid == ca.certificate.signature_algorithm_oid
    assert crl.issuer == ca.certificate.subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski and aki.authority_cert_issuer is None
    assert len(crl.extensions) == 2
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    by_serial = {entry.serial_number: entry for entry in crl}
    assert _reason(by_serial[1000]) is None  # BR 7.2.2: unspecified is left out
    assert [_reason(by_serial[1000 + i]) for i in range(1, 5)] == [
        x509.ReasonFlags.key_compromise, x509.ReasonFlags.affiliation_changed, x509.ReasonFlags.superseded,
        x509.ReasonFlags.cessation_of_operation,
    ]
    assert by_serial[1001].revocation_date_utc == NOW - timedelta(hours=1)
    assert _lint(crl, "CRL", tmp_path) == ""


@pytest.mark.parametrize("reason", ["certificateHold", "removeFromCRL", "cACompromise", "nonsense"])
def test_reasons_a_crl_may_not_carry(reason: str):
    ca = hierarchy("ecdsa-p256")["RAPIDSSL-TLS"]
    with pytest.raises(ValueError, match="may not carry"):
        build_crl(ca.certificate, ca.signer, number=1, this_update=NOW, next_update=NOW + timedelta(days=1),
                  revoked=[RevokedEntry(5, NOW, reason)])


def test_root_arl_may_carry_ca_compromise(tmp_path: Path):
    root = hierarchy("ecdsa-p256")["ROOT"]
    crl = build_crl(root.certificate, root.signer, number=3, this_update=NOW, next_update=NOW + MAX_VALIDITY,
                    revoked=[RevokedEntry(77, NOW, "cACompromise")], of_ca_certificates=True)
    assert _reason(next(iter(crl))) == x509.ReasonFlags.ca_compromise
    assert _lint(crl, "ARL", tmp_path) == ""


def test_next_update_at_most_seven_days():
    ca = hierarchy("ecdsa-p256")["GEOTRUST-TLS"]
    for next_update in (NOW + MAX_VALIDITY + timedelta(seconds=1), NOW, NOW - timedelta(days=1)):
        with pytest.raises(ValueError, match="nextUpdate"):
            build_crl(ca.certificate, ca.signer, number=1, this_update=NOW, next_update=next_update, revoked=[])
    with pytest.raises(ValueError, match="timezone"):
        build_crl(ca.certificate, ca.signer, number=1, this_update=NOW.replace(tzinfo=None),
                  next_update=NOW + timedelta(days=1), revoked=[])
    for number in (0, -1, 2**159):
        with pytest.raises(ValueError, match="CRL number"):
            build_crl(ca.certificate, ca.signer, number=number, this_update=NOW,
                      next_update=NOW + timedelta(days=1), revoked=[])


class _WrongKeySigner:
    """Claims the CA's public key, signs with another key."""

    def __init__(self, claimed: InProcessSigner) -> None:
        self._claimed = claimed
        self._other = InProcessSigner(ec.generate_private_key(ec.SECP256R1()))

    public_key = property(lambda self: self._claimed.public_key)
    hash_algorithm = property(lambda self: hashes.SHA256())
    signature_algorithm = property(lambda self: self._claimed.signature_algorithm)

    def sign(self, tbs: bytes) -> bytes:
        return self._other.sign(tbs)


def test_a_signature_that_does_not_verify_is_refused():
    ca = hierarchy("ecdsa-p256")["THAWTE-TLS"]
    assert isinstance(ca.signer, InProcessSigner)
    with pytest.raises(SignatureMismatch):
        build_crl(ca.certificate, _WrongKeySigner(ca.signer), number=1, this_update=NOW,
                  next_update=NOW + timedelta(days=1), revoked=[])
    other = hierarchy("ecdsa-p256")["GEOTRUST-TLS"]
    with pytest.raises(ValueError, match="signer's key"):
        build_crl(ca.certificate, other.signer, number=1, this_update=NOW, next_update=NOW + timedelta(days=1),
                  revoked=[])


# ------------------------------------------------------------------------------- the RA's CRLs


def test_every_ca_crl_lints_clean_empty_and_with_entries(ra: RegistrationAuthority, tmp_path: Path):
    publisher = CRLPublisher(ra)
    for name in sorted(CA_NAMES):
        crl = x509.load_der_x509_crl(publisher.current_crl(name).der)
        assert _lint(crl, "ARL" if name == "ROOT" else "CRL", tmp_path) == "", name
    partner = new_partner(ra)
    revoked = {}
    for i, (name, product) in enumerate(sorted(PRODUCTS.items())):
        serial = new_order(ra, partner, product=product).certificate.serial
        _revoke(ra, serial, REASONS[i % len(REASONS)])
        revoked[name] = serial
    for name, serial in revoked.items():
        crl = x509.load_der_x509_crl(publisher.current_crl(name).der)
        assert int(serial, 16) in {entry.serial_number for entry in crl}, name
        assert _lint(crl, "CRL", tmp_path) == "", name


def test_cached_until_the_revocation_state_changes(installation: Installation, ra: RegistrationAuthority):
    publisher = CRLPublisher(ra)
    first = publisher.current_crl("GEOTRUST-TLS")
    assert publisher.current_crl("GEOTRUST-TLS") is first  # unchanged: the same CRL, no new number
    # A revocation made through another RA (another worker, another host) shows at the next fetch.
    other = RegistrationAuthority.from_settings(installation.settings)
    try:
        serial = new_order(other, new_partner(other)).certificate.serial
        _revoke(other, serial, "unspecified")
    finally:
        other.close()
    second = publisher.current_crl("GEOTRUST-TLS")
    assert second.number > first.number
    entries = {entry.serial_number: entry for entry in x509.load_der_x509_crl(second.der)}
    assert _reason(entries[int(serial, 16)]) is None
    # A change of reason to keyCompromise (its time unchanged) shows too.
    with ra.sessions() as session, session.begin():
        session.execute(update(Certificate).where(Certificate.serial == serial).values(
            revocation_reason="keyCompromise"))
    third = publisher.current_crl("GEOTRUST-TLS")
    assert third.number > second.number
    entries = {entry.serial_number: entry for entry in x509.load_der_x509_crl(third.der)}
    assert _reason(entries[int(serial, 16)]) == x509.ReasonFlags.key_compromise
    assert publisher.current_crl("GEOTRUST-TLS") is third


def test_refreshed_after_the_interval(ra: RegistrationAuthority):
    times = [datetime.now(UTC)]
    publisher = CRLPublisher(dataclasses.replace(ra, clock=lambda: times[0]))
    first = publisher.current_crl("RAPIDSSL-TLS")
    times[0] += timedelta(minutes=59)
    assert publisher.current_crl("RAPIDSSL-TLS") is first
    times[0] += timedelta(minutes=2)
    refreshed = publisher.current_crl("RAPIDSSL-TLS")
    assert refreshed.number > first.number and refreshed.this_update > first.this_update
    assert refreshed.next_update - refreshed.this_update == MAX_VALIDITY


def test_expired_entries_stay_seven_days_after_not_after(ra: RegistrationAuthority):
    partner = new_partner(ra)
    serials = [new_order(ra, partner, product="SSL123").certificate.serial for _ in range(2)]
    now = ra.clock()
    for serial, expired in zip(serials, (timedelta(days=6), timedelta(days=8)), strict=True):
        with ra.sessions() as session, session.begin():
            session.execute(update(Certificate).where(Certificate.serial == serial).values(
                not_after=now - expired))
        _revoke(ra, serial, "superseded", at=now - expired - timedelta(days=1))
    listed = {entry.serial_number for entry in x509.load_der_x509_crl(CRLPublisher(ra).current_crl("THAWTE-TLS").der)}
    assert int(serials[0], 16) in listed  # expired 6 days ago: still listed
    assert int(serials[1], 16) not in listed  # expired 8 days ago: left out


def test_unknown_ca(ra: RegistrationAuthority):
    publisher = CRLPublisher(ra)
    for name in ("NOPE", "thawte-tls", "", "ROOT "):
        with pytest.raises(UnknownAuthority):
            publisher.current_crl(name)
        with pytest.raises(UnknownAuthority):
            publisher.ca_certificate(name)


# --------------------------------------------------------------- CRL numbers and the command


def _crl_command(installation: Installation, *args: str) -> subprocess.CompletedProcess[bytes]:
    from api_support import server_environment

    return subprocess.run([sys.executable, "-m", "soap_service.main", "crl", *args],
                          env=server_environment(installation), capture_output=True, timeout=120)


def _number(der: bytes) -> int:
    return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_command_and_numbers_across_processes(installation: Installation, ra: RegistrationAuthority):
    in_process = CRLPublisher(ra).current_crl("SYMANTEC-CS").number
    first = _crl_command(installation, "--brand", "symantec", "--code-signing")
    assert first.returncode == 0, first.stderr
    crl = x509.load_der_x509_crl(first.stdout)  # stdout is the DER CRL and nothing else
    assert "Symantec Code Signing CA" in crl.issuer.rfc4514_string()
    second = _crl_command(installation, "--brand", "SYMANTEC", "--code-signing")
    assert second.returncode == 0, second.stderr
    assert in_process < _number(first.stdout) < _number(second.stdout)
    # Two processes at once never get the same number.
    both = [subprocess.Popen([sys.executable, "-m", "soap_service.main", "crl", "--brand", "thawte"],
                             env=_env(installation), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in both]
    assert all(process.returncode == 0 for process in both), [err for _, err in outputs]
    assert len({_number(out) for out, _ in outputs}) == 2
    tls = _crl_command(installation, "--brand", "thawte")
    assert "Thawte TLS Issuing CA" in str(x509.load_der_x509_crl(tls.stdout).issuer)


def _env(installation: Installation) -> dict[str, str]:
    from api_support import server_environment

    return server_environment(installation)


def test_crl_command_refusals(installation: Installation):
    no_cs = _crl_command(installation, "--brand", "GEOTRUST", "--code-signing")
    assert no_cs.returncode == 1 and no_cs.stdout == b""
    assert b"error -2019: GeoTrust has no code-signing CA" in no_cs.stderr
    unknown = _crl_command(installation, "--brand", "VERISIGN")
    assert unknown.returncode == 2 and unknown.stdout == b""
