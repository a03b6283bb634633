"""The operator's command line: ``soap-service``.

Every command reads SOAP_SERVICE_DATABASE_URL and SOAP_SERVICE_DATA_DIR. Results
are one JSON object on stdout; a refusal exits 1 with ``error <code>: <message>``
on stderr and changes nothing.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soap_service import demo
from soap_service.config import ConfigurationError, Secret, Settings, load_settings
from soap_service.errors import InvalidField, ServiceError
from soap_service.ra.incidents import new_incident_id
from soap_service.ra.installation import initialize
from soap_service.ra.orders import Contact, NewOrder, Organization, create_order, show_order_by_operator
from soap_service.ra.partners import create_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.service import RegistrationAuthority
from soap_service.ra.views import IssuanceOutcome


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soap-service", description="Partner Order API: operator commands")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("init", help="create the database schema, the catalogue and the CA hierarchy (once)")
    commands.add_parser("demo", help="init, a partner DEMO (user demo) and one completed order per product")

    partner = commands.add_parser("partner", help="manage partners").add_subparsers(dest="action", required=True)
    create = partner.add_parser("create", help="create a partner and its API user; the password is read on stdin")
    create.add_argument("--code", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--username", required=True)

    order = commands.add_parser("order", help="manage orders").add_subparsers(dest="action", required=True)
    new = order.add_parser("create", help="enter a completed order and sign its first certificate")
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

    show = order.add_parser("show", help="an order with its whole certificate history")
    show.add_argument("--partner", required=True)
    show.add_argument("--partner-order-id", required=True)

    reissue = order.add_parser("reissue", help="sign a new certificate for an order from a new CSR")
    reissue.add_argument("--partner", required=True)
    reissue.add_argument("--partner-order-id", required=True)
    reissue.add_argument("--csr", required=True, type=Path)
    reissue.add_argument("--name", action="append", dest="names", help="a name to include (repeat)")
    return parser


def _read_csr(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidField(f"cannot read CSR file {path}: {error.__class__.__name__}", field="CSR") from None


def _read_password() -> Secret:
    if sys.stdin.isatty():
        return Secret(getpass.getpass("password: "))
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


def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | None:
    ra = RegistrationAuthority.from_settings(settings)
    try:
        if args.command == "init":
            installation = initialize(ra)
            return {
                "created": installation.created,
                "authorities": [vars(a) for a in installation.authorities],
            }
        if args.command == "demo":
            demo.run(ra, sys.stdout)
            return None
        if args.command == "partner":
            created = create_partner(
                ra, code=args.code, name=args.name, username=args.username, password=_read_password()
            )
            return vars(created)
        if args.action == "create":
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
        if args.action == "show":
            view = show_order_by_operator(ra, partner_code=args.partner, partner_order_id=args.partner_order_id)
            data = view.to_json(with_history=True)
            data["warnings"] = []
            return data
        request = ReissueRequest(
            partner_order_id=args.partner_order_id,
            csr=_read_csr(args.csr),
            dns_names=tuple(args.names) if args.names else None,
        )
        return _outcome_json(Reissuer(ra).reissue_by_operator(args.partner, request))
    finally:
        ra.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("pkilint", "alembic", "sqlalchemy"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        result = _run(args, settings)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ServiceError as error:
        field = f" [{error.field}]" if error.field else ""
        print(f"error {error.code}: {error.message}{field}", file=sys.stderr)
        return 1
    except Exception:
        incident = new_incident_id()
        logging.getLogger(__name__).exception("command %s failed, incident %s", args.command, incident)
        print(f"error -9000: internal error, incident {incident} (details in the log above)", file=sys.stderr)
        return 1
    if result is not None:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
