"""The End User Portal in a real browser (docs/design.md, "End User Portal"), on SQLite and
PostgreSQL: Debian's chromium, headless, driven by Playwright's sync API, against a real server
on a loopback port whose mail goes by SMTP to a real aiosmtpd server on another loopback port.
The whole flow as a person does it (labels, buttons, the e-mailed link, the PKCS#7 download),
errors tied to their fields, the keyboard's way in, and an access e-mail that waits out an SMTP
server that is down. The captcha's answer is fixed by the test setting SOAP_SERVICE_TEST_CAPTCHA.

Screenshots of every page (docs/screenshots/*.png, the README shows two) are taken at every run
into a temporary folder; SOAP_SERVICE_TEST_SCREENSHOTS=<folder> writes them there instead
(`SOAP_SERVICE_TEST_SCREENSHOTS=docs/screenshots` refreshes the checked-in ones), so that a test
run leaves the working tree as it found it. Skipped when /usr/bin/chromium is missing
(`apt-get install chromium`; .ci/run installs it)."""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from api_support import RunningServer, running_server
from conftest import TestInstallation as Installation
from factory import fresh_key_csr, new_order, new_partner

CHROMIUM = Path("/usr/bin/chromium")
CAPTCHA = "12345"
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 390, "height": 844}
MAIL_WAIT = 30.0
RETRIED_MAIL_WAIT = 45.0  # the first retry comes 30 s after the failed attempt
NAMES = ("ssl123.example.com", "www.ssl123.example.com")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM}: `apt-get install chromium` (CI installs it)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
controller = pytest.importorskip("aiosmtpd.controller")
Page = sync_api.Page
expect = sync_api.expect


# -- the SMTP server ---------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps every message received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self._lock:
            self._messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, recipient: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self._messages if m["To"] == recipient]


class MailServer:
    """A real SMTP server on a loopback port, which a test may stop and start again on that port."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = controller.Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuses(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) != 0

    def wait_for(self, recipient: str, timeout: float = MAIL_WAIT) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if received := self.inbox.to(recipient):
                return received
            time.sleep(0.2)
        raise AssertionError(f"no e-mail to {recipient} within {timeout:.0f} s")


def link_path(message: EmailMessage) -> str:
    """The path of the access link in an e-mail (its host is the public URL's, not the test server's)."""
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = next(line.strip() for line in body.splitlines() if "/portal/" in line)
    return urlsplit(link).path


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(installation: Installation, mail: MailServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=4,
                              extra_env={"SOAP_SERVICE_TEST_CAPTCHA": CAPTCHA,
                                         "SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT": "1000",
                                         "SOAP_SERVICE_PORTAL_MAILS_PER_CLIENT": "1000",
                                         "SOAP_SERVICE_SMTP_URL": mail.url})


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, server: RunningServer) -> Iterator[Page]:
    context = chromium.new_context(base_url=server.base_url, viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("SOAP_SERVICE_TEST_SCREENSHOTS")
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def contact() -> str:
    """An admin contact address of its own (the per-address limits count each one)."""
    return f"admin-{secrets.token_hex(4)}@example.com"


def thawte_order(installation: Installation, address: str) -> Any:
    return new_order(installation.ra, new_partner(installation.ra), product="SSL123", names=NAMES,
                     admin_email=address)


def search(page: Page, query: str, address: str, answer: str = CAPTCHA, portal: str = "thawte") -> None:
    """The lookup form, filled by its labels, and Search pressed."""
    page.goto(f"/portal/{portal}/")
    page.get_by_label("Common Name").fill(query)
    page.get_by_label("Your e-mail address").fill(address)
    page.get_by_label("The five-digit number in the picture").fill(answer)
    page.get_by_role("button", name="Search").click()


def request_access(page: Page, order_id: str) -> None:
    page.get_by_role("button", name=f"Request access to order {order_id}").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("a link to it is on its way")


def sign_in(page: Page, mail: MailServer, query: str, address: str, order_id: str) -> None:
    search(page, query, address)
    request_access(page, order_id)
    (message,) = mail.wait_for(address)
    open_link(page, link_path(message))
    expect(page.get_by_role("heading", name=f"Order {order_id}")).to_be_visible()


def open_link(page: Page, path: str) -> None:
    """Follow the e-mailed link: its page spends nothing (a mail scanner may fetch it), its button does."""
    page.goto(path)
    expect(page.get_by_role("heading", name="Open your order")).to_be_visible()
    page.get_by_role("button", name="Open the order").click()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


# -- the tests ---------------------------------------------------------------------------------


def test_a_person_finds_the_order_follows_the_emailed_link_reissues_and_downloads_the_pkcs7(
    page: Page, chromium: Any, server: RunningServer, mail: MailServer, installation: Installation,
    screenshots: Path
) -> None:
    address = contact()
    created = thawte_order(installation, address)
    order_id = created.order.order_id

    page.goto("/portal/thawte/")
    expect(page.get_by_role("heading", name="Find your order")).to_be_visible()
    page.screenshot(path=screenshots / "lookup.png", full_page=True)
    search(page, "SSL123.example.com", address)
    expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=order_id)).to_contain_text("SSL123")
    page.screenshot(path=screenshots / "results.png", full_page=True)

    page.get_by_role("button", name="Request Access").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    (message,) = mail.wait_for(address)
    assert message["Subject"] and "/portal/thawte/access/" in link_path(message)
    open_link(page, link_path(message))
    expect(page.get_by_role("heading", name=f"Order {order_id}")).to_be_visible()
    assert urlsplit(page.url).path == "/portal/thawte/order"
    expect(page.locator("main")).to_contain_text(created.certificate.serial)
    page.screenshot(path=screenshots / "order.png", full_page=True)

    page.get_by_role("link", name="Reissue Certificate").click()
    expect(page.get_by_role("heading", name="Reissue certificate")).to_be_visible()
    page.screenshot(path=screenshots / "reissue.png", full_page=True)
    page.get_by_label("Certificate Signing Request (PEM)").fill(fresh_key_csr(("ssl123.example.com",)))
    page.get_by_label("I have read and accept the Subscriber Agreement").check()
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", name="Certificate reissued")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("has a new certificate")
    page.screenshot(path=screenshots / "reissued.png", full_page=True)
    page.set_viewport_size(PHONE)  # the serial numbers wrap: no sideways scroll on a phone
    assert no_horizontal_scroll(page), "the reissued page scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1100, "height": 800})

    with page.expect_download() as started:
        page.get_by_role("link", name="Download PKCS#7 (with chain)").click()
    download = started.value
    assert download.suggested_filename.startswith(order_id) and download.suggested_filename.endswith(".p7b")
    bundle = pkcs7.load_der_pkcs7_certificates(Path(download.path()).read_bytes())
    (leaf,) = [c for c in bundle if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca]
    assert format(leaf.serial_number, "x") != created.certificate.serial
    (issuer,) = [c for c in bundle if c.subject == leaf.issuer]
    leaf.verify_directly_issued_by(issuer)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["ssl123.example.com"]

    phone = chromium.new_context(base_url=server.base_url, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        small = phone.new_page()
        small.goto("/portal/thawte/")
        expect(small.get_by_role("heading", name="Find your order")).to_be_visible()
        small.screenshot(path=screenshots / "lookup-phone.png", full_page=True)
        assert no_horizontal_scroll(small), "the lookup page scrolls sideways at 390 px"
    finally:
        phone.close()


def test_a_wrong_captcha_is_shown_by_its_field_and_described_by_it(page: Page, installation: Installation) -> None:
    address = contact()
    created = thawte_order(installation, address)
    search(page, created.order.order_id, address, answer="54321")
    answer = page.get_by_label("The five-digit number in the picture")
    expect(answer).to_have_attribute("aria-invalid", "true")
    described_by = answer.get_attribute("aria-describedby")
    assert described_by, "the captcha field names no description"
    (message_id,) = described_by.split()
    message = page.locator(f"#{message_id}")
    expect(message).to_be_visible()
    expect(message).to_contain_text("did not match the picture")
    expect(page.locator("main")).not_to_contain_text(created.order.order_id)
    expect(page.get_by_label("Common Name")).to_have_value(created.order.order_id)  # what was typed stays


def test_an_unticked_agreement_is_shown_next_to_its_checkbox(page: Page, mail: MailServer,
                                                             installation: Installation) -> None:
    address = contact()
    created = thawte_order(installation, address)
    sign_in(page, mail, created.order.order_id, address, created.order.order_id)
    page.get_by_role("link", name="Reissue Certificate").click()
    page.get_by_label("Certificate Signing Request (PEM)").fill(fresh_key_csr(("ssl123.example.com",)))
    page.get_by_role("button", name="Submit").click()
    checkbox = page.get_by_label("I have read and accept the Subscriber Agreement")
    expect(checkbox).not_to_be_checked()
    expect(checkbox).to_have_attribute("aria-describedby", "agreement-error")
    message = page.locator("#agreement-error")
    expect(message).to_be_visible()
    expect(message).to_contain_text("accept the Subscriber Agreement")
    box, said = checkbox.bounding_box(), message.bounding_box()
    assert box and said
    assert 0 <= said["y"] - (box["y"] + box["height"]) < 40, (box, said)  # right under it, nothing between
    assert page.evaluate("document.getElementById('agreement').parentElement"
                         " === document.getElementById('agreement-error').parentElement")
    # and nothing was reissued: the order still has its one certificate
    page.get_by_role("link", name=f"Order {created.order.order_id}").click()
    expect(page.locator("table tbody tr")).to_have_count(1)


def test_the_keyboard_reaches_the_skip_link_then_the_first_field(page: Page) -> None:
    page.goto("/portal/thawte/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()  # shown while it has the focus
    page.keyboard.press("Tab")
    expect(page.get_by_label("Common Name")).to_be_focused()
    # following the skip link lands in the content: the next Tab is the first field again
    page.goto("/portal/thawte/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Common Name")).to_be_focused()


def test_an_access_email_waits_out_an_smtp_server_that_is_down_and_arrives_once(
    page: Page, mail: MailServer, server: RunningServer, installation: Installation
) -> None:
    address = contact()
    created = thawte_order(installation, address)
    search(page, created.order.order_id, address)
    mark = server.log_mark()
    mail.stop()
    try:
        assert mail.refuses()
        request_access(page, created.order.order_id)  # the same confirmation as when the server is up
        deadline = time.monotonic() + 10
        while "attempt 1 failed" not in server.log(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "attempt 1 failed" in server.log(mark), server.log(mark)
        assert not mail.inbox.to(address)
    finally:
        mail.start()
    (message,) = mail.wait_for(address, RETRIED_MAIL_WAIT)
    assert "/portal/thawte/access/" in link_path(message)
    time.sleep(5)
    assert len(mail.inbox.to(address)) == 1, "the access e-mail arrived twice"
    open_link(page, link_path(message))
    expect(page.get_by_role("heading", name=f"Order {created.order.order_id}")).to_be_visible()
