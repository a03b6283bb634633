"""WS-Security UsernameToken over the wire (issue 10; docs/design.md, "Authentication"): a real
server (gunicorn on loopback), zeep's ``zeep.wsse.username.UsernameToken`` (PasswordText and
PasswordDigest) and node-soap's ``WSSecurity`` (PasswordDigest, ``mustUnderstand="1"``), each
built from the served WSDL, authenticating ParseCSR with no AuthToken; a replayed envelope
is -4001 the second time; AuthToken and UsernameToken together, or neither, are -4001; another
``mustUnderstand`` header is still refused. PHP's SoapClient with the header built by hand and
Mono's ASMX proxy (its generated ``Security`` property) are run too. The client-side units are
in tests/test_ws_security.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select
from zeep.plugins import HistoryPlugin
from zeep.wsse.username import UsernameToken

from api_support import (
    SOAP_ENV,
    TNS,
    RunningServer,
    ZeepService,
    auth,
    envelope,
    fault_of,
    post,
    running_server,
    zeep_service,
)
from conftest import TestInstallation as Installation
from factory import TestPartner as ApiPartner
from factory import fresh_key_csr, new_partner
from interop_support import _NODE_MISSING, _PHP_MISSING, INTEROP, SCRIPT_TIMEOUT
from soap_service.api.wssecurity import PASSWORD_DIGEST, WSSE, WSU
from soap_service.config import Secret
from soap_service.ra.partners import set_password
from soap_service.ra.wspassword import derive_key, encrypt_password
from soap_service.storage.models import ApiUser, AuditEvent, Partner

_MONO_MISSING = [tool for tool in ("wsdl", "mcs", "mono") if shutil.which(tool) is None]


@pytest.fixture(scope="module")
def server(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from running_server(installation, tmp_path_factory)


@pytest.fixture(scope="module")
def partner(installation: Installation) -> ApiPartner:
    """An API user enabled for PasswordDigest (``partner set-password --ws-digest``)."""
    found = new_partner(installation.ra)
    set_password(installation.ra, code=found.code, username=found.username, password=Secret(found.password),
                 ws_digest=True)
    return found


@pytest.fixture
def api(server: RunningServer) -> ZeepService:
    zeep = zeep_service(server.wsdl_url, server.url)
    zeep.client.plugins.append(HistoryPlugin())
    return zeep


def parse_csr(api: ZeepService, partner: ApiPartner, *, with_auth_token: bool = False) -> Any:
    header: dict[str, Any] = {"PartnerCode": partner.code}
    if with_auth_token:
        header["AuthToken"] = auth(partner)
    return api.service.ParseCSR(Request={"QueryRequestHeader": header, "CSR": fresh_key_csr()})


def last_sent(api: ZeepService) -> bytes:
    history = next(plugin for plugin in api.client.plugins if isinstance(plugin, HistoryPlugin))
    return bytes(etree.tostring(history.last_sent["envelope"]))


def outcome(body: bytes) -> tuple[int, list[str]]:
    """SuccessCode and the Errors' messages of a ParseCSR answer, read from its XML."""
    root = etree.fromstring(body)
    header = root.find(f"{{{SOAP_ENV}}}Body/{{{TNS}}}ParseCSRResponse/{{{TNS}}}ParseCSRResult/"
                       f"{{{TNS}}}QueryResponseHeader")
    assert header is not None, body[:500]
    return int(header.findtext(f"{{{TNS}}}SuccessCode") or ""), [
        text for text in header.itertext() if "authentication" in text or "wsse" in text or "AuthToken" in text
    ]


def codes(result: Any) -> tuple[int, list[str]]:
    header = result.QueryResponseHeader
    errors = header.Errors.Error if header.Errors is not None else []
    return header.SuccessCode, [f"{error.ErrorCode} {error.ErrorMessage}" for error in errors]


def test_the_wsdl_declares_the_security_header_and_an_optional_auth_token(api: ZeepService) -> None:
    """zeep offers the header on every authenticated operation (its ``_soapheaders``), not on Hello."""
    operations = api.client.wsdl.bindings[f"{{{TNS}}}OrderService"]._operations
    assert "_soapheaders={Security: ns1:SecurityHeaderType}" in operations["ParseCSR"].input.signature()
    assert "_soapheaders" not in operations["Hello"].input.signature()
    header = api.client.get_type(f"{{{TNS}}}QueryRequestHeader")
    assert header.elements[1][1].min_occurs == 0  # AuthToken


def test_zeep_password_text_authenticates_without_an_auth_token(api: ZeepService, partner: ApiPartner) -> None:
    api.client.wsse = UsernameToken(partner.username, partner.password)
    assert codes(parse_csr(api, partner)) == (0, [])
    sent = etree.fromstring(last_sent(api))
    assert sent.find(f"{{{SOAP_ENV}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken") is not None
    assert sent.find(f".//{{{TNS}}}AuthToken") is None


def test_zeep_password_digest_authenticates_once_and_its_replay_is_refused(
    server: RunningServer, api: ZeepService, partner: ApiPartner
) -> None:
    api.client.wsse = UsernameToken(partner.username, partner.password, use_digest=True)
    assert codes(parse_csr(api, partner)) == (0, [])
    sent = last_sent(api)
    assert PASSWORD_DIGEST.encode() in sent and partner.password.encode() not in sent
    replayed = post(server, sent, soap_action='"ParseCSR"')
    assert replayed.status == 200
    assert outcome(replayed.body)[0] == -4001
    assert codes(parse_csr(api, partner)) == (0, [])  # a new nonce is fine


def test_zeep_password_digest_with_a_wrong_password_is_4001(api: ZeepService, partner: ApiPartner) -> None:
    api.client.wsse = UsernameToken(partner.username, "not-the-password", use_digest=True)
    assert codes(parse_csr(api, partner)) == (-4001, ["-4001 authentication failed"])


def test_zeep_password_digest_of_a_user_without_the_copy_is_4001(
    installation: Installation, api: ZeepService
) -> None:
    plain = new_partner(installation.ra)
    api.client.wsse = UsernameToken(plain.username, plain.password, use_digest=True)
    assert codes(parse_csr(api, plain)) == (-4001, ["-4001 authentication failed"])
    api.client.wsse = UsernameToken(plain.username, plain.password)
    assert codes(parse_csr(api, plain)) == (0, [])


def test_both_an_auth_token_and_a_username_token_is_4001(api: ZeepService, partner: ApiPartner) -> None:
    api.client.wsse = UsernameToken(partner.username, partner.password)
    code, messages = codes(parse_csr(api, partner, with_auth_token=True))
    assert code == -4001 and "not both" in messages[0]


def test_neither_an_auth_token_nor_a_username_token_is_4001(api: ZeepService, partner: ApiPartner) -> None:
    code, messages = codes(parse_csr(api, partner))
    assert code == -4001 and "send an AuthToken" in messages[0]


def test_the_auth_token_alone_still_authenticates(api: ZeepService, partner: ApiPartner) -> None:
    assert codes(parse_csr(api, partner, with_auth_token=True)) == (0, [])


# ------------------------------------------------------------------------------ raw envelopes


def security_header(partner: ApiPartner, *, must_understand: bool = True, password: str | None = None) -> str:
    nonce = secrets.token_bytes(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(
        hashlib.sha1(nonce + created.encode() + (password or partner.password).encode()).digest()
    ).decode()
    understood = ' soapenv:mustUnderstand="1"' if must_understand else ""
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"{understood}><wsse:UsernameToken>'
        f"<wsse:Username>{partner.username}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def parse_csr_envelope(partner: ApiPartner, *headers: str) -> bytes:
    body = envelope(
        "ParseCSR",
        f"<o:Request><o:QueryRequestHeader><o:PartnerCode>{partner.code}</o:PartnerCode></o:QueryRequestHeader>"
        f"<o:CSR>{fresh_key_csr()}</o:CSR></o:Request>",
    )
    return body.replace(b"<soapenv:Body>", f"<soapenv:Header>{''.join(headers)}</soapenv:Header><soapenv:Body>"
                        .encode())


def test_a_must_understand_security_header_is_understood(server: RunningServer, partner: ApiPartner) -> None:
    answer = post(server, parse_csr_envelope(partner, security_header(partner)), soap_action='"ParseCSR"')
    assert answer.status == 200 and outcome(answer.body)[0] == 0


def test_another_must_understand_header_is_still_refused(server: RunningServer, partner: ApiPartner) -> None:
    other = '<x:Routing xmlns:x="urn:x" soapenv:mustUnderstand="1">r</x:Routing>'
    answer = post(server, parse_csr_envelope(partner, security_header(partner), other), soap_action='"ParseCSR"')
    faultcode, message = fault_of(answer)
    assert faultcode.endswith("MustUnderstand") and "header block 2 " in message


def test_a_malformed_security_header_is_4001_naming_the_rule(server: RunningServer, partner: ApiPartner) -> None:
    header = security_header(partner).replace("<wsse:Nonce>", '<wsse:Nonce EncodingType="urn:hex">')
    answer = post(server, parse_csr_envelope(partner, header), soap_action='"ParseCSR"')
    code, messages = outcome(answer.body)
    assert code == -4001 and "the Nonce's EncodingType must be the profile's #Base64Binary" in messages[0]


def test_a_security_header_on_hello_changes_nothing(server: RunningServer, partner: ApiPartner) -> None:
    body = envelope("Hello", "<o:Input>ping</o:Input>").replace(
        b"<soapenv:Body>", f"<soapenv:Header>{security_header(partner)}</soapenv:Header><soapenv:Body>".encode()
    )
    answer = post(server, body, soap_action='"Hello"')
    assert answer.status == 200 and b"ping" in answer.body


def test_a_captured_digest_token_is_refused_for_another_account_with_the_same_password(
    installation: Installation, server: RunningServer, partner: ApiPartner
) -> None:
    """The digest does not cover the user name: sent again with another partner's code and a user
    of the same password, the captured envelope is a replay too (-4001), not a second login."""
    twin = new_partner(installation.ra)
    set_password(installation.ra, code=twin.code, username=twin.username, password=Secret(partner.password),
                 ws_digest=True)
    header = security_header(partner)
    assert outcome(post(server, parse_csr_envelope(partner, header), soap_action='"ParseCSR"').body)[0] == 0
    elsewhere = header.replace(f"<wsse:Username>{partner.username}<", f"<wsse:Username>{twin.username}<")
    answer = post(server, parse_csr_envelope(twin, elsewhere), soap_action='"ParseCSR"')
    assert outcome(answer.body)[0] == -4001


def _token_values(header: str) -> list[str]:
    """The Password (digest or text) and Nonce texts of a header built by :func:`security_header`."""
    token = etree.fromstring(f'<h xmlns:soapenv="{SOAP_ENV}">{header}</h>').find(f".//{{{WSSE}}}UsernameToken")
    assert token is not None
    return [text for name in ("Password", "Nonce") if (text := token.findtext(f"{{{WSSE}}}{name}"))]


def test_no_token_value_reaches_the_log_an_answer_or_the_audit_trail(
    installation: Installation, server: RunningServer, partner: ApiPartner
) -> None:
    """Every path of a UsernameToken login on a real server: a digest that authenticates, its
    replay, a wrong digest, a malformed token, PasswordText right and wrong, and a user whose
    password copy this installation cannot decrypt (which logs an error for the operator). The
    server's log, the answers and the audit events hold no password, digest or nonce."""
    damaged = new_partner(installation.ra)
    set_password(installation.ra, code=damaged.code, username=damaged.username,
                 password=Secret(damaged.password), ws_digest=True)
    with installation.ra.sessions() as session, session.begin():
        user = session.scalars(select(ApiUser).join(Partner).where(Partner.code == damaged.code)).one()
        user.ws_password_copy = encrypt_password(derive_key(Secret("another installation")),
                                                 partner_code=damaged.code, username=damaged.username,
                                                 password=Secret(damaged.password))
    digest = security_header(partner)
    text = (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken><wsse:Username>{partner.username}'
            f"</wsse:Username><wsse:Password>{{password}}</wsse:Password></wsse:UsernameToken></wsse:Security>")
    wrong_password = "Wr0ng-" + secrets.token_urlsafe(12)
    cases = [
        (partner, digest, 0),
        (partner, digest, -4001),  # the replay
        (partner, security_header(partner, password=wrong_password), -4001),
        (partner, security_header(partner).replace("<wsse:Nonce>", '<wsse:Nonce EncodingType="urn:hex">'), -4001),
        (partner, text.format(password=partner.password), 0),
        (partner, text.format(password=wrong_password), -4001),
        (damaged, security_header(damaged), -4001),
    ]
    mark = server.log_mark()
    answers = []
    for who, header, expected in cases:
        answer = post(server, parse_csr_envelope(who, header), soap_action='"ParseCSR"')
        assert answer.status == 200 and outcome(answer.body)[0] == expected
        answers.append(answer.body.decode())
    log = server.log(mark)
    assert "cannot be decrypted" in log  # the operator is told, by user name
    with installation.ra.readers() as session:
        audited = " ".join(detail or "" for detail in session.scalars(
            select(AuditEvent.detail).where(AuditEvent.partner_code.in_((partner.code, damaged.code)))))
    secrets_sent = {partner.password, damaged.password, wrong_password}
    secrets_sent.update(value for _, header, _ in cases for value in _token_values(header))
    for secret in secrets_sent:
        assert secret not in log and secret not in audited
        assert all(secret not in answer for answer in answers)


# ------------------------------------------------------------------------------ node-soap


@pytest.mark.skipif(_NODE_MISSING is not None, reason=f"node-soap: {_NODE_MISSING}")
def test_node_soap_password_digest_with_must_understand(server: RunningServer, partner: ApiPartner) -> None:
    job = {
        "scenario": "ws_security_digest",
        "wsdl": server.wsdl_url,
        "location": server.url,
        "partner": {"code": partner.code, "username": partner.username, "password": partner.password},
        "calls": [
            {"name": "digest", "csr": fresh_key_csr()},
            {"name": "wrong", "csr": fresh_key_csr(), "password": "not-the-password"},
        ],
    }
    completed = subprocess.run(("node", str(INTEROP / "node_client.js")), input=json.dumps(job),
                               capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=INTEROP)
    assert completed.returncode == 0, completed.stderr
    calls = json.loads(completed.stdout)["calls"]
    digest = calls["digest"]
    assert digest["result"]["ParseCSRResult"]["QueryResponseHeader"]["SuccessCode"] == 0, digest
    sent = digest["request"]
    assert 'mustUnderstand="1"' in sent and "#PasswordDigest" in sent and "AuthToken" not in sent
    assert calls["wrong"]["result"]["ParseCSRResult"]["QueryResponseHeader"]["SuccessCode"] == -4001
    replayed = post(server, sent.encode(), soap_action='"ParseCSR"')
    assert outcome(replayed.body)[0] == -4001


# ------------------------------------------------------------------------------ PHP


@pytest.mark.skipif(_PHP_MISSING is not None, reason=f"PHP: {_PHP_MISSING}")
def test_php_soapclient_with_the_header_built_by_hand(server: RunningServer, partner: ApiPartner) -> None:
    """docs/soap-api.md's PHP example: a SoapHeader of XSD_ANYXML, PasswordText and PasswordDigest."""
    job = {
        "wsdl": server.wsdl_url,
        "location": server.url,
        "partner": {"code": partner.code, "username": partner.username, "password": partner.password},
        "calls": [
            {"name": "text", "csr": fresh_key_csr(), "type": "PasswordText"},
            {"name": "digest", "csr": fresh_key_csr(), "type": "PasswordDigest"},
            {"name": "wrong", "csr": fresh_key_csr(), "type": "PasswordDigest", "password": "not-the-password"},
        ],
    }
    completed = subprocess.run(("php", str(INTEROP / "php_ws_security.php")), input=json.dumps(job),
                               capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=INTEROP)
    assert completed.returncode == 0, completed.stderr
    calls = json.loads(completed.stdout)["calls"]
    codes = {name: call["result"]["ParseCSRResult"]["QueryResponseHeader"]["SuccessCode"]
             for name, call in calls.items()}
    assert codes == {"text": 0, "digest": 0, "wrong": -4001}, calls
    assert "AuthToken" not in calls["digest"]["request"] and "#PasswordDigest" in calls["digest"]["request"]
    assert outcome(post(server, calls["digest"]["request"].encode(), soap_action='"ParseCSR"').body)[0] == -4001


# ------------------------------------------------------------------------------ .NET (Mono)


@pytest.mark.skipif(_MONO_MISSING, reason=f".NET: {', '.join(_MONO_MISSING)} missing (apt-get install mono-devel)")
def test_the_asmx_proxy_sends_its_security_header(server: RunningServer, partner: ApiPartner,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mono's wsdl tool makes the header a ``Security`` property (``SecurityHeaderType``, a SoapHeader)
    from the served WSDL; tests/interop/dotnet/WsSecurity.cs sets it with mustUnderstand."""
    build = tmp_path_factory.mktemp("dotnet-ws-security")
    _tool(["wsdl", "-nologo", "-out:Proxy.cs", server.wsdl_url], build)
    shutil.copy(INTEROP / "dotnet" / "WsSecurity.cs", build / "WsSecurity.cs")
    _tool(["mcs", "-r:System.Web.Services", "-out:wssecurity.exe", "Proxy.cs", "WsSecurity.cs"], build)
    (build / "request.csr").write_text(fresh_key_csr())
    lines = _tool(["mono", "wssecurity.exe", server.url, partner.code, partner.username, partner.password,
                   str(build / "request.csr")], build).split()
    assert lines == ["text", "0", "digest", "0", "wrong-digest", "-4001"]


def _tool(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout
