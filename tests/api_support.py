"""Real servers and real clients for the API tests.

:func:`running_server` starts ``soap-service serve`` (gunicorn) on a loopback socket the
test process binds and hands over (``--bind fd://N``: no port race), against the
database of a test installation, and stops it with SIGTERM (a graceful shutdown that
must exit 0). :func:`zeep_service` builds a zeep client from a WSDL (served or
checked in) whose every request and response is validated against
``schemas/order.xsd`` by a zeep plugin.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import zeep
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store
from lxml import etree
from zeep.plugins import Plugin

if TYPE_CHECKING:
    from conftest import TestInstallation


REPO = Path(__file__).resolve().parent.parent
WSDL_FILE = REPO / "wsdl" / "order.wsdl"
XSD_FILE = REPO / "schemas" / "order.xsd"
TNS = "urn:soap-service:order:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
BINDING = f"{{{TNS}}}OrderService"
SERVICE_PATH = "/api/order"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0


@dataclass
class RunningServer:
    """A ``soap-service serve`` process and where to reach it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return self.base_url + SERVICE_PATH

    @property
    def wsdl_url(self) -> str:
        return self.url + "?wsdl"

    def log(self, since: int = 0) -> str:
        """The server's log (stdout and stderr), from byte offset ``since`` (see :meth:`log_mark`)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_mark(self) -> int:
        """Where the log ends now: ``log(since=mark)`` is then what was written after."""
        return self.log_path.stat().st_size

    def request_lines(self, since: int = 0) -> list[str]:
        """The request log lines (``soap_service.api.requests``) written since ``since``."""
        return [line for line in self.log(since).splitlines() if "soap_service.api.requests" in line]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the server did not stop within the graceful timeout") from None
        return self.process.returncode


def server_environment(installation: TestInstallation, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any SOAP_SERVICE_* of the caller, plus the installation's."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")}
    environ.update(installation.environ)
    environ.update(extra or {})
    return environ


def start_server(
    installation: TestInstallation,
    directory: Path,
    *,
    workers: int = 1,
    threads: int = 4,
    extra_env: dict[str, str] | None = None,
    python: Path | None = None,
) -> RunningServer:
    """``soap-service serve`` run by ``python`` (this interpreter by default), on a loopback port
    this process binds and hands over. Another interpreter gets none of this one's PYTHON* variables."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    log_path = directory / "server.log"
    command = [
        str(python or sys.executable), "-m", "soap_service.main", "serve",
        "--bind", f"fd://{listener.fileno()}", "--workers", str(workers), "--threads", str(threads),
    ]
    environ = server_environment(installation, extra_env)
    if python is not None:
        environ = {name: value for name, value in environ.items() if not name.startswith("PYTHON")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    listener.close()
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    _wait_until_ready(server)
    return server


def _wait_until_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            status, _headers, _body = request(server, "GET", SERVICE_PATH + "?wsdl", timeout=5)
        except OSError:
            time.sleep(0.2)
            continue
        if status == 200:
            return
        raise AssertionError(f"the WSDL answered HTTP {status}:\n{server.log()}")
    server.stop()
    raise AssertionError(f"the server did not answer within {START_TIMEOUT}s:\n{server.log()}")


def running_server(
    installation: TestInstallation, tmp_path_factory: pytest.TempPathFactory, **options: Any
) -> Iterator[RunningServer]:
    """For a module-scoped fixture: one server per module and backend, stopped gracefully."""
    server = start_server(installation, tmp_path_factory.mktemp(f"server-{installation.backend}"), **options)
    try:
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"the server exited with {code} on SIGTERM:\n{server.log()}"


# ------------------------------------------------------------------------------------- raw HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    root: etree._Element | None = field(default=None)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def request(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post(server: RunningServer, body: bytes, *, soap_action: str | None = None,
         headers: dict[str, str] | None = None, content_type: str | None = "text/xml; charset=utf-8") -> Answer:
    """POST ``body`` to the service; ``content_type=None`` sends no Content-Type at all."""
    sent = {**({"Content-Type": content_type} if content_type is not None else {}), **(headers or {})}
    if soap_action is not None:
        sent["SOAPAction"] = soap_action
    status, received, content = request(server, "POST", SERVICE_PATH, body, sent)
    root = None
    if content.startswith(b"<?xml") or content.startswith(b"<"):
        root = etree.fromstring(content)
    return Answer(status, received, content, root)


def connect(server: RunningServer, timeout: float = 30) -> socket.socket:
    """A raw TCP connection to the server, for what http.client will not send."""
    parts = urlsplit(server.base_url)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def post_head(content_length: int, *, content_type: str = "text/xml; charset=utf-8",
              extra: str = "") -> bytes:
    """The request line and headers of a keep-alive POST to the service, announcing ``content_length``."""
    return (
        f"POST {SERVICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n{extra}\r\n"
    ).encode()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    received = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return bytes(received)


def http_answers(raw: bytes) -> list[Answer]:
    """The HTTP/1.1 responses in ``raw``, in order (each with a Content-Length, as ours have)."""
    answers: list[Answer] = []
    rest = raw
    while rest:
        head, separator, rest = rest.partition(b"\r\n\r\n")
        assert separator, f"an incomplete response: {head[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", len(rest)))
        body, rest = rest[:length], rest[length:]
        root = etree.fromstring(body) if body.startswith(b"<?xml") or body.startswith(b"<soap") else None
        answers.append(Answer(status, headers, body, root))
    return answers


def envelope(operation: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:o="{TNS}"><soapenv:Body>'
        f"<o:{operation}>{inner}</o:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def hello_envelope(text: str = "ping") -> bytes:
    return envelope("Hello", f"<o:Input>{text}</o:Input>")


def padded_hello_envelope(size: int, text: str = "padded") -> bytes:
    """A Hello of exactly ``size`` bytes: Input is bounded (256 characters), so the body is
    filled with the whitespace the schema allows between elements."""
    bare = hello_envelope(text)
    padding = size - len(bare)
    assert padding >= 0, f"a Hello is at least {len(bare)} bytes"
    return bare.replace(b"</o:Input>", b"</o:Input>" + b" " * padding, 1)


def fault_of(answer: Answer) -> tuple[str, str]:
    """(faultcode, faultstring) of a SOAP 1.1 fault answer; fails on anything else."""
    assert answer.root is not None, answer.body[:200]
    fault = answer.root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, answer.body[:500]
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


# ------------------------------------------------------------------------------ schema and zeep


_SCHEMA: etree.XMLSchema | None = None


def schema() -> etree.XMLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = etree.XMLSchema(etree.parse(str(XSD_FILE)))
    return _SCHEMA


def body_payload(document: etree._Element) -> etree._Element:
    body = document.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None, "no SOAP Body"
    children = [child for child in body if isinstance(child.tag, str)]
    assert len(children) == 1, "a SOAP Body of one element"
    return children[0]


def assert_schema_valid(document: etree._Element) -> None:
    """The Body's element of a SOAP message is valid against schemas/order.xsd."""
    payload = body_payload(document)
    standalone = etree.fromstring(etree.tostring(payload))
    validator = schema()
    if not validator.validate(standalone):
        raise AssertionError(f"not valid against order.xsd: {validator.error_log.last_error}")


class SchemaCheck(Plugin):  # type: ignore[misc]
    """Validates every request zeep sends and every answer it gets (faults aside)."""

    def __init__(self) -> None:
        self.checked = 0

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        assert_schema_valid(envelope)
        self.checked += 1
        return envelope, http_headers

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        if body_payload(envelope).tag != f"{{{SOAP_ENV}}}Fault":
            assert_schema_valid(envelope)
            self.checked += 1
        return envelope, http_headers


@dataclass
class ZeepService:
    client: zeep.Client
    service: Any
    check: SchemaCheck


def zeep_service(wsdl: str, address: str) -> ZeepService:
    """A zeep client generated from ``wsdl`` (a URL or a file), calling ``address``."""
    check = SchemaCheck()
    transport = zeep.Transport(timeout=30, operation_timeout=120)
    client = zeep.Client(wsdl, transport=transport, plugins=[check])
    return ZeepService(client, client.create_service(BINDING, address), check)


def auth(partner: Any, password: str | None = None) -> dict[str, str]:
    return {"UserName": partner.username, "Password": partner.password if password is None else password}


def order_request(partner: Any, partner_order_id: str, csr: str, *, password: str | None = None,
                  **parameters: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "OrderRequestHeader": {
            "PartnerCode": partner.code,
            "AuthToken": auth(partner, password),
            "PartnerOrderID": partner_order_id,
        },
        "OrderParameters": {"CSR": csr, **{k: v for k, v in parameters.items() if k != "ReissueEmail"}},
    }
    if "ReissueEmail" in parameters:
        request["ReissueEmail"] = parameters["ReissueEmail"]
    return request


def query_header(partner: Any, password: str | None = None) -> dict[str, Any]:
    return {"PartnerCode": partner.code, "AuthToken": auth(partner, password)}


def load_pem_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def assert_issued_chain(
    server_certificate: str, ca_certificates: list[tuple[str, str]], pkcs7_pem: str, dns_name: str = "example.com"
) -> x509.Certificate:
    """What every client must be able to do with a Reissue answer: verify the leaf through the
    returned INTERMEDIATE and ROOT, and find the same three certificates in the PKCS#7."""
    assert [kind for kind, _ in ca_certificates] == ["INTERMEDIATE", "ROOT"]
    leaf = load_pem_certificate(server_certificate)
    intermediate, root = (load_pem_certificate(pem) for _, pem in ca_certificates)
    verifier = PolicyBuilder().store(Store([root])).time(datetime.now(UTC)).build_server_verifier(DNSName(dns_name))
    assert verifier.verify(leaf, [intermediate]) == [leaf, intermediate, root]
    assert pkcs7_pem.startswith("-----BEGIN PKCS7-----")
    packed = pkcs7.load_pem_pkcs7_certificates(pkcs7_pem.encode())

    def fingerprint(certificate: x509.Certificate) -> bytes:
        return certificate.fingerprint(hashes.SHA256())

    assert sorted(packed, key=fingerprint) == sorted([leaf, intermediate, root], key=fingerprint)
    return leaf
