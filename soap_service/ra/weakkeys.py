"""Public keys whose private key anyone can compute, found by arithmetic on the public key alone.

Pure arithmetic with ``gmpy2``, no policy: :mod:`soap_service.ra.keypolicy` decides what to refuse
and says why (docs/design.md, "Key policy"; docs/security.md).  BR 6.1.1.3 asks a CA to reject
keys that a demonstrated method exposes; these are the methods, each within a fixed cost.  Costs
below are medians on the 2-core reference machine, RSA-2048 / 3072 / 4096; ``bench/key_checks.py``
measures them again.

RSA modulus n (:func:`rsa_weakness`), in the order they run.  The first three are exact: a modulus
with the property is always found, one without it never is.

- **perfect power** n = r^k, k >= 2 (``gmpy2.is_power``, 0.02 ms): p^2, p^3, ...; the k-th root
  factors it.
- **small factor**: every prime factor below :data:`SMALL_FACTOR_BOUND` = 2^20, by one gcd with the
  product of all 82,025 primes below 2^20 (a 1.5-Mbit number, 184 KiB, built once per process in
  about 20 ms): 0.8 / 1.0 / 1.3 ms.  The BR floor is 752; badkeys stops at 65,537 (so a factor
  65,539 passed).
- **prime**: n a BPSW probable prime, whose private exponent is d = e^-1 mod (n - 1).  BPSW has no
  known counterexample; a real RSA modulus fails its first step (a strong test to base 2).  That
  step is one modular exponentiation with an |n|-bit exponent, about four RSA signatures' worth:
  2.7 / 8.5 / 19 ms, and no cheaper test of primality exists.
- **smooth factor**: Pollard's p - 1, stage 1 only, with B1 = :data:`PM1_B1` = 300 (exponent
  lcm(1..300), 432 bits): 0.6 / 1.2 / 2.0 ms.  Finds every prime factor p for which the order of 2
  modulo p divides lcm(1..300), in particular every p whose p - 1 is a product of prime powers
  each at most 300, whatever the size of p.
- **near a small ratio**: Fermat's first step on k*n for every k = 1..:data:`FERMAT_MULTIPLIERS` =
  768 (Lehman's multipliers, Hart's one-line factoring): s = ceil(sqrt(k*n)); when s^2 - k*n is a
  square t^2, gcd(s - t, n) is a factor.  Exact: n = p*q is found when, and only when, some k1, k2
  of the same parity with k1*k2 <= 768 have |sqrt(k1*p) - sqrt(k2*q)| < sqrt(2) (then k*n =
  (k1*p)(k2*q) and s = (k1*p + k2*q)/2).  As a ratio q/p ~ a/b (a, b coprime): found when
  |a*p - b*q| < 2*sqrt(2)*(a*b*n)^(1/4) for a, b odd and a*b <= 768, and when |a*p - b*q| <
  2*(a*b*n)^(1/4) for a or b even and 4*a*b <= 768 (k = 4ab).  For RSA-2048 n^(1/4) is about 2^512:
  q = 3p + r is found for every r up to about 2^514 (the attack review's key had r < 2^400).  One
  step per multiplier, because more steps on one k only widen its window as the square root of
  their number, while each k adds ratios.  0.9 / 1.0 / 1.7 ms (scaled, see below).
- **smooth p + 1**: Williams' p + 1, stage 1 only, B1 = :data:`PP1_B1` = 300 (the same lcm(1..300)
  as p - 1, as the index of the Lucas sequence V with Q = 1, ``gmpy2.lucasv_mod``), from the three
  seeds :data:`PP1_SEEDS`: P = 6/5, 2/7 and 6 (mod n), whose D = P^2 - 4 are -1, -3 and 2 times a
  square.  A seed always finds a prime factor p whose p + 1 is a product of prime powers each at
  most 300, whatever the size of p, when D is not a square modulo p; when D is a square its
  sequence stays in GF(p), where only p - 1 counts.  (-1/p) = -1 iff p = 3 (mod 4), (-3/p) = -1
  iff p = 2 (mod 3), (2/p) = -1 iff p = 3 or 5 (mod 8): the three find every such p except those
  p = 1 (mod 24), one prime in eight.  Why three: for a p not chosen against them, each seed is a
  coin toss that costs one Lucas chain, about 2.5 times the p - 1 step; a fourth would halve what
  is missed (one in sixteen) for another 1.6 ms on RSA-2048.  1.6 / 2.9 / 4.6 ms per seed,
  4.8 / 8 / 15 ms for the three (scaled).

The two last figures were measured on a loaded shared machine (``bench/key_checks.py --cpu``, two
runs), where the p - 1 step took 0.82-0.85 / 1.6-1.8 / 2.5-2.8 ms against 0.6 / 1.2 / 2.0 quiet;
they are scaled by that ratio (about 0.7).  As measured: Fermat 1.3 / 1.0-1.6 / 2.4 ms, p + 1
2.2-2.4 / 4.0-4.2 / 6.3-7.1 ms per seed, the whole of :func:`rsa_weakness` 14.5 / 29 / 57 ms, so
about 10 / 20 / 40 ms quiet, against 4 / 11 / 23 ms before these two checks.

NOT caught, because no per-request budget allows it: a prime factor above 2^20 for which neither
p - 1 nor p + 1 is a product of prime powers at most 300.  That is nearly every prime.  A random
64-bit prime factor of a 2048-bit modulus (the issue's last reproducer) is caught only if p - 1 or
p + 1 happens to be 300-smooth, about two chances in 10^8; finding it takes ECM (some 70 curves with
B1 = 11,000 for a 20-digit factor: tens of seconds of CPU per key, not milliseconds).  Pollard's
rho is not run: in 2 ms it finds factors below about 2^19, all of which the gcd already finds
exactly.  Also not caught: p = 1 (mod 24) with p + 1 smooth; primes near a ratio a/b with a*b above
the multipliers (q ~ 769p) or farther than the window (q = 3p + 2^515); Phi_k(p)-smooth primes for
k >= 3 (the cyclotomic methods); moduli p^2 * q; shared primes beyond badkeys's table.  Primes
close to each other (ratio 1, up to 100 Fermat steps) are also badkeys's ``fermat`` check.  Each
of these edges is a bound of a fixed budget, not a wall: whoever reads this can build a key just
outside it (a prime 307 in p + 1, p = 1 mod 24, a ratio 769/1) that the same methods, given more
time, would factor.  What is refused is every key the textbook form of each method factors within
the budget above; tests/test_weak_keys.py builds a key on each side of each edge.

ECDSA point Q on P-256 or P-384 (:func:`is_small_multiple`): found when Q = k*G for
0 < |k| <= :func:`ec_bound_covered` (1,056,832, above :data:`EC_SMALL_MULTIPLE_BOUND` = 2^20), by
baby-step giant-step: the x-coordinates of j*G for 1 <= j <= 2^13, built once per process per curve
(about 40 ms for P-256, 50 ms for P-384), and 64 giant steps per check (0.2-0.3 ms).  Comparing
x-coordinates covers k and -k at once.  Private keys above the bound are not looked for.  The
point at infinity and points off the curve never get here: cryptography refuses them when it
loads the key.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import gmpy2

SMALL_FACTOR_BOUND = 1 << 20
"""Every prime factor below this is found (the product of all primes below it is kept)."""

PM1_B1 = 300
"""Pollard p - 1 stage 1 bound: the exponent lcm(1..300) has 432 bits (bench/key_checks.py)."""

PP1_B1 = PM1_B1
"""Williams p + 1 stage 1 bound: the same exponent lcm(1..300) as p - 1."""

PP1_SEEDS: tuple[tuple[int, int], ...] = ((6, 5), (2, 7), (6, 1))
"""Williams p + 1 seeds P = a / b (mod n), Q = 1, as (a, b).  D = P^2 - 4 is -1, -3 and 2 times a square.

A seed always finds a prime factor p with B1-smooth p + 1 when D is not a square modulo p:
(-1/p) = -1 iff p = 3 (mod 4), (-3/p) = -1 iff p = 2 (mod 3), (2/p) = -1 iff p = 3 or 5 (mod 8).
So the three together find every such p except those p = 1 (mod 24).  6/5 and 2/7 are Montgomery's.
"""

FERMAT_MULTIPLIERS = 768
"""Fermat's first step is tried on k*n for k = 1..this (Hart's one-line factoring, Lehman's multipliers)."""

EC_SMALL_MULTIPLE_BOUND = 1 << 20
"""Points k*G with 0 < |k| <= this (and up to :func:`ec_bound_covered`) are found."""

_BABY_STEPS = 1 << 13
"""x(j*G) for 1 <= j <= this are kept per curve; each giant step then covers 2 * this + 1 values of k."""


class RSAWeakness(enum.Enum):
    """Why an RSA modulus gives its private key away."""

    PERFECT_POWER = "perfect power"
    SMALL_FACTOR = "small factor"
    PRIME = "prime"
    SMOOTH_FACTOR = "smooth factor"
    NEAR_RATIO = "factors near a small ratio"
    SMOOTH_PLUS_ONE_FACTOR = "factor with smooth p + 1"


def rsa_weakness(n: int) -> RSAWeakness | None:
    """The first weakness of the modulus ``n`` that the checks above find, or None."""
    modulus = gmpy2.mpz(n)
    if gmpy2.is_power(modulus):
        return RSAWeakness.PERFECT_POWER
    # Reducing the 1.5-Mbit product modulo n first is ~30% faster than gmpy2.gcd on it directly.
    if gmpy2.gcd(_small_primes_product() % modulus, modulus) != 1:
        return RSAWeakness.SMALL_FACTOR
    if gmpy2.is_bpsw_prp(modulus):
        return RSAWeakness.PRIME
    if gmpy2.gcd(gmpy2.powmod(2, _pm1_exponent(), modulus) - 1, modulus) != 1:
        return RSAWeakness.SMOOTH_FACTOR
    if _fermat_finds_factor(modulus):
        return RSAWeakness.NEAR_RATIO
    if _williams_finds_factor(modulus):
        return RSAWeakness.SMOOTH_PLUS_ONE_FACTOR
    return None


def _fermat_finds_factor(modulus: object) -> bool:
    """Whether Fermat's first step on k*n, for some k <= FERMAT_MULTIPLIERS, factors n.

    With s = ceil(sqrt(k*n)): when s^2 - k*n is a square t^2, then k*n = (s - t)(s + t) and
    gcd(s - t, n) is a proper factor of n.  ``isqrt_rem`` gives r = isqrt(k*n - 1) and the
    remainder k*n - 1 - r^2, so s = r + 1 and s^2 - k*n = 2r - remainder: no squaring needed.
    """
    n = gmpy2.mpz(modulus)
    multiple_less_one = n - 1  # k*n - 1, for k = 1, 2, ...
    for _ in range(FERMAT_MULTIPLIERS):
        root, remainder = gmpy2.isqrt_rem(multiple_less_one)
        excess = 2 * root - remainder
        if gmpy2.is_square(excess):
            factor = gmpy2.gcd(root + 1 - gmpy2.isqrt(excess), n)
            if 1 < factor < n:
                return True
        multiple_less_one += n
    return False


def _williams_finds_factor(modulus: object) -> bool:
    """Whether Williams' p + 1 stage 1, from one of :data:`PP1_SEEDS`, finds a factor of n.

    V_E(P) is the Lucas sequence V with Q = 1 at E = lcm(1..PP1_B1); for a prime p | n with
    (D/p) = -1 and p + 1 | E, V_E(P) = 2 (mod p).  n must have no factor 5 or 7 (the seeds'
    denominators): :func:`rsa_weakness` runs this after the small-factor gcd.
    """
    n = gmpy2.mpz(modulus)
    exponent = _pp1_exponent()
    for numerator, denominator in PP1_SEEDS:
        seed = numerator * gmpy2.invert(denominator, n) % n
        if gmpy2.gcd(gmpy2.lucasv_mod(seed, 1, exponent, n) - 2, n) != 1:
            return True
    return False


@functools.cache
def _small_primes_product() -> object:
    """The product of all primes below :data:`SMALL_FACTOR_BOUND` (2^20 is not prime)."""
    return gmpy2.primorial(SMALL_FACTOR_BOUND - 1)


def _pm1_exponent() -> object:
    """lcm(1..PM1_B1), the exponent of Pollard's p - 1 stage 1."""
    return _lcm_up_to(PM1_B1)


def _pp1_exponent() -> object:
    """lcm(1..PP1_B1), the index of Williams' p + 1 stage 1 (the same number while the bounds agree)."""
    return _lcm_up_to(PP1_B1)


@functools.cache
def _lcm_up_to(bound: int) -> object:
    """lcm(1..bound): each prime up to the bound to the highest power not above it."""
    exponent = gmpy2.mpz(1)
    prime = 2
    while prime <= bound:
        power = prime
        while power * prime <= bound:
            power *= prime
        exponent *= power
        prime = int(gmpy2.next_prime(prime))
    return exponent


# ------------------------------------------------------------------------------- ECDSA

Point = tuple[int, int]


@dataclass(frozen=True)
class _Curve:
    """A short Weierstrass curve y^2 = x^3 - 3x + b over GF(p), as P-256 and P-384 are."""

    prime: int
    generator: Point


# FIPS 186-4, D.1.2.3 and D.1.2.4 (the same values as SEC 2).
_CURVES: dict[str, _Curve] = {
    "P-256": _Curve(
        prime=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        generator=(
            0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
            0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        ),
    ),
    "P-384": _Curve(
        prime=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
        generator=(
            0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
            0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        ),
    ),
}

EC_CURVES = tuple(_CURVES)
"""The curves :func:`is_small_multiple` knows: "P-256", "P-384"."""


@dataclass(frozen=True)
class _SmallMultiples:
    """Baby steps x(j*G), 1 <= j <= h, and giant steps T_i = i*(2h + 1)*G, 1 <= i <= m."""

    baby_x: frozenset[int]
    giants: tuple[Point, ...]


def is_small_multiple(curve: str, x: int, y: int) -> bool:
    """Whether the point (x, y), on ``curve``, is k*G for some 0 < |k| <= EC_SMALL_MULTIPLE_BOUND.

    The point must be on the curve (cryptography checked it when loading the key).  Q = +-T_i +- j*G
    for some i in 0..m and j in 0..h exactly when x(Q), or x(Q + T_i) or x(Q - T_i) for some i, is
    among the baby steps' x, or x(Q) = x(T_i); that covers every |k| <= m*(2h + 1) + h.
    """
    prime = _CURVES[curve].prime
    table = _small_multiples(curve)
    baby_x = table.baby_x
    if x in baby_x:
        return True
    qx, qy = gmpy2.mpz(x), gmpy2.mpz(y)
    for tx, ty in table.giants:
        if tx == qx:
            return True  # Q = +-T_i
        inverse = gmpy2.invert(tx - qx, prime)
        slope_sum = (ty - qy) * inverse % prime  # Q + T_i
        slope_difference = (-ty - qy) * inverse % prime  # Q - T_i = Q + (tx, -ty)
        if int((slope_sum * slope_sum - qx - tx) % prime) in baby_x:
            return True
        if int((slope_difference * slope_difference - qx - tx) % prime) in baby_x:
            return True
    return False


def ec_bound_covered() -> int:
    """The largest K such that every k*G with 0 < |k| <= K is found (at least EC_SMALL_MULTIPLE_BOUND)."""
    return _giant_step_count() * (2 * _BABY_STEPS + 1) + _BABY_STEPS


def _giant_step_count() -> int:
    span = 2 * _BABY_STEPS + 1
    return -(-(EC_SMALL_MULTIPLE_BOUND - _BABY_STEPS) // span)


@functools.cache
def _small_multiples(curve: str) -> _SmallMultiples:
    """Built once per process and curve: h point additions, then m for the giant steps."""
    spec = _CURVES[curve]
    prime, generator = spec.prime, spec.generator
    baby_x: set[int] = set()
    point: Point | None = generator
    for _ in range(_BABY_STEPS):
        assert point is not None  # j*G is never the point at infinity for j below the order
        baby_x.add(int(point[0]))
        last = point
        point = _add(point, generator, prime)
    # last = h*G; the giant step is (2h + 1)*G = 2*(h*G) + G.
    step = _add(_add(last, last, prime), generator, prime)
    assert step is not None
    giants: list[Point] = []
    giant: Point | None = step
    for _ in range(_giant_step_count()):
        assert giant is not None
        giants.append((gmpy2.mpz(giant[0]), gmpy2.mpz(giant[1])))
        giant = _add(giant, step, prime)
    return _SmallMultiples(frozenset(baby_x), tuple(giants))


def _add(first: Point | None, second: Point | None, prime: int) -> Point | None:
    """Affine point addition on y^2 = x^3 - 3x + b (None is the point at infinity)."""
    if first is None:
        return second
    if second is None:
        return first
    x1, y1 = first
    x2, y2 = second
    if x1 == x2:
        if (y1 + y2) % prime == 0:
            return None
        slope = (3 * x1 * x1 - 3) * gmpy2.invert(2 * y1, prime) % prime
    else:
        slope = (y2 - y1) * gmpy2.invert(x2 - x1, prime) % prime
    x3 = (slope * slope - x1 - x2) % prime
    return x3, (slope * (x1 - x3) - y1) % prime


def prepare() -> None:
    """Build the tables (small primes' product, p - 1 and p + 1 exponents, both curves' steps) before serving."""
    _small_primes_product()
    _pm1_exponent()
    _pp1_exponent()
    for curve in _CURVES:
        _small_multiples(curve)
