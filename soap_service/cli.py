"""The operator's commands of ``soap-service``: init, demo, partner (create, set-password), order,
ca (rotate-passphrase, finish-rotation).

``soap_service.main`` builds the one parser of ``soap-service`` from the commands
this module and ``server`` (serve, wsdl) add to it; each command dispatches to its own
function. Every command here reads SOAP_SERVICE_DATABASE_URL and SOAP_SERVICE_DATA_DIR
and prints its result as one JSON object on stdout. Exit statuses (docs/design.md,
"Error model"):

- 0: done;
- 1: refused (a ``ServiceError``): ``error <code>: <message> [field]`` on stderr, and
  nothing changed;
- 2: a usage error (argparse's message) or a bad setting: ``error: <message>``;
- 3: an incident: ``error -9000: internal error, incident INC-... (details in the log
  above)``; the log on stderr holds the failure, the audit trail its event when a
  use case failed.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from soap_service import demo
from soap_service.config import ConfigurationError, Secret, Settings, load_settings
from soap_service.errors import InternalError, InvalidField, ServiceError
from soap_service.ra.crls import CRLPublisher, UnknownAuthority, crl_ca_name
from soap_service.ra.incidents import open_incident
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, Organization, create_order, show_order_by_operator
from soap_service.ra.partners import create_partner, set_password
from soap_service.ra.passphrase_rotation import finish_interrupted_rotation, rotate_passphrase
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.revocation import REVOCATION_REASONS, Revoker, RevokeRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome
from soap_service.vocabulary import Brand

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INCIDENT = 3

Action = Callable[[argparse.Namespace, RegistrationAuthority], "dict[str, Any] | None"]
"""What a command does with the registration authority: its JSON result, or None when it printed its own."""

logger = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add init, demo, partner and order, each with its handler, to ``soap-service``'s commands."""
    _command(commands, "init", _init, help="create the database schema, the catalogue and the CA hierarchy (once)")
    _command(commands, "demo", _demo, help="init, a partner DEMO (user demo) and one completed order per product")

    partner = commands.add_parser("partner", help="manage partners").add_subparsers(dest="action", required=True)
    create = _command(partner, "create", _create_partner, name="partner create",
                      help="create a partner and its API user; the password is read on stdin")
    create.add_argument("--code", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--username", required=True)
    password = _command(partner, "set-password", _set_password, name="partner set-password",
                        help="set an API user's password, read on stdin; --ws-digest also keeps an encrypted "
                             "copy so that WS-Security PasswordDigest tokens work (docs/security.md)")
    password.add_argument("--code", required=True)
    password.add_argument("--username", required=True)
    password.add_argument("--ws-digest", action="store_true",
                          help="keep a copy of the password encrypted under the installation's key "
                               "(PasswordDigest needs it); without it any copy is removed")

    order = commands.add_parser("order", help="manage orders").add_subparsers(dest="action", required=True)
    new = _command(order, "create", _create_order, name="order create",
                   help="enter a completed order and sign its first certificate")
    new.add_argument("--partner", required=True)
    new.add_argument("--partner-order-id", required=True)
    new.add_argument("--product", required=True)
    new.add_argument("--name", action="append", default=[], dest="names", help="a validated DNS name (repeat)")
    new.add_argument("--organization")
    new.add_argument("--country")
    new.add_argument("--state")
    new.add_argument("--locality")
    new.add_argument("--business-category")
    new.add_argument("--jurisdiction-country")
    new.add_argument("--registration-number")
    new.add_argument("--admin-email", required=True)
    new.add_argument("--tech-email", required=True)
    new.add_argument("--billing-email")
    new.add_argument("--term-days", type=int, default=365)
    new.add_argument("--csr", required=True, type=Path, help="a PEM or base64 DER CSR file")

    show = _command(order, "show", _show_order, name="order show", help="an order with its whole certificate history")
    show.add_argument("--partner", required=True)
    show.add_argument("--partner-order-id", required=True)

    reissue = _command(order, "reissue", _reissue_order, name="order reissue",
                       help="sign a new certificate for an order from a new CSR")
    reissue.add_argument("--partner", required=True)
    reissue.add_argument("--partner-order-id", required=True)
    reissue.add_argument("--csr", required=True, type=Path)
    reissue.add_argument("--name", action="append", dest="names", help="a name to include (repeat)")

    revoke = _command(order, "revoke", _revoke_order, name="order revoke",
                      help="revoke the order's current certificate, or the one with --serial")
    revoke.add_argument("--partner", required=True)
    revoke.add_argument("--partner-order-id", required=True)
    revoke.add_argument("--serial", help="the certificate's serial in hex (default: the current certificate)")
    revoke.add_argument("--reason", required=True, help="one of " + ", ".join(REVOCATION_REASONS))

    cancel = _command(order, "cancel", _cancel_order, name="order cancel",
                      help="cancel the order and revoke its valid certificates (cessationOfOperation)")
    cancel.add_argument("--partner", required=True)
    cancel.add_argument("--partner-order-id", required=True)

    ca = commands.add_parser("ca", help="the CA's keys").add_subparsers(dest="action", required=True)
    rotate = _command(ca, "rotate-passphrase", _rotate_passphrase, name="ca rotate-passphrase",
                      help="re-encrypt every CA key and WS-Security password copy under a new CA passphrase, "
                           "in one transaction, and write it to the passphrase file (docs/deployment.md); "
                           "ends every portal session")
    rotate.add_argument("--new-passphrase-stdin", action="store_true",
                        help="read the new passphrase on stdin (default: generate one, when the service "
                             "writes the passphrase file)")
    rotate.add_argument("--external", action="store_true",
                        help="the passphrase is kept outside the service (a Docker secret): write no file, "
                             "the operator sets the new passphrase on every host")
    _command(ca, "finish-rotation", _finish_rotation, name="ca finish-rotation",
             help="complete or undo a passphrase rotation a crash interrupted (nothing when there was none)")

    crl = _command(commands, "crl", _write_crl,
                   help="write the current CRL (DER) of a brand's TLS or code-signing CA to stdout")
    crl.add_argument("--brand", required=True, type=str.upper, choices=[brand.value for brand in Brand])
    crl.add_argument("--code-signing", action="store_true", help="the brand's code-signing CA")


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    word: str,
    action: Action,
    *,
    help: str,
    name: str | None = None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(word, help=help)
    parser.set_defaults(handler=functools.partial(_run, name or word, action))
    return parser


def _run(name: str, action: Action, args: argparse.Namespace) -> int:
    """Run one operator command: the three cases of docs/design.md, "Error model", and a bad setting."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(settings)
    try:
        result = _with_registration_authority(settings, action, args)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceError as refusal:
        field = f" [{refusal.field}]" if refusal.field else ""
        print(f"error {refusal.code}: {refusal.message}{field}", file=sys.stderr)
        return EXIT_REFUSED
    except InternalError as incident:
        return _report(incident)
    except Exception as failure:  # noqa: BLE001 - any other failure is an incident, opened here
        return _report(open_incident(logger, f"soap-service {name} failed", failure=failure))
    if result is not None:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


def _with_registration_authority(
    settings: Settings, action: Action, args: argparse.Namespace
) -> dict[str, Any] | None:
    ra = RegistrationAuthority.from_settings(settings)
    try:
        return action(args, ra)
    finally:
        ra.close()


def _report(incident: InternalError) -> int:
    print(f"error {incident.code}: {incident.message} (details in the log above)", file=sys.stderr)
    return EXIT_INCIDENT


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("pkilint", "alembic", "sqlalchemy"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


def _read_csr(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidField(f"cannot read CSR file {path}: {error.__class__.__name__}", field="CSR") from None


def _read_password() -> Secret:
    return _read_secret("password: ")


def _read_secret(prompt: str, *, confirm: bool = False) -> Secret:
    """A line of stdin, or typed at a terminal without echo; ``confirm`` asks a terminal twice (a
    typo in a new CA passphrase would encrypt every key under a passphrase nobody has)."""
    if sys.stdin.isatty():
        typed = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != typed:
            raise InvalidField("the two entries differ: nothing was changed", field="--new-passphrase-stdin")
        return Secret(typed)
    return Secret(sys.stdin.readline().rstrip("\r\n"))


def _outcome_json(outcome: IssuanceOutcome, *, with_history: bool = False) -> dict[str, Any]:
    data = outcome.order.to_json(with_history=with_history)
    data["certificate"] = outcome.certificate.to_json()
    data["warnings"] = [{"code": w.code, "message": w.message} for w in outcome.warnings]
    return data


def _organization(args: argparse.Namespace) -> Organization | None:
    if not args.organization:
        return None
    return Organization(
        name=args.organization,
        country=(args.country or "").upper(),
        state=args.state,
        locality=args.locality,
        business_category=args.business_category,
        jurisdiction_country=(args.jurisdiction_country or "").upper() or None,
        registration_number=args.registration_number,
    )


def _init(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    installation = initialize(ra)
    return {"created": installation.created, "authorities": [vars(a) for a in installation.authorities]}


def _rotate_passphrase(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    if args.external and not args.new_passphrase_stdin:
        raise InvalidField("--external needs --new-passphrase-stdin: the service keeps no copy of a generated "
                           "passphrase it may not write", field="--external")
    new = _read_secret("new CA passphrase: ", confirm=True) if args.new_passphrase_stdin else None
    rotated = rotate_passphrase(ra, new=new, external=args.external)
    return {
        "keys_reencrypted": rotated.keys,
        "password_copies_reencrypted": rotated.password_copies,
        "passphrase_file": None if rotated.written_to is None else str(rotated.written_to),
        "next": "restart the service on every host with the new passphrase"
                + ("" if rotated.written_to is not None else " (set it where the hosts read it)")
                + "; portal visitors signed in before must sign in again (their cookies were signed with a key "
                  "derived from the old passphrase)",
    }


def _finish_rotation(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    finished = finish_interrupted_rotation(ra)
    return {"pending_file": None if finished.pending is None else str(finished.pending),
            "outcome": finished.outcome}


def _demo(args: argparse.Namespace, ra: RegistrationAuthority) -> None:
    demo.run(ra, sys.stdout)


def _create_partner(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    created = create_partner(ra, code=args.code, name=args.name, username=args.username, password=_read_password())
    return vars(created)


def _set_password(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    done = set_password(ra, code=args.code, username=args.username, password=_read_password(),
                        ws_digest=args.ws_digest)
    return {"code": done.code, "username": done.username, "ws_digest": done.ws_digest}


def _create_order(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    contacts = [Contact("admin", args.admin_email), Contact("technical", args.tech_email)]
    if args.billing_email:
        contacts.append(Contact("billing", args.billing_email))
    outcome = create_order(
        ra,
        NewOrder(
            partner_code=args.partner,
            partner_order_id=args.partner_order_id,
            product=args.product,
            names=tuple(args.names),
            csr=_read_csr(args.csr),
            contacts=tuple(contacts),
            organization=_organization(args),
            term_days=args.term_days,
        ),
    )
    return _outcome_json(outcome)


def _show_order(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    view = show_order_by_operator(ra, partner_code=args.partner, partner_order_id=args.partner_order_id)
    data = view.to_json(with_history=True)
    data["warnings"] = []
    return data


def _reissue_order(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    request = ReissueRequest(
        partner_order_id=args.partner_order_id,
        csr=_read_csr(args.csr),
        dns_names=tuple(args.names) if args.names else None,
    )
    return _outcome_json(Reissuer(ra).reissue_by_operator(args.partner, request))


def _write_crl(args: argparse.Namespace, ra: RegistrationAuthority) -> None:
    """The CA's current CRL, DER, on stdout and nothing else (docs/design.md, "Status publication")."""
    try:
        name = crl_ca_name(Brand(args.brand), code_signing=args.code_signing)
    except UnknownAuthority as unknown:
        raise InvalidField(str(unknown), field="--code-signing") from None
    crl = CRLPublisher(ra).current_crl(name)
    sys.stdout.flush()
    sys.stdout.buffer.write(crl.der)
    sys.stdout.buffer.flush()


def _revoke_order(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    request = RevokeRequest(partner_order_id=args.partner_order_id, serial_number=args.serial, certificate_pem=None,
                            reason=args.reason)
    revoked = Revoker(ra).revoke_by_operator(args.partner, request)
    return {
        "order_id": revoked.order_id,
        "partner_order_id": revoked.partner_order_id,
        "serial": revoked.serial_number,
        "revoked_at": _iso(revoked.revoked_at),
        "revocation_reason": revoked.reason,
        "also_revoked": list(revoked.also_revoked),
    }


def _cancel_order(args: argparse.Namespace, ra: RegistrationAuthority) -> dict[str, Any]:
    cancelled = Revoker(ra).cancel_by_operator(args.partner, args.partner_order_id)
    return {
        "order_id": cancelled.order_id,
        "partner_order_id": cancelled.partner_order_id,
        "status": "CANCELLED",
        "cancelled_at": _iso(cancelled.cancelled_at),
        "revoked": list(cancelled.revoked),
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
