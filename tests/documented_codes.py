"""The outcomes a client may be answered with, read from where they are documented: the
SuccessCodes of soap_service/errors.py (docs/design.md, "Error model": each ServiceError's
code, 0 and the warning 1001) and the faultcodes of docs/soap-api.md's fault table."""

from __future__ import annotations

import re

from api_support import REPO
from soap_service import errors


def _codes(cls: type[errors.ServiceError]) -> set[int]:
    found = {cls.code} if "code" in vars(cls) else set()
    for subclass in cls.__subclasses__():
        found |= _codes(subclass)
    return found


REFUSAL_CODES = frozenset(_codes(errors.ServiceError))
"""-2019, -4001, ... -4015: every refusal's code."""
SUCCESS_CODES = frozenset({0, errors.KEY_REUSE_WARNING, *REFUSAL_CODES})
"""What a SuccessCode may be, but for an incident (-9000)."""


def _documented_faultcodes() -> frozenset[str]:
    guide = (REPO / "docs" / "soap-api.md").read_text(encoding="utf-8")
    table = guide.split("| faultcode | the cause |", 1)[1].split("\n\n", 1)[0]
    return frozenset(re.findall(r"^\| `([A-Za-z.]+)` \|", table, flags=re.MULTILINE))


CLIENT_FAULTCODES = _documented_faultcodes() - {"Server"}
"""Every faultcode of the integration guide but ``Server`` (an incident)."""
