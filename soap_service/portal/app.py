"""The End User Portal over HTTP: server-rendered pages under ``/portal/<portal>/``, one set of
Jinja2 templates for every brand family (docs/design.md, "End User Portal").

Pages: the lookup form (``GET /portal/<p>/``), its result (``POST .../lookup``), Request Access
(``POST .../access``), the e-mailed link (``GET .../access/<token>``: a session cookie, then the
order), the order (``GET .../order``, downloads ``.../order/certificate.pem`` and ``.p7b``), the
reissue form (``GET``/``POST .../reissue``), sign out (``POST .../signout``); ``/portal/static/
portal.css``. No JavaScript. Every form carries a CSRF token: the session's own once a contact
signed in, else a random one also set in a cookie (compared in constant time). Cookies are signed
(``PortalDesk.sign``), HttpOnly, SameSite=Lax, Secure when the public URL is https, scoped to the
portal's path.
Anything that fails unexpectedly is an incident: a plain page with its ID, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from jinja2 import Environment, PackageLoader, select_autoescape

from soap_service import metrics
from soap_service.client_address import TrustedProxies, client_address, limit_key
from soap_service.errors import InternalError, ServiceError
from soap_service.portal.forms import FormError, read_form
from soap_service.ra.incidents import open_incident
from soap_service.ra.portal import (
    ACCESS_LINK_LIFETIME,
    PORTALS,
    SESSION_IDLE_TIMEOUT,
    PortalAccess,
    PortalBrand,
    PortalDesk,
    PortalRefusal,
)
from soap_service.ra.views import ChainCertificate

logger = logging.getLogger(__name__)
requests_logger = logging.getLogger("soap_service.portal.requests")

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]

PREFIX = "/portal/"
MAX_PATH_CHARS = 256
SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
_HTML = "text/html; charset=utf-8"
_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
]

_METHODS = frozenset({"GET", "HEAD", "POST"})
"""The methods the portal's log line and metrics name; any other is ``other``."""

FIELD_OF_CODE = {"CSR": "csr", "DNSNames": "csr", "SerialNumber": "csr"}
"""The form field a reissue refusal's ErrorField points to (the portal's form has the CSR alone)."""


class PortalApplication:
    """The WSGI callable for ``/portal/...``."""

    def __init__(self, desk: PortalDesk, public_url: str, *, trusted_proxies: TrustedProxies = ()) -> None:
        self.desk = desk
        self._trusted = trusted_proxies
        self._secure = public_url.lower().startswith("https://")
        self._templates = Environment(
            loader=PackageLoader("soap_service.portal", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._css = resources.files("soap_service.portal").joinpath("static/portal.css").read_bytes()
        self._agreement = resources.files("soap_service.portal").joinpath("templates/agreement.txt").read_text()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            status, headers, body = self._route(environ, method, path)
        except InternalError as incident:
            status, headers, body = self._incident(incident)
        except Exception as failure:  # noqa: BLE001 - any other failure is an incident, opened here
            status, headers, body = self._incident(open_incident(logger, "portal request failed", failure=failure))
        headers = headers + _SECURITY_HEADERS + [("Content-Length", str(len(body)))]
        start_response(status, headers)
        seconds = time.perf_counter() - started
        http = status.split(" ", 1)[0]
        shown_path = path[:MAX_PATH_CHARS].split("/access/")[0]  # an access link's token is never logged
        shown_method = method if method in _METHODS else "other"
        metrics.count_request("portal", shown_method, http, seconds)
        client = client_address(environ, self._trusted)
        requests_logger.info("portal %s %s %s %.1fms client=%s", shown_method, shown_path, http, seconds * 1000,
                             "-" if client is None else client,
                             extra={"fields": {"op": "portal", "method": shown_method, "path": shown_path,
                                               "http": int(http), "ms": round(seconds * 1000, 1),
                                               "client": client}})
        return [] if method == "HEAD" else [body]

    def _client(self, environ: dict[str, Any]) -> str:
        """The client the per-client limits count: the address a trusted proxy forwarded, else the
        peer's (``soap_service.client_address``), an IPv6 one by its /64 (``limit_key``)."""
        return limit_key(client_address(environ, self._trusted))

    # -- routing -----------------------------------------------------------------------------

    def _route(self, environ: dict[str, Any], method: str, path: str) -> Response:
        if len(path) > MAX_PATH_CHARS or not path.startswith(PREFIX):
            return self._not_found()
        if path == PREFIX + "static/portal.css" and method in ("GET", "HEAD"):
            return "200 OK", [("Content-Type", "text/css; charset=utf-8")], self._css
        slug, _, rest = path[len(PREFIX):].partition("/")
        portal = PORTALS.get(slug)
        if portal is None:
            return self._not_found()
        rest = "/" + rest
        get = method in ("GET", "HEAD")
        if rest == "/" and get:
            return self._lookup_form(environ, portal)
        if rest == "/lookup" and method == "POST":
            return self._lookup(environ, portal)
        if rest == "/access" and method == "POST":
            return self._request_access(environ, portal)
        if rest.startswith("/access/") and get:
            return self._link_page(environ, portal, rest[len("/access/"):])
        if rest.startswith("/access/") and method == "POST":
            return self._open_link(environ, portal, rest[len("/access/"):])
        if rest == "/order" and get:
            return self._with_access(environ, portal, self._order)
        if rest in ("/order/certificate.pem", "/order/certificate.p7b") and get:
            return self._with_access(environ, portal, lambda e, p, a: self._download(p, a, rest.rsplit(".", 1)[1]))
        if rest == "/reissue" and get:
            return self._with_access(environ, portal, lambda e, p, a: self._reissue_form(p, a))
        if rest == "/reissue" and method == "POST":
            return self._with_access(environ, portal, self._reissue)
        if rest == "/signout" and method == "POST":
            return self._sign_out(environ, portal)
        if rest in ("/", "/lookup", "/access", "/order", "/reissue", "/signout"):
            return "405 Method Not Allowed", [("Content-Type", _HTML), ("Allow", "GET, POST")], self._page(
                portal, "message.html", title="Not here", message="This page is not reached that way.")
        return self._not_found(portal)

    # -- lookup ------------------------------------------------------------------------------

    def _lookup_form(self, environ: dict[str, Any], portal: PortalBrand, *, errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, status: str = "200 OK") -> Response:
        csrf = self._anonymous_csrf(environ)
        try:
            challenge = self.desk.new_captcha(self._client(environ))
        except PortalRefusal as refusal:
            return "429 Too Many Requests", [("Content-Type", _HTML), ("Retry-After", "600")], self._page(
                portal, "message.html", title="Too many requests", message=refusal.message)
        body = self._page(portal, "lookup.html", title="Find your order", csrf=csrf, captcha=challenge,
                          errors=errors or {}, values=values or {})
        return status, [("Content-Type", _HTML), self._cookie(portal, CSRF_COOKIE, csrf)], body

    def _lookup(self, environ: dict[str, Any], portal: PortalBrand) -> Response:
        form, refused = self._anonymous_form(environ, portal)
        if refused is not None:
            return refused
        values = {"query": form.get("query", "")[:300], "email": form.get("email", "")[:300]}
        try:
            found = self.desk.lookup(portal, query=form.get("query", ""), email=form.get("email", ""),
                                     captcha_token=form.get("captcha_token", ""),
                                     captcha_answer=form.get("captcha_answer", ""), client=self._client(environ))
        except PortalRefusal as refusal:
            return self._lookup_form(environ, portal, errors={refusal.field or "form": refusal.message},
                                     values=values, status="400 Bad Request")
        csrf = self._anonymous_csrf(environ)
        body = self._page(portal, "results.html", title="Your orders", orders=found, email=values["email"].strip(),
                          csrf=csrf)
        return "200 OK", [("Content-Type", _HTML), self._cookie(portal, CSRF_COOKIE, csrf)], body

    def _request_access(self, environ: dict[str, Any], portal: PortalBrand) -> Response:
        form, refused = self._anonymous_form(environ, portal)
        if refused is not None:
            return refused
        try:
            self.desk.request_access(portal, order_id=form.get("order_id", ""), email=form.get("email", ""),
                                     client=self._client(environ))
        except PortalRefusal as refusal:
            return "400 Bad Request", [("Content-Type", _HTML)], self._page(
                portal, "message.html", title="Request not sent", message=refusal.message, back=True)
        hours = int(ACCESS_LINK_LIFETIME.total_seconds() // 3600)
        return "200 OK", [("Content-Type", _HTML)], self._page(
            portal, "message.html", title="Check your e-mail",
            message=f"If this address is a contact of the order, a link to it is on its way. The link works "
                    f"once, within {hours} hours.", back=True)

    # -- the session -------------------------------------------------------------------------

    def _link_page(self, environ: dict[str, Any], portal: PortalBrand, token: str) -> Response:
        """The e-mailed link's page: a button that opens the order. Following the link spends nothing,
        so a mail scanner that fetches links does not use it up; the button's POST does."""
        csrf = self._anonymous_csrf(environ)
        body = self._page(portal, "link.html", title="Open your order", csrf=csrf,
                          action=f"{PREFIX}{portal.slug}/access/{token[:MAX_PATH_CHARS]}")
        return "200 OK", [("Content-Type", _HTML), self._cookie(portal, CSRF_COOKIE, csrf)], body

    def _open_link(self, environ: dict[str, Any], portal: PortalBrand, token: str) -> Response:
        _form, refused = self._anonymous_form(environ, portal)
        if refused is not None:
            return refused
        try:
            session_token, _access = self.desk.open_link(portal, token)
        except PortalRefusal as refusal:
            return "403 Forbidden", [("Content-Type", _HTML)], self._page(
                portal, "message.html", title="Link not valid", message=refusal.message, back=True)
        headers = [("Location", f"{PREFIX}{portal.slug}/order"), ("Content-Type", _HTML),
                   self._cookie(portal, SESSION_COOKIE, self.desk.sign(session_token))]
        return "303 See Other", headers, b""

    def _with_access(
        self, environ: dict[str, Any], portal: PortalBrand,
        view: Callable[[dict[str, Any], PortalBrand, PortalAccess], Response],
    ) -> Response:
        access = self.desk.access(portal, self._session_token(environ))
        if access is None:
            minutes = int(SESSION_IDLE_TIMEOUT.total_seconds() // 60)
            return "403 Forbidden", [("Content-Type", _HTML)], self._page(
                portal, "message.html", title="Signed out",
                message=f"You are not signed in to an order here, or your session ended (after {minutes} minutes "
                        "without use, or when you signed out). Search for your order to get a new link.", back=True)
        return view(environ, portal, access)

    def _sign_out(self, environ: dict[str, Any], portal: PortalBrand) -> Response:
        token = self._session_token(environ)
        access = self.desk.access(portal, token)
        try:
            form = read_form(environ)
        except FormError:
            form = {}
        if access is not None and not self.desk.csrf_matches(access, form.get("csrf", "")):
            return self._csrf_refused(portal)
        self.desk.sign_out(token)
        headers = [("Content-Type", _HTML), self._cookie(portal, SESSION_COOKIE, "", expire=True)]
        return "200 OK", headers, self._page(portal, "message.html", title="Signed out",
                                             message="You are signed out.", back=True)

    # -- the order ---------------------------------------------------------------------------

    def _order(self, environ: dict[str, Any], portal: PortalBrand, access: PortalAccess) -> Response:
        page = self.desk.order_page(access)
        body = self._page(portal, "order.html", title=f"Order {page.order.order_id}", page=page, access=access)
        return "200 OK", [("Content-Type", _HTML)], body

    def _download(self, portal: PortalBrand, access: PortalAccess, kind: str) -> Response:
        page = self.desk.order_page(access)
        if page.order.certificate is None:
            return self._not_found(portal)
        name = f"{page.order.order_id}-{page.order.certificate.serial}"
        return _certificate_download(page.order.certificate.pem, page.chain, kind, name)

    def _reissue_form(self, portal: PortalBrand, access: PortalAccess, *, errors: dict[str, str] | None = None,
                      code: int | None = None, csr: str = "", agreed: bool = False, status: str = "200 OK") -> Response:
        page = self.desk.order_page(access)
        body = self._page(portal, "reissue.html", title="Reissue certificate", page=page, access=access,
                          errors=errors or {}, code=code, csr=csr, agreed=agreed, agreement=self._agreement)
        return status, [("Content-Type", _HTML)], body

    def _reissue(self, environ: dict[str, Any], portal: PortalBrand, access: PortalAccess) -> Response:
        try:
            form = read_form(environ, multipart=True)  # the CSR file: only once the session is known
        except FormError as error:
            return self._reissue_form(portal, access, errors={"csr": f"The form could not be read: {error}."},
                                      status="400 Bad Request")
        if not self.desk.csrf_matches(access, form.get("csrf", "")):
            return self._csrf_refused(portal)
        pasted, uploaded = form.get("csr", ""), form.get("csr_file", "")
        csr = uploaded if uploaded.strip() else pasted
        agreed = form.get("agreement") == "yes"
        try:
            outcome = self.desk.reissue(access, csr=csr, agreed=agreed)
        except PortalRefusal as refusal:
            return self._reissue_form(portal, access, errors={refusal.field or "csr": refusal.message},
                                      csr=pasted[:70_000], agreed=agreed, status="400 Bad Request")
        except ServiceError as refusal:
            field = FIELD_OF_CODE.get(refusal.field or "", "csr")
            return self._reissue_form(portal, access, errors={field: _plain_words(refusal)}, code=refusal.code,
                                      csr=pasted[:70_000], agreed=agreed, status="400 Bad Request")
        body = self._page(portal, "reissued.html", title="Certificate reissued", outcome=outcome, access=access)
        return "200 OK", [("Content-Type", _HTML)], body

    # -- helpers -----------------------------------------------------------------------------

    def _anonymous_form(self, environ: dict[str, Any], portal: PortalBrand) -> tuple[dict[str, str], Response | None]:
        try:
            form = read_form(environ)
        except FormError:
            return {}, self._lookup_form(environ, portal, errors={"form": "The form could not be read; try again."},
                                         status="400 Bad Request")
        expected = _cookies(environ).get(CSRF_COOKIE, "")
        given = form.get("csrf", "")
        if self.desk.unsign(expected) is None or not hmac.compare_digest(expected.encode()[:256],
                                                                         given.encode()[:256]):
            return form, self._csrf_refused(portal)
        return form, None

    def _csrf_refused(self, portal: PortalBrand) -> Response:
        return "403 Forbidden", [("Content-Type", _HTML)], self._page(
            portal, "message.html", title="Form expired",
            message="This form is no longer valid (it came from another page, or cookies are off). "
                    "Open the page again and resend it.", back=True)

    def _anonymous_csrf(self, environ: dict[str, Any]) -> str:
        """The visitor's signed CSRF value (kept while it verifies), else a new one: a value this
        installation did not sign is never taken, so nobody can plant a known one."""
        current = _cookies(environ).get(CSRF_COOKIE, "")
        if self.desk.unsign(current) is not None:
            return current
        return self.desk.sign(secrets.token_urlsafe(32))

    def _session_token(self, environ: dict[str, Any]) -> str | None:
        return self.desk.unsign(_cookies(environ).get(SESSION_COOKIE))

    def _cookie(self, portal: PortalBrand, name: str, value: str, *, expire: bool = False) -> tuple[str, str]:
        parts = [f"{name}={value}", f"Path={PREFIX}{portal.slug}/", "HttpOnly", "SameSite=Lax"]
        if self._secure:
            parts.append("Secure")
        if expire:
            parts.append("Max-Age=0")
        return "Set-Cookie", "; ".join(parts)

    def _page(self, portal: PortalBrand | None, template: str, **context: Any) -> bytes:
        return self._templates.get_template(template).render(portal=portal, prefix=PREFIX, **context).encode()

    def _not_found(self, portal: PortalBrand | None = None) -> Response:
        return "404 Not Found", [("Content-Type", _HTML)], self._page(
            portal, "message.html", title="Not found", message="There is no such page.")

    def _incident(self, incident: InternalError) -> Response:
        body = self._page(None, "message.html", title="Something went wrong",
                          message=f"{incident.message} Tell support this reference.")
        return "500 Internal Server Error", [("Content-Type", _HTML)], body


def _plain_words(refusal: ServiceError) -> str:
    """A reissue refusal as a person reads it: the RA's message, which never quotes a secret."""
    message = refusal.message.rstrip(".")
    return message[:1].upper() + message[1:] + "."


def _certificate_download(pem: str, chain: tuple[ChainCertificate, ...], kind: str, name: str) -> Response:
    leaf = x509.load_pem_x509_certificate(pem.encode())
    ca_certificates = [x509.load_pem_x509_certificate(c.pem.encode()) for c in chain]
    if kind == "pem":
        body = pem.encode() + b"".join(c.pem.encode() for c in chain)
        content_type = "application/x-pem-file"
    else:
        body = pkcs7.serialize_certificates([leaf, *ca_certificates], Encoding.DER)
        content_type = "application/pkcs7-mime"
    return "200 OK", [("Content-Type", content_type),
                      ("Content-Disposition", f'attachment; filename="{name}.{kind}"')], body


def _cookies(environ: dict[str, Any]) -> dict[str, str]:
    raw = environ.get("HTTP_COOKIE", "")
    if not raw or len(raw) > 4096:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}
