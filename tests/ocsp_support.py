"""Shared material of the OCSP tests: requests, a row revoked through storage, openssl ocsp, pkilint."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import update

from soap_service.ra.clock import utc_now
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome
from soap_service.storage.models import Certificate
from soap_service.vocabulary import CertificateStatus

PKILINT_OCSP = Path(sys.executable).parent / "lint_ocsp_response"


@dataclass(frozen=True)
class Issued:
    """A leaf, its issuing CA and the root, as PEM files for openssl."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    leaf_file: Path
    issuer_file: Path
    root_file: Path

    @property
    def ocsp_url(self) -> str:
        aia = self.leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        return next(
            str(d.access_location.value) for d in aia if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
        )


def issued_files(outcome: IssuanceOutcome, directory: Path) -> Issued:
    leaf = x509.load_pem_x509_certificate(outcome.certificate.pem.encode())
    by_kind = {c.kind: c.pem for c in outcome.chain}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "leaf.pem").write_text(outcome.certificate.pem)
    (directory / "issuer.pem").write_text(by_kind["INTERMEDIATE"])
    (directory / "root.pem").write_text(by_kind["ROOT"])
    return Issued(
        leaf, x509.load_pem_x509_certificate(by_kind["INTERMEDIATE"].encode()),
        directory / "leaf.pem", directory / "issuer.pem", directory / "root.pem",
    )


def request_der(
    leaf: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def request_for_serial(issuer: x509.Certificate, serial: int, *, nonce: bytes | None = None) -> bytes:
    from soap_service.ca.ocsp import issuer_hashes

    name_hash, key_hash = issuer_hashes(issuer, hashes.SHA256())
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def revoke_row(ra: RegistrationAuthority, serial: int, reason: str) -> None:
    """The certificate's row revoked through storage (what ra.revocation's use case writes)."""
    with ra.sessions() as session, session.begin():
        result = session.execute(
            update(Certificate)
            .where(Certificate.serial == format(serial, "x"))
            .values(status=CertificateStatus.REVOKED, revoked_at=utc_now(), revocation_reason=reason)
        )
        assert result.rowcount == 1  # type: ignore[attr-defined]


def openssl_ocsp(issued: Issued, *extra: str, url: str | None = None, serial: int | None = None) -> str:
    """``openssl ocsp`` against the leaf's own OCSP URL; its stdout and stderr."""
    target = ["-serial", hex(serial)] if serial is not None else ["-cert", str(issued.leaf_file)]
    completed = subprocess.run(
        ["openssl", "ocsp", *extra, "-issuer", str(issued.issuer_file), *target, "-url", url or issued.ocsp_url,
         "-CAfile", str(issued.root_file), "-timeout", "20"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "no_proxy": "*"},
    )
    return completed.stdout + completed.stderr


def pkilint_ocsp(response: bytes, directory: Path) -> list[str]:
    """pkilint's OCSP response linter (its CLI) at WARNING and above: the findings, one per line."""
    path = directory / "response.der"
    path.write_bytes(response)
    completed = subprocess.run(
        [str(PKILINT_OCSP), "lint", "-s", "WARNING", "--document-format", "DER", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return [line for line in completed.stdout.splitlines() if line.strip()]
