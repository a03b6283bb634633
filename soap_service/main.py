"""The ``soap-service`` command: serving commands here, operator commands in ``cli``.

``serve`` and ``wsdl`` need the SOAP front end, which ``cli`` (a front end of
its own) may not import; this entry point sits above both.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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
