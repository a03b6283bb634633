"""Which public keys the CA certifies: one :class:`KeyPolicy` owns every key rule and its message
(docs/design.md, "Key policy", and reissue rules 5 and 7 there: -4009).  No database: our own
blocked-key table is asked through a lookup the caller hands in.

Accepted: the keys of :mod:`soap_service.keyalgorithms`'s table, the same table the CA's own
keys come from: RSA with a modulus of exactly 2048, 3072 or 4096 bits, odd, public exponent
65537, whose private key cannot be computed by the checks below; ECDSA on P-256 or P-384
(cryptography has already checked that the point is on the curve, and not the point at infinity,
when it loaded the key) that is not a small multiple of the generator.  Everything else is
refused with :class:`KeyRefused` (-4009) and a message that names the problem, never the key;
so is a key the CSR reader could not load at all (:class:`~soap_service.ra.csr.UnloadableKey`).

First our own arithmetic (:mod:`soap_service.ra.weakkeys`, which says exactly what it does and
does not catch, and ``bench/key_checks.py`` for its cost): an RSA modulus that is a perfect
power, has a prime factor below 2^20, is prime, has a prime factor p with p - 1 smooth
(Pollard p - 1, B1 = 300) or with p + 1 smooth (Williams p + 1, B1 = 300, three seeds), or has
factors close to a ratio of small numbers (Fermat on k*n, k <= 768); an EC point k*G with
0 < |k| <= 2^20.  Its tables are built by :meth:`KeyPolicy.prepare` when a worker starts (about
0.1 s), or on the first check.

Then the badkeys checks, on every RSA key (about 0.4 ms for RSA-2048, most of it ``sharedprimes``):

- ``rsainvalid``, ``rsapoly``, ``fermat``, ``roca``: pure arithmetic on n (badkeys's
  ``smallfactors``, primes up to 65,537, is left out: the gcd with the primes below 2^20 above
  finds all of them and more);
- ``sharedprimes``: gcd with the product of primes of known factored keys, when the data file
  that ships inside the badkeys package is present;
- ``blocklist`` (Debian weak keys, keys whose private half was published): only when badkeys's
  downloaded blocklist data (``badkeys --update-bl``) is on this machine, see
  :func:`blocklist_available`.  The blocklist is also consulted for EC keys.

``smalld`` (Wiener's attack) is left out on purpose: it needs d < n^(1/4), which implies a
public exponent about as large as n; with e fixed at 65537 it can never fire.

Last, our own blocked-key table (keys revoked for keyCompromise, keyed by SPKI SHA-256):
:meth:`KeyPolicy.check_not_blocked`, with a :data:`BlockedKeyLookup` in the caller's
transaction.  Why the caller's and not a reader session of the policy's own: the reissue asks
it after it has locked the order, in the transaction that then records the certificate.  There
the question is answered as of that moment (a key blocked while the reissue waited for the lock
is seen; on SQLite the reissue holds the write lock, so no block can commit between the
question and the certificate), and it costs one primary-key read on a connection already held.
A reader session would be a second connection taken from the same pool while the first holds
a lock: under load every worker thread could hold a writer and wait for a reader, and the pool
would run dry.  The rule order of the reissue stays as it was: this check comes after the order,
the CSR and the names.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from typing import Any, TypeAlias

from badkeys import checkrsa
from badkeys.checks import checkall
from badkeys.utils import _cachedir
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from soap_service.config import ConfigurationError
from soap_service.errors import KeyRefused
from soap_service.keyalgorithms import EC_CURVES, RSA_EXPONENT, RSA_SIZES
from soap_service.ra import weakkeys
from soap_service.ra.csr import CSRReading, KeyEncoding, KeyLoadFailure, ParsedCSR, UnloadableKey, key_facts
from soap_service.ra.weakkeys import RSAWeakness

log = logging.getLogger(__name__)

KeyLookup: TypeAlias = Callable[[str], bool]
"""A question about a key by its SPKI SHA-256, asked in the caller's transaction."""
BlockedKeyLookup: TypeAlias = KeyLookup
"""Whether our own blocked-key table holds the key of this SPKI SHA-256 (hex), in the caller's
transaction: ``functools.partial(soap_service.storage.certificates.is_key_blocked, session)``."""


def _listed(items: Sequence[object], last: str) -> str:
    """"2048, 3072 or 4096": the items, the last two joined by ``last``."""
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


_ACCEPTED = (
    f"only RSA {_listed(RSA_SIZES, 'or')} bits and ECDSA {_listed(list(EC_CURVES), 'or')} keys are accepted"
)
_RSA_SIZES_ACCEPTED = f"only {_listed(RSA_SIZES, 'or')} are accepted"
_EC_CURVES_ACCEPTED = f"only {_listed(list(EC_CURVES), 'and')} are accepted"

_UNLOADABLE_MESSAGES: Mapping[KeyLoadFailure, str] = {
    KeyLoadFailure.UNSUPPORTED: (
        f"the CSR's public key is of an algorithm or curve this service does not support: {_ACCEPTED}"
    ),
    KeyLoadFailure.INVALID: (
        "the CSR's public key is invalid (not a point on its curve, explicit curve parameters, "
        f"or a malformed key): {_ACCEPTED}"
    ),
}

_CERTIFIED_ENCODINGS = frozenset({KeyEncoding.RSA_ENCRYPTION, KeyEncoding.NAMED_CURVE})
"""What a CSR's SubjectPublicKeyInfo may say of its key: what the certificate will say (BR
7.1.3.1). A key restricted to RSASSA-PSS would lose its restriction, and explicit curve
parameters are refused whichever curve they describe."""

_BLOCKED_MESSAGE = "this key was reported compromised and is blocked"

_HELD_ELSEWHERE_MESSAGE = (
    "this key is in a valid certificate of another account: a key belongs to one subscriber; generate a new key"
)

# badkeys checks on n (and e) that need no data beyond the package's code, in the order the
# refusal is reported when several fire.
_ARITHMETIC_CHECKS = ("rsainvalid", "rsapoly", "fermat", "roca")

_WEAKNESS_MESSAGES: Mapping[RSAWeakness, str] = {
    RSAWeakness.PERFECT_POWER: (
        "RSA key refused: its modulus is a perfect power (such as p^2 or p^3), not a product of two "
        "distinct primes, so anyone can compute its private key"
    ),
    RSAWeakness.SMALL_FACTOR: (
        "RSA key refused: its modulus has a small prime factor (below 2^20), so it is not a valid RSA key "
        "and anyone can compute its private key"
    ),
    RSAWeakness.PRIME: (
        "RSA key refused: its modulus is a prime number, not a product of two primes, so anyone can "
        "compute its private key"
    ),
    RSAWeakness.SMOOTH_FACTOR: (
        "RSA key refused: its modulus is factored at once by Pollard's p-1 method (a prime factor p "
        "with p-1 a product of small primes), so anyone can compute its private key; generate a new key"
    ),
    RSAWeakness.NEAR_RATIO: (
        "RSA key refused: its two primes are so close together, or so close to a ratio of small numbers "
        "(such as one about three times the other), that Fermat's method on the modulus or a small "
        "multiple of it factors it at once (a flawed key generator); generate a new key"
    ),
    RSAWeakness.SMOOTH_PLUS_ONE_FACTOR: (
        "RSA key refused: its modulus is factored at once by Williams' p+1 method (a prime factor p "
        "with p+1 a product of small primes), so anyone can compute its private key; generate a new key"
    ),
}

_SMALL_MULTIPLE_MESSAGE = (
    "EC key refused: its private key is a small number (the point is k*G for a small k), so anyone "
    "can compute it; generate a new key"
)

_RSA_MESSAGES: Mapping[str, str] = {
    "rsainvalid": "RSA key refused: its public values are invalid",
    "rsapoly": (
        "RSA key refused: its modulus has a pattern of zero bits that lets it be factored "
        "(a known flawed key generator)"
    ),
    "fermat": (
        "RSA key refused: its two primes are so close together that the modulus is factored "
        "at once by Fermat's method (a flawed key generator); generate a new key"
    ),
    "roca": (
        "RSA key refused: it was generated by a library vulnerable to ROCA (CVE-2017-15361, "
        "Infineon RSALib), which lets anyone compute the private key; generate a new key elsewhere"
    ),
    "sharedprimes": (
        "RSA key refused: its modulus shares a prime with a known factored key (a flawed random "
        "number generator), so the private key is known"
    ),
}


class KeyPolicy:
    """Every rule about the key of a CSR, and its message (-4009); built once per RA.

    In a reissue: :meth:`check_csr` on the CSR as read, before any lock (CPU only), then
    :meth:`check_not_blocked` in the reissue's transaction, after the order and the names.
    """

    def __init__(self, *, require_blocklist: bool = False) -> None:
        """``require_blocklist``: refuse to start without badkeys's published blocklist
        (``SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST=yes``) rather than certify keys unchecked against it."""
        if require_blocklist and not blocklist_available():
            raise ConfigurationError(
                "SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST=yes but badkeys's blocklist of compromised keys (Debian weak "
                "keys among them) is not installed: run `badkeys --update-bl` as the service's user"
            )

    def prepare(self) -> None:
        """Load what the checks need (our tables, badkeys's, the blocklist) before the first request."""
        weakkeys.prepare()
        blocklist_available()
        warm = rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_SIZES[0]).public_key()
        self.check_key(warm)

    def check_csr(self, reading: CSRReading) -> ParsedCSR:
        """The CSR, when its key is one the CA certifies; :class:`KeyRefused` saying why not.

        Everything but our own blocked-key table, which needs the caller's transaction
        (:meth:`check_not_blocked`).
        """
        parsed = self.loaded(reading)
        if parsed.key_encoding not in _CERTIFIED_ENCODINGS:
            raise KeyRefused(
                f"the CSR's public key is encoded as {parsed.key_encoding.value}: a certificate carries an "
                f"rsaEncryption key or an EC key on a named curve; export the key in that form"
            )
        self.check_key(parsed.public_key)
        return parsed

    def loaded(self, reading: CSRReading) -> ParsedCSR:
        """The CSR, when its key could be loaded at all; -4009 when it could not (ParseCSR's only key rule)."""
        if isinstance(reading, UnloadableKey):
            raise KeyRefused(_UNLOADABLE_MESSAGES[reading.failure])
        return reading

    def check_key(self, public_key: PublicKeyTypes) -> None:
        """Return when the key may be certified (type, size, exponent, curve, weak keys, the
        published blocklist); raise :class:`KeyRefused` saying why not."""
        if isinstance(public_key, rsa.RSAPublicKey):
            _check_rsa(public_key)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            _check_ec(public_key)
        else:
            algorithm, _, _ = key_facts(public_key)
            raise KeyRefused(f"{algorithm} keys are not accepted: {_ACCEPTED}")

    def check_not_blocked(self, spki_sha256: str, is_blocked: BlockedKeyLookup) -> None:
        """-4009 when our own blocked-key table holds the key: blocked for compromise, refused forever."""
        if is_blocked(spki_sha256):
            raise KeyRefused(_BLOCKED_MESSAGE)

    def check_not_held_elsewhere(self, spki_sha256: str, is_held_elsewhere: KeyLookup) -> None:
        """-4009 when another partner's valid certificate holds the key: one key, one subscriber."""
        if is_held_elsewhere(spki_sha256):
            raise KeyRefused(_HELD_ELSEWHERE_MESSAGE)


def _check_rsa(public_key: rsa.RSAPublicKey) -> None:
    numbers = public_key.public_numbers()
    n, e = numbers.n, numbers.e
    bits = n.bit_length()
    if bits not in RSA_SIZES:
        raise KeyRefused(f"RSA key of {bits} bits: {_RSA_SIZES_ACCEPTED}")
    if n % 2 == 0:
        raise KeyRefused("RSA key refused: its modulus is even, so it is not a valid RSA key")
    if e != RSA_EXPONENT:
        shown = str(e) if e.bit_length() <= 64 else f"of {e.bit_length()} bits"
        raise KeyRefused(f"RSA public exponent {shown}: only {RSA_EXPONENT} is accepted")
    weakness = weakkeys.rsa_weakness(n)
    if weakness is not None:
        raise KeyRefused(_WEAKNESS_MESSAGES[weakness])
    checks: list[str] = [*_ARITHMETIC_CHECKS]
    if _sharedprimes_available(bits):
        checks.append("sharedprimes")
    if blocklist_available():
        checks.append("blocklist")
    findings = _run_badkeys(lambda: checkrsa(n, e, checks=checks))
    for check in checks:
        if check in findings:
            if check == "blocklist":
                raise KeyRefused(_blocklist_message(findings[check]))
            raise KeyRefused(_RSA_MESSAGES[check])


def _check_ec(public_key: ec.EllipticCurvePublicKey) -> None:
    _, _, curve = key_facts(public_key)
    if curve is None or curve not in EC_CURVES or not isinstance(public_key.curve, EC_CURVES[curve]):
        raise KeyRefused(f"EC key on curve {curve}: {_EC_CURVES_ACCEPTED}")
    point = public_key.public_numbers()
    if weakkeys.is_small_multiple(curve, point.x, point.y):
        raise KeyRefused(_SMALL_MULTIPLE_MESSAGE)
    if blocklist_available():
        x = point.x
        findings = _run_badkeys(lambda: checkall(x, checks=["blocklist"]))
        if "blocklist" in findings:
            raise KeyRefused(_blocklist_message(findings["blocklist"]))


def _blocklist_message(finding: Any) -> str:
    listed = ""
    if isinstance(finding, dict) and isinstance(finding.get("subtest"), str):
        listed = f" ({finding['subtest']})"
    return (
        f"key refused: it is on a public list of compromised keys{listed} (Debian weak keys, "
        "published private keys), so its private key is known; generate a new key"
    )


def _run_badkeys(call: Callable[[], object]) -> dict[str, Any]:
    """Run a badkeys call; badkeys must never end the process (its ``_errexit`` calls sys.exit)."""
    try:
        result = call()
    except SystemExit as exc:
        # Only reachable if badkeys's data vanished after blocklist_available() loaded it.
        # Refuse to guess: the request fails as an internal error rather than skip a check.
        raise RuntimeError("badkeys tried to exit the process while checking a key") from exc
    if not isinstance(result, dict):
        raise RuntimeError(f"badkeys returned {type(result).__name__}, not a dict of findings")
    return result


@functools.cache
def _sharedprimes_available(bits: int) -> bool:
    """Whether badkeys ships its table of known shared primes for keys of this size."""
    try:
        return files("badkeys.keydata").joinpath(f"primes{bits}.dat").is_file()
    except (ModuleNotFoundError, OSError):
        return False


@functools.cache
def blocklist_available() -> bool:
    """Whether badkeys's downloaded blocklist of compromised keys is on this machine.

    Decided once per process.  When the files are there and well-formed they are loaded into
    badkeys here (it keeps them in memory), so no later check reads the disk, and so badkeys
    never reaches its ``sys.exit`` for a missing file.  When they are not, the blocklist check
    is skipped and a warning says so: Debian weak keys are then not detected.
    """
    directory = str(_cachedir())
    metadata_path = os.path.join(directory, "badkeysdata.json")
    data_path = os.path.join(directory, "blocklist.dat")
    try:
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
        size = os.path.getsize(data_path)
        well_formed = (
            isinstance(metadata, dict)
            and isinstance(metadata.get("blocklists"), list)
            and len(metadata["blocklists"]) > 0
            and size > 0
            and size % 16 == 0
        )
    except (OSError, ValueError):
        well_formed = False
    if not well_formed:
        log.warning(
            "badkeys blocklist data not found or unusable in %s: keys on published compromise lists "
            "(Debian weak keys and others) are not refused; run `badkeys --update-bl` to install it",
            directory,
        )
        return False
    try:
        checkall(1, checks=["blocklist"])  # loads the metadata and maps blocklist.dat, once
    except (SystemExit, OSError, ValueError, KeyError, TypeError):
        log.warning("badkeys blocklist data in %s could not be loaded; the blocklist check is off", directory)
        return False
    log.info("badkeys blocklist data loaded from %s", directory)
    return True

