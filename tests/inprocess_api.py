"""The Order API's WSGI application called in-process (no server, no socket), and what a clean
answer is: HTTP 200 with the operation's response and a documented SuccessCode, or HTTP 500
with a SOAP 1.1 fault whose faultcode is one of docs/soap-api.md's client faults."""

from __future__ import annotations

import io
from typing import Any

from lxml import etree

from api_support import SOAP_ENV, TNS
from documented_codes import CLIENT_FAULTCODES, SUCCESS_CODES
from soap_service.api.guard import SOAPGuard


def call(app: SOAPGuard, body: bytes, content_type: str = "text/xml; charset=utf-8") -> tuple[str, bytes]:
    """A POST of ``body`` to /api/order."""
    return request_wsgi(app, "POST", "/api/order", body, content_type=content_type)


def request_wsgi(app: Any, method: str, path: str, body: bytes = b"", *, query: str = "",
                 action: str | None = None, content_type: str = "text/xml; charset=utf-8") -> tuple[str, bytes]:
    """Any request to a WSGI application in process: its status line and its whole body."""
    captured: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append(status)
        return lambda _data: None

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }
    if action is not None:
        environ["HTTP_SOAPACTION"] = action
    answer = b"".join(app(environ, start_response))
    return captured[0], answer


def assert_clean(status: str, answer: bytes) -> None:
    root = etree.fromstring(answer)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", answer[:300]
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None and len(body) == 1, answer[:300]
    if status.startswith("500"):
        faultcode = body[0].findtext("faultcode") or ""
        assert faultcode.split(":", 1)[1] in CLIENT_FAULTCODES, answer[:500]
        return
    assert status.startswith("200"), status
    assert etree.QName(body[0]).namespace == TNS and etree.QName(body[0]).localname.endswith("Response")
    code = root.findtext(f".//{{{TNS}}}SuccessCode")
    assert code is None or int(code) in SUCCESS_CODES, answer[:500]  # Hello carries none


def success_code(answer: bytes) -> int:
    """The SuccessCode of a 200 answer."""
    code = etree.fromstring(answer).findtext(f".//{{{TNS}}}SuccessCode")
    assert code is not None, answer[:300]
    return int(code)
