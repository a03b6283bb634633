"""The ``soap-service`` command: serving commands here, operator commands in ``cli``.

``serve`` and ``wsdl`` need the SOAP front end, which ``cli`` (a front end of
its own) may not import; this entry point sits above both.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# pkilint's language table (python-iso639, read from CSV files at import) loads here, before
# anything else is in the heap: loaded late, deep in the import of the linter, CPython 3.13.0
# maps and unmaps memory ~200,000 times doing it, 2 s of system time at every start
# (3.5 s instead of 5.5 s per command or server on 3.13; no change on 3.11).
import iso639  # noqa: F401  # type: ignore[import-untyped,unused-ignore]

from soap_service.datadir import restrict_umask


def main(argv: Sequence[str] | None = None) -> int:
    restrict_umask()  # whatever a command creates (database, WAL, passphrase) is the user's alone
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("serve", "wsdl"):
        from soap_service import server

        return server.main(args)
    from soap_service import cli

    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
