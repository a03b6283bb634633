"""The portal's e-mail: queued in the database with the change it tells of, delivered by a thread.

:func:`enqueue_mail` adds a message in the caller's transaction: it is sent if and only if that
transaction commits. :class:`MailDelivery` sends what is due, one message at a time: it claims
it in a short transaction (a 60 s lease, see :mod:`soap_service.storage.outbox`), talks to the
SMTP server *outside* any transaction (on SQLite a writer holds the whole database: an SMTP
conversation of up to seconds must never hold it; docs/design.md, "Concurrency and failures"),
then records the outcome in a second short transaction. A failure is recorded and the message
tried again later (30 s, doubling per attempt, at most an hour apart): nothing is lost while the
server is down. A message whose outcome could not be recorded (the process died after the
server accepted it) is sent again after its lease: delivery is at least once, and a message
keeps its Message-ID across attempts, so that a receiver can tell a repeat.

Without ``SOAP_SERVICE_SMTP_URL`` (the demo) each message is written to
``<data dir>/outbox/<id>-<recipient's domain>.eml`` instead (mode 0600).

:func:`start_delivery` runs the delivery in a daemon thread every ``interval`` seconds; its
``wake()`` sends a message just committed at once. Any number of threads, processes and hosts
may deliver from one database: a message is claimed by one of them at a time.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import smtplib
import ssl
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import outbox
from soap_service.storage.models import MailMessage

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
"""How long a claimed message is not due for any other deliverer: longer than one SMTP
conversation (:data:`SMTP_TIMEOUT` per network operation)."""
SMTP_TIMEOUT = 10.0
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
MAX_MESSAGES_PER_ROUND = 100
"""What one :meth:`MailDelivery.deliver_due` sends at most; the rest waits for the next round."""
OUTBOX_DIRECTORY = "outbox"
MAX_SUBJECT_CHARS = 200
MAX_RECIPIENT_CHARS = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_FILE_CHARS = re.compile(r"[^a-z0-9.-]")

_MESSAGE_FAILURES: tuple[type[Exception], ...] = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
    ValueError,
)
"""Failures of one message (its recipient refused, its content): the round goes on with the next.
Any other failure (the server unreachable, refusing our login) would be the same for every
message: the round stops there, and the next one tries again."""


def enqueue_mail(session: Session, *, recipient: str, subject: str, body: str, now: datetime) -> MailMessage:
    """Queue an e-mail in ``session``'s transaction: it is sent once that transaction commits,
    never if it rolls back. :class:`ValueError` for a recipient that is not one plain address or
    a subject with a line break or control character (no header injection, wherever they came from)."""
    check_headers(recipient=recipient, subject=subject)
    return outbox.add_message(session, recipient=recipient, subject=subject, body=body, now=now)


def check_headers(*, recipient: str, subject: str) -> None:
    """:class:`ValueError` unless ``recipient`` is one address (``local@domain``) and ``subject``
    one line, both free of control characters (CR and LF above all) and within their columns."""
    if _CONTROL.search(recipient) or _CONTROL.search(subject):
        raise ValueError("a mail header may not hold line breaks or control characters")
    if len(recipient) > MAX_RECIPIENT_CHARS or len(subject) > MAX_SUBJECT_CHARS:
        raise ValueError("a mail header is too long")
    try:
        address = Address(addr_spec=recipient)
    except (ValueError, IndexError) as exc:  # the header parser raises either for some inputs
        raise ValueError("the recipient is not one e-mail address") from exc
    if not address.username or not address.domain or address.addr_spec != recipient:
        raise ValueError("the recipient is not one e-mail address")


def backoff(attempt: int) -> timedelta:
    """How long after failed attempt ``attempt`` (1 for the first) the next one waits:
    30 s, 60 s, 120 s, ... at most an hour."""
    doublings = min(max(attempt - 1, 0), 16)  # 30 s * 2**7 already passes the hour
    return min(FIRST_BACKOFF * (1 << doublings), MAX_BACKOFF)


def sender_domain(public_url: str) -> str:
    """The domain of our From and Message-ID: the public URL's host; an IP address as a literal."""
    host = urlsplit(public_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]"


def build_message(message: outbox.ClaimedMessage, *, public_url: str, now: datetime) -> EmailMessage:
    """The e-mail of an outbox message, from ``no-reply@<public host>``; its Message-ID is the
    same at every attempt."""
    check_headers(recipient=message.recipient, subject=message.subject)
    domain = sender_domain(public_url)
    email = EmailMessage()
    email["From"] = f"no-reply@{domain}"
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now)
    stamp = int(message.created_at.timestamp() * 1_000_000)
    email["Message-ID"] = f"<outbox.{message.id}.{stamp}@{domain}>"
    email.set_content(message.body)
    return email


@dataclass(frozen=True)
class _SmtpServer:
    """The parts of ``SOAP_SERVICE_SMTP_URL``. Its password is never logged nor recorded."""

    tls: bool  # smtps: TLS from the start; smtp: STARTTLS when the server offers it
    host: str
    port: int
    user: str | None
    password: str

    @classmethod
    def from_url(cls, url: str) -> _SmtpServer:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            tls=tls,
            host=parts.hostname or "",
            port=parts.port or (465 if tls else 25),
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password or ""),
        )

    def send(self, email: EmailMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo()
            if not self.tls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if self.user is not None:
                client.login(self.user, self.password)
            # The envelope's addresses given, not derived: Python 3.13's strict email.utils.parseaddr
            # reads an address literal (no-reply@[127.0.0.1]) as empty, and smtplib then sent MAIL FROM:<>.
            client.send_message(email, from_addr=str(email["From"]), to_addrs=[str(email["To"])])


def describe_failure(exc: BaseException, *, secrets: tuple[str, ...] = ()) -> str:
    """What ``mail_outbox.last_error`` and the log keep of a failure: the exception's class and a
    short reason (an SMTP reply's code and text, an OS error's text), with any of ``secrets`` blanked."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        reason = f"{exc.smtp_code} {text}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        reason = "recipient refused (" + ", ".join(str(code) for code in codes) + ")"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc)
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    reason = " ".join(_CONTROL.sub(" ", reason).split())
    return f"{type(exc).__name__}: {reason}"[: outbox.MAX_ERROR_CHARS]


class MailDelivery:
    """Sends the outbox's due messages: by SMTP to ``settings.smtp_url``, or without it to files
    in ``<data dir>/outbox``."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self._ra = ra

    def deliver_due(self) -> int:
        """Send the messages due now, one claim at a time (at most :data:`MAX_MESSAGES_PER_ROUND`);
        return how many were sent. A failure is recorded on its message; one that is not the
        message's own (the server is unreachable) ends the round."""
        ra = self._ra
        with ra.readers() as session:  # idle rounds (most of them) read, and take no write lock
            if not outbox.any_due(session, now=ra.clock()):
                return 0
        server = _SmtpServer.from_url(ra.settings.smtp_url) if ra.settings.smtp_url else None
        sent = 0
        for _ in range(MAX_MESSAGES_PER_ROUND):
            now = ra.clock()
            with ra.sessions.begin() as session:
                claimed = outbox.claim_due(session, now=now, lease_until=now + LEASE)
            if not claimed:
                break
            message = claimed[0]
            try:
                # No transaction is open here: no database lock is held while we talk to the server.
                self._send(message, server)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
                self._record_failure(message, exc, server)
                if not isinstance(exc, _MESSAGE_FAILURES):
                    break
                continue
            with ra.sessions.begin() as session:
                outbox.mark_sent(session, message.id, now=ra.clock())
            sent += 1
        return sent

    def _send(self, message: outbox.ClaimedMessage, server: _SmtpServer | None) -> None:
        email = build_message(message, public_url=self._ra.settings.public_url, now=self._ra.clock())
        if server is None:
            path = write_eml(self._ra.settings.data_dir / OUTBOX_DIRECTORY, message, email)
            logger.info("mail %d written to %s (no SOAP_SERVICE_SMTP_URL set)", message.id, path)
            return
        server.send(email)
        logger.info("mail %d sent to %s:%d (attempt %d)", message.id, server.host, server.port, message.attempt)

    def _record_failure(self, message: outbox.ClaimedMessage, exc: Exception, server: _SmtpServer | None) -> None:
        secrets = (server.password,) if server is not None else ()
        error = describe_failure(exc, secrets=secrets)
        now = self._ra.clock()
        retry_at = now + backoff(message.attempt)
        with self._ra.sessions.begin() as session:
            recorded = outbox.record_failure(
                session, message.id, attempt=message.attempt, error=error, retry_at=retry_at
            )
        if recorded:
            logger.warning(
                "mail %d: attempt %d failed (%s); next attempt at %s",
                message.id, message.attempt, error, retry_at.isoformat(timespec="seconds"),
            )


def write_eml(directory: Path, message: outbox.ClaimedMessage, email: EmailMessage) -> Path:
    """Write ``email`` to ``directory/<id>-<recipient's domain>.eml`` (mode 0600), atomically:
    a reader sees the whole file or none; a repeat of the same message replaces it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    domain = _UNSAFE_FILE_CHARS.sub("_", message.recipient.rpartition("@")[2].lower()).strip(".") or "unknown"
    path = directory / f"{message.id}-{domain}.eml"
    # A new file of a name nobody could have chosen (mkstemp: O_EXCL, mode 0600), renamed over the target.
    descriptor, staged = tempfile.mkstemp(prefix=f".{message.id}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(email.as_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return path


class MailDeliveryThread(threading.Thread):
    """A daemon thread running :meth:`MailDelivery.deliver_due` every ``interval`` seconds, and at
    once after :meth:`wake`. An exception is logged; the thread goes on."""

    def __init__(self, delivery: MailDelivery, *, interval: float) -> None:
        super().__init__(name="mail-delivery", daemon=True)
        self._delivery = delivery
        self._interval = interval
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._rounds = 0

    @property
    def rounds(self) -> int:
        """How many delivery rounds have ended (for tests and health checks)."""
        return self._rounds

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._delivery.deliver_due()
            except Exception:  # the database may be away for a while: try again later
                logger.exception("mail delivery failed; trying again in %g s", self._interval)
            self._rounds += 1
            self._woken.wait(self._interval)
            self._woken.clear()  # before the next round: a wake from now on brings one more

    def wake(self) -> None:
        """Deliver now (a message was just committed), not at the end of the interval."""
        self._woken.set()

    def stop(self, timeout: float | None = None) -> None:
        """End the thread after its current round; wait for it at most ``timeout`` seconds."""
        self._stopping.set()
        self._woken.set()
        if self.is_alive():
            self.join(timeout)


def start_delivery(ra: RegistrationAuthority, *, interval: float = 2.0) -> MailDeliveryThread:
    """Start delivering the outbox in a daemon thread of this process."""
    thread = MailDeliveryThread(MailDelivery(ra), interval=interval)
    thread.start()
    return thread
