"""Who the client is: the peer's address (``REMOTE_ADDR``), or, when that peer is one of the
installation's load balancers (``SOAP_SERVICE_TRUSTED_PROXIES``), the address the balancers
put in ``X-Forwarded-For`` (docs/design.md, "End User Portal").

The header is read from the right: each balancer appends the address it was reached from, so
the rightmost entries are the balancers' own and the first one that is no trusted proxy is the
client; what lies to its left was written by the client and is never read. A peer that is not a
trusted proxy is its own client, whatever it sends. Only the header's right end is read: its last
:data:`MAX_FORWARDED_CHARS` characters (an entry cut there is dropped) and of those the last
:data:`MAX_FORWARDED_HOPS` entries, so a client that sends a long header or many entries is still
named by the entry the balancer appended, never by the balancer (which would give it the
balancer's budget and keep its own address out of the logs). Each entry is read by ``ipaddress``,
no pattern; a header missing or empty, an entry that is no IP address where it is read, or no
untrusted entry within the part read, gives the peer's address (the balancer's), as if nothing
were trusted. An address read from the header is given in one form per client: an IPv4-mapped
IPv6 address as its IPv4 address, an IPv6 zone (``%eth0``) left out. With no trusted proxy (the
default) this is ``REMOTE_ADDR``, unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
TrustedProxies = tuple[Network, ...]

FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"
MAX_FORWARDED_CHARS = 1024
"""The most characters of ``X-Forwarded-For`` read, from its right end (module docstring)."""
MAX_FORWARDED_HOPS = 32
"""The most entries of ``X-Forwarded-For`` read, from its right end."""


def client_address(environ: Mapping[str, Any], trusted: TrustedProxies) -> str | None:
    """The client's address for logs and per-client limits (module docstring); None without a
    ``REMOTE_ADDR``. An address read from ``X-Forwarded-For`` is given in its normal form
    (``str`` of ``ipaddress.ip_address``), one form per client (module docstring)."""
    remote = environ.get("REMOTE_ADDR")
    peer_text = remote if isinstance(remote, str) else None
    if not trusted or peer_text is None:
        return peer_text
    peer = _address(peer_text)
    if peer is None or not is_trusted(peer, trusted):
        return peer_text
    forwarded = environ.get(FORWARDED_FOR)
    if not isinstance(forwarded, str) or not forwarded:
        return peer_text
    tail = forwarded[-MAX_FORWARDED_CHARS:]  # the right end: the balancers wrote it
    entries = tail.split(",")
    if len(tail) < len(forwarded):
        entries = entries[1:]  # the leftmost entry read may be cut: it was the client's anyway
    for entry in reversed(entries[-MAX_FORWARDED_HOPS:]):
        hop = _address(entry.strip(" \t"))
        if hop is None:
            return peer_text
        if not is_trusted(hop, trusted):
            return str(_one_form(hop))
    return peer_text  # every hop read is a balancer of ours: the request began inside


def is_trusted(address: Address, trusted: TrustedProxies) -> bool:
    """True if ``address`` (an IPv4-mapped IPv6 address as its IPv4 address) is in a trusted network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in trusted)


def _one_form(address: Address) -> Address:
    """One address per client: an IPv4-mapped IPv6 address as its IPv4 address, no IPv6 zone."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


MAX_ADDRESS_CHARS = 64
"""The longest address text a limit key is read from (an IPv6 address with a zone fits)."""
IPV6_SUBSCRIBER_PREFIX = 64
"""An IPv6 client is counted by its /64: one subscriber usually holds a whole /64 (2**64
addresses), and would otherwise have as many budgets as addresses it cares to use."""


def limit_key(address: str | None) -> str:
    """What a per-client limit counts for ``address`` (a :func:`client_address`): an IPv4
    address as it is, an IPv6 address as its /64 (``2001:db8:1:2::/64``), anything else as its
    first 64 characters, ``-`` for none."""
    if not address:
        return "-"
    parsed = _address(address) if len(address) <= MAX_ADDRESS_CHARS else None
    if parsed is None:
        return address[:MAX_ADDRESS_CHARS]
    parsed = _one_form(parsed)
    if isinstance(parsed, ipaddress.IPv6Address):
        prefix = IPV6_SUBSCRIBER_PREFIX
        return str(ipaddress.IPv6Network((int(parsed) >> (128 - prefix) << (128 - prefix), prefix)))
    return str(parsed)
