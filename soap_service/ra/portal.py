"""The End User Portal's use cases (docs/design.md, "End User Portal"): find an order by its name
or order ID and a contact address behind a captcha, e-mail that contact a single-use link, open a
session from the link, show the order, reissue it through the same Reissue rules as the API.

Each portal serves a brand family (:data:`PORTALS`): an order of another brand is never found nor
opened there. Every step is audited (channel ``portal``): ``portal.lookup``,
``portal.access_requested``, ``portal.link_used``, ``portal.signout``, and the reissue's own
``reissue`` events, with the contact's address as the user.

What a stranger learns: the lookup answers the orders that match *and* list the address as a
contact, with one query whichever way it fails, so "no such order" and "not your order" read the
same and take the same time; Request Access answers the same confirmation whether a mail was sent
or not. Limits (per client: settings; per contact address: :data:`LOOKUPS_PER_ADDRESS`,
:data:`MAILS_PER_ADDRESS`) are counted in the database, so they hold across workers and hosts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import quote

from soap_service.ra.audit import Subject, record_outcome
from soap_service.ra.captcha import CaptchaChallenge, Captchas
from soap_service.ra.fields import (
    MAX_DNS_NAME_CHARS,
    MAX_EMAIL_CHARS,
    MAX_PARTNER_NAME_CHARS,
    is_clean_text,
    is_email,
)
from soap_service.ra.issuance import chain_of
from soap_service.ra.mail import MailDeliveryThread, enqueue_mail
from soap_service.ra.reissue import PartnerRef, Reissuer, ReissueRequest, run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import ChainCertificate, IssuanceOutcome, OrderView
from soap_service.storage import certificates, orders
from soap_service.storage import portal as store
from soap_service.vocabulary import Brand

T = TypeVar("T")
logger = logging.getLogger(__name__)

CHANNEL = "portal"
ACCESS_LINK_LIFETIME = timedelta(hours=24)
SESSION_IDLE_TIMEOUT = timedelta(minutes=15)
"""A session unused this long has ended: the contact follows a new link."""
MAX_RESULTS = 20
MAX_QUERY_CHARS = max(MAX_DNS_NAME_CHARS, MAX_PARTNER_NAME_CHARS)
MAX_TOKEN_CHARS = 64
MAX_CSR_CHARS = 64 * 1024
LOOKUPS_PER_ADDRESS = 10
"""Lookups that found orders, per 10 minutes at most, for one contact address (per client: the
setting ``SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT``, 20 by default, every lookup counted)."""
MAILS_PER_ADDRESS = 3
"""Access e-mails per hour at most to one contact of one order; past it requests are dropped, not
refused (per client: the setting ``SOAP_SERVICE_PORTAL_MAILS_PER_CLIENT``, 10 by default, refused)."""
FORMS_PER_LOOKUP = 3
"""Lookup forms (captchas drawn) a client may fetch per lookup it may make."""
TOUCH_AFTER = timedelta(minutes=1)
"""A session's last use is written at most this often: the idle end comes 15 to 16 minutes after it."""
SESSION_LIFETIME = timedelta(hours=12)
"""A session ends this long after its link was followed, however busy."""
PRUNE_EVERY = 200
PRUNE_AFTER = timedelta(days=1)
LOOKUP_WINDOW = timedelta(minutes=10)
ACCESS_MAIL_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class PortalBrand:
    """One portal: its path, the name its pages carry, the brands whose orders it serves, its colours."""

    slug: str
    name: str
    brands: frozenset[str]
    colour: str
    accent: str


_GEOTRUST_FAMILY = frozenset({Brand.GEOTRUST.value, Brand.RAPIDSSL.value})
PORTALS: dict[str, PortalBrand] = {
    portal.slug: portal
    for portal in (
        PortalBrand("symantec", "Symantec", frozenset({Brand.SYMANTEC.value}), "#ffd200", "#1b1b1b"),
        PortalBrand("thawte", "Thawte", frozenset({Brand.THAWTE.value}), "#c8102e", "#ffffff"),
        PortalBrand("geotrust", "GeoTrust", _GEOTRUST_FAMILY, "#00a0df", "#ffffff"),
        PortalBrand("rapidssl", "RapidSSL", _GEOTRUST_FAMILY, "#00598c", "#ffffff"),
    )
}


class PortalRefusal(Exception):
    """A portal request refused, in words for the visitor, next to ``field`` when it concerns one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class FoundOrder:
    order_id: str
    product: str
    common_name: str
    status: str


@dataclass(frozen=True)
class PortalAccess:
    """A contact's live session on one order."""

    session_id: int
    order_pk: int
    email: str
    csrf_token: str


@dataclass(frozen=True)
class OrderPage:
    order: OrderView
    chain: tuple[ChainCertificate, ...]


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _subject_key(kind: str, value: str) -> str:
    return _sha256(f"{kind}:{value.lower()}")


def checked_lookup_fields(query: str, email: str) -> tuple[str, str]:
    """The name or order ID and the address, trimmed; a refusal on the field at fault."""
    if len(query) > MAX_QUERY_CHARS:
        raise PortalRefusal(f"Enter at most {MAX_QUERY_CHARS} characters.", "query")
    query = query.strip()
    if not query or not is_clean_text(query):
        raise PortalRefusal("Enter the certificate's Common Name (or organization name) or its order ID.", "query")
    address = checked_address(email)
    if address is None:
        raise PortalRefusal("Enter the e-mail address of the order's administrative or technical contact.", "email")
    return query, address


def checked_address(email: str) -> str | None:
    """The address without surrounding blanks, when it is one and plain ASCII (compared without case:
    a non-ASCII letter such as U+212A KELVIN SIGN lowers to an ASCII one and would match another)."""
    if len(email) > MAX_EMAIL_CHARS:
        return None
    address = email.strip()
    return address if address.isascii() and is_email(address) else None


class PortalDesk:
    """The portal's use cases for one installation; one per process is enough."""

    def __init__(self, ra: RegistrationAuthority, delivery: MailDeliveryThread | None = None) -> None:
        self._ra = ra
        self._captchas = Captchas(ra)
        self._delivery = delivery
        self._prune_lock = threading.Lock()
        self._made = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def captchas(self) -> Captchas:
        return self._captchas

    def new_captcha(self, client: str = "-") -> CaptchaChallenge:
        """A captcha for a form, at most :data:`FORMS_PER_LOOKUP` times the client's lookups a
        window (each is drawn, 13 ms, and stored); every :data:`PRUNE_EVERY` of them, what has
        expired is deleted (spent captchas, rate events, links and sessions a day past their use)."""
        limit = self._ra.settings.portal_lookups_per_client * FORMS_PER_LOOKUP
        self._count((("client", limit),), "form", LOOKUP_WINDOW, client=client, email="", now=self._ra.clock())
        with self._prune_lock:
            self._made += 1
            due = self._made % PRUNE_EVERY == 0
        if due:
            self.prune()
        return self._captchas.new()

    def prune(self) -> None:
        now = self._ra.clock()
        self._captchas.prune(now)
        with self._ra.sessions() as session, session.begin():
            store.prune(session, events_before=now - PRUNE_AFTER, tokens_before=now - PRUNE_AFTER,
                        sessions_before=now - PRUNE_AFTER)

    # -- lookup ------------------------------------------------------------------------------

    def lookup(
        self, portal: PortalBrand, *, query: str, email: str, captcha_token: str, captcha_answer: str, client: str
    ) -> tuple[FoundOrder, ...]:
        """The portal's orders matching ``query`` that list ``email`` as a contact (module docstring)."""
        subject = Subject(channel=CHANNEL, action="portal.lookup", username=email[:128] or None)

        def run() -> tuple[FoundOrder, ...]:
            name, address = checked_lookup_fields(query, email)
            if not self._captchas.check(captcha_token, captcha_answer):
                raise PortalRefusal("The number did not match the picture. Try the new one.", "captcha")
            now = self._ra.clock()
            self._count((("client", self._ra.settings.portal_lookups_per_client),), "lookup", LOOKUP_WINDOW,
                        client=client, email=address, now=now)
            with self._ra.readers() as session:
                found = store.find_orders(session, brands=portal.brands, name=name, order_id=name,
                                          email=address, limit=MAX_RESULTS)
                results = tuple(
                    FoundOrder(order.order_id, order.product.name, order.names[0].name if order.names else
                               (order.organization_name or ""), order.status.value)
                    for order in found
                )
            if results:  # only a lookup that found the address's orders counts against the address
                self._count((("email", LOOKUPS_PER_ADDRESS),), "lookup", LOOKUP_WINDOW, client=client,
                            email=address, now=now)
            self._audit(subject, "success", f"portal={portal.slug}; found {len(results)}")
            return results

        return self._audited(subject, run)

    # -- access by e-mail --------------------------------------------------------------------

    def request_access(self, portal: PortalBrand, *, order_id: str, email: str, client: str) -> None:
        """E-mail a link to the order if ``email`` is its contact; the same answer in the same time either way.

        The request itself checks the fields and counts the client (both the same whatever the
        order); whether a mail goes out is decided after the answer, on the desk's own thread
        (:meth:`grant_access`), so that the answer's time tells nothing. A request lost with its
        worker before that thread ran it sends nothing: the contact asks again."""
        subject = Subject(channel=CHANNEL, action="portal.access_requested", username=email[:128] or None,
                          order_id=order_id[:32] or None)

        def run() -> None:
            if len(order_id) > 32 or not checked_address(email):
                raise PortalRefusal("This request cannot be read; start again from the search.")
            now = self._ra.clock()
            limits = (("client", self._ra.settings.portal_mails_per_client),)
            self._count(limits, "access", ACCESS_MAIL_WINDOW, client=client, email="", now=now)
            self._background().submit(self._grant_logged, portal, order_id, email.strip())

        self._audited(subject, run)

    def grant_access(self, portal: PortalBrand, order_id: str, address: str) -> bool:
        """Make the link and queue its mail, if ``address`` is a contact of the order and fewer than
        :data:`MAILS_PER_ADDRESS` links went to it for this order within the hour; True if queued.
        Over that limit the request is dropped, not refused: the contact holds the links already
        sent, and a stranger cannot lock anyone out by asking for them."""
        subject = Subject(channel=CHANNEL, action="portal.access_granted", username=address[:128],
                          order_id=order_id[:32] or None)
        now = self._ra.clock()
        token = secrets.token_urlsafe(32)
        with self._ra.sessions() as session, session.begin():
            order = store.contact_order(session, brands=portal.brands, order_id=order_id, email=address)
            recipient = None if order is None else store.contact_address(session, order_pk=order.id, email=address)
            if order is None or recipient is None:
                outcome = "no such contact"
            else:
                key = _subject_key("mail", f"{order.id}:{recipient}")
                store.lock_subject(session, key)
                if store.count_events(session, kind="mail", subject=key, since=now - ACCESS_MAIL_WINDOW) >= \
                        MAILS_PER_ADDRESS:
                    outcome = "dropped: limit of mails to this contact reached"
                else:
                    store.add_event(session, kind="mail", subject=key, at=now)
                    store.add_access_token(session, token_hash=_sha256(token), order_pk=order.id, email=recipient,
                                           at=now, expires_at=now + ACCESS_LINK_LIFETIME)
                    enqueue_mail(session, recipient=recipient, subject=f"{portal.name}: access to order "
                                 f"{order.order_id}", body=self._access_mail(portal, order.order_id, token), now=now)
                    outcome = "mailed"
        if outcome == "mailed" and self._delivery is not None:
            self._delivery.wake()
        self._audit(subject, "success" if outcome == "mailed" else "refused", f"portal={portal.slug}; {outcome}")
        return outcome == "mailed"

    def _grant_logged(self, portal: PortalBrand, order_id: str, address: str) -> None:
        try:
            self.grant_access(portal, order_id, address)
        except Exception:  # the visitor has had the answer; the log gets the failure
            logger.exception("portal: an access request for order %s could not be handled", order_id[:32])

    def _background(self) -> ThreadPoolExecutor:
        with self._prune_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-access")
            return self._executor

    def wait_for_background(self) -> None:
        """Wait until every access request accepted so far was handled (tests; a stopping worker)."""
        with self._prune_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _access_mail(self, portal: PortalBrand, order_id: str, token: str) -> str:
        link = f"{self._ra.settings.public_url}/portal/{portal.slug}/access/{quote(token)}"
        hours = int(ACCESS_LINK_LIFETIME.total_seconds() // 3600)
        return (
            f"Hello,\n\nsomeone (we hope you) asked the {portal.name} End User Portal for access to order "
            f"{order_id}, of which this address is a contact.\n\nOpen this link within {hours} hours; it works "
            f"once:\n\n{link}\n\nIf you did not ask for it, ignore this message: nothing changes.\n"
        )

    def open_link(self, portal: PortalBrand, token: str) -> tuple[str, PortalAccess]:
        """A new session from an e-mailed link: (the session token for the cookie, the access)."""
        subject = Subject(channel=CHANNEL, action="portal.link_used")

        def run() -> tuple[str, PortalAccess]:
            if not token or len(token) > MAX_TOKEN_CHARS:
                raise PortalRefusal(_LINK_INVALID)
            now = self._ra.clock()
            session_token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            with self._ra.sessions() as session, session.begin():
                link = store.spend_access_token(session, token_hash=_sha256(token), at=now)
                order = orders.get_order(session, link.order_pk) if link is not None else None
                if link is None or order is None or order.brand_code not in portal.brands:
                    raise PortalRefusal(_LINK_INVALID)
                if not store.is_contact(session, order_pk=order.id, email=link.email):
                    raise PortalRefusal(_LINK_INVALID)
                store.add_session(session, token_hash=_sha256(session_token), csrf_token=csrf, order_pk=order.id,
                                  email=link.email, at=now)
                session_row = store.live_session(session, token_hash=_sha256(session_token), idle_since=now -
                                                 SESSION_IDLE_TIMEOUT)
                assert session_row is not None
                access = PortalAccess(session_row.id, order.id, link.email, csrf)
                subject_done = Subject(channel=CHANNEL, action="portal.link_used", username=link.email[:128],
                                       order_id=order.order_id, partner_order_id=order.partner_order_id)
            self._audit(subject_done, "success", f"portal={portal.slug}")
            return session_token, access

        return self._audited(subject, run)

    # -- the session -------------------------------------------------------------------------

    def access(self, portal: PortalBrand, session_token: str | None) -> PortalAccess | None:
        """The live session this cookie names on this portal, its idle time restarted; None if none."""
        if not session_token or len(session_token) > MAX_TOKEN_CHARS:
            return None
        now = self._ra.clock()
        with self._ra.readers() as session:  # a page view reads; it writes only to restart the idle time
            row = store.live_session(session, token_hash=_sha256(session_token), idle_since=now - SESSION_IDLE_TIMEOUT)
            if row is None or row.created_at <= now - SESSION_LIFETIME:
                return None
            order = orders.get_order(session, row.order_pk)
            if order is None or order.brand_code not in portal.brands:
                return None
            if not store.is_contact(session, order_pk=order.id, email=row.email):
                return None  # no longer the order's contact: the access ends with it
            access = PortalAccess(row.id, row.order_pk, row.email, row.csrf_token)
            stale = row.last_seen_at <= now - TOUCH_AFTER
        if stale:  # at most once a minute a session: SQLite's write lock is not taken for every page
            with self._ra.sessions() as session, session.begin():
                store.touch_session(session, session_id=access.session_id, at=now)
        return access

    def sign_out(self, session_token: str | None) -> None:
        if not session_token or len(session_token) > MAX_TOKEN_CHARS:
            return
        with self._ra.sessions() as session, session.begin():
            ended = store.end_session(session, token_hash=_sha256(session_token), at=self._ra.clock())
        if ended:
            self._audit(Subject(channel=CHANNEL, action="portal.signout"), "success", "")

    def sign(self, value: str) -> str:
        """``value`` with its signature, for a cookie: ``value.signature`` (HMAC-SHA256, 128 bits)."""
        return f"{value}.{self._signature(value)}"

    def unsign(self, signed: str | None) -> str | None:
        """The value of a cookie this installation signed, else None (compared in constant time)."""
        if not signed or len(signed) > 2 * MAX_TOKEN_CHARS:
            return None
        value, _, signature = signed.rpartition(".")
        if not value or not hmac.compare_digest(signature.encode(), self._signature(value).encode()):
            return None
        return value

    def _signature(self, value: str) -> str:
        digest = hmac.new(self._ra.cookie_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")

    @staticmethod
    def csrf_matches(access: PortalAccess, given: str) -> bool:
        return hmac.compare_digest(access.csrf_token.encode(), given.encode()[:MAX_TOKEN_CHARS * 2])

    def order_page(self, access: PortalAccess) -> OrderPage:
        with self._ra.readers() as session:
            order = orders.get_order(session, access.order_pk)
            assert order is not None
            view = OrderView.of(order, certificates.order_history(session, order.id))
            loaded = self._ra.authorities.issuing_ca(session, order.brand_code, order.product.validation_level)
            return OrderPage(view, chain_of(loaded))

    def reissue(self, access: PortalAccess, *, csr: str, agreed: bool) -> IssuanceOutcome:
        """The Reissue use case for the session's order, the contact acting (every rule and code applies)."""
        if not agreed:
            raise PortalRefusal("Tick the box to accept the Subscriber Agreement.", "agreement")
        if len(csr) > MAX_CSR_CHARS:
            raise PortalRefusal(f"The CSR is longer than {MAX_CSR_CHARS // 1024} KiB.", "csr")
        if not csr.strip():
            raise PortalRefusal("Paste the CSR or choose its file.", "csr")
        with self._ra.readers() as session:
            order = orders.get_order(session, access.order_pk)
            assert order is not None
            partner = PartnerRef(id=order.partner_id, code=order.partner.code, actor=access.email[:128])
            poid = order.partner_order_id
        return Reissuer(self._ra).reissue_for(partner, ReissueRequest(poid, csr), channel=CHANNEL)

    # -- helpers -----------------------------------------------------------------------------

    def _count(self, limits: Iterable[tuple[str, int]], kind: str, window: timedelta, *, client: str, email: str,
               now: datetime) -> None:
        """Refuse past a limit; else count this request, for each subject, in one transaction."""
        subjects = [(_subject_key(by, client if by == "client" else email), limit) for by, limit in limits]
        with self._ra.sessions() as session, session.begin():
            for key, _limit in subjects:
                store.lock_subject(session, key)  # concurrent requests of one subject count in turn
            for key, limit in subjects:
                if store.count_events(session, kind=kind, subject=key, since=now - window) >= limit:
                    raise PortalRefusal("Too many requests from here or for this address; try again later.")
            for key, _limit in subjects:
                store.add_event(session, kind=kind, subject=key, at=now)

    def _audit(self, subject: Subject, outcome: str, detail: str) -> None:
        record_outcome(self._ra, subject, outcome=outcome, code=0, detail=detail)

    def _audited(self, subject: Subject, action: Callable[[], T]) -> T:
        """Run ``action`` as the RA runs its use cases (a service refusal audited with its code, any
        other failure an incident); a portal refusal is audited too, code 0 with its words."""
        refused: list[PortalRefusal] = []

        def guarded() -> T | None:
            try:
                return action()
            except PortalRefusal as refusal:
                refused.append(refusal)
                return None

        result = run_audited(self._ra, subject, guarded)
        if refused:
            record_outcome(self._ra, subject, outcome="refused", code=0, detail=refused[0].message[:200])
            raise refused[0]
        return result  # type: ignore[return-value]


_LINK_INVALID = "This link has expired or was already used. Search for your order again to get a new one."
