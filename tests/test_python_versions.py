"""The service is the same on Python 3.11, 3.12 and 3.13 (tracker issue 7).

Each interpreter is the venv that ``make`` made for it in this checkout (``.venv`` for
python3, ``.venv-3.13`` for ``PYTHON=python3.13``...; ``.ci/run`` makes both the 3.11 and the
3.13 one before either suite runs), found by its ``pyvenv.cfg``; this test process's own
interpreter counts too. A version without a venv is skipped, saying how to make one, unless
``SOAP_SERVICE_TEST_PYTHONS`` (``.ci/run``: ``3.11,3.13``) requires it: then it fails.

* spyne 2.14 does not import on 3.12+ by itself, and imports through
  ``soap_service.api.spyne_loader`` on every version (each venv, in a subprocess).
* ``soap-service wsdl`` and ``wsdl --xsd`` print the checked-in files byte for byte under
  each interpreter.
* Servers run by this interpreter and by each other one, over one installation, serve the
  same WSDL and schema, and answer the same requests with the same bytes (Timestamp aside,
  and for a fresh certificate the fields that are new by nature); a zeep client of this
  interpreter reissues through the other interpreter's server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from lxml import etree
from zeep.helpers import serialize_object

from api_support import (
    REPO,
    SERVICE_PATH,
    WSDL_FILE,
    XSD_FILE,
    Answer,
    RunningServer,
    ZeepService,
    order_request,
    post,
    query_header,
    request,
    start_server,
    zeep_service,
)
from conftest import TestInstallation as Installation
from factory import TestPartner as Partner
from factory import fresh_key_csr, new_order, new_partner

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
SUPPORTED = ("3.11", "3.12", "3.13")
"""Tried whenever a venv of theirs is here."""
EXPECTED = ("3.11", "3.13")
"""The versions CI runs the suite on: each is a test case, skipped (or failed, when required) without its venv."""
REQUIRED = tuple(v.strip() for v in os.environ.get("SOAP_SERVICE_TEST_PYTHONS", "").split(",") if v.strip())
NAMES = ("example.com", "www.example.com")
SUBPROCESS_TIMEOUT = 120


def _venv_version(config: Path) -> str | None:
    """``3.13`` from a venv's ``pyvenv.cfg`` (``version = 3.13.0``, or ``version_info`` on newer ones)."""
    values = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in config.read_text().splitlines())
    )
    full = values.get("version_info") or values.get("version")
    return ".".join(full.split(".")[:2]) if full else None


STALE: dict[str, Path] = {}
"""Venvs whose install (make's ``.installed`` stamp) is older than pyproject.toml: not used, said so."""


def _interpreters() -> dict[str, Path]:
    """Version -> the python of a venv of this checkout with soap-service installed; this one's for its own."""
    found: dict[str, Path] = {}
    for config in sorted(REPO.glob(".venv*/pyvenv.cfg")):
        version, venv = _venv_version(config), config.parent
        if not version or not (venv / "bin" / "python").exists() or not (venv / "bin" / "soap-service").exists():
            continue
        stamp = venv / ".installed"
        if not stamp.exists() or stamp.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
            STALE.setdefault(version, venv)
            continue
        found.setdefault(version, venv / "bin" / "python")
    found[HERE] = Path(sys.executable)
    return found


INTERPRETERS = _interpreters()
VERSIONS = sorted(set(EXPECTED) | set(REQUIRED) | (set(INTERPRETERS) & set(SUPPORTED)))
OTHER_VERSIONS = [version for version in VERSIONS if version != HERE]


def interpreter(version: str) -> Path:
    """The python of ``version``: skipped (failed when SOAP_SERVICE_TEST_PYTHONS requires it) when absent."""
    python = INTERPRETERS.get(version)
    if python is not None:
        return python
    make = f"`make install PYTHON=python{version}` (or the path of a Python {version})"
    if version in STALE:
        reason = f"{STALE[version].name} (Python {version}) was installed before pyproject.toml changed: {make}"
    else:
        reason = f"no venv of Python {version} in this checkout: {make} makes .venv-{version}; .ci/run makes the " \
                 "3.11 and 3.13 ones"
    if version in REQUIRED:
        pytest.fail(f"SOAP_SERVICE_TEST_PYTHONS requires Python {version}: {reason}")
    pytest.skip(reason)


def run_python(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SOAP_SERVICE_", "PYTHON"))}
    return subprocess.run([str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          env=environ, timeout=SUBPROCESS_TIMEOUT)


# ------------------------------------------------------------------------------ spyne and its loader


@pytest.mark.parametrize("version", VERSIONS)
def test_spyne_does_not_import_on_3_12_and_later_without_the_loader(version: str, tmp_path: Path) -> None:
    """What the loader is for: spyne's bundled six finds ``spyne.util.six.moves`` only on 3.11."""
    done = run_python(interpreter(version), "import spyne.server.wsgi", tmp_path)
    if version == "3.11":
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert "No module named 'spyne.util.six.moves'" in done.stderr, done.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_spyne_imports_through_the_loader(version: str, tmp_path: Path) -> None:
    """spyne, its WSGI server and SOAP protocol (the modules that import ``cgi``) import, and each aliased
    name is the real six's module, itself left as it was."""
    done = run_python(interpreter(version), """
        import json, sys
        import soap_service.api.spyne_loader as loader
        import spyne.protocol.soap.soap11, spyne.server.wsgi
        import spyne.util.six.moves.collections_abc, spyne.util.six.moves.urllib.parse
        import six.moves, collections.abc, urllib.parse, cgi
        aliased = [n for n in sys.modules if n == loader.ALIASED or n.startswith(loader.ALIASED + ".")]
        print(json.dumps({
            "same": all(sys.modules[n] is sys.modules[loader.real_name(n)] for n in aliased),
            "aliased": sorted(aliased),
            "collections_abc": spyne.util.six.moves.collections_abc is collections.abc,
            "urllib_parse": spyne.util.six.moves.urllib.parse.unquote is urllib.parse.unquote,
            "moves_spec": six.moves.__spec__.name,
            "first_finder": type(sys.meta_path[0]).__name__,
            "parse_header": cgi.parse_header("text/xml; charset=utf-8"),
        }))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["same"] and facts["collections_abc"] and facts["urllib_parse"]
    assert {"spyne.util.six.moves", "spyne.util.six.moves.collections_abc",
            "spyne.util.six.moves.urllib.parse"} <= set(facts["aliased"])
    assert facts["moves_spec"] == "six.moves"
    assert facts["first_finder"] == "SixMovesAlias"
    assert facts["parse_header"] == ["text/xml", {"charset": "utf-8"}]


def test_without_cgi_the_loader_says_what_to_install(tmp_path: Path) -> None:
    """As on Python 3.13 without legacy-cgi: a plain ImportError naming the package, not spyne's traceback."""
    done = run_python(Path(sys.executable), """
        import sys
        sys.modules["cgi"] = None  # what find_spec reports for a module that is not there
        import soap_service.api.spyne_loader
    """, tmp_path)
    assert done.returncode != 0
    assert "ImportError: spyne 2.14 imports the `cgi` module, which Python 3.13 removed: install the `legacy-cgi`" \
        in done.stderr, done.stderr


def test_the_alias_is_installed_once() -> None:
    from soap_service.api import spyne_loader

    spyne_loader.install()
    spyne_loader.install()
    assert sum(isinstance(finder, spyne_loader.SixMovesAlias) for finder in sys.meta_path) == 1
    assert isinstance(sys.meta_path[0], spyne_loader.SixMovesAlias)


# ------------------------------------------------------------------------------ the published documents


@pytest.mark.slow  # each command starts the whole package: ~3 s of CPU
@pytest.mark.parametrize("version", VERSIONS)
def test_soap_service_wsdl_prints_the_checked_in_files(version: str, tmp_path: Path) -> None:
    command = interpreter(version).parent / "soap-service"
    if not command.exists():  # this process's interpreter, when it is not a venv's
        pytest.skip(f"no soap-service command beside {interpreter(version)}")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SOAP_SERVICE_")}
    for arguments, expected in ((["--public-url", "http://127.0.0.1:8080"], WSDL_FILE), (["--xsd"], XSD_FILE)):
        done = subprocess.run([str(command), "wsdl", *arguments], capture_output=True, cwd=tmp_path, env=environ,
                              timeout=SUBPROCESS_TIMEOUT)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout == expected.read_bytes(), f"Python {version}: `soap-service wsdl {' '.join(arguments)}`"


# ------------------------------------------------------------------------------ servers on each version


SQLITE_ONLY = pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
"""The session's SQLite installation: the servers of both interpreters serve that one database."""
TWO_SERVERS = pytest.mark.slow  # a gunicorn server per interpreter: ~10 s to start both, ~5 s to stop them


@dataclass
class Pair:
    """A server run by this interpreter and one run by the other, each with a zeep client of this process."""

    other: str
    here: RunningServer
    there: RunningServer
    here_api: ZeepService
    there_api: ZeepService


@pytest.fixture(scope="module")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RunningServer]]:
    """Started on first use, one per version; stopped gracefully at the module's end."""
    started: dict[str, RunningServer] = {}
    yield started
    codes = {version: server.stop() for version, server in started.items()}
    assert all(code == 0 for code in codes.values()), {v: (c, started[v].log()) for v, c in codes.items() if c}


@pytest.fixture(params=OTHER_VERSIONS)
def pair(
    request: pytest.FixtureRequest,
    installation: Installation,
    servers: dict[str, RunningServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Pair:
    other: str = request.param
    for version in (HERE, other):
        if version not in servers:
            python = interpreter(version)
            directory = tmp_path_factory.mktemp(f"server-{version}")
            servers[version] = start_server(installation, directory, python=python)
    here, there = servers[HERE], servers[other]
    return Pair(other, here, there, zeep_service(here.wsdl_url, here.url), zeep_service(there.wsdl_url, there.url))


@TWO_SERVERS
@SQLITE_ONLY
def test_both_servers_serve_the_checked_in_wsdl_and_schema(pair: Pair) -> None:
    for server in (pair.here, pair.there):
        for query, expected in (("?wsdl", WSDL_FILE), ("?xsd", XSD_FILE)):
            status, headers, body = request(server, "GET", SERVICE_PATH + query)
            assert (status, headers["content-type"]) == (200, "text/xml; charset=utf-8")
            assert body == expected.read_bytes(), f"{query} served by {server.base_url}"


_TIMESTAMP = re.compile(rb"<(?P<p>[\w.-]+:)?Timestamp>[^<]*</(?P=p)?Timestamp>")
_FRESH = re.compile(
    rb"<(?P<p>[\w.-]+:)?(?P<n>SerialNumber|NotBefore|NotAfter|ServerCertificate|PKCS7)>[^<]*</(?P=p)?(?P=n)>"
)


def _same_answer(first: Answer, second: Answer, *, fresh_certificate: bool = False) -> bytes:
    """The two answers are the same bytes once their Timestamp (and, for two new certificates, the fields that
    are new by nature: serial, validity, the certificate and its PKCS#7) are blanked; that masked body."""

    def masked(answer: Answer) -> bytes:
        body = _TIMESTAMP.sub(rb"<\g<p>Timestamp/>", answer.body)
        return _FRESH.sub(rb"<\g<p>\g<n>/>", body) if fresh_certificate else body

    assert (first.status, first.content_type) == (second.status, second.content_type)
    assert masked(first) == masked(second)
    return masked(first)


def _message(api: ZeepService, operation: str, **arguments: Any) -> bytes:
    """The request zeep would send, as bytes, to POST raw to both servers."""
    envelope = api.client.create_message(api.service, operation, **arguments)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _certificate_shape(pem: str) -> dict[str, Any]:
    """What two certificates issued for the same order and names must share."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    names = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    hash_algorithm = certificate.signature_hash_algorithm
    return {
        "version": certificate.version.name,
        "issuer": certificate.issuer.rfc4514_string(),
        "subject": certificate.subject.rfc4514_string(),
        "names": sorted(names.get_values_for_type(x509.DNSName)),
        "extensions": sorted((e.oid.dotted_string, e.critical) for e in certificate.extensions),
        "signature": hash_algorithm.name if hash_algorithm else None,
        "public_key": type(certificate.public_key()).__name__,
    }


@TWO_SERVERS
@SQLITE_ONLY
def test_a_zeep_reissue_through_the_other_python_is_answered_as_here(pair: Pair, installation: Installation) -> None:
    partner: Partner = new_partner(installation.ra)
    order = new_order(installation.ra, partner, names=NAMES).order

    # zeep (this interpreter) -> the other interpreter's server, and -> this one's: a new certificate each.
    issued = {
        side: api.service.Reissue(Request=order_request(partner, order.partner_order_id, fresh_key_csr(NAMES)))
        for side, api in (("there", pair.there_api), ("here", pair.here_api))
    }
    shapes = {}
    for side, result in issued.items():
        header = result.OrderResponseHeader
        assert (header.SuccessCode, header.Errors, header.Warnings) == (0, None, None), (side, header)
        shapes[side] = {
            "header": (header.PartnerOrderID, header.Timestamp.utcoffset()),
            "order": result.OrderID,
            "certificate": _certificate_shape(result.Certificate.ServerCertificate),
            "ca_certificates": serialize_object(result.Certificate.CACertificates),
            "validity": result.Certificate.NotAfter - result.Certificate.NotBefore,
        }
    validity = {side: shape.pop("validity") for side, shape in shapes.items()}
    assert shapes["there"] == shapes["here"]
    assert abs(validity["there"] - validity["here"]) <= timedelta(minutes=1)
    assert pair.here_api.check.checked and pair.there_api.check.checked  # every message was schema-valid

    # The same requests, raw, to both: the same bytes back.
    api = pair.here_api

    def both(body: bytes) -> bytes:
        return _same_answer(post(pair.there, body), post(pair.here, body))

    def reissue(csr: str, password: str | None = None) -> bytes:
        return _message(api, "Reissue", Request=order_request(partner, order.partner_order_id, csr, password=password))

    assert b"<tns:HelloResult>bonjour</tns:HelloResult>" in both(_message(api, "Hello", Input="bonjour"))
    assert b"<faultcode>" in both(b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
                                  b'envelope/"><soap:Body><NoSuchOperation/></soap:Body></soap:Envelope>')
    assert b"<tns:SuccessCode>-4001</tns:SuccessCode>" in both(reissue(fresh_key_csr(NAMES), password="wrong"))
    # A new certificate from each: the same answer but for what is new by nature.
    fresh = _same_answer(post(pair.there, reissue(fresh_key_csr(NAMES))), post(pair.here, reissue(fresh_key_csr(
        NAMES))), fresh_certificate=True)
    assert b"<tns:SuccessCode>0</tns:SuccessCode>" in fresh
    # A new certificate from the other interpreter's server, and the same request here: that certificate again.
    csr = fresh_key_csr(NAMES)
    assert b"<tns:ServerCertificate>" in both(reissue(csr))
    assert b"<tns:ServerCertificate>" in both(reissue(csr))
    found = both(_message(api, "GetOrderByPartnerOrderID", Request={
        "QueryRequestHeader": query_header(partner), "PartnerOrderID": order.partner_order_id,
        "OrderQueryOptions": {"ReturnCertificateInfo": True, "ReturnCertificateHistory": True},
    }))
    assert found.count(b"<tns:SerialNumber>") >= 6  # the current certificate, and a history of six
    assert b"<tns:CSRSHA256>" in both(_message(api, "ParseCSR", Request={
        "QueryRequestHeader": query_header(partner), "CSR": fresh_key_csr(NAMES)}))
