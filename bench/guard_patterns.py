"""What the guard's checks of a request body cost on the worst input at the body limit
(issue 6): the scan for a DOCTYPE, the one regular expression that sees request bytes,
and a schema refusal among many siblings.

    .venv/bin/python bench/guard_patterns.py [--repeat 5]

``declares_dtd`` looks through the whole decoded body (1 MiB) for fixed strings (it replaced
a case-insensitive pattern that took 30 to 70 ms on the same inputs); ``_DECLARED_ENCODING``
is matched at the start of the body, never past its first 512 bytes. Each is fed the inputs
that make a backtracking engine work hardest: near-misses of the literal on every position,
long runs for each ``\\s*`` and ``[^>]*?`` to give back. Then ``OperationSchema.breach`` on a
Reissue with 40,000 DNSName elements whose last one breaks the schema (lxml's error path is
resolved by walking down once). Prints the best of ``--repeat`` runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lxml import etree

from soap_service.api.application import xsd_document
from soap_service.api.envelope import declares_dtd
from soap_service.api.http_body import MAX_BODY_BYTES, document_charset
from soap_service.api.schema import OperationSchema

TNS = "urn:soap-service:order:v1"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def fill(unit: str, size: int = MAX_BODY_BYTES) -> str:
    return unit * (size // len(unit))


def declaration_inputs() -> dict[str, str]:
    return {
        "<!DOCTYP x": fill("<!DOCTYP "),
        "<!ENTIT x": fill("<!ENTIT "),
        "<! x": fill("<!"),
        "< x": fill("<"),
        "mixed case <!doctyP": fill("<!doctyP"),
        "dotless i <!ENT\\u0131T": fill("<!ENT\u0131T"),
        "no '<' at all": fill("a"),
    }


def encoding_inputs() -> dict[str, bytes]:
    head = b"<?xml "
    return {
        "spaces before <?xml": fill(" ").encode(),
        "encoding repeated, no '='": head + fill("encoding ").encode(),
        "encoding = then spaces": head + b"encoding" + fill(" ", 256).encode() + b"=" + fill(" ").encode(),
        "no '>' and no encoding": head + fill("v").encode(),
        "quote never closed": head + b'encoding="' + fill("a").encode(),
    }


def siblings_payload() -> etree._Element:
    names = "<o:DNSName>a</o:DNSName>" * 40_000
    body = (
        f'<s:Envelope xmlns:s="{ENV}" xmlns:o="{TNS}"><s:Body><o:Reissue><o:Request><o:OrderRequestHeader>'
        "<o:PartnerCode>P</o:PartnerCode><o:AuthToken><o:UserName>u</o:UserName><o:Password>p</o:Password>"
        "</o:AuthToken><o:PartnerOrderID>O</o:PartnerOrderID></o:OrderRequestHeader><o:OrderParameters>"
        f"<o:CSR>c</o:CSR><o:DNSNames>{names}<o:DNSName>x<o:X/></o:DNSName></o:DNSNames></o:OrderParameters>"
        "</o:Request></o:Reissue></s:Body></s:Envelope>"
    )
    return etree.fromstring(body.encode())[0][0]


def best_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    print(f"declares_dtd over {MAX_BODY_BYTES} characters")
    for name, text in declaration_inputs().items():
        print(f"  {name:32} {best_ms(lambda text=text: declares_dtd(text), repeat):8.2f} ms")
    print(f"document_charset (_DECLARED_ENCODING, first 512 bytes) on {MAX_BODY_BYTES}-byte bodies")
    for name, body in encoding_inputs().items():
        print(f"  {name:32} {best_ms(lambda body=body: document_charset(body), repeat):8.3f} ms")
    schema = OperationSchema(xsd_document())
    payload = siblings_payload()
    print(f"OperationSchema.breach, 40,001 siblings: {best_ms(lambda: schema.breach(payload), repeat):.1f} ms")


if __name__ == "__main__":
    main()
