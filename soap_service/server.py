"""``soap-service serve`` (gunicorn with the package's configuration) and
``soap-service wsdl`` (the published WSDL, or with ``--xsd`` the message schema).

:func:`add_commands` adds both to the one parser of ``soap-service``, which
``soap_service.main`` builds; they live here because they need the SOAP front end,
which ``cli`` (a front end of its own) may not import. Both exit 2 on a bad setting.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from soap_service import demo, gunicorn_conf
from soap_service.api.application import service_url, wsdl_document, xsd_document
from soap_service.api.guard import SERVICE_PATH
from soap_service.config import ConfigurationError, Settings, load_settings
from soap_service.logjson import json_handler
from soap_service.ra.portal import PORTALS
from soap_service.webtrust.application import SERVICES as WEBTRUST_SERVICES
from soap_service.webtrust.application import wsdl_document as webtrust_wsdl
from soap_service.webtrust.application import xsd_document as webtrust_xsd

DEFAULT_BIND = "127.0.0.1:8080"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

logger = logging.getLogger(__name__)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add serve and wsdl, each with its handler, to ``soap-service``'s commands."""
    serve_command = commands.add_parser("serve", help="serve the SOAP API with gunicorn, in the foreground")
    serve_command.add_argument("--bind", default=DEFAULT_BIND,
                               help=f"address to listen on: HOST:PORT, unix:PATH or fd://N (default {DEFAULT_BIND})")
    serve_command.add_argument("--workers", type=_positive, default=gunicorn_conf.workers,
                               help=f"worker processes (default {gunicorn_conf.workers})")
    serve_command.add_argument("--threads", type=_positive, default=gunicorn_conf.threads,
                               help=f"threads per worker (default {gunicorn_conf.threads})")
    serve_command.add_argument("--quiet", action="store_true", help="do not print the start-up banner")
    serve_command.set_defaults(handler=lambda args: serve(args, sys.stdout))
    wsdl_command = commands.add_parser("wsdl", help="print the WSDL served at /api/order?wsdl")
    wsdl_command.add_argument("--xsd", action="store_true", help="print the XML schema of the messages instead")
    wsdl_command.add_argument("--webtrust", choices=sorted(WEBTRUST_SERVICES),
                              help="the WSDL of a drop-in service instead (/webtrust/order.jws?WSDL, query.jws)")
    wsdl_command.add_argument("--public-url", help="the URL the WSDL's soap:address is built on "
                                                   "(default SOAP_SERVICE_PUBLIC_URL)")
    wsdl_command.set_defaults(handler=lambda args: wsdl(args, sys.stdout))


def banner(settings: Settings, *, bind: str, workers: int, threads: int) -> str:
    """What ``serve`` prints before it starts: where the API is, the demo partner, and how to
    reissue a demo order. The demo's password is shown when ``soap-service demo`` kept it in the
    data directory and it is this database's (``demo.shown_credentials``); this goes to the
    operator's terminal, never to a log."""
    endpoint = service_url(settings.public_url)
    base = settings.public_url.rstrip("/")
    kept = _from_here(demo.credentials_path(settings.data_dir))
    credentials = demo.shown_credentials(settings)
    if credentials is not None:
        shown = credentials.password.reveal()
        partner = [
            f"  demo partner   PartnerCode {credentials.partner_code}, UserName {credentials.username}, "
            f"Password {shown}",
            f"                 (kept in {kept}; `make clean` and `make run` make a new one)",
        ]
    else:
        shown = "PASSWORD"
        partner = [
            f"  demo partner   PartnerCode {demo.PARTNER_CODE}, UserName {demo.USERNAME} (its password is shown here "
            "once `soap-service demo`",
            f"                 has kept it in {kept}; `make clean` and `make run` make a new one)",
        ]
    return "\n".join([
        "soap-service: Partner Order API (SOAP 1.1)",
        f"  listening on   {bind}  ({workers} workers x {threads} threads; Ctrl-C stops)",
        f"  endpoint       POST {endpoint}",
        f"  WSDL           {endpoint}?wsdl",
        f"  schema         {endpoint}?xsd",
        f"  SymAPI drop-in {base}/webtrust/order.jws?WSDL, {base}/webtrust/query.jws?WSDL (docs/migration.md)",
        *partner,
        "  demo orders    DEMO-SSL123, DEMO-RapidSSL, DEMO-SecureSite, ... (one per product)",
        "  End User Portal " + ", ".join(f"{settings.public_url}/portal/{slug}/" for slug in PORTALS),
        f"                 (demo contact {demo.ADMIN_EMAIL}; without SOAP_SERVICE_SMTP_URL its access mail is "
        f"an .eml under {_from_here(settings.data_dir / 'outbox')})",
        "",
        "  Reissue a demo order with zeep (a new key and CSR are made for you):",
        f"    {_interpreter()} examples/reissue_zeep.py --url {endpoint} --order DEMO-SSL123 --password '{shown}'",
        "  the same with curl and the ready envelope examples/reissue.xml:",
        f"    sed 's/DEMO-PASSWORD/{shown}/' examples/reissue.xml |",
        "      curl -sS -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: \"Reissue\"' \\",
        f"        --data-binary @- {endpoint}",
        "",
    ])


def _interpreter() -> str:
    """This interpreter as the banner shows it (``.venv/bin/python``, ``.venv-3.13/bin/python``)."""
    return _from_here(Path(sys.executable))


def _from_here(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, else in full."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _host_port(bind: str) -> tuple[str, int] | None:
    """(host, port) of a ``--bind HOST:PORT`` (``[::1]:PORT`` too); None for ``unix:``, ``fd://``."""
    if bind.startswith(("unix:", "fd://")):
        return None
    host, separator, port = bind.rpartition(":")
    if not separator or not port.isdigit():
        return None
    return host.strip("[]").lower(), int(port)


def bind_mismatch(bind: str, public_url: str) -> str | None:
    """A warning when the WSDL's ``soap:address`` (built on ``public_url``) names this server's
    host but another port than ``--bind``: clients generated from the WSDL would call a port
    nobody listens on. Only for a public URL on the bind host or on a loopback name: one on
    another host is a reverse proxy's, whose port differs by design."""
    listening = _host_port(bind)
    if listening is None:
        return None
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    bind_host, bind_port = listening
    if (host != bind_host and host not in _LOOPBACK_HOSTS) or port == bind_port:
        return None
    named = f"[{host}]" if ":" in host else host
    return (
        f"--bind {bind} listens on port {bind_port}, but SOAP_SERVICE_PUBLIC_URL names port {port}: "
        f"the WSDL's soap:address ({parts.scheme}://{named}:{port}{SERVICE_PATH}) does not reach this server "
        f"unless a proxy listens there; else set SOAP_SERVICE_PUBLIC_URL={parts.scheme}://{named}:{bind_port}"
    )


def _gunicorn_settings() -> dict[str, Any]:
    return {name: value for name, value in vars(gunicorn_conf).items() if not name.startswith("_")}


def serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        settings = load_settings()
        # Every line a JSON object (soap_service.logjson), as gunicorn_conf.logconfig_dict has it once gunicorn runs.
        logging.basicConfig(level=settings.log_level, handlers=[json_handler(sys.stderr, settings.log_level)])
        gunicorn_conf.body_read_timeout()
        gunicorn_conf.header_read_timeout()
        _preflight(settings)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    mismatch = bind_mismatch(args.bind, settings.public_url)
    if mismatch is not None:
        logger.warning("%s", mismatch)
    if not args.quiet:
        out.write(banner(settings, bind=args.bind, workers=args.workers, threads=args.threads) + "\n")
        out.flush()
    from gunicorn.app.base import BaseApplication

    overrides = {"bind": [args.bind], "workers": args.workers, "threads": args.threads}

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {**_gunicorn_settings(), **overrides}
            for name, value in settings.items():
                if name in self.cfg.settings and value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            from soap_service.wsgi import application

            return application

    try:
        Server().run()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def _preflight(settings: Settings) -> None:
    """Build the registration authority once in the master: a bad setting fails here, plainly,
    and the CA passphrase file of a new data directory is made before any worker races for it."""
    from soap_service.ra.installation import is_initialized
    from soap_service.ra.service import RegistrationAuthority

    ra = RegistrationAuthority.from_settings(settings)
    try:
        if not is_initialized(ra):
            raise ConfigurationError(
                "the database has no CA hierarchy yet: run `soap-service init` (or `soap-service demo`) first"
            )
    finally:
        ra.close()


def wsdl(args: argparse.Namespace, out: TextIO) -> int:
    webtrust = getattr(args, "webtrust", None)
    if args.xsd and webtrust is not None:
        out.write(webtrust_xsd(webtrust).decode())
        return 0
    if args.xsd:
        out.write(xsd_document().decode())
        return 0
    public_url = args.public_url
    if public_url is None:
        try:
            public_url = load_settings().public_url
        except ConfigurationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if webtrust is not None:
        out.write(webtrust_wsdl(webtrust, public_url.rstrip("/")).decode())
        return 0
    out.write(wsdl_document(public_url.rstrip("/")).decode())
    return 0
