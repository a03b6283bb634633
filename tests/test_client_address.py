"""The client behind a load balancer (docs/design.md, "End User Portal"): with
SOAP_SERVICE_TRUSTED_PROXIES naming the balancers, the client is the address they put in
X-Forwarded-For, read from the right past the trusted hops; from any other peer the header counts
for nothing. Unit tests of ``soap_service.client_address``, the setting, and the portal over HTTP,
where each forwarded client has a per-client budget of its own only when the peer is trusted."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator

import pytest

from api_support import SERVICE_PATH, RunningServer, request, running_server
from conftest import TestInstallation as Installation
from soap_service.client_address import MAX_FORWARDED_CHARS, MAX_FORWARDED_HOPS, client_address, limit_key
from soap_service.config import MAX_TRUSTED_PROXIES, ConfigurationError, load_settings

BALANCERS = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8:ba1::/48"))


def _environ(peer: str | None, forwarded: str | None = None) -> dict[str, str]:
    environ = {} if peer is None else {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    return environ


# ------------------------------------------------------------------------------------- the function


def test_a_trusted_peer_names_the_rightmost_untrusted_address_of_the_chain() -> None:
    # the client wrote the first entry itself; the balancer appended the address it was reached from
    environ = _environ("10.0.0.7", "192.0.2.66, 198.51.100.23")
    assert client_address(environ, BALANCERS) == "198.51.100.23"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address(_environ("198.51.100.23", "192.0.2.1"), BALANCERS) == "198.51.100.23"
    assert client_address(_environ("10.0.1.7", "192.0.2.1"), BALANCERS) == "10.0.1.7"  # outside 10.0.0.0/24


def test_nothing_trusted_is_remote_addr_unchanged() -> None:
    assert client_address(_environ("10.0.0.7", "192.0.2.1"), ()) == "10.0.0.7"
    assert client_address(_environ(None, "192.0.2.1"), ()) is None
    assert client_address(_environ(None, "192.0.2.1"), BALANCERS) is None


def test_trusted_hops_are_skipped_from_the_right() -> None:
    environ = _environ("10.0.0.7", "192.0.2.66, 198.51.100.23, 10.0.0.9, 2001:db8:ba1::5")
    assert client_address(environ, BALANCERS) == "198.51.100.23"


def test_every_hop_trusted_is_the_peer() -> None:
    assert client_address(_environ("10.0.0.7", "10.0.0.8, 10.0.0.9"), BALANCERS) == "10.0.0.7"


def test_ipv6_peers_and_clients_in_normal_form() -> None:
    environ = _environ("2001:db8:ba1::1", "2001:DB8:0:0:0:0:0:77")
    assert client_address(environ, BALANCERS) == "2001:db8::77"
    assert client_address(_environ("2001:db8:ba1::1", "198.51.100.23"), BALANCERS) == "198.51.100.23"
    assert client_address(_environ("10.0.0.7", " 2001:db8::77\t"), BALANCERS) == "2001:db8::77"


def test_an_ipv4_mapped_peer_is_trusted_as_its_ipv4_address() -> None:
    assert client_address(_environ("::ffff:10.0.0.7", "198.51.100.23"), BALANCERS) == "198.51.100.23"


def test_an_ipv6_address_is_never_inside_an_ipv4_network() -> None:
    # ::a00:7 has the integer value of 10.0.0.7
    assert client_address(_environ("::a00:7", "198.51.100.23"), BALANCERS) == "::a00:7"


@pytest.mark.parametrize("forwarded", [
    "", " ", ",", "198.51.100.23,", "unknown", "198.51.100.23:4711", "[2001:db8::77]", "198.51.100.023",
    "198.51.100.23 192.0.2.1", "192.0.2.1, 10.0.0.9, garbage", "198.51.100.2\u0663",
    "198.51.100.23" + " " * MAX_FORWARDED_CHARS,
    ", ".join(["198.51.100.23"] + ["10.0.0.9"] * MAX_FORWARDED_HOPS),
])
def test_a_header_that_cannot_be_read_names_the_balancer(forwarded: str) -> None:
    assert client_address(_environ("10.0.0.7", forwarded), BALANCERS) == "10.0.0.7"


def test_entries_left_of_the_client_are_not_read() -> None:
    assert client_address(_environ("10.0.0.7", "garbage, 198.51.100.23"), BALANCERS) == "198.51.100.23"


def test_the_longest_header_read_is_read() -> None:
    hops = ", ".join(["198.51.100.23"] + ["10.0.0.9"] * (MAX_FORWARDED_HOPS - 1))
    assert len(hops) <= MAX_FORWARDED_CHARS
    assert client_address(_environ("10.0.0.7", hops), BALANCERS) == "198.51.100.23"


def test_no_header_names_the_balancer() -> None:
    assert client_address(_environ("10.0.0.7"), BALANCERS) == "10.0.0.7"


def test_a_peer_that_is_no_address_is_itself() -> None:
    assert client_address(_environ("unix:/run/x.sock", "198.51.100.23"), BALANCERS) == "unix:/run/x.sock"


# ---------------------------------------------------------------------------------------- the setting


def test_the_setting_reads_addresses_and_networks_of_both_families() -> None:
    settings = load_settings({"SOAP_SERVICE_TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16,2001:db8::/64 , ::1"})
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("10.1.0.0/16"),
                                        ipaddress.ip_network("2001:db8::/64"), ipaddress.ip_network("::1/128"))
    assert load_settings({}).trusted_proxies == ()
    assert load_settings({"SOAP_SERVICE_TRUSTED_PROXIES": ""}).trusted_proxies == ()


@pytest.mark.parametrize(("value", "words"), [
    ("10.0.0.300", "IP addresses or networks"),
    ("balancer.internal", "IP addresses or networks"),
    ("10.0.0.5,,10.0.0.6", "IP addresses or networks"),
    ("10.0.0.5/8", "IP addresses or networks"),  # host bits set: meant 10.0.0.0/8 or 10.0.0.5?
    ("10.0.0.5 10.0.0.6", "IP addresses or networks"),
    ("0.0.0.0/0", "not the Internet"),
    ("::/0", "not the Internet"),
    ("0.0.0.0/1,128.0.0.0/1", "not the Internet"),  # every address, in two halves
    ("10.0.0.0/7", "/8 or narrower"),
    ("2000::/3", "/32 or narrower"),
    ("::ffff:10.0.0.0/120", "as IPv4"),  # would never match: a peer is matched as IPv4
    (",".join(["10.0.0.5"] * (MAX_TRUSTED_PROXIES + 1)), f"at most {MAX_TRUSTED_PROXIES}"),
    ("10.0.0.5," + " " * 5000, "characters"),
])
def test_a_bad_setting_refuses_to_start(value: str, words: str) -> None:
    """A setting that cannot be read, or that would trust clients, refuses to start."""
    with pytest.raises(ConfigurationError, match=words) as refused:
        load_settings({"SOAP_SERVICE_TRUSTED_PROXIES": value})
    assert "SOAP_SERVICE_TRUSTED_PROXIES" in str(refused.value)


# ------------------------------------------------------------------------------------ over HTTP

PORTAL_FORM = "/portal/symantec/"
FORMS_A_WINDOW = 3  # SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT=1: three lookup forms per client in 10 minutes


def _servers(installation: Installation, tmp_path_factory: pytest.TempPathFactory,
             trusted: str | None) -> Iterator[RunningServer]:
    extra = {"SOAP_SERVICE_PORTAL_LOOKUPS_PER_CLIENT": "1"}
    if trusted is not None:
        extra["SOAP_SERVICE_TRUSTED_PROXIES"] = trusted
    yield from running_server(installation, tmp_path_factory, workers=1, threads=2, extra_env=extra)


@pytest.fixture(scope="module")
def behind_a_balancer(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The test process plays the load balancer: 127.0.0.1 is trusted."""
    yield from _servers(installation, tmp_path_factory, "127.0.0.1")


@pytest.fixture(scope="module")
def trusting_nobody(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _servers(installation, tmp_path_factory, None)


def _visitor() -> str:
    """An address of the documentation prefix no other test counted."""
    # A /64 of its own (limits count an IPv6 client by its /64), outside the balancers' 2001:db8:ba1::/48.
    network = ((0x8000 | secrets.randbits(15)) << 16) | secrets.randbits(16)
    return str(ipaddress.ip_address("2001:db8::") + (network << 64) + secrets.randbits(64))


def _form(server: RunningServer, forwarded: str | None = None) -> int:
    status, _headers, _body = request(server, "GET", PORTAL_FORM,
                                      headers={"X-Forwarded-For": forwarded} if forwarded is not None else None)
    return status


def test_behind_a_trusted_balancer_each_visitor_has_a_budget_of_its_own(behind_a_balancer: RunningServer) -> None:
    first, second = _visitor(), _visitor()
    assert [_form(behind_a_balancer, f"192.0.2.1, {first}") for _ in range(FORMS_A_WINDOW)] == [200] * FORMS_A_WINDOW
    assert _form(behind_a_balancer, f"192.0.2.1, {first}") == 429
    # the first visitor's spent budget is not the second's, nor the second's the first's
    assert _form(behind_a_balancer, second) == 200
    assert _form(behind_a_balancer, f"{second}, {first}") == 429  # the rightmost untrusted entry is the client


def test_behind_a_trusted_balancer_the_logs_name_the_visitor(behind_a_balancer: RunningServer) -> None:
    visitor = _visitor()
    mark = behind_a_balancer.log_mark()
    for path in (PORTAL_FORM, SERVICE_PATH + "?wsdl", "/ca/ROOT.crt", "/ocsp/AA"):
        request(behind_a_balancer, "GET", path, headers={"X-Forwarded-For": visitor})
    lines = [line for line in behind_a_balancer.log(mark).splitlines() if "requests" in line]
    for logger in ("soap_service.portal.requests", "soap_service.api.requests", "soap_service.status.requests"):
        assert any(logger in line and f"client={visitor}" in line for line in lines), (logger, lines)
    assert sum("soap_service.status.requests" in line and f"client={visitor}" in line for line in lines) == 2


def test_a_forged_header_from_an_untrusted_peer_does_not_escape_the_limit(trusting_nobody: RunningServer) -> None:
    # 127.0.0.1 is not trusted here: every request is 127.0.0.1's, whatever it claims to forward
    statuses = [_form(trusting_nobody, _visitor()) for _ in range(FORMS_A_WINDOW + 1)]
    assert statuses[-1] == 429
    assert _form(trusting_nobody, _visitor()) == 429
    assert _form(trusting_nobody) == 429


@pytest.mark.parametrize(("address", "key"), [
    ("198.51.100.23", "198.51.100.23"),
    ("::ffff:198.51.100.23", "198.51.100.23"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    (None, "-"),
    ("", "-"),
    ("not an address", "not an address"),
    ("x" * 500, "x" * 64),
])
def test_a_limit_counts_an_ipv6_client_by_its_64(address, key):
    """Per-client limits (docs/design.md, "End User Portal") count an IPv6 client by its /64: one
    subscriber holds a whole /64 and would otherwise have 2**64 budgets."""
    assert limit_key(address) == key
