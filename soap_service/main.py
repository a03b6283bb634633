"""The ``soap-service`` command: one parser, whose commands ``cli`` (init, demo, partner,
order), ``audit_commands`` (audit) and ``server`` (serve, wsdl) each add with their handlers.

``serve`` and ``wsdl`` need the SOAP front end, which ``cli`` (a front end of its own)
may not import; this entry point sits above both (the layers in pyproject.toml). An
unknown command is argparse's usage error (exit 2); the exit statuses of the commands
themselves are in ``cli``'s docstring.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# pkilint's language table (python-iso639, read from CSV files at import) loads here, before
# anything else is in the heap: loaded late, deep in the import of the linter, CPython 3.13.0
# maps and unmaps memory ~200,000 times doing it, 2 s of system time at every start
# (3.5 s instead of 5.5 s per command or server on 3.13; no change on 3.11).
import iso639  # noqa: F401  # type: ignore[import-untyped,unused-ignore]

from soap_service import audit_commands, cli, server
from soap_service.datadir import restrict_umask

Handler = Callable[[argparse.Namespace], int]


def parser() -> argparse.ArgumentParser:
    """``soap-service``'s parser: every command, each with its ``handler``."""
    built = argparse.ArgumentParser(prog="soap-service", description="Partner Order API: operator and serving commands")
    commands = built.add_subparsers(dest="command", required=True, title="commands")
    cli.add_commands(commands)
    audit_commands.add_commands(commands)
    server.add_commands(commands)
    return built


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None) and run its command's handler."""
    args = parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    restrict_umask()  # whatever a command creates (database, WAL, passphrase) is the user's alone
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
