"""The mail outbox and its delivery (soap_service.ra.mail) against a real SMTP server on loopback
(aiosmtpd): a message commits with its transaction, is delivered once, survives a server that is
down, is claimed by one deliverer at a time (docs/design.md, "Concurrency and failures"), and
the SMTP password reaches neither the log nor the database."""

from __future__ import annotations

import dataclasses
import logging
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import delete, event, select

from soap_service.ra.clock import utc_now
from soap_service.ra.mail import MailDelivery, MailDeliveryThread, backoff, check_headers, enqueue_mail, start_delivery
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import MailMessage

PASSWORD = "Sesame-7f3c9-not-in-any-log"


class Recorder:
    """An aiosmtpd handler that keeps every message it accepted."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, recipient: str) -> list[EmailMessage]:
        with self.lock:
            return [message for _, rcpts, message in self.received if recipient in rcpts]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, **kwargs: Any) -> tuple[Controller, Recorder]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, recorder


@pytest.fixture
def smtp() -> Iterator[tuple[int, Recorder]]:
    port = free_port()
    controller, recorder = start_server(port)
    try:
        yield port, recorder
    finally:
        controller.stop()


@pytest.fixture
def outbox_ra(ra: RegistrationAuthority) -> RegistrationAuthority:
    """The installation's RA with an empty outbox (the installation is shared by the tests of a process)."""
    with ra.sessions.begin() as session:
        session.execute(delete(MailMessage))
    return ra


def with_smtp(ra: RegistrationAuthority, url: str | None) -> RegistrationAuthority:
    return dataclasses.replace(ra, settings=dataclasses.replace(ra.settings, smtp_url=url))


def later(ra: RegistrationAuthority, delta: timedelta) -> RegistrationAuthority:
    return dataclasses.replace(ra, clock=lambda: utc_now() + delta)


def enqueue(ra: RegistrationAuthority, recipient: str, subject: str = "Your order", body: str = "Hello.\n") -> int:
    with ra.sessions.begin() as session:
        return enqueue_mail(session, recipient=recipient, subject=subject, body=body, now=ra.clock()).id


def stored(ra: RegistrationAuthority, message_id: int) -> MailMessage:
    with ra.readers() as session:
        message = session.get(MailMessage, message_id)
        assert message is not None
        return message


def test_a_message_is_delivered_once_with_its_headers(outbox_ra, smtp):
    port, recorder = smtp
    ra = with_smtp(outbox_ra, f"smtp://127.0.0.1:{port}")
    message_id = enqueue(ra, "alice@example.org", subject="Access to order 42", body="Open this link.\n")

    assert MailDelivery(ra).deliver_due() == 1
    assert MailDelivery(ra).deliver_due() == 0

    [(mail_from, rcpts, received)] = recorder.received
    assert mail_from == "no-reply@[127.0.0.1]"
    assert rcpts == ["alice@example.org"]
    assert received["To"] == "alice@example.org"
    assert received["From"] == "no-reply@[127.0.0.1]"
    assert received["Subject"] == "Access to order 42"
    assert received["Date"] and received["Message-ID"]
    assert received.get_content().replace("\r\n", "\n") == "Open this link.\n"  # CRLF on the wire
    row = stored(ra, message_id)
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None


def test_a_server_that_is_down_loses_nothing(outbox_ra, caplog):
    port = free_port()  # nothing listens on it yet
    ra = with_smtp(outbox_ra, f"smtp://127.0.0.1:{port}")
    message_id = enqueue(ra, "bob@example.org")

    with caplog.at_level(logging.WARNING, logger="soap_service"):
        assert MailDelivery(ra).deliver_due() == 0
    row = stored(ra, message_id)
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith("ConnectionRefusedError")
    assert row.next_attempt_at >= row.created_at + backoff(1)
    assert "attempt 1 failed" in caplog.text

    controller, recorder = start_server(port)
    try:
        assert MailDelivery(ra).deliver_due() == 0  # the backoff has not passed
        assert recorder.received == []

        after_backoff = later(ra, backoff(1) + timedelta(seconds=1))
        assert MailDelivery(after_backoff).deliver_due() == 1
        assert MailDelivery(after_backoff).deliver_due() == 0
        assert len(recorder.to("bob@example.org")) == 1
    finally:
        controller.stop()
    row = stored(ra, message_id)
    assert row.sent_at is not None and row.attempts == 2 and row.last_error is None


def test_the_backoff_doubles_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(8) == backoff(1000) == timedelta(hours=1)


def test_two_deliverers_at_once_send_each_message_once(outbox_ra, smtp):
    port, recorder = smtp
    ra = with_smtp(outbox_ra, f"smtp://127.0.0.1:{port}")
    recipients = [f"user{n}@example.org" for n in range(24)]
    for recipient in recipients:
        enqueue(ra, recipient)

    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            start.wait()
            counts.append(MailDelivery(ra).deliver_due())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(counts) == len(recipients)
    assert sorted(rcpt for _, rcpts, _ in recorder.received for rcpt in rcpts) == sorted(recipients)
    with ra.readers() as session:
        assert set(session.scalars(select(MailMessage.attempts))) == {1}


def test_without_an_smtp_url_the_message_is_written_to_a_file(outbox_ra, tmp_path, caplog):
    ra = dataclasses.replace(
        outbox_ra, settings=dataclasses.replace(outbox_ra.settings, smtp_url=None, data_dir=tmp_path)
    )
    message_id = enqueue(ra, "carol@Example.ORG", subject="Your access link", body="https://example/x\n")

    with caplog.at_level(logging.INFO, logger="soap_service"):
        assert MailDelivery(ra).deliver_due() == 1
    path = tmp_path / "outbox" / f"{message_id}-example.org.eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary file left
    written = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert written["To"] == "carol@Example.ORG"
    assert written["Subject"] == "Your access link"
    assert written["From"] == "no-reply@[127.0.0.1]"
    assert written.get_content() == "https://example/x\n"
    assert str(path) in caplog.text
    assert stored(ra, message_id).sent_at is not None


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.user.encode(), self.password.encode()
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_auth_logs_in_and_never_logs_the_password(outbox_ra, caplog):
    port = free_port()
    controller, recorder = start_server(
        port, authenticator=Authenticator("mailer", PASSWORD), auth_required=True, auth_require_tls=False
    )
    try:
        with caplog.at_level(logging.DEBUG):
            wrong = with_smtp(outbox_ra, f"smtp://mailer:wrong-{PASSWORD}@127.0.0.1:{port}")
            refused_id = enqueue(wrong, "dave@example.org")
            assert MailDelivery(wrong).deliver_due() == 0
            refused = stored(wrong, refused_id)
            assert refused.sent_at is None
            assert refused.last_error is not None and refused.last_error.startswith("SMTPAuthenticationError: 535")

            right = later(with_smtp(outbox_ra, f"smtp://mailer:{PASSWORD}@127.0.0.1:{port}"), timedelta(minutes=5))
            assert MailDelivery(right).deliver_due() == 1
            assert len(recorder.to("dave@example.org")) == 1
        assert PASSWORD not in caplog.text
        assert f"127.0.0.1:{port}" in caplog.text  # the server is named, without the URL's credentials
        assert "mailer:" not in caplog.text
        assert PASSWORD not in (refused.last_error or "")
    finally:
        controller.stop()


def test_a_message_of_a_rolled_back_transaction_is_never_sent(outbox_ra, smtp):
    port, recorder = smtp
    ra = with_smtp(outbox_ra, f"smtp://127.0.0.1:{port}")
    with pytest.raises(RuntimeError), ra.sessions.begin() as session:
        enqueue_mail(session, recipient="eve@example.org", subject="Never", body="x\n", now=ra.clock())
        raise RuntimeError("the use case failed after queueing its mail")

    with ra.readers() as session:
        assert session.scalars(select(MailMessage)).all() == []
    assert MailDelivery(ra).deliver_due() == 0
    assert recorder.received == []


@pytest.mark.parametrize(
    ("recipient", "subject"),
    [
        ("mallory@example.org\r\nBcc: victim@example.org", "Hi"),
        ("mallory@example.org", "Hi\r\nBcc: victim@example.org"),
        ("mallory@example.org", "Hi\nthere"),
        ("a@example.org, b@example.org", "Hi"),
        ("Mallory <mallory@example.org>", "Hi"),
        ("not an address", "Hi"),
    ],
)
def test_header_injection_is_refused(recipient, subject):
    with pytest.raises(ValueError):
        check_headers(recipient=recipient, subject=subject)


def test_the_thread_delivers_when_woken(outbox_ra, smtp):
    port, recorder = smtp
    ra = with_smtp(outbox_ra, f"smtp://127.0.0.1:{port}")
    thread = start_delivery(ra, interval=60.0)
    try:
        deadline = time.monotonic() + 10
        while thread.rounds < 1 and time.monotonic() < deadline:  # its first round, on an empty outbox
            time.sleep(0.01)
        assert thread.rounds >= 1
        enqueue(ra, "frank@example.org")
        thread.wake()
        deadline = time.monotonic() + 10
        while not recorder.to("frank@example.org") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(recorder.to("frank@example.org")) == 1  # well before the 60 s interval
    finally:
        thread.stop(timeout=10)
    assert not thread.is_alive()


def test_an_exception_does_not_end_the_thread(outbox_ra, caplog):
    calls: list[int] = []

    class Failing(MailDelivery):
        def deliver_due(self) -> int:
            calls.append(1)
            raise RuntimeError("the database is away")

    thread = MailDeliveryThread(Failing(outbox_ra), interval=0.01)
    with caplog.at_level(logging.ERROR, logger="soap_service"):
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while len(calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            thread.stop(timeout=10)
    assert len(calls) >= 3
    assert "mail delivery failed" in caplog.text


def test_an_idle_round_reads_and_takes_no_write_lock(outbox_ra):
    """Every worker runs a round every 2 s: with nothing due it must not take SQLite's write lock
    (BEGIN IMMEDIATE) nor lock rows on PostgreSQL (FOR UPDATE), or idle workers would queue with
    the reissues for it."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement.upper())

    event.listen(outbox_ra.engine, "before_cursor_execute", record)
    try:
        assert MailDelivery(outbox_ra).deliver_due() == 0
    finally:
        event.remove(outbox_ra.engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if "IMMEDIATE" in s or "FOR UPDATE" in s or "UPDATE " in s]
