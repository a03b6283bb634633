"""Cost of the key checks (soap_service/ra/weakkeys.py, keypolicy.py): per CSR and at a worker's start.

    .venv/bin/python bench/key_checks.py [--samples 300] [--quick] [--cpu]

Per CSR, for RSA 2048/3072/4096 and ECDSA P-256/P-384: each of our checks (for Williams' p + 1,
one seed and all of them), their sum (``rsa_weakness`` / ``is_small_multiple``), the badkeys checks
keypolicy runs, and the whole ``check_key``; mean, median and p95 in milliseconds over
``--samples`` runs cycling over freshly generated keys.  At a worker's start: building each table
that ``weakkeys.prepare()`` builds (mean of a few builds).  Also refusal paths: a prime modulus (a
full BPSW test), n = p^3, q about 3p, and a p + 1 smooth factor found only by the last seed (every
check runs before it).  ``--quick`` uses fewer keys and samples and skips RSA-4096 (a smoke run).
``--cpu`` times with the process's CPU clock instead of the wall clock: on a shared machine the
wall clock also counts the time other processes held the cores, the CPU clock only the work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gmpy2
from badkeys import checkrsa
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import keyfactory  # tests/keyfactory.py: the weak keys of the test suite
from soap_service.ra import keypolicy, weakkeys

POLICY = keypolicy.KeyPolicy()

CLOCK: Callable[[], float] = time.perf_counter
"""The clock :func:`measure` reads: the wall clock, or the process's CPU clock with ``--cpu``."""


def measure(call: Callable[[int], object], samples: int) -> tuple[float, float, float]:
    """(mean, median, p95) in ms of ``call(i)`` for i in range(samples)."""
    seconds = []
    for index in range(samples):
        start = CLOCK()
        call(index)
        seconds.append(CLOCK() - start)
    ms = sorted(s * 1000 for s in seconds)
    return statistics.mean(ms), statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)]


def row(label: str, figures: tuple[float, float, float]) -> None:
    mean, median, p95 = figures
    print(f"  {label:<40} mean {mean:7.3f} ms   median {median:7.3f} ms   p95 {p95:7.3f} ms")


def rsa_section(bits: int, key_count: int, samples: int) -> None:
    started = time.perf_counter()
    moduli = [
        gmpy2.mpz(rsa.generate_private_key(65537, bits).public_key().public_numbers().n) for _ in range(key_count)
    ]
    keys = [rsa.RSAPublicNumbers(65537, int(n)).public_key() for n in moduli]
    print(f"RSA-{bits} ({key_count} keys generated in {time.perf_counter() - started:.1f} s, {samples} samples)")
    product = weakkeys._small_primes_product()
    exponent = weakkeys._pm1_exponent()
    pp1_exponent = weakkeys._pp1_exponent()

    def pick(index: int) -> object:
        return moduli[index % key_count]

    row("perfect power (gmpy2.is_power)", measure(lambda i: gmpy2.is_power(pick(i)), samples))
    row("factor < 2^20 (gcd with primorial)", measure(lambda i: gmpy2.gcd(product % pick(i), pick(i)), samples))
    row("prime (BPSW)", measure(lambda i: gmpy2.is_bpsw_prp(pick(i)), samples))
    row(
        f"Pollard p-1 stage 1, B1={weakkeys.PM1_B1}",
        measure(lambda i: gmpy2.gcd(gmpy2.powmod(2, exponent, pick(i)) - 1, pick(i)), samples),
    )
    row(
        f"Fermat on k*n, k <= {weakkeys.FERMAT_MULTIPLIERS}",
        measure(lambda i: weakkeys._fermat_finds_factor(pick(i)), samples),
    )
    row(
        f"Williams p+1, B1={weakkeys.PP1_B1}, one seed",
        measure(lambda i: gmpy2.gcd(gmpy2.lucasv_mod(3, 1, pp1_exponent, pick(i)) - 2, pick(i)), samples),
    )
    row(
        f"Williams p+1, {len(weakkeys.PP1_SEEDS)} seeds",
        measure(lambda i: weakkeys._williams_finds_factor(pick(i)), samples),
    )
    row("ours in total (rsa_weakness)", measure(lambda i: weakkeys.rsa_weakness(int(pick(i))), samples))
    checks = [*keypolicy._ARITHMETIC_CHECKS]
    if keypolicy._sharedprimes_available(bits):
        checks.append("sharedprimes")
    print(f"  badkeys checks run: {', '.join(checks)}")
    row("badkeys", measure(lambda i: checkrsa(int(pick(i)), 65537, checks=checks), samples))
    row("check_key (all of it)", measure(lambda i: POLICY.check_key(keys[i % key_count]), samples))


def ec_section(curve_name: str, curve: ec.EllipticCurve, samples: int) -> None:
    keys = [ec.generate_private_key(curve).public_key() for _ in range(samples)]
    points = [key.public_numbers() for key in keys]
    print(f"{curve_name} ({samples} keys)")
    row(
        f"k*G, |k| <= {weakkeys.ec_bound_covered()} (BSGS)",
        measure(lambda i: weakkeys.is_small_multiple(curve_name, points[i].x, points[i].y), samples),
    )
    row("check_key (all of it)", measure(lambda i: POLICY.check_key(keys[i]), samples))


def start_section(builds: int) -> None:
    print(f"worker start: tables built by weakkeys.prepare() (mean of {builds} builds)")
    tables: Sequence[tuple[str, Callable[[], object], Callable[[], None]]] = [
        (
            "product of the primes < 2^20",
            weakkeys._small_primes_product,
            weakkeys._small_primes_product.cache_clear,
        ),
        ("p-1 and p+1 exponent lcm(1..B1)", weakkeys._pm1_exponent, weakkeys._lcm_up_to.cache_clear),
        *(
            (f"{curve} baby and giant steps", lambda c=curve: weakkeys._small_multiples(c),
             weakkeys._small_multiples.cache_clear)
            for curve in weakkeys.EC_CURVES
        ),
    ]
    total = 0.0
    for label, build, clear in tables:
        seconds = []
        for _ in range(builds):
            clear()
            start = CLOCK()
            build()
            seconds.append(CLOCK() - start)
        mean = statistics.mean(seconds) * 1000
        total += mean
        print(f"  {label:<40} {mean:7.1f} ms")
    print(f"  {'total':<40} {total:7.1f} ms")
    size = int(gmpy2.mpz(weakkeys._small_primes_product()).bit_length())
    print(f"  primorial: {size} bits ({size / 8 / 1024:.0f} KiB); p-1 exponent: "
          f"{int(gmpy2.mpz(weakkeys._pm1_exponent()).bit_length())} bits; EC: "
          f"{1 << 13} baby steps and {weakkeys._giant_step_count()} giant steps per curve")
    weakkeys.prepare()


def refusal_section(samples: int) -> None:
    print("refusal paths (RSA-2048)")
    prime = keyfactory.prime_modulus_rsa_key(2048).n
    row("prime modulus (full BPSW)", measure(lambda _: weakkeys.rsa_weakness(prime), samples))
    cube = keyfactory.prime_power_rsa_key(2048, 3).n
    row("n = p^3", measure(lambda _: weakkeys.rsa_weakness(cube), samples))
    near = keyfactory.near_ratio_rsa_key(3, 1).n
    row("q about 3p (Fermat on 3n)", measure(lambda _: weakkeys.rsa_weakness(near), samples))
    plus_one = keyfactory.smooth_plus_one_rsa_key(13).n
    row("p+1 smooth, found by the last seed", measure(lambda _: weakkeys.rsa_weakness(plus_one), samples))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="time with the process's CPU clock")
    args = parser.parse_args()
    samples = 30 if args.quick else args.samples
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    print(f"gmpy2 {gmpy2.version()} with {gmpy2.mp_version()}; badkeys blocklist "
          f"{'loaded' if keypolicy.blocklist_available() else 'absent'}; "
          f"{'CPU' if args.cpu else 'wall'} clock")
    start_section(2 if args.quick else 5)
    sizes = {2048: 4, 3072: 2} if args.quick else {2048: 40, 3072: 15, 4096: 6}
    for bits, key_count in sizes.items():
        rsa_section(bits, key_count, samples)
    ec_section("P-256", ec.SECP256R1(), samples)
    ec_section("P-384", ec.SECP384R1(), samples)
    refusal_section(min(samples, 50))
    return 0


if __name__ == "__main__":
    sys.exit(main())
