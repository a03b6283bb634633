"""What the guard looks for in request bytes, fed the worst input at the body limit: the scan
for a DOCTYPE or an entity declaration (fixed strings, no pattern) and the XML declaration's
encoding (a pattern that never reads past 512 bytes). Each bound only catches a hang or a
blow-up: the expected times are a few milliseconds (bench/guard_patterns.py)."""

from __future__ import annotations

import time

import pytest

from soap_service.api.envelope import declares_dtd
from soap_service.api.http_body import MAX_BODY_BYTES, document_charset
from soap_service.api.refusal import Refusal


def fill(unit: str, size: int = MAX_BODY_BYTES) -> str:
    return unit * (size // len(unit))


@pytest.mark.parametrize(
    "text",
    [fill("<!DOCTYP "), fill("<!ENTIT "), fill("<!"), fill("<"), fill("<!doctyP"), fill("<!ENT\u0131T"), fill("a")],
    ids=["doctyp", "entit", "bang", "lt", "mixed-case", "dotless-i", "plain"],
)
def test_the_declaration_scan_is_linear_at_the_body_limit(text: str) -> None:
    started = time.perf_counter()
    found = declares_dtd(text)
    elapsed = time.perf_counter() - started
    assert not found
    assert elapsed < 1.0, elapsed
    assert declares_dtd(text + "<!doctype x>") and declares_dtd("<!Entity " + text)


@pytest.mark.parametrize(
    "text",
    ['<!DOCTYPE x [<!ENTITY e "e">]><a/>', "<!doctype a><a/>", "<!EnTiTy", "<!ENT\u0131TY"],
)
def test_every_letter_case_of_a_declaration_is_found(text: str) -> None:
    assert declares_dtd(text)


@pytest.mark.parametrize(
    "body",
    [
        fill(" ").encode(),
        b"<?xml " + fill("encoding ").encode(),
        b"<?xml encoding" + fill(" ", 256).encode() + b"=" + fill(" ").encode(),
        b"<?xml " + fill("v").encode(),
        b'<?xml encoding="' + fill("a").encode(),
    ],
    ids=["spaces", "encoding-repeated", "spaces-around-equals", "no-end", "quote-never-closed"],
)
def test_the_declared_encoding_is_read_within_512_bytes(body: bytes) -> None:
    started = time.perf_counter()
    assert document_charset(body) == "utf-8"
    assert time.perf_counter() - started < 0.5


def test_an_encoding_declared_within_512_bytes_is_read_and_beyond_is_not() -> None:
    with pytest.raises(Refusal):
        document_charset(b'<?xml version="1.0" encoding="UTF-7"?><a/>')
    assert document_charset(b'<?xml version="1.0" encoding="ISO-8859-1"?>') == "iso8859-1"
    late = b"<?xml version='1.0'" + b" " * 600 + b'encoding="UTF-7"?><a/>'
    assert document_charset(late) == "utf-8"  # and read as UTF-8, whatever the declaration says
