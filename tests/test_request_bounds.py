"""Issue 6, defects 1 and 8: every untrusted text field is measured before anything reads it,
no check backtracks on request data, and names, codes and countries are checked whole.

Each check is fed the worst input at its bound and the reproducers of the issue (an e-mail of
``x@`` + 110,000 dots + ``@``, a CSR of ``"-----BEGIN A"`` repeated up to the CSR limit): it must
be refused with the right code and field, and in well under a second where it took seconds or
half a minute. The RA's use cases run on SQLite and PostgreSQL; one test goes over the wire to
the real gunicorn server.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from api_support import RunningServer, ZeepService, order_request, running_server, zeep_service
from conftest import TestInstallation as Installation
from factory import EV_ORGANIZATION, fresh_key_csr, new_order, new_partner
from factory import TestPartner as Partner
from soap_service.api.requestlog import MAX_FIELD_CHARS
from soap_service.api.requestlog import field as log_field
from soap_service.config import Secret
from soap_service.errors import CSRUnreadable, InvalidField, ServiceError
from soap_service.ra import fields
from soap_service.ra.csr import MAX_CSR_CHARS, parse_csr
from soap_service.ra.names import is_dns_name, order_names
from soap_service.ra.orders import Contact, NewOrder, create_order
from soap_service.ra.partners import create_partner
from soap_service.ra.queries import order_for_partner
from soap_service.ra.reissue import PartnerRef, Reissuer, ReissueRequest, check_request_fields
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import partners as partner_store

T = TypeVar("T")

PURE_LIMIT = 0.5
"""Seconds a check without I/O may take on its worst input: the linear code needs at most ~10 ms
(the old PEM pattern took 3-5 s, the old e-mail pattern ~30 s)."""
RA_LIMIT = 5.0
"""Seconds a refused RA call may take (argon2 and an audit row: under 0.5 s); the e-mail pattern took ~30 s."""
RA_UNAUTHENTICATED_LIMIT = 1.0
"""Seconds a refused RA call without a password hash may take (an audit row: tens of ms)."""
WIRE_LIMIT = 20.0
"""Seconds a refused request over HTTP may take; the old e-mail pattern held the worker 30 s."""

DOTTED_EMAIL = "x@" + "." * 110_000 + "@"
"""The issue's reproducer: quadratic backtracking in the old e-mail pattern (~30 s)."""
BEGIN_FLOOD = "-----BEGIN A" * (MAX_CSR_CHARS // len("-----BEGIN A"))
"""The issue's CSR reproducer at the CSR limit (5461 repetitions): ~3 s in the old PEM pattern."""


def within(limit: float, call: Callable[[], T]) -> T:
    """``call()``'s result or exception, failing the test if it runs longer than ``limit`` seconds.

    The call runs in a thread so that a hang (an HTTP request) fails the test instead of the
    suite; a pattern that holds the GIL returns late and fails on the elapsed time.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.perf_counter() - started
    assert not thread.is_alive(), f"still running after {limit:g} s"
    assert elapsed <= limit, f"took {elapsed:.1f} s, more than {limit:g} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def refusal(limit: float, call: Callable[[], object]) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        within(limit, call)
    return caught.value


def assert_invalid(error: ServiceError, field: str) -> None:
    assert isinstance(error, InvalidField), error
    assert (error.code, error.field) == (-2019, field), (error.code, error.field, error.message)


# ------------------------------------------------------------------------------ pure checks


@pytest.mark.parametrize(
    "address",
    [
        DOTTED_EMAIL,
        "x@" + "." * 251 + "@",  # the same shape at the bound
        "x@" + "a." * 125 + "a@",
        "@" * 254,
        "a" * 64 + "@" + ("b" * 63 + ".") * 2 + "c" * 58 + "\n@",
        " " * 300 + "a@example.com",
    ],
    ids=["reproducer", "dots-at-bound", "labels-at-bound", "ats", "inner-newline", "padded"],
)
def test_hostile_e_mail_is_refused_at_once(address: str) -> None:
    error = refusal(PURE_LIMIT, lambda: fields.checked_email(address, "ReissueEmail"))
    assert_invalid(error, "ReissueEmail")
    assert "..." not in error.message and "@@" not in error.message  # the value is not quoted
    assert not within(PURE_LIMIT, lambda: fields.is_email(address))


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("admin@example.com", True),
        ("a" * 64 + "@example.com", True),
        ("a" * 65 + "@example.com", False),
        ("a@" + "b" * 63 + ".com", True),
        ("a@" + "b" * 64 + ".com", False),
        ("first.last+tag@sub.example.co.uk", True),
        ("a@" + ".".join(["b" * 61] * 4), True),  # 2 + 4 * 61 + 3 = 249 characters
        ("a" * 64 + "@" + ".".join(["b" * 61] * 4), False),  # 311 characters
        ("admin@example.com\n", False),
        ("admin@exam ple.com", False),
        ("admin@example", False),
        ("admin@.example.com", False),
        ("admin@example..com", False),
        ("admin@example.com.", False),
        ("@example.com", False),
        ("a@b@example.com", False),
        ("admin@example.com\x00", False),
        ("admin\u00a0@example.com", False),
    ],
)
def test_the_one_e_mail_rule(address: str, valid: bool) -> None:
    assert fields.is_email(address) is valid


def test_e_mail_is_measured_before_it_is_trimmed() -> None:
    assert fields.checked_email("  admin@example.com\r\n", "ReissueEmail") == "admin@example.com"
    error = refusal(PURE_LIMIT, lambda: fields.checked_email("a@example.com" + " " * 250, "Email"))
    assert_invalid(error, "Email")
    assert "longer than 254" in error.message


def _request(**changes: Any) -> ReissueRequest:
    return replace(ReissueRequest("PO-1", fresh_key_csr()), **changes)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"reissue_email": DOTTED_EMAIL}, "ReissueEmail", "longer than 254"),
        ({"reissue_email": "x@" + "." * 251 + "@"}, "ReissueEmail", "not an e-mail address"),
        ({"partner_order_id": "P" * 65}, "PartnerOrderID", "longer than 64"),
        ({"partner_order_id": "P" * 1_000_000}, "PartnerOrderID", "longer than 64"),
        ({"partner_order_id": " \n\t "}, "PartnerOrderID", "missing"),
        ({"signature_hash_algorithm": "SHA256" + " " * 11}, "SignatureHashAlgorithm", "longer than 16"),
        ({"signature_hash_algorithm": "S" * 1_000_000}, "SignatureHashAlgorithm", "longer than 16"),
        ({"signature_hash_algorithm": "TopSecret-42"}, "SignatureHashAlgorithm", "not supported"),
        ({"dns_names": ("example.com",) * 26}, "DNSNames", "more than 25"),
        ({"dns_names": ("example.com",) * 1_000_000}, "DNSNames", "more than 25"),
        ({"dns_names": ("a" * 251 + ".com",)}, "DNSNames", "longer than 254"),
        ({"dns_names": ("." * 1_000_000,)}, "DNSNames", "longer than 254"),
    ],
    ids=[
        "email-reproducer", "email-at-bound", "poid-65", "poid-huge", "poid-blank", "hash-17", "hash-huge",
        "hash-unknown", "names-26", "names-huge", "name-255", "name-huge",
    ],
)
def test_reissue_fields_are_bounded_first(changes: dict[str, Any], field: str, fragment: str) -> None:
    request = _request(**changes)
    error = refusal(PURE_LIMIT, lambda: check_request_fields(request))
    assert_invalid(error, field)
    assert fragment in error.message, error.message
    assert "TopSecret" not in error.message  # a refusal names the field and the rule, never the value


def test_reissue_fields_at_their_bounds_pass() -> None:
    check_request_fields(_request(
        partner_order_id="P" * 64,
        signature_hash_algorithm=" SHA-256 ",
        reissue_email="a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".bbb",  # 254 characters
        dns_names=("a" * 249 + ".com.",) + ("example.com",) * 24,
    ))


def test_an_oversized_csr_is_refused_before_the_other_fields_are_read() -> None:
    request = _request(csr="A" * (MAX_CSR_CHARS + 1), reissue_email=DOTTED_EMAIL, partner_order_id="P" * 100)
    error = refusal(PURE_LIMIT, lambda: check_request_fields(request))
    assert isinstance(error, CSRUnreadable) and (error.code, error.field) == (-4007, "CSR")
    assert f"at most {MAX_CSR_CHARS}" in error.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (BEGIN_FLOOD, "PEM armour is incomplete"),
        ("-----BEGIN A" * 5462, "65544 characters long"),  # the text: over the limit
        ("-----BEGIN A-----" * (MAX_CSR_CHARS // 17), "PEM armour is incomplete"),
        ("-----BEGIN CERTIFICATE REQUEST-----" + "-----END " * ((MAX_CSR_CHARS - 35) // 9),
         "PEM armour is incomplete"),
        ("-----BEGIN CERTIFICATE REQUEST-----" + "-----END a" * ((MAX_CSR_CHARS - 35) // 10),
         "PEM armour is incomplete"),
        ("-----BEGIN A----------END A-----" * (MAX_CSR_CHARS // 32), "2048 PEM blocks"),
        ("-----END A-----" * (MAX_CSR_CHARS // 15), "PEM armour is incomplete"),
        ("A" * (MAX_CSR_CHARS - 1) + "!", "neither PEM nor base64"),
        ("A" * (MAX_CSR_CHARS - 3) + "===", "neither PEM nor base64"),
        (" \t\r\n" * (MAX_CSR_CHARS // 4 - 1) + "A!", "neither PEM nor base64"),
        ("-----BEGIN CERTIFICATE REQUEST-----" + " A" * ((MAX_CSR_CHARS - 69) // 2) + "!"
         + "-----END CERTIFICATE REQUEST-----", "not valid base64"),
    ],
    ids=[
        "begin-flood-at-bound", "begin-flood-issue", "begin-lines", "end-prefixes", "bad-end-labels",
        "many-blocks", "end-lines", "base64-bad-tail", "base64-padding", "whitespace", "pem-body",
    ],
)
def test_hostile_csr_text_is_refused_at_once(text: str, fragment: str) -> None:
    error = refusal(PURE_LIMIT, lambda: parse_csr(text))
    assert isinstance(error, CSRUnreadable) and (error.code, error.field) == (-4007, "CSR"), error
    assert fragment in error.message, error.message


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.com", True),
        ("*.example.com", True),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, True),  # 253 characters
        (".".join(["a" * 63] * 3) + "." + "b" * 62, False),  # 254
        ("a" * 64 + ".com", False),
        ("foo\n.example.com", False),  # defect 8: '$' matched before the newline
        ("example.com\n", False),
        ("foo.example.com\n", False),
        ("-foo.example.com", False),
        ("foo-.example.com", False),
        ("f\u00f6o.example.com", False),
        ("foo..example.com", False),
        ("192.0.2.1", False),
    ],
)
def test_dns_names_are_checked_whole(name: str, valid: bool) -> None:
    assert is_dns_name(name) is valid


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a." * 126 + "a", True),
        ("a." * 126 + "-", False),
        ("a" * 1_000_000 + ".com", False),
        ("." * 1_000_000, False),
        (("-" * 63 + ".") * 4, False),
    ],
    ids=["short-labels", "short-labels-bad-end", "huge-label", "dots", "hyphens"],
)
def test_dns_names_at_their_worst_are_checked_at_once(name: str, valid: bool) -> None:
    assert within(PURE_LIMIT, lambda: is_dns_name(name)) is valid


@pytest.mark.parametrize(
    ("raw_names", "fragment"),
    [
        (("foo\n.example.com",), "is not a DNS name"),
        (("example.com",) * 26, "more than 25"),
        (("a" * 1_000_000 + ".com",), "longer than 254"),
        (("example.com",) * 1_000_000, "more than 25"),
    ],
    ids=["newline", "26-entries", "huge-name", "huge-list"],
)
def test_order_names_are_bounded_and_whole(raw_names: tuple[str, ...], fragment: str) -> None:
    from soap_service.ra.catalogue import PRODUCTS_BY_CODE

    error = refusal(PURE_LIMIT, lambda: order_names(raw_names, PRODUCTS_BY_CODE["TrueBizID"]))
    assert_invalid(error, "DNSNames")
    assert fragment in error.message, error.message


@pytest.mark.parametrize(
    ("check", "value", "valid"),
    [
        (fields.is_partner_code, "P1", True),
        (fields.is_partner_code, "P" * 64, True),
        (fields.is_partner_code, "P" * 65, False),
        (fields.is_partner_code, "P1\n", False),
        (fields.is_partner_code, "P", False),
        (fields.is_partner_code, "-P1", False),
        (fields.is_partner_code, "P\u00e91", False),
        (fields.is_user_name, "api", True),
        (fields.is_user_name, "a" * 128, True),
        (fields.is_user_name, "a" * 129, False),
        (fields.is_user_name, "api\n", False),
        (fields.is_user_name, "api@example.com", True),
        (fields.is_country_code, "US", True),
        (fields.is_country_code, "US\n", False),
        (fields.is_country_code, "us", False),
        (fields.is_country_code, "\u00c4U", False),
    ],
)
def test_codes_are_checked_whole(check: Callable[[str], bool], value: str, valid: bool) -> None:
    assert check(value) is valid


def test_the_request_log_measures_before_matching() -> None:
    assert log_field("PO-1") == "PO-1"
    logged = within(PURE_LIMIT, lambda: log_field("a" * 1_000_000))
    assert logged == '"' + "a" * MAX_FIELD_CHARS + '..."'


# ------------------------------------------------------------------- through the RA, both backends


@pytest.fixture(scope="module")
def partner(installation: Installation) -> Partner:
    return new_partner(installation.ra)


@pytest.fixture(scope="module")
def partner_order_id(installation: Installation, partner: Partner) -> str:
    return new_order(installation.ra, partner).order.partner_order_id


@pytest.mark.parametrize("operation", ["reissue", "validate"])
def test_the_dotted_e_mail_is_refused_by_the_ra_at_once(
    ra: RegistrationAuthority, partner: Partner, partner_order_id: str, operation: str
) -> None:
    request = ReissueRequest(partner_order_id, fresh_key_csr(), reissue_email=DOTTED_EMAIL)
    run = getattr(Reissuer(ra), operation)
    error = refusal(RA_LIMIT, lambda: run(partner.credentials(), request, channel="api"))
    assert_invalid(error, "ReissueEmail")


def test_the_begin_flood_is_refused_by_the_ra_at_once(
    ra: RegistrationAuthority, partner: Partner, partner_order_id: str
) -> None:
    """Past authentication (no argon2 in the time), so that the old pattern's 3-5 s stand out."""
    with ra.readers() as session:
        stored = partner_store.get_partner(session, partner.code)
        assert stored is not None
        ref = PartnerRef(stored.id, stored.code, partner.username)
    request = ReissueRequest(partner_order_id, BEGIN_FLOOD)
    error = refusal(RA_UNAUTHENTICATED_LIMIT, lambda: Reissuer(ra).reissue_for(ref, request, channel="api"))
    assert isinstance(error, CSRUnreadable) and (error.code, error.field) == (-4007, "CSR")
    assert "PEM armour is incomplete" in error.message


@pytest.mark.parametrize(
    "partner_order_id, fragment",
    [("P" * 65_000, "longer than 64"), ("PO\n-1", "control"), ("PO-\x00", "control"), (" \t\n ", "missing"),
     ("PO-1\x85", "control"), ("PO-1\u2028", "control"), ("\x9bPO-1", "control")],
)
def test_an_order_read_checks_the_partner_order_id_whole(
    ra: RegistrationAuthority, partner: Partner, partner_order_id: str, fragment: str
) -> None:
    """GetOrderByPartnerOrderID: the ID is bounded before it is trimmed (blanks around it are
    trimmed, as a pretty-printing client sends them), and never looked up with a control
    character in it (-2019, not -4003)."""
    error = refusal(RA_LIMIT, lambda: order_for_partner(ra, partner.credentials(), partner_order_id, channel="api"))
    assert_invalid(error, "PartnerOrderID")
    assert fragment in error.message


def test_the_operator_s_partner_code_is_bounded(ra: RegistrationAuthority, partner_order_id: str) -> None:
    request = ReissueRequest(partner_order_id, fresh_key_csr())
    error = refusal(RA_UNAUTHENTICATED_LIMIT, lambda: Reissuer(ra).reissue_by_operator("P" * 100_000, request))
    assert_invalid(error, "PartnerCode")
    assert "longer than 64" in error.message  # not looked up, not quoted back


def _new_order(partner: Partner, **changes: Any) -> NewOrder:
    order = NewOrder(
        partner_code=partner.code,
        partner_order_id="PO-" + secrets.token_hex(6),
        product="TrueBizIDEV",
        names=("example.com",),
        csr=fresh_key_csr(),
        contacts=(Contact("admin", "admin@example.com"), Contact("technical", "tech@example.com")),
        organization=EV_ORGANIZATION,
    )
    return replace(order, **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"names": ("foo\n.example.com",)}, "DNSNames"),
        ({"names": ("example.com",) * 26}, "DNSNames"),
        ({"organization": replace(EV_ORGANIZATION, country="US\n")}, "Country"),
        ({"organization": replace(EV_ORGANIZATION, jurisdiction_country="US\n")}, "JurisdictionCountry"),
        ({"organization": replace(EV_ORGANIZATION, name="O" * 65)}, "Organization"),
        ({"organization": replace(EV_ORGANIZATION, locality="L" * 129)}, "Locality"),
        ({"organization": replace(EV_ORGANIZATION, business_category="B" * 65)}, "BusinessCategory"),
        ({"organization": replace(EV_ORGANIZATION, registration_number="1" * 65)}, "RegistrationNumber"),
        ({"contacts": (Contact("admin", "admin@example.com\n"), Contact("technical", "t@example.com"))},
         "Contacts"),
        ({"contacts": (Contact("admin", DOTTED_EMAIL), Contact("technical", "t@example.com"))}, "Email"),
        ({"contacts": (Contact("admin", "a@example.com", first_name="F" * 101),
                       Contact("technical", "t@example.com"))}, "Contacts"),
        ({"contacts": (Contact("admin", "a@example.com", phone="1" * 41),
                       Contact("technical", "t@example.com"))}, "Contacts"),
        ({"partner_order_id": "P" * 1_000_000}, "PartnerOrderID"),
        ({"product": "X" * 1_000_000}, "Product"),
        ({"partner_code": "P" * 1_000_000}, "PartnerCode"),
    ],
    ids=[
        "name-newline", "names-26", "country-newline", "jurisdiction-newline", "organization-65",
        "locality-129", "business-category-65", "registration-number-65", "email-newline", "email-dotted",
        "first-name-101", "phone-41", "poid-huge", "product-huge", "partner-code-huge",
    ],
)
def test_order_entry_fields_are_bounded_and_whole(
    ra: RegistrationAuthority, partner: Partner, changes: dict[str, Any], field: str
) -> None:
    new = _new_order(partner, **changes)
    error = refusal(RA_LIMIT, lambda: create_order(ra, new))
    assert_invalid(error, field)


@pytest.mark.parametrize(
    ("code", "name", "username", "field"),
    [
        ("P{}\n", "Partner", "api", "PartnerCode"),
        ("P{}", "Partner", "api\n", "UserName"),
        ("P{}", "N" * 201, "api", "name"),
        ("P{}", "Partner\nforged line", "api", "name"),
        ("P{}" + "C" * 1_000_000, "Partner", "api", "PartnerCode"),
    ],
    ids=["code-newline", "username-newline", "name-201", "name-newline", "code-huge"],
)
def test_partner_fields_are_bounded_and_whole(
    ra: RegistrationAuthority, code: str, name: str, username: str, field: str
) -> None:
    code = code.format(secrets.token_hex(4).upper())
    error = refusal(RA_LIMIT, lambda: create_partner(
        ra, code=code, name=name, username=username, password=Secret("pw-" + secrets.token_urlsafe(16))
    ))
    assert_invalid(error, field)


# ------------------------------------------------------------------------------ over the wire


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> ZeepService:
    return zeep_service(server.wsdl_url, server.url)


@pytest.mark.parametrize("operation", ["Reissue", "ValidateOrderParameters"])
def test_the_dotted_e_mail_over_the_wire_is_a_2019_on_reissue_email(
    api: ZeepService, partner: Partner, partner_order_id: str, operation: str
) -> None:
    message = order_request(partner, partner_order_id, fresh_key_csr(), ReissueEmail=DOTTED_EMAIL)
    call = getattr(api.service, operation)
    result = within(WIRE_LIMIT, lambda: call(Request=message))
    header = result.OrderResponseHeader
    errors = [(e.ErrorCode, e.ErrorField) for e in header.Errors.Error]
    assert (header.SuccessCode, errors) == (-2019, [(-2019, "ReissueEmail")])
