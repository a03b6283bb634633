"""Hostile input over the wire, with the worker's memory measured (tracker issue 10): each
case is refused with a clean answer (a SOAP fault, or 405 for a method), the worker's peak
resident memory grows by less than :data:`RSS_ALLOWANCE` while it is served, no file is read
and no connection is made on the request's behalf, and the next request on the same server
is served.

tests/test_api_hostile.py holds the other hostile cases (XXE, billion laughs, charsets,
smuggling, sizes); the cases here are the ones whose cost is memory or whose harm would be
an access the server should never make: quadratic blowup, external DTD and entities,
XInclude, schemaLocation, 10,000 levels of nesting, 100,000 siblings or attributes, a
compressed body (a gzip bomb), chunked data over the limit, SOAP 1.2, two operations in one
Body, and methods other than GET, HEAD and POST.

Memory is read from /proc: the worker's peak (``VmHWM``) is reset before each case
(``/proc/<pid>/clear_refs``, "5"), so the peak after the case is the case's own.
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from api_support import (
    SERVICE_PATH,
    SOAP_ENV,
    TNS,
    Answer,
    RunningServer,
    envelope,
    fault_of,
    hello_envelope,
    post,
    request,
    running_server,
)
from conftest import TestInstallation as Installation

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
MIB = 1024 * 1024
RSS_ALLOWANCE = 64 * MIB
"""How much the worker's peak resident memory may grow while it serves one hostile case."""
UTF8 = "text/xml; charset=utf-8"
SECRET = "file-content-Hq93k"
"""The content of a file on the server's host that a request names: it must never come back."""


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2)


def worker_pid(server: RunningServer) -> int:
    """The one worker of ``server`` (a child of the gunicorn master)."""
    master = server.process.pid
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            children.append(int(entry.name))
    assert len(children) == 1, children
    return children[0]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@dataclass
class MemoryUse:
    before_kib: int
    peak_kib: int

    @property
    def growth(self) -> int:
        return (self.peak_kib - self.before_kib) * 1024


def measured(server: RunningServer, send: Callable[[], Answer]) -> tuple[Answer, MemoryUse]:
    """``send()``'s answer and the worker's memory: resident before, and its peak while serving."""
    pid = worker_pid(server)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = memory_kib(pid, "VmRSS")
    answer = send()
    use = MemoryUse(before, memory_kib(pid, "VmHWM"))
    assert worker_pid(server) == pid, "the worker was replaced"
    return answer, use


def assert_fault(answer: Answer, faultcode: str) -> str:
    assert answer.status == 500, answer.body[:300]
    assert answer.content_type.startswith("text/xml"), answer.content_type
    assert b"<html" not in answer.body.lower() and b"traceback" not in answer.body.lower()
    code, message = fault_of(answer)
    assert code == f"soap11env:{faultcode}", (code, message)
    return message


def assert_still_serving(server: RunningServer) -> None:
    answer = post(server, hello_envelope("still-here"), soap_action='"Hello"')
    assert answer.status == 200 and b"still-here" in answer.body


class ConnectionRecorder:
    """A loopback port that records every connection made to it (none should be)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    recording = ConnectionRecorder()
    yield recording
    recording.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    path.chmod(0o644)
    return path


def hello_with(input_text: str = "x", *, header: str = "", prolog: str = "", envelope_attributes: str = "") -> bytes:
    header_element = f"<soapenv:Header>{header}</soapenv:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:o="{TNS}" {envelope_attributes}>{header_element}'
        f"<soapenv:Body><o:Hello><o:Input>{input_text}</o:Input></o:Hello></soapenv:Body></soapenv:Envelope>"
    ).encode()


def raw_post(server: RunningServer, body: bytes | Iterator[bytes], headers: dict[str, str]) -> Answer:
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", SERVICE_PATH, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
    if answer.body.startswith(b"<"):
        answer.root = etree.fromstring(answer.body)
    return answer


# ---------------------------------------------------------------------------------- the cases


QUADRATIC_ENTITY = "a" * 50_000
QUADRATIC = hello_with(
    "&a;" * 100_000, prolog=f'<!DOCTYPE soapenv:Envelope [<!ENTITY a "{QUADRATIC_ENTITY}">]>'
)
"""Quadratic blowup: one 50 KB entity referenced 100,000 times (5 GB expanded) in 350 KB."""

DEEP = 10_000
WIDE = 100_000
ATTRIBUTES = 80_000
"""As many attributes on one element as 1 MiB holds (libxml2 checks each for a duplicate)."""


def _deep(level: str) -> str:
    return "<d>" * DEEP + level + "</d>" * DEEP


def _soap12() -> bytes:
    return hello_envelope("v12").replace(SOAP_ENV.encode(), SOAP12_ENV.encode())


def _two_operations() -> bytes:
    return hello_envelope("one").replace(
        b"</soapenv:Body>", b"<o:Hello><o:Input>two</o:Input></o:Hello>" + b"</soapenv:Body>"
    )


@functools.cache
def gzip_bomb(inflated_mib: int = 256) -> bytes:
    """A gzip body that inflates to a Hello padded with ``inflated_mib`` MiB of whitespace (which
    the schema allows), compressed a MiB at a time."""
    head, tail = hello_envelope("x").split(b"</o:Input>", 1)
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip stream
    parts = [packer.compress(head + b"</o:Input>")]
    parts += [packer.compress(b" " * MIB) for _ in range(inflated_mib)]
    parts += [packer.compress(tail), packer.flush()]
    return b"".join(parts)



@pytest.mark.parametrize(
    ("body", "content_type", "faultcode"),
    [
        (QUADRATIC, UTF8, "Client.DTDNotAllowed"),
        # The scan sees the decoded text: no encoding, letter case or place hides a declaration.
        (QUADRATIC.decode().replace("UTF-8", "UTF-16BE").encode("utf-16-be"), "text/xml; charset=utf-16be",
         "Client.DTDNotAllowed"),
        (QUADRATIC.replace(b"<!DOCTYPE", b"<!-- c --><?pi x?><!doctype"), UTF8, "Client.DTDNotAllowed"),
        (QUADRATIC.decode().replace("UTF-8", "ISO-8859-1").encode("latin-1"), "text/xml", "Client.DTDNotAllowed"),
        (b"\xef\xbb\xbf" + QUADRATIC, "text/xml", "Client.DTDNotAllowed"),
        # An entity reference with no declaration is not well-formed, whatever the entity's name.
        (hello_with("&a;" * 200_000), UTF8, "Client.MalformedXML"),
        (hello_with("&lt;" * 200_000), UTF8, "Client.SchemaValidationError"),  # predefined: 200,000 characters
        (hello_with(_deep("x")), UTF8, "Client.MalformedXML"),
        (hello_with(header=_deep("")), UTF8, "Client.MalformedXML"),
        (envelope("Hello", "<o:Input>x</o:Input>").replace(b"<o:Hello>", b"<o:Hello>" + b"<i/>" * WIDE),
         UTF8, "Client.SchemaValidationError"),
        (hello_envelope("x").replace(b"</soapenv:Body>", b"<o:Hello/>" * WIDE + b"</soapenv:Body>"),
         UTF8, "Client.UnknownOperation"),
        (hello_with(header="<h:B xmlns:h='urn:h' soapenv:mustUnderstand='1'/>" + "<b/>" * WIDE), UTF8,
         "MustUnderstand"),
        (_two_operations(), UTF8, "Client.UnknownOperation"),
        (_soap12(), UTF8, "VersionMismatch"),
    ],
    ids=["quadratic-blowup", "quadratic-utf16be", "quadratic-lowercase-after-comment", "quadratic-latin1",
         "quadratic-bom", "undeclared-entities", "predefined-entities", "deep-body", "deep-header",
         "100k-siblings-in-operation", "100k-operations", "100k-header-blocks",
         "two-operations", "soap12"],
)
def test_hostile_xml_is_refused_within_bounded_memory(
    server: RunningServer, body: bytes, content_type: str, faultcode: str
) -> None:
    assert len(body) <= MIB, len(body)
    mark = server.log_mark()
    answer, use = measured(server, lambda: post(server, body, content_type=content_type))
    assert_fault(answer, faultcode)
    assert use.growth < RSS_ALLOWANCE, use
    assert f"outcome=fault:{faultcode} " in server.log(mark)
    assert "Traceback" not in server.log(mark)
    assert_still_serving(server)


@pytest.mark.parametrize(
    "header",
    ["<b/>" * WIDE, "<b " + " ".join(f"a{i}='v'" for i in range(ATTRIBUTES)) + "/>"],
    ids=["100k-header-blocks", "80k-attributes"],
)
def test_a_wide_header_without_must_understand_is_ignored(server: RunningServer, header: str) -> None:
    """A Header of 100,000 blocks, or of one block with 80,000 attributes, that asks for nothing:
    read once, passed on to no one."""
    answer, use = measured(server, lambda: post(server, hello_with("wide", header=header)))
    assert answer.status == 200 and b"wide" in answer.body, answer.body[:300]
    assert use.growth < RSS_ALLOWANCE, use


def test_a_soap_1_2_envelope_gets_a_soap_1_1_version_mismatch(server: RunningServer) -> None:
    """SOAP 1.1, section 4.4.1: an envelope of another version is answered with the fault code
    VersionMismatch (not a Client fault), in a SOAP 1.1 envelope."""
    answer = post(server, _soap12(), content_type=UTF8)
    message = assert_fault(answer, "VersionMismatch")
    assert "SOAP 1.1" in message
    assert answer.root is not None and answer.root.tag == f"{{{SOAP_ENV}}}Envelope"
    assert_still_serving(server)


# ----------------------------------------------------------------- no file, no network access


def test_external_entities_and_dtds_read_no_file_and_open_no_connection(
    server: RunningServer, recorder: ConnectionRecorder, secret_file: Path
) -> None:
    url = f"http://127.0.0.1:{recorder.port}"
    bodies = [
        hello_with("&s;", prolog=f'<!DOCTYPE soapenv:Envelope [<!ENTITY s SYSTEM "file://{secret_file}">]>'),
        hello_with("&s;", prolog=f'<!DOCTYPE soapenv:Envelope [<!ENTITY s SYSTEM "{url}/entity">]>'),
        hello_with(prolog=f'<!DOCTYPE soapenv:Envelope SYSTEM "{url}/external.dtd">'),
        hello_with(prolog=f'<!DOCTYPE soapenv:Envelope PUBLIC "-//x//y//EN" "file://{secret_file}">'),
        hello_with(prolog=f'<!DOCTYPE soapenv:Envelope [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]>'),
        hello_with("&s;", prolog=f'<!DOCTYPE soapenv:Envelope [<!ENTITY s SYSTEM "{secret_file}">]>')
        .decode().replace("UTF-8", "UTF-16").encode("utf-16"),
    ]
    for body in bodies:
        answer, use = measured(server, lambda body=body: post(server, body, content_type="text/xml"))  # type: ignore[misc]
        assert_fault(answer, "Client.DTDNotAllowed")
        assert SECRET.encode() not in answer.body
        assert use.growth < RSS_ALLOWANCE, use
    assert recorder.connections == 0
    assert_still_serving(server)


def test_xinclude_and_schema_locations_are_never_followed(
    server: RunningServer, recorder: ConnectionRecorder, secret_file: Path
) -> None:
    """XInclude is not processed and xsi:schemaLocation is not loaded: an include in the Header is
    an ignored header block, one in a value is an element where the schema wants text."""
    url = f"http://127.0.0.1:{recorder.port}"
    xi = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
    includes = [f'<xi:include {xi} href="file://{secret_file}" parse="text"/>',
                f'<xi:include {xi} href="{url}/include.xml"/>']
    for include in includes:
        answer = post(server, hello_with("in-header", header=include), soap_action='"Hello"')
        assert answer.status == 200 and b"in-header" in answer.body, answer.body[:300]
        assert SECRET.encode() not in answer.body
        answer = post(server, hello_with(include), soap_action='"Hello"')
        assert_fault(answer, "Client.SchemaValidationError")
        assert SECRET.encode() not in answer.body
    located = hello_with(
        "located",
        envelope_attributes=f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{TNS} {url}/order.xsd" xsi:noNamespaceSchemaLocation="file://{secret_file}"',
    )
    answer = post(server, located, soap_action='"Hello"')
    assert answer.status == 200 and b"located" in answer.body, answer.body[:300]
    assert recorder.connections == 0
    assert_still_serving(server)


# ------------------------------------------------------------------------- the HTTP layer


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "x-gzip", "identity, gzip"])
def test_a_compressed_body_is_refused_unread(server: RunningServer, coding: str) -> None:
    """A body is never decompressed: Content-Encoding (but identity) is Client.UnsupportedMediaType,
    a gzip bomb costs the worker no more than its compressed size."""
    body = zlib.compress(hello_envelope("packed")) if coding == "deflate" else gzip_bomb()
    assert len(body) < MIB
    mark = server.log_mark()
    answer, use = measured(server, lambda: raw_post(server, body, {"Content-Type": UTF8, "Content-Encoding": coding}))
    message = assert_fault(answer, "Client.UnsupportedMediaType")
    assert "compressed" in message and "uncompressed" in message
    assert use.growth < RSS_ALLOWANCE, use
    assert "outcome=fault:Client.UnsupportedMediaType " in server.log(mark)
    assert_still_serving(server)


def test_an_identity_content_encoding_is_served(server: RunningServer) -> None:
    answer = raw_post(server, hello_envelope("plain"), {"Content-Type": UTF8, "Content-Encoding": "identity"})
    assert answer.status == 200 and b"plain" in answer.body


def test_chunked_data_over_the_limit_is_refused_within_bounded_memory(server: RunningServer) -> None:
    """8 MiB of chunks, announced by no Content-Length: refused once past 1 MiB."""
    def chunks() -> Iterator[bytes]:
        yield hello_envelope("x")[:-40]
        for _ in range(128):
            yield b" " * 65536

    try:
        answer, use = measured(server, lambda: raw_post(server, chunks(), {"Content-Type": UTF8}))
    except (BrokenPipeError, ConnectionResetError):  # the server answered and closed before the last chunk
        use = None
    else:
        assert_fault(answer, "Client.RequestTooLarge")
        assert use.growth < RSS_ALLOWANCE, use
    assert_still_serving(server)


@pytest.mark.parametrize("method", ["OPTIONS", "PATCH", "PUT", "DELETE", "TRACE", "PROPFIND", "FOO"])
def test_other_methods_get_405_with_allow(server: RunningServer, method: str) -> None:
    status, headers, body = request(server, method, SERVICE_PATH, hello_envelope("m"), {"Content-Type": UTF8})
    assert status == 405, (method, status, body[:200])
    assert headers["allow"] == "GET, HEAD, POST"
    assert headers["content-type"] == "text/plain; charset=utf-8" and b"<html" not in body.lower()
    assert_still_serving(server)
