"""The End User Portal over HTTP (docs/design.md, "End User Portal"), on SQLite and PostgreSQL: a
real server on a loopback port, its pages read as a browser without JavaScript would read them
(forms posted with their hidden fields and the cookies the server set), the access e-mail read
from the outbox folder (no SMTP server configured) and its link followed, through to a reissued
certificate downloaded as PKCS#7 that names the issuing CA. The captcha's answer is fixed by the
test setting SOAP_SERVICE_TEST_CAPTCHA."""

from __future__ import annotations

import email
import email.policy
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import html
from sqlalchemy import select

from api_support import RunningServer, request, running_server
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner
from ocsp_support import revoke_row
from soap_service.storage.models import AuditEvent

CAPTCHA = "12345"


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=4,
                              extra_env={"SOAP_SERVICE_TEST_CAPTCHA": CAPTCHA,
                                         "SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT": "1000",
                                         "SOAP_SERVICE_PORTAL_MAILS_PER_CLIENT": "1000"})


def contact() -> str:
    """An admin contact address of its own (the per-address limits count each one)."""
    return f"admin-{secrets.token_hex(4)}@example.com"


@dataclass
class Browser:
    """Cookies and the last page, as a browser without JavaScript keeps them."""

    server: RunningServer
    cookies: dict[str, str] = field(default_factory=dict)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def go(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Browser:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        self.status, self.headers, self.body = request(self.server, method, path, body, headers)
        for name, value in self.headers.items():
            if name.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    if morsel["max-age"] == "0":
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = morsel.value
        return self

    def page(self) -> html.HtmlElement:
        return html.fromstring(self.body)

    def text(self) -> str:
        return " ".join(self.page().text_content().split())

    def submit(self, form_index: int = 0, multipart: bool = False, **fields: str) -> Browser:
        form = self.page().forms[form_index]
        values = {i.name: i.value or "" for i in form.inputs
                  if i.name and getattr(i, "type", "textarea") in ("hidden", "text", "email")}
        values.update(fields)
        if multipart:
            boundary = "portal-test-boundary"
            parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     for k, v in values.items()]
            body = ("".join(parts) + f"--{boundary}--\r\n").encode()
            return self.go("POST", form.action, body, f"multipart/form-data; boundary={boundary}")
        return self.go("POST", form.action, urlencode(values).encode(), "application/x-www-form-urlencoded")


def outbox_link(installation: Installation, recipient: str, before: set[Path]) -> str:
    """The link of the newest access e-mail to ``recipient`` written to the outbox folder."""
    folder = Path(installation.environ["SOAP_SERVICE_DATA_DIR"]) / "outbox"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for path in sorted(set(folder.glob("*.eml")) - before):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == recipient:
                body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                link = next(line.strip() for line in body.splitlines() if "/portal/" in line)
                return urlsplit(link).path
        time.sleep(0.1)
    raise AssertionError(f"no access e-mail to {recipient} in {folder}")


def follow(browser: Browser, link: str) -> Browser:
    """The e-mailed link's page, then its "Open the order" button."""
    browser.go("GET", link)
    assert browser.status == 200, browser.text()
    return browser.submit()


def outbox_files(installation: Installation) -> set[Path]:
    return set((Path(installation.environ["SOAP_SERVICE_DATA_DIR"]) / "outbox").glob("*.eml"))


def find(browser: Browser, query: str, address: str, answer: str = CAPTCHA, portal: str = "geotrust") -> Browser:
    browser.go("GET", f"/portal/{portal}/")
    assert browser.status == 200
    return browser.submit(query=query, email=address, captcha_answer=answer)


def signed_in(server: RunningServer, installation: Installation, order_names: tuple[str, ...] = ("example.com",)
              ) -> tuple[Browser, object]:
    partner = new_partner(installation.ra)
    address = contact()
    created = new_order(installation.ra, partner, names=order_names, admin_email=address)
    browser = Browser(server)
    before = outbox_files(installation)
    find(browser, created.order.order_id, address)
    browser.submit()  # Request Access
    assert browser.status == 200, browser.text()
    follow(browser, outbox_link(installation, address, before))
    assert browser.status == 303 and browser.headers.get("location", "").endswith("/order")
    return browser, created


def test_from_the_lookup_to_a_downloaded_reissued_certificate(server: RunningServer, installation: Installation
                                                               ) -> None:
    partner = new_partner(installation.ra)
    address = contact()
    created = new_order(installation.ra, partner, names=("portal-flow.example.com", "www.portal-flow.example.com"),
                        admin_email=address)
    browser = Browser(server)
    find(browser, "WWW.portal-flow.example.com", address.upper())
    assert browser.status == 200
    assert created.order.order_id in browser.text() and "Request Access" in browser.text()
    before = outbox_files(installation)
    browser.submit()
    assert "Check your e-mail" in browser.text()
    link = outbox_link(installation, address, before)  # to the address as the order holds it, not as typed
    follow(browser, link)
    assert browser.status == 303 and "HttpOnly" in browser.headers.get("set-cookie", "")
    browser.go("GET", "/portal/geotrust/order")
    assert browser.status == 200
    assert created.order.order_id in browser.text() and created.certificate.serial in browser.text()
    assert "(empty: a domain-validated certificate" in browser.text()  # a DV leaf's subject
    browser.go("GET", "/portal/geotrust/reissue")
    assert "Subscriber Agreement" in browser.text() and "does not revoke the original" in browser.text()
    browser.submit(1, multipart=True, csr=fresh_key_csr(("portal-flow.example.com",)), agreement="yes")
    assert browser.status == 200, browser.text()
    assert "has a new certificate" in browser.text()
    browser.go("GET", "/portal/geotrust/order/certificate.p7b")
    assert browser.status == 200 and browser.headers["content-type"] == "application/pkcs7-mime"
    bundle = pkcs7.load_der_pkcs7_certificates(browser.body)  # a SET OF: in DER order, not the chain's
    (leaf,) = [c for c in bundle if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca]
    assert format(leaf.serial_number, "x") != created.certificate.serial
    (issuer,) = [c for c in bundle if c.subject == leaf.issuer]
    leaf.verify_directly_issued_by(issuer)
    assert len(bundle) == 3  # the leaf, the issuing CA, the root
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["portal-flow.example.com"]
    with installation.ra.readers() as session:
        actions = [(e.action, e.outcome) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.channel == "portal", AuditEvent.order_id == created.order.order_id)
            .order_by(AuditEvent.id))]
    assert ("portal.link_used", "success") in actions and ("reissue", "success") in actions


def test_a_wrong_or_reused_captcha_shows_the_form_again_and_finds_nothing(server: RunningServer,
                                                                           installation: Installation) -> None:
    created = new_order(installation.ra, new_partner(installation.ra))
    browser = find(Browser(server), created.order.order_id, "admin@example.com", answer="54321")
    assert browser.status == 400 and "did not match the picture" in browser.text()
    assert created.order.order_id not in browser.text()
    answer_field = browser.page().get_element_by_id("captcha_answer")
    assert answer_field.get("aria-describedby") == "captcha-error"
    # the same challenge twice: the second time it is spent
    browser.go("GET", "/portal/geotrust/")
    form = browser.page().forms[0]
    fields = {i.name: i.value or "" for i in form.inputs if i.name}
    fields.update(query=created.order.order_id, email="admin@example.com", captcha_answer=CAPTCHA)
    body = urlencode(fields).encode()
    first = browser.go("POST", form.action, body, "application/x-www-form-urlencoded").status
    second = browser.go("POST", form.action, body, "application/x-www-form-urlencoded")
    assert first == 200 and second.status == 400 and "did not match the picture" in second.text()


def test_not_a_contact_and_no_such_order_read_the_same(server: RunningServer, installation: Installation) -> None:
    created = new_order(installation.ra, new_partner(installation.ra))
    not_contact = find(Browser(server), created.order.order_id, "stranger@example.org").text()
    no_order = find(Browser(server), "no-such-order.example", "admin@example.com").text()
    assert not_contact == no_order and created.order.order_id not in not_contact


def test_another_brand_familys_portal_finds_nothing(server: RunningServer, installation: Installation) -> None:
    created = new_order(installation.ra, new_partner(installation.ra))  # QuickSSLPremium: GeoTrust
    assert created.order.order_id not in find(Browser(server), created.order.order_id, "admin@example.com",
                                              portal="thawte").text()
    assert created.order.order_id in find(Browser(server), created.order.order_id, "admin@example.com",
                                          portal="rapidssl").text()


def test_a_link_works_once(server: RunningServer, installation: Installation) -> None:
    partner = new_partner(installation.ra)
    created = new_order(installation.ra, partner)
    browser = Browser(server)
    before = outbox_files(installation)
    find(browser, created.order.order_id, "tech@example.com").submit()
    link = outbox_link(installation, "tech@example.com", before)
    scanner = Browser(server).go("GET", link)  # a mail scanner fetching the link spends nothing
    assert scanner.status == 200 and "Open the order" in scanner.text()
    assert follow(Browser(server), link).status == 303
    again = follow(Browser(server), link)
    assert again.status == 403 and "expired or was already used" in again.text()
    forged = Browser(server).go("POST", link, b"csrf=x", "application/x-www-form-urlencoded")
    assert forged.status == 403 and "no longer valid" in forged.text()


def test_a_form_without_its_csrf_token_changes_nothing(server: RunningServer, installation: Installation) -> None:
    browser, _created = signed_in(server, installation)
    browser.go("GET", "/portal/geotrust/reissue")
    browser.submit(1, multipart=True, csr=fresh_key_csr(), agreement="yes", csrf="forged")
    assert browser.status == 403 and "no longer valid" in browser.text()
    lookup = Browser(server).go("POST", "/portal/geotrust/lookup", urlencode(
        {"query": "x.example", "email": "a@example.com", "captcha_answer": CAPTCHA}).encode(),
        "application/x-www-form-urlencoded")
    assert lookup.status == 403


def test_an_unticked_agreement_or_a_bad_csr_is_shown_by_its_field_and_reissues_nothing(
    server: RunningServer, installation: Installation
) -> None:
    browser, _created = signed_in(server, installation)
    browser.go("GET", "/portal/geotrust/reissue")
    browser.submit(1, multipart=True, csr=fresh_key_csr())
    assert browser.status == 400 and "accept the Subscriber Agreement" in browser.text()
    assert browser.page().get_element_by_id("agreement").get("aria-describedby") == "agreement-error"
    browser.submit(1, multipart=True, csr="-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n", agreement="yes")
    assert browser.status == 400 and "Code -4007" in browser.text()
    assert browser.page().get_element_by_id("csr").get("aria-describedby") == "csr-error csr-code"
    assert browser.page().get_element_by_id("agreement").get("checked") is not None  # kept ticked
    browser.go("GET", "/portal/geotrust/order")
    assert browser.text().count("valid") >= 1
    assert len(browser.page().xpath("//table[last()]/tbody/tr")) == 1  # still one certificate


def test_signing_out_ends_the_session_at_once(server: RunningServer, installation: Installation) -> None:
    browser, _created = signed_in(server, installation)
    assert browser.go("GET", "/portal/geotrust/order").status == 200
    session_cookie = browser.cookies["portal_session"]
    browser.submit(0)  # the header's sign-out form
    assert browser.status == 200 and "signed out" in browser.text()
    replay = Browser(server, cookies={"portal_session": session_cookie})
    assert replay.go("GET", "/portal/geotrust/order").status == 403


def test_a_revoked_current_certificate_cannot_be_reissued_here_either(server: RunningServer,
                                                                       installation: Installation) -> None:
    browser, created = signed_in(server, installation)
    revoke_row(installation.ra, int(created.certificate.serial, 16), "superseded")
    browser.go("GET", "/portal/geotrust/reissue")
    browser.submit(1, multipart=True, csr=fresh_key_csr(), agreement="yes")
    assert browser.status == 400 and "Code -4011" in browser.text()


def test_pages_are_plain_html_with_the_brands_name(server: RunningServer) -> None:
    for slug, name in (("symantec", "Symantec"), ("thawte", "Thawte"), ("geotrust", "GeoTrust"),
                       ("rapidssl", "RapidSSL")):
        browser = Browser(server).go("GET", f"/portal/{slug}/")
        assert browser.status == 200 and browser.headers["content-type"].startswith("text/html")
        assert f"{name} End User Portal" in browser.text()
        assert not browser.page().xpath("//script")
        assert "default-src 'none'" in browser.headers["content-security-policy"]
        labels = {label.get("for") for label in browser.page().xpath("//label")}
        assert {"query", "email", "captcha_answer"} <= labels
    assert Browser(server).go("GET", "/portal/nosuch/").status == 404
    assert Browser(server).go("GET", "/portal/static/portal.css").status == 200


def test_reusing_the_current_key_reissues_with_the_warning_shown(server: RunningServer,
                                                                 installation: Installation) -> None:
    """Warning 1001 (the key of the current certificate again) is shown on the result page."""
    key = ec.generate_private_key(ec.SECP256R1())
    address = contact()
    created = new_order(installation.ra, new_partner(installation.ra), names=("reuse.example.com",),
                        csr=fresh_key_csr(("reuse.example.com",), key=key), admin_email=address)
    browser = Browser(server)
    before = outbox_files(installation)
    find(browser, created.order.order_id, address).submit()
    follow(browser, outbox_link(installation, address, before))
    browser.go("GET", "/portal/geotrust/reissue")
    again = fresh_key_csr(("reuse.example.com",), key=key, common_name="reuse.example.com")
    browser.submit(1, multipart=True, csr=again, agreement="yes")
    assert browser.status == 200, browser.text()
    assert "has a new certificate" in browser.text() and "(code 1001)" in browser.text()


def test_cookies_are_signed_and_an_unsigned_or_planted_one_counts_for_nothing(server: RunningServer,
                                                                              installation: Installation) -> None:
    browser, _created = signed_in(server, installation)
    signed = browser.cookies["portal_session"]
    token, _, _signature = signed.rpartition(".")
    for forged in (token, token + ".AAAAAAAAAAAAAAAAAAAAAA", signed + "x"):
        assert Browser(server, cookies={"portal_session": forged}).go("GET", "/portal/geotrust/order").status == 403
    assert Browser(server, cookies={"portal_session": signed}).go("GET", "/portal/geotrust/order").status == 200
    planted = "A" * 43  # a CSRF value chosen by someone who could set the cookie
    visitor = Browser(server, cookies={"portal_csrf": planted}).go("GET", "/portal/geotrust/")
    assert visitor.cookies["portal_csrf"] != planted
    forged_post = Browser(server, cookies={"portal_csrf": planted}).go(
        "POST", "/portal/geotrust/lookup", urlencode({"csrf": planted, "query": "x.example.com",
                                                      "email": "a@example.com", "captcha_answer": CAPTCHA}).encode(),
        "application/x-www-form-urlencoded")
    assert forged_post.status == 403
