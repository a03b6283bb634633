"""The Order API end to end: gunicorn on a loopback port, zeep clients generated from
the served WSDL and from wsdl/order.wsdl, every operation, every error code of
docs/design.md, "The SOAP contract", over the wire. Every message exchanged through zeep is validated against
schemas/order.xsd (see ``api_support.SchemaCheck``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlalchemy import select, update

from api_support import (
    WSDL_FILE,
    XSD_FILE,
    RunningServer,
    ZeepService,
    assert_issued_chain,
    order_request,
    query_header,
    request,
    running_server,
    zeep_service,
)
from conftest import TestInstallation as Installation
from factory import ORGANIZATION, fresh_key_csr, new_order, new_partner
from factory import TestPartner as Partner
from keyfactory import (
    broken_signature_csr_pem,
    close_prime_rsa_key,
    csr_pem,
    ec_key,
    make_csr,
    rsa_key,
    sha1_csr_pem,
)
from soap_service.storage.models import Certificate, Order
from soap_service.vocabulary import CertificateStatus, OrderStatus

NAMES = ("example.com", "www.example.com")


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> ZeepService:
    """A zeep client generated from the WSDL the server serves."""
    return zeep_service(server.wsdl_url, server.url)


@pytest.fixture(scope="module")
def api_from_file(server: RunningServer) -> ZeepService:
    """A zeep client generated from the checked-in wsdl/order.wsdl."""
    return zeep_service(str(WSDL_FILE), server.url)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


def _order(installation: Installation, partner: Partner, **options: Any) -> Any:
    return new_order(installation.ra, partner, **options).order


def _set_order(installation: Installation, order_id: str, **values: Any) -> None:
    with installation.ra.sessions() as session, session.begin():
        session.execute(update(Order).where(Order.order_id == order_id).values(**values))


def _revoke_current_certificate(installation: Installation, order_id: str) -> None:
    with installation.ra.sessions() as session, session.begin():
        order = session.scalars(select(Order).where(Order.order_id == order_id)).one()
        session.execute(
            update(Certificate)
            .where(Certificate.id == order.current_certificate_id)
            .values(status=CertificateStatus.REVOKED, revoked_at=datetime.now(UTC), revocation_reason="superseded")
        )


def _errors(header: Any) -> list[tuple[int, str | None, str]]:
    if header.Errors is None:
        return []
    return [(e.ErrorCode, e.ErrorField, e.ErrorMessage) for e in header.Errors.Error]


def _refused(result: Any, code: int, field: str | None) -> str:
    """Assert a Reissue-like answer refused with one error ``code`` on ``field``; its message."""
    header = result.OrderResponseHeader
    errors = _errors(header)
    assert header.SuccessCode == code, errors
    assert [(c, f) for c, f, _ in errors] == [(code, field)]
    assert getattr(result, "Certificate", None) is None
    assert header.Timestamp.tzinfo is not None
    return errors[0][2]


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


# -------------------------------------------------------------------------------- the contract


def test_served_wsdl_and_schema_are_the_checked_in_files(server: RunningServer) -> None:
    status, headers, body = request(server, "GET", "/api/order?wsdl")
    assert status == 200 and headers["content-type"].startswith("text/xml")
    assert body == WSDL_FILE.read_bytes()
    status, _headers, body = request(server, "GET", "/api/order?xsd")
    assert status == 200 and body == XSD_FILE.read_bytes()


def test_the_banner_names_the_wsdl_and_the_demo_partner(server: RunningServer) -> None:
    log = server.log()
    assert "WSDL           http://127.0.0.1:8080/api/order?wsdl" in log
    assert ("SymAPI drop-in http://127.0.0.1:8080/webtrust/order.jws?WSDL, "
            "http://127.0.0.1:8080/webtrust/query.jws?WSDL") in log
    assert "PartnerCode DEMO, UserName demo" in log
    assert "examples/reissue_zeep.py" in log


def test_hello_from_both_generated_clients(api: ZeepService, api_from_file: ZeepService) -> None:
    assert api.service.Hello(Input="bonjour") == "bonjour"
    assert api_from_file.service.Hello(Input="hallo") == "hallo"
    assert api.check.checked >= 2 and api_from_file.check.checked >= 2


def test_every_operation_through_the_checked_in_wsdl(
    api_from_file: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    service, csr = api_from_file.service, fresh_key_csr(NAMES)
    parsed = service.ParseCSR(Request={"QueryRequestHeader": query_header(partner), "CSR": csr})
    assert parsed.QueryResponseHeader.SuccessCode == 0
    checked = service.ValidateOrderParameters(Request=order_request(partner, order.partner_order_id, csr))
    assert checked.OrderResponseHeader.SuccessCode == 0
    reissued = service.Reissue(Request=order_request(partner, order.partner_order_id, csr))
    assert reissued.OrderResponseHeader.SuccessCode == 0
    found = service.GetOrderByPartnerOrderID(
        Request={"QueryRequestHeader": query_header(partner), "PartnerOrderID": order.partner_order_id}
    )
    assert found.QueryResponseHeader.SuccessCode == 0
    assert found.OrderDetail.OrderInfo.OrderID == reissued.OrderID == order.order_id
    assert api_from_file.check.checked >= 8


# ------------------------------------------------------------------------------------- Reissue


def test_reissue_answers_a_certificate_that_chains_to_the_returned_ca_certificates(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    result = api.service.Reissue(
        Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES), SignatureHashAlgorithm="SHA256",
                              ReissueEmail="admin@example.com")
    )
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.Errors, header.Warnings) == (0, None, None)
    assert header.PartnerOrderID == order.partner_order_id
    assert result.OrderID == order.order_id
    issued = result.Certificate
    leaf = _load(issued.ServerCertificate)
    assert issued.SerialNumber == format(leaf.serial_number, "x")
    assert (issued.NotBefore, issued.NotAfter) == (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    chain = issued.CACertificates.CACertificate
    assert_issued_chain(issued.ServerCertificate, [(c.Type, c.CACert) for c in chain], issued.PKCS7)

    found = api.service.GetOrderByPartnerOrderID(
        Request={
            "QueryRequestHeader": query_header(partner),
            "PartnerOrderID": order.partner_order_id,
            "OrderQueryOptions": {"ReturnCertificateInfo": True, "ReturnCertificateHistory": True},
        }
    )
    detail = found.OrderDetail
    assert detail.CertificateInfo.SerialNumber == issued.SerialNumber
    history = {c.SerialNumber: c for c in detail.CertificateHistory.Certificate}
    original = order.certificate.serial
    assert set(history) == {original, issued.SerialNumber}
    assert history[issued.SerialNumber].ReplacesSerialNumber == original
    # a reissue revokes nothing (docs/design.md, "Reissue rules")
    assert {c.CertificateStatus for c in history.values()} == {"VALID"}


def test_a_code_signing_order_reissues_without_names(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner, product="SymantecCodeSigning")
    found = api.service.GetOrderByPartnerOrderID(
        Request={"QueryRequestHeader": query_header(partner), "PartnerOrderID": order.partner_order_id}
    )
    assert found.OrderDetail.OrderInfo.ValidationLevel == "CS"
    assert not found.OrderDetail.OrderInfo.DNSNames  # an empty list: zeep reads <DNSNames/> as None
    csr = csr_pem(make_csr(ec.generate_private_key(ec.SECP256R1()), (), common_name="Example Corporation"))
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, csr))
    assert result.OrderResponseHeader.SuccessCode == 0, _errors(result.OrderResponseHeader)
    leaf = _load(result.Certificate.ServerCertificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORGANIZATION.name


def test_a_retried_reissue_returns_the_same_certificate(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    csr = fresh_key_csr(NAMES)
    first = api.service.Reissue(Request=order_request(partner, order.partner_order_id, csr))
    again = api.service.Reissue(Request=order_request(partner, order.partner_order_id, csr))
    assert first.OrderResponseHeader.SuccessCode == again.OrderResponseHeader.SuccessCode == 0
    assert first.Certificate.SerialNumber == again.Certificate.SerialNumber


def test_a_reused_key_succeeds_with_warning_1001(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    order = _order(installation, partner, csr=csr_pem(make_csr(key, NAMES)))
    same_key = csr_pem(make_csr(key, NAMES, common_name="example.com"))
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, same_key))
    header = result.OrderResponseHeader
    assert header.SuccessCode == 1 and header.Errors is None
    assert [w.WarningCode for w in header.Warnings.Warning] == [1001]
    assert result.Certificate.SerialNumber != order.certificate.serial

    checked = api.service.ValidateOrderParameters(
        Request=order_request(partner, order.partner_order_id, csr_pem(make_csr(key, NAMES[:1])))
    )
    assert checked.OrderResponseHeader.SuccessCode == 1
    assert [w.WarningCode for w in checked.OrderResponseHeader.Warnings.Warning] == [1001]


# ---------------------------------------------------------------------- ValidateOrderParameters


def test_validate_order_parameters_reads_the_csr_and_issues_nothing(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    key = ec.generate_private_key(ec.SECP384R1())
    csr = csr_pem(make_csr(key, ("WWW.example.com",), common_name="example.com"))
    result = api.service.ValidateOrderParameters(Request=order_request(partner, order.partner_order_id, csr))
    header = result.OrderResponseHeader
    assert (header.SuccessCode, header.Errors, header.Warnings) == (0, None, None)
    parsed = result.ParsedCSR
    assert (parsed.KeyAlgorithm, parsed.KeySize, parsed.Curve) == ("EC", 384, "P-384")
    assert parsed.SignatureAlgorithm == "ecdsa-with-SHA256"
    assert parsed.CommonName == "example.com"
    assert list(parsed.DNSNames.DNSName) == ["WWW.example.com"]
    assert len(parsed.SPKISHA256) == 64 and len(parsed.CSRSHA256) == 64
    assert sorted(n.lower() for n in result.CertificateDNSNames.DNSName) == ["example.com", "www.example.com"]
    assert result.ReturnsCurrentCertificate is False
    assert result.OrderID == order.order_id

    found = api.service.GetOrderByPartnerOrderID(
        Request={
            "QueryRequestHeader": query_header(partner),
            "PartnerOrderID": order.partner_order_id,
            "OrderQueryOptions": {"ReturnCertificateHistory": True},
        }
    )
    assert [c.SerialNumber for c in found.OrderDetail.CertificateHistory.Certificate] == [order.certificate.serial]

    refused = api.service.ValidateOrderParameters(
        Request=order_request(partner, order.partner_order_id, fresh_key_csr(("other.example.org",)))
    )
    _refused(refused, -4010, "CSR")
    assert refused.ParsedCSR is None


# ------------------------------------------------------------------------------------- ParseCSR


def test_parse_csr_reads_subject_names_and_key(api: ZeepService, partner: Partner) -> None:
    subject = [
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME, "California"),
        (NameOID.LOCALITY_NAME, "San Francisco"),
        (NameOID.ORGANIZATION_NAME, "Example Corporation"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Web"),
    ]
    csr = csr_pem(make_csr(rsa_key(2048), NAMES, common_name="example.com", subject=subject))
    result = api.service.ParseCSR(Request={"QueryRequestHeader": query_header(partner), "CSR": csr})
    assert (result.QueryResponseHeader.SuccessCode, result.QueryResponseHeader.Errors) == (0, None)
    parsed = result.ParsedCSR
    assert (parsed.Country, parsed.State, parsed.Locality) == ("US", "California", "San Francisco")
    assert (parsed.Organization, parsed.OrganizationalUnit, parsed.CommonName) == (
        "Example Corporation", "Web", "example.com"
    )
    assert [(a.Name, a.Value) for a in parsed.SubjectAttributes.SubjectAttribute][-1] == ("CN", "example.com")
    assert (parsed.KeyAlgorithm, parsed.KeySize, parsed.Curve) == ("RSA", 2048, None)
    assert parsed.SignatureAlgorithm == "sha256WithRSAEncryption"
    assert list(parsed.DNSNames.DNSName) == list(NAMES)


@pytest.mark.parametrize(
    ("csr", "code"),
    [("this is not a CSR", -4007), (sha1_csr_pem(), -4007), (broken_signature_csr_pem(), -4007), ("", -2019)],
    ids=["garbage", "sha1", "broken-signature", "empty"],
)
def test_parse_csr_refuses_what_it_cannot_read(api: ZeepService, partner: Partner, csr: str, code: int) -> None:
    result = api.service.ParseCSR(Request={"QueryRequestHeader": query_header(partner), "CSR": csr})
    header = result.QueryResponseHeader
    assert header.SuccessCode == code
    assert [(e.ErrorCode, e.ErrorField) for e in header.Errors.Error] == [(code, "CSR")]
    assert result.ParsedCSR is None


def test_parse_csr_needs_credentials(api: ZeepService, partner: Partner) -> None:
    result = api.service.ParseCSR(
        Request={"QueryRequestHeader": query_header(partner, "wrong-password!"), "CSR": fresh_key_csr()}
    )
    assert result.QueryResponseHeader.SuccessCode == -4001
    assert result.ParsedCSR is None


# ------------------------------------------------------------------------ GetOrderByPartnerOrderID


def test_get_order_with_every_option(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner, product="SecureSite")
    result = api.service.GetOrderByPartnerOrderID(
        Request={
            "QueryRequestHeader": query_header(partner),
            "PartnerOrderID": order.partner_order_id,
            "OrderQueryOptions": {
                "ReturnCertificateInfo": True,
                "ReturnFulfillment": True,
                "ReturnCACerts": True,
                "ReturnPKCS7Cert": True,
                "ReturnCertificateHistory": True,
            },
        }
    )
    assert (result.QueryResponseHeader.SuccessCode, result.QueryResponseHeader.Errors) == (0, None)
    detail = result.OrderDetail
    info = detail.OrderInfo
    assert (info.OrderID, info.PartnerOrderID, info.Brand, info.ProductCode) == (
        order.order_id, order.partner_order_id, "SYMANTEC", "SecureSite"
    )
    assert (info.ValidationLevel, info.OrderStatus) == ("OV", "COMPLETED")
    assert info.TermStart < datetime.now(UTC) < info.TermEnd
    assert list(info.DNSNames.DNSName) == list(NAMES)
    assert (detail.Organization.Name, detail.Organization.Country) == (ORGANIZATION.name, ORGANIZATION.country)
    assert {(c.Role, c.Email) for c in detail.Contacts.Contact} == {
        ("admin", "admin@example.com"), ("technical", "tech@example.com")
    }
    current = order.certificate
    assert detail.CertificateInfo.SerialNumber == current.serial
    assert detail.CertificateInfo.CertificateStatus == "VALID"
    assert detail.CertificateInfo.SPKISHA256 == current.spki_sha256
    fulfillment = detail.Fulfillment
    assert fulfillment.ServerCertificate == current.pem
    chain = [_load(c.CACert) for c in fulfillment.CACertificates.CACertificate]
    packed = pkcs7.load_pem_pkcs7_certificates(fulfillment.PKCS7.encode())
    assert sorted(packed, key=_fingerprint) == sorted([_load(current.pem), *chain], key=_fingerprint)
    assert [c.SerialNumber for c in detail.CertificateHistory.Certificate] == [current.serial]


def test_get_order_without_options_answers_the_order_alone(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    result = api.service.GetOrderByPartnerOrderID(
        Request={"QueryRequestHeader": query_header(partner), "PartnerOrderID": order.partner_order_id}
    )
    detail = result.OrderDetail
    assert detail.OrderInfo.OrderID == order.order_id
    assert detail.Organization is None  # a DV order
    assert (detail.CertificateInfo, detail.Fulfillment, detail.CertificateHistory) == (None, None, None)


def test_another_partners_order_is_not_found_exactly_like_a_missing_one(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    other = new_partner(installation.ra)
    theirs = _order(installation, other)

    def get(partner_order_id: str) -> Any:
        return api.service.GetOrderByPartnerOrderID(
            Request={"QueryRequestHeader": query_header(partner), "PartnerOrderID": partner_order_id}
        )

    foreign, missing = get(theirs.partner_order_id), get("PO-" + secrets.token_hex(6))
    assert foreign.OrderDetail is None and missing.OrderDetail is None
    assert _errors(foreign.QueryResponseHeader) == _errors(missing.QueryResponseHeader)
    assert [(c, f) for c, f, _ in _errors(foreign.QueryResponseHeader)] == [(-4003, "PartnerOrderID")]

    reissue_foreign = api.service.Reissue(Request=order_request(partner, theirs.partner_order_id, fresh_key_csr()))
    reissue_missing = api.service.Reissue(Request=order_request(partner, "PO-nothing", fresh_key_csr()))
    assert _refused(reissue_foreign, -4003, "PartnerOrderID") == _refused(reissue_missing, -4003, "PartnerOrderID")


# ------------------------------------------------------------------ every error code, over the wire


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"SignatureHashAlgorithm": "MD5"}, "SignatureHashAlgorithm"),
        ({"ReissueEmail": "not-an-address"}, "ReissueEmail"),
        ({"CSR": ""}, "CSR"),
    ],
    ids=["hash", "email", "empty-csr"],
)
def test_2019_invalid_field(
    api: ZeepService, installation: Installation, partner: Partner, parameters: dict[str, Any], field: str
) -> None:
    order = _order(installation, partner)
    parameters = dict(parameters)  # the parametrized dict is shared by both backends' runs
    csr = parameters.pop("CSR", fresh_key_csr(NAMES))
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, csr, **parameters))
    _refused(result, -2019, field)


def test_2019_partner_order_id_too_long(api: ZeepService, partner: Partner) -> None:
    _refused(api.service.Reissue(Request=order_request(partner, "P" * 65, fresh_key_csr())), -2019, "PartnerOrderID")


def test_4001_one_answer_for_any_wrong_part(
    api: ZeepService, installation: Installation, partner: Partner
) -> None:
    order = _order(installation, partner)
    csr = fresh_key_csr(NAMES)
    wrong_password = order_request(partner, order.partner_order_id, csr, password="not-the-password")
    unknown_user = order_request(partner, order.partner_order_id, csr)
    unknown_user["OrderRequestHeader"]["AuthToken"]["UserName"] = "nobody"
    unknown_partner = order_request(partner, order.partner_order_id, csr)
    unknown_partner["OrderRequestHeader"]["PartnerCode"] = "NOSUCHPARTNER"
    messages = {_refused(api.service.Reissue(Request=r), -4001, None)
                for r in (wrong_password, unknown_user, unknown_partner)}
    assert len(messages) == 1


def test_4002_locked_after_ten_failures(api: ZeepService, installation: Installation) -> None:
    victim = new_partner(installation.ra)
    order = _order(installation, victim)
    csr = fresh_key_csr(NAMES)
    for _ in range(10):
        _refused(api.service.Reissue(Request=order_request(victim, order.partner_order_id, csr, password="bad-guess")),
                 -4001, None)
    # Now even the right password is refused, with its own code.
    _refused(api.service.Reissue(Request=order_request(victim, order.partner_order_id, csr)), -4002, None)


@pytest.mark.parametrize(
    ("make_csr_text", "code"),
    [
        (lambda: sha1_csr_pem(), -4007),
        (lambda: broken_signature_csr_pem(), -4007),
        (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", -4007),
        (lambda: csr_pem(make_csr(rsa_key(1024), NAMES)), -4009),
        (lambda: csr_pem(make_csr(ec_key("P-224"), NAMES)), -4009),
        (lambda: csr_pem(make_csr(close_prime_rsa_key(), NAMES)), -4009),
    ],
    ids=["sha1", "broken-signature", "truncated", "rsa-1024", "p-224", "fermat"],
)
def test_4007_4009_csr_and_key_refused(
    api: ZeepService, installation: Installation, partner: Partner, make_csr_text: Any, code: int
) -> None:
    order = _order(installation, partner)
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, make_csr_text()))
    _refused(result, code, "CSR")


def test_4010_names_not_validated(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner)
    in_csr = api.service.Reissue(
        Request=order_request(partner, order.partner_order_id, fresh_key_csr(("example.com", "evil.example.org")))
    )
    _refused(in_csr, -4010, "CSR")
    in_dns_names = api.service.Reissue(
        Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES),
                              DNSNames={"DNSName": ["example.com", "mail.example.com"]})
    )
    _refused(in_dns_names, -4010, "DNSNames")


def test_4011_revoked_certificate(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner)
    _revoke_current_certificate(installation, order.order_id)
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES)))
    _refused(result, -4011, None)


def test_4012_order_not_completed(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner)
    _set_order(installation, order.order_id, status=OrderStatus.CANCELLED)
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES)))
    _refused(result, -4012, None)


def test_4013_term_ended(api: ZeepService, installation: Installation, partner: Partner) -> None:
    order = _order(installation, partner)
    _set_order(installation, order.order_id, term_end=datetime.now(UTC) - timedelta(days=1))
    result = api.service.Reissue(Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES)))
    _refused(result, -4013, None)


# ---------------------------------------------------------------------- -9000 over the wire

FAILING_NAME = "fail-injection.example.com"


def _inject_certificate_insert_failure(installation: Installation) -> None:
    """A real database failure, after signing: the certificate row naming FAILING_NAME cannot be written."""
    statements = {
        "sqlite": [
            f"CREATE TRIGGER IF NOT EXISTS inject_failure BEFORE INSERT ON certificates "
            f"WHEN instr(NEW.names, '{FAILING_NAME}') > 0 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        ],
        "postgresql": [
            "CREATE OR REPLACE FUNCTION inject_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF strpos(NEW.names, '{FAILING_NAME}') > 0 THEN RAISE EXCEPTION 'injected failure'; END IF; "
            "RETURN NEW; END $$",
            "DROP TRIGGER IF EXISTS inject_failure ON certificates",
            "CREATE TRIGGER inject_failure BEFORE INSERT ON certificates FOR EACH ROW "
            "EXECUTE FUNCTION inject_failure()",
        ],
    }[installation.backend]
    with installation.ra.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_an_internal_failure_is_a_server_fault_with_an_incident_in_the_log(
    api: ZeepService, server: RunningServer, installation: Installation, partner: Partner
) -> None:
    from zeep.exceptions import Fault

    _inject_certificate_insert_failure(installation)
    order = _order(installation, partner, names=("example.com", FAILING_NAME), csr=fresh_key_csr(["example.com"]))
    with pytest.raises(Fault) as caught:
        api.service.Reissue(Request=order_request(partner, order.partner_order_id, fresh_key_csr([FAILING_NAME])))
    message = caught.value.message
    incident = next(word for word in message.replace(",", " ").split() if word.startswith("INC-"))
    assert "injected" not in message and "certificates" not in message and "Traceback" not in message
    detail = caught.value.detail
    assert detail is not None
    assert detail.findtext(".//{*}ErrorCode") == "-9000"
    assert detail.findtext(".//{*}IncidentID") == incident
    assert incident in server.log()
    with installation.ra.sessions() as session:
        current = session.scalar(select(Order.current_certificate_id).where(Order.order_id == order.order_id))
        serial = session.scalar(select(Certificate.serial).where(Certificate.id == current))
    assert serial == order.certificate.serial  # nothing changed
    assert api.service.Hello(Input="still here") is not None
