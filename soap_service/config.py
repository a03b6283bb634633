"""Settings, read once from ``SOAP_SERVICE_*`` environment variables.

Every default makes the demo work on SQLite on a laptop. Secrets are held in
:class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from soap_service.client_address import TrustedProxies
from soap_service.keyalgorithms import KEY_ALGORITHM_NAMES

PREFIX = "SOAP_SERVICE_"
KEY_REUSE_POLICIES = ("warn", "refuse")


class ConfigurationError(Exception):
    """A setting is missing or invalid; raised at start, never per request."""


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def derive_key(self, label: bytes) -> bytes:
        """A 256-bit key for one purpose, named by ``label``: HMAC-SHA256 of the label under this
        secret. The installation's keys (the portal's cookies, the WS-Security password copies)
        are derived from the CA passphrase so, each with its own label."""
        return hmac.new(self._value.encode(), label, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str = field(repr=False)  # may hold a database password
    public_url: str
    ca_key_algorithm: str = "rsa-2048"
    ca_passphrase: Secret | None = field(default=None, repr=False)
    ca_passphrase_file: Path | None = None
    key_reuse: str = "warn"
    require_key_blocklist: bool = False
    auth_cache_seconds: int = 60
    db_pool_size: int = 5  # PostgreSQL: connections kept per process, and as many more in a burst
    lockout_threshold: int = 10
    lockout_window_seconds: int = 900
    log_level: str = "INFO"
    portal_lookups_per_client: int = 20  # per 10 minutes
    portal_mails_per_client: int = 10  # per hour
    smtp_url: str | None = field(default=None, repr=False)  # may hold an SMTP password
    test_captcha: str | None = None  # tests only: every portal captcha's answer (loopback public URL only)
    trusted_proxies: TrustedProxies = ()  # the load balancers whose X-Forwarded-For names the client
    replay_token_hours: int = 24  # how long a ReplayToken's stored answer is answered from (ra.replay)

    @property
    def public_url_is_internal(self) -> bool:
        return is_internal_host(urlsplit(self.public_url).hostname or "")


def is_internal_host(host: str) -> bool:
    """True for a loopback, private or single-label name a public CA may not use."""
    import ipaddress

    if not host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        return len(labels) < 2 or labels[-1] in {"localhost", "local", "internal", "lan", "test"}
    return not address.is_global


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{PREFIX}{name} must be at least {minimum}")
    return value


MAX_DB_POOL_SIZE = 100
MAX_REPLAY_TOKEN_HOURS = 168
"""SOAP_SERVICE_REPLAY_TOKEN_HOURS: a week at most (a retry comes within minutes; the table stays small)."""


def _bounded_int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _int(env, name, default, minimum)
    if value > maximum:
        raise ConfigurationError(f"{PREFIX}{name} must be at most {maximum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(PREFIX + name) or default
    if value not in choices:
        raise ConfigurationError(f"{PREFIX}{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get(PREFIX + "DATA_DIR") or "./var").resolve()
    database_url = env.get(PREFIX + "DATABASE_URL") or f"sqlite:///{data_dir / 'soap_service.db'}"
    public_url = (env.get(PREFIX + "PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{PREFIX}PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    passphrase = env.get(PREFIX + "CA_PASSPHRASE")
    passphrase_file = env.get(PREFIX + "CA_PASSPHRASE_FILE")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        public_url=public_url,
        ca_key_algorithm=_choice(env, "CA_KEY_ALGORITHM", "rsa-2048", KEY_ALGORITHM_NAMES),
        ca_passphrase=Secret(passphrase) if passphrase else None,
        ca_passphrase_file=Path(passphrase_file) if passphrase_file else None,
        key_reuse=_choice(env, "KEY_REUSE", "warn", KEY_REUSE_POLICIES),
        require_key_blocklist=_choice(env, "REQUIRE_KEY_BLOCKLIST", "no", ("yes", "no")) == "yes",
        auth_cache_seconds=_int(env, "AUTH_CACHE_SECONDS", 60),
        db_pool_size=_bounded_int(env, "DB_POOL_SIZE", 5, 1, MAX_DB_POOL_SIZE),
        lockout_threshold=_int(env, "LOCKOUT_THRESHOLD", 10, minimum=1),
        lockout_window_seconds=_int(env, "LOCKOUT_WINDOW_SECONDS", 900, minimum=1),
        log_level=(env.get(PREFIX + "LOG_LEVEL") or "INFO").upper(),
        portal_lookups_per_client=_int(env, "PORTAL_LOOKUPS_PER_CLIENT", 20, minimum=1),
        portal_mails_per_client=_int(env, "PORTAL_MAILS_PER_CLIENT", 10, minimum=1),
        smtp_url=_smtp_url(env),
        test_captcha=_test_captcha(env, public_url),
        trusted_proxies=_trusted_proxies(env),
        replay_token_hours=_bounded_int(env, "REPLAY_TOKEN_HOURS", 24, 1, MAX_REPLAY_TOKEN_HOURS),
    )


def _smtp_url(env: Mapping[str, str]) -> str | None:
    """``smtp://[user:password@]host[:port]`` or ``smtps://...``; None (unset) writes mail to the outbox folder."""
    raw = env.get(PREFIX + "SMTP_URL") or None
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        # the value is not repeated: it may hold a password
        raise ConfigurationError(f"{PREFIX}SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises
    except ValueError:
        raise ConfigurationError(f"{PREFIX}SMTP_URL has a port that is not a number") from None
    return raw


MAX_TRUSTED_PROXIES = 64
MAX_TRUSTED_PROXIES_CHARS = 4096
MIN_TRUSTED_PREFIX = {4: 8, 6: 32}
"""The widest trusted network per IP version: a /8 (IPv4) or /32 (IPv6) holds any balancer
pool; wider ones (``0.0.0.0/1,128.0.0.0/1`` is every address) would trust clients."""


def _trusted_proxies(env: Mapping[str, str]) -> TrustedProxies:
    """``SOAP_SERVICE_TRUSTED_PROXIES``: the load balancers' IP addresses and networks (IPv4 or
    IPv6, ``10.0.0.5``, ``10.0.0.0/24``, ``2001:db8::/64``), comma-separated, at most
    :data:`MAX_TRUSTED_PROXIES`; unset or empty, nobody is trusted (``soap_service.client_address``)."""
    import ipaddress

    raw = env.get(PREFIX + "TRUSTED_PROXIES") or ""
    if len(raw) > MAX_TRUSTED_PROXIES_CHARS:
        raise ConfigurationError(f"{PREFIX}TRUSTED_PROXIES must be at most {MAX_TRUSTED_PROXIES_CHARS} characters")
    if not raw.strip():
        return ()
    entries = raw.split(",")
    if len(entries) > MAX_TRUSTED_PROXIES:
        raise ConfigurationError(
            f"{PREFIX}TRUSTED_PROXIES may name at most {MAX_TRUSTED_PROXIES} addresses or networks"
        )
    networks = []
    for entry in entries:
        text = entry.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise ConfigurationError(
                f"{PREFIX}TRUSTED_PROXIES must be IP addresses or networks (10.0.0.5, 10.0.0.0/24, 2001:db8::/64) "
                f"separated by commas, got {text[:64]!r}"
            ) from None
        shortest = MIN_TRUSTED_PREFIX[network.version]
        if network.prefixlen < shortest:  # clients inside could name themselves in X-Forwarded-For
            raise ConfigurationError(
                f"{PREFIX}TRUSTED_PROXIES names the load balancers, not the Internet: an IPv{network.version} "
                f"network must be /{shortest} or narrower, got {text!r}"
            )
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
            raise ConfigurationError(
                f"{PREFIX}TRUSTED_PROXIES: write an IPv4-mapped address as IPv4 (a peer is matched as IPv4), "
                f"got {text!r}"
            )
        networks.append(network)
    return tuple(networks)


def _test_captcha(env: Mapping[str, str], public_url: str) -> str | None:
    """The fixed captcha answer of a test installation: five digits, and only with a loopback public URL."""
    raw = env.get(PREFIX + "TEST_CAPTCHA") or None
    if raw is None:
        return None
    if len(raw) != 5 or not raw.isascii() or not raw.isdigit():
        raise ConfigurationError(f"{PREFIX}TEST_CAPTCHA must be five digits")
    import ipaddress

    host = urlsplit(public_url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigurationError(
            f"{PREFIX}TEST_CAPTCHA is a test setting: it is refused unless {PREFIX}PUBLIC_URL is a loopback address"
        )
    return raw
