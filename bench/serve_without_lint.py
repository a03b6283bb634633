"""``soap-service`` with the pre-issuance lint switched off, for the benchmark's lint-free run only.

    .venv/bin/python bench/serve_without_lint.py serve --bind 127.0.0.1:8081

The settings have no switch for the lint, so this launcher replaces
``PreIssuanceLinter.findings`` with an empty answer in this process before the command runs;
gunicorn's workers are forked from it and inherit the replacement. Everything else (the
hierarchy, the key policy, the transaction) is the product's own. Never for a real CA: a leaf
is then signed without being linted.
"""

from __future__ import annotations

import sys
from typing import Any

from soap_service.ca import lint
from soap_service.main import main


def _no_findings(self: lint.PreIssuanceLinter, certificate: Any, level: Any) -> list[str]:
    return []


lint.PreIssuanceLinter.findings = _no_findings  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
