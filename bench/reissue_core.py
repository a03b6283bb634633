"""Cost of one reissue in the RA, without HTTP: authentication (cached), order lock,
CSR and key checks, pre-issuance lint, signature, and the transaction.

    .venv/bin/python bench/reissue_core.py [--count 200] [--database-url URL]

Makes a throw-away SQLite installation in a temporary directory unless a database
URL is given (it must be an empty database). Prints the mean, median and p95 per
reissue, and the linter's share measured on the same certificates.

``bench/reissue_floor.py`` measures the same reissue's floor without the RA around it (the
CA's steps and the rows through the raw driver, per CA key algorithm), and ``make bench``
compares the server's end-to-end throughput with that floor.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from soap_service.config import Secret, load_settings
from soap_service.ra.auth import Credentials
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.vocabulary import ValidationLevel


def csr(names: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        environ = {"SOAP_SERVICE_DATA_DIR": data_dir, "SOAP_SERVICE_CA_PASSPHRASE": secrets.token_hex(16)}
        if args.database_url:
            environ["SOAP_SERVICE_DATABASE_URL"] = args.database_url
        ra = RegistrationAuthority.from_settings(load_settings(environ))
        initialize(ra)
        password = secrets.token_urlsafe(16)
        create_partner(ra, code="BENCH", name="Bench", username="bench", password=Secret(password))
        names = ["example.com", "www.example.com"]
        create_order(ra, NewOrder(partner_code="BENCH", partner_order_id="B-1", product="QuickSSLPremium",
                                  names=tuple(names), csr=csr(names),
                                  contacts=(Contact("admin", "a@example.com"), Contact("technical", "t@example.com"))))
        credentials = Credentials("BENCH", "bench", Secret(password))
        reissuer = Reissuer(ra)
        csrs = [csr(names) for _ in range(args.count)]
        reissuer.reissue(credentials, ReissueRequest("B-1", csr(names)), channel="api")  # warm-up
        seconds: list[float] = []
        pems: list[str] = []
        for request_csr in csrs:
            start = time.perf_counter()
            outcome = reissuer.reissue(credentials, ReissueRequest("B-1", request_csr), channel="api")
            seconds.append(time.perf_counter() - start)
            pems.append(outcome.certificate.pem)
        lint_seconds = []
        for pem in pems:
            leaf = x509.load_pem_x509_certificate(pem.encode())
            start = time.perf_counter()
            ra.linter.findings(leaf, ValidationLevel.DV)
            lint_seconds.append(time.perf_counter() - start)
        ra.close()
    ms = sorted(s * 1000 for s in seconds)
    print(f"backend: {'given URL' if args.database_url else 'SQLite'} ({Path(sys.executable).name})")
    print(f"reissues: {len(ms)}  mean {statistics.mean(ms):.1f} ms  median {statistics.median(ms):.1f} ms  "
          f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms")
    print(f"pre-issuance lint alone: mean {statistics.mean(lint_seconds) * 1000:.1f} ms per certificate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
