"""Reissue the certificate of a demo order with zeep, the way a partner's integration would.

    .venv/bin/python examples/reissue_zeep.py --order DEMO-SSL123 --password 'PASSWORD'

It reads the order (GetOrderByPartnerOrderID) for its validated names, makes a new
P-256 key and a CSR for those names, checks the request (ValidateOrderParameters),
reissues (Reissue) and writes the key, the certificate, its chain and the PKCS#7 under
``var/reissued/<order>/``. The password is the one ``soap-service demo`` printed when
it created the partner DEMO; without ``--password`` it is asked for.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import zeep
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMESPACE = "urn:soap-service:order:v1"
BINDING = f"{{{NAMESPACE}}}OrderService"


def new_key_and_csr(names: list[str], organization: str | None) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = names[0] if names else (organization or "Code Signing")
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    csr = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr


def failed(header: Any) -> bool:
    if header.SuccessCode >= 0:
        for warning in header.Warnings.Warning if header.Warnings else []:
            print(f"warning {warning.WarningCode}: {warning.WarningMessage}")
        return False
    for error in header.Errors.Error:
        field = f" [{error.ErrorField}]" if error.ErrorField else ""
        print(f"error {error.ErrorCode}{field}: {error.ErrorMessage}", file=sys.stderr)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080/api/order", help="the service endpoint")
    parser.add_argument("--partner", default="DEMO")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", help="the API password (asked for when not given)")
    parser.add_argument("--order", default="DEMO-SSL123", help="the PartnerOrderID to reissue")
    parser.add_argument("--out", type=Path, default=Path("var/reissued"), help="where to write the files")
    args = parser.parse_args()
    password = args.password or getpass.getpass(f"password of {args.partner}/{args.user}: ")

    client = zeep.Client(args.url + "?wsdl")  # the client is generated from the served WSDL
    service = client.create_service(BINDING, args.url)
    auth = {"UserName": args.user, "Password": password}

    print(service.Hello(Input="hello from zeep"))
    order = service.GetOrderByPartnerOrderID(
        Request={
            "QueryRequestHeader": {"PartnerCode": args.partner, "AuthToken": auth},
            "PartnerOrderID": args.order,
        }
    )
    if failed(order.QueryResponseHeader):
        return 1
    info = order.OrderDetail.OrderInfo
    names = list(info.DNSNames.DNSName) if info.DNSNames else []  # zeep gives an empty list as None
    organization = order.OrderDetail.Organization.Name if order.OrderDetail.Organization else None
    print(f"order {info.OrderID} ({info.ProductCode}, {info.OrderStatus}), names: {', '.join(names) or '-'}")

    key_pem, csr = new_key_and_csr(names, organization)
    request = {
        "OrderRequestHeader": {"PartnerCode": args.partner, "AuthToken": auth, "PartnerOrderID": args.order},
        "OrderParameters": {"CSR": csr, "SignatureHashAlgorithm": "SHA256"},
    }
    check = service.ValidateOrderParameters(Request=request)
    if failed(check.OrderResponseHeader):
        return 1
    result = service.Reissue(Request=request)
    if failed(result.OrderResponseHeader):
        return 1
    certificate = result.Certificate
    out = args.out / args.order
    out.mkdir(parents=True, exist_ok=True)
    key_file = out / "key.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    (out / "certificate.pem").write_text(certificate.ServerCertificate)
    (out / "chain.pem").write_text("".join(ca.CACert for ca in certificate.CACertificates.CACertificate))
    (out / "certificate.p7b").write_text(certificate.PKCS7)
    print(f"reissued: serial {certificate.SerialNumber}, valid {certificate.NotBefore} to {certificate.NotAfter}")
    print(f"written: {key_file}, {out / 'certificate.pem'}, {out / 'chain.pem'}, {out / 'certificate.p7b'}")
    print(certificate.ServerCertificate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
