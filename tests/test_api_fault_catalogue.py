"""The integration guide's list of faults is the service's: every faultcode the guard can
answer is in docs/soap-api.md, every one listed there is produced here, and every phrase a
schema refusal is made of is documented."""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from api_support import REPO, SOAP_ENV, envelope, hello_envelope
from soap_service.api import envelope as envelope_reader
from soap_service.api import guard, http_body, schema
from soap_service.api.application import xsd_document
from soap_service.api.guard import SPYNE_REFUSAL, SOAPGuard
from soap_service.api.http_body import MAX_BODY_BYTES

GUIDE = REPO / "docs" / "soap-api.md"


def fault_section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return text.split("## Results, errors and faults", 1)[1].split("\n## ", 1)[0]


def documented_faultcodes() -> list[str]:
    table = fault_section().split("| faultcode | the cause |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([A-Za-z.]+)` \|", table, flags=re.MULTILINE)


def guard_faultcodes() -> set[str]:
    """The faultcodes the guard's modules write (the body's reader, the envelope's, the WSGI
    application): each Refusal's (``Client.<subcode>``, or its ``faultcode``) and ``Server`` for
    :func:`server_fault`."""
    codes: set[str] = set()
    trees = [ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
             for module in (http_body, envelope_reader, guard) if module.__file__ is not None]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "server_fault":
            codes.add("Server")
        if node.func.id == "Refusal":
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            code = keywords.get("faultcode")
            if isinstance(code, ast.Constant):
                codes.add(str(code.value))
            else:
                subcode = node.args[0]
                assert isinstance(subcode, ast.Constant), ast.dump(node)
                codes.add(f"Client.{subcode.value}")
    return codes


# ------------------------------------------------------------------------- one request per fault


class _Stalled:
    def read(self, size: int = -1) -> bytes:
        raise TimeoutError("timed out")


Environ = dict[str, Any]


def _post(body: bytes, content_type: str = "text/xml; charset=utf-8", **extra: Any) -> Environ:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/order", "QUERY_STRING": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1", **extra,
    }


HELLO = hello_envelope()
PRODUCERS: dict[str, Callable[[], Environ]] = {
    "Client.EmptyBody": lambda: _post(b""),
    "Client.RequestTooLarge": lambda: _post(HELLO, CONTENT_LENGTH=str(MAX_BODY_BYTES + 1)),
    "Client.RequestTimeout": lambda: _post(HELLO, **{"wsgi.input": _Stalled()}),
    "Client.BadRequest": lambda: _post(HELLO, CONTENT_LENGTH=str(len(HELLO) + 10)),
    "Client.UnsupportedMediaType": lambda: _post(HELLO, "application/soap+xml; charset=utf-8"),
    "Client.UnsupportedCharset": lambda: _post(HELLO, "text/xml; charset=utf-7"),
    "Client.MalformedXML": lambda: _post(HELLO[:-10]),
    "Client.DTDNotAllowed": lambda: _post(b'<!DOCTYPE x [<!ENTITY e "e">]>' + HELLO.split(b"?>", 1)[1]),
    "VersionMismatch": lambda: _post(HELLO.replace(SOAP_ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope")),
    "Client.NotSOAP": lambda: _post(b"<Envelope/>"),
    "Client.UnknownOperation": lambda: _post(envelope("Goodbye", "")),
    "MustUnderstand": lambda: _post(HELLO.replace(
        b"<soapenv:Body>",
        b'<soapenv:Header><w:S xmlns:w="urn:w" soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body>',
    )),
    "Client.SOAPActionMismatch": lambda: _post(HELLO, HTTP_SOAPACTION='"Reissue"'),
    "Client.SchemaValidationError": lambda: _post(envelope("Hello", "")),
    "Server": lambda: _post(HELLO),
}
"""A request for each faultcode; the guard's spyne is broken, so a valid Hello is a Server fault."""


def _broken_soap_app(environ: dict[str, Any], start_response: Any) -> Any:
    raise RuntimeError("the SOAP application failed")


@pytest.mark.parametrize("faultcode", sorted(PRODUCERS))
def test_each_documented_fault_is_answered(faultcode: str) -> None:
    app = SOAPGuard(_broken_soap_app, ra=None, wsdl=b"", xsd=xsd_document(), operations=frozenset({"Hello"}))  # type: ignore[arg-type]
    captured: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        return lambda _data: None

    content = b"".join(app(PRODUCERS[faultcode](), start_response))
    assert captured["status"].startswith("500")
    fault = etree.fromstring(content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, content[:300]
    assert fault.findtext("faultcode") == f"soap11env:{faultcode}"


def test_the_guide_lists_every_fault_and_only_those() -> None:
    documented = documented_faultcodes()
    assert len(documented) == len(set(documented)), documented
    assert set(documented) == set(PRODUCERS), "each fault of the guide has a request that produces it"
    # Each fault of the guide is written by one of the guard's modules, and only those.
    assert guard_faultcodes() == set(documented), guard_faultcodes() ^ set(documented)


def test_the_guide_gives_every_phrase_of_a_schema_refusal() -> None:
    section = fault_section()
    missing = sorted(phrase for phrase in schema.PHRASES if phrase not in section)
    assert not missing, missing
    assert SPYNE_REFUSAL.message.removeprefix("the request does not follow the schema: ") in section
    assert "the request does not follow the schema: <where>: <rule>" in section
