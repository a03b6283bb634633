"""Cost of checking a request's text fields on their worst inputs, before and after issue 6.

    .venv/bin/python bench/request_fields.py [--repeat 5] [--old-email-dots 20000]

"old" runs the patterns the RA used until issue 6 (copied here), "new" the code that replaced
them (soap_service.ra.fields, names, csr). Each input is the worst known for the old pattern,
cut to the bound the new code enforces; the old e-mail pattern is also timed on a shorter
reproducer (``--old-email-dots``), because the issue's 110,000 dots take it about 30 s.
Prints the best of ``--repeat`` runs per input, in milliseconds.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from soap_service.errors import ServiceError
from soap_service.ra.csr import MAX_CSR_CHARS, parse_csr
from soap_service.ra.fields import MAX_EMAIL_CHARS, checked_email
from soap_service.ra.names import is_dns_name

OLD_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
OLD_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{1,40})-----(?P<body>.*?)-----END (?P<end>[A-Z0-9 ]{1,40})-----",
    re.DOTALL,
)
OLD_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def best_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            call()
        except ServiceError:
            pass
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--old-email-dots", type=int, default=20_000)
    options = parser.parse_args()
    repeat = options.repeat

    issue_email = "x@" + "." * 110_000 + "@"
    short_email = "x@" + "." * options.old_email_dots + "@"
    bound_email = "x@" + "." * (MAX_EMAIL_CHARS - 3) + "@"
    floods = {
        "BEGIN A flood": "-----BEGIN A" * (MAX_CSR_CHARS // 12),
        "BEGIN A----- lines": "-----BEGIN A-----" * (MAX_CSR_CHARS // 17),
        "BEGIN + END prefixes": "-----BEGIN CERTIFICATE REQUEST-----" + "-----END " * ((MAX_CSR_CHARS - 35) // 9),
    }
    name = "a." * 126 + "a"

    rows: list[tuple[str, str, float]] = []
    rows.append((f"e-mail, {options.old_email_dots:,} dots", "old pattern",
                 best_ms(lambda: OLD_EMAIL.match(short_email), 1)))
    rows.append(("e-mail, 110,000 dots (the issue's)", "new: refused on length",
                 best_ms(lambda: checked_email(issue_email, "ReissueEmail"), repeat)))
    rows.append(("e-mail, 251 dots (at the bound)", "old pattern",
                 best_ms(lambda: OLD_EMAIL.match(bound_email), repeat)))
    rows.append(("e-mail, 251 dots (at the bound)", "new",
                 best_ms(lambda: checked_email(bound_email, "ReissueEmail"), repeat)))
    for label, text in floods.items():
        rows.append((f"CSR, {label} ({len(text):,} chars)", "old pattern",
                     best_ms(lambda text=text: list(OLD_PEM_BLOCK.finditer(text)), 1)))
        rows.append((f"CSR, {label} ({len(text):,} chars)", "new: parse_csr",
                     best_ms(lambda text=text: parse_csr(text), repeat)))
    rows.append(("DNS name of 127 labels (253 chars)", "old pattern",
                 best_ms(lambda: all(OLD_LABEL.match(label) for label in name.split(".")), repeat)))
    rows.append(("DNS name of 127 labels (253 chars)", "new", best_ms(lambda: is_dns_name(name), repeat)))

    width = max(len(row[0]) for row in rows)
    for what, how, ms in rows:
        print(f"{what:<{width}}  {how:<24} {ms:10.3f} ms")


if __name__ == "__main__":
    main()
