"""Keys whose private key anyone can compute are never certified (issue 6, defect 2; docs/design.md,
"Key policy"; BR 6.1.1.3).

Each reproducer of the issue is a CSR built at the DER level and signed by raw arithmetic with the
private exponent anyone can compute (tests/keyfactory.py): its self-signature verifies, so only the
key policy stands between it and a certificate.  So are the two textbook factorings an attack review
added: primes near a small ratio (q about 3p: Fermat on 3n, Lehman / Hart) and a prime p with p + 1
smooth (Williams' p + 1).  What the checks do NOT catch is pinned down too, at each edge: a random
64-bit prime factor (an xfail that must keep failing until ECM is affordable), EC private keys just
above the bound, primes just outside Fermat's window or beyond the last multiplier, p + 1 with a
prime or a power of two above B1, and p = 1 (mod 24), which none of the three p + 1 seeds sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

import keyfactory as kf
from factory import new_order, new_partner
from soap_service.errors import KeyRefused
from soap_service.ra import weakkeys
from soap_service.ra.csr import KeyLoadFailure, UnloadableKey, parse_csr
from soap_service.ra.keypolicy import KeyPolicy
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.ra.weakkeys import RSAWeakness, ec_bound_covered, is_small_multiple, rsa_weakness
from soap_service.storage import certificates as certificate_store
from soap_service.storage.models import Order

REPO = Path(__file__).resolve().parent.parent

ORDERS = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
}
CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}

POLICY = KeyPolicy()
check_key = POLICY.check_key


def refusal_of_csr(pem: str) -> str:
    """The -4009 message for a CSR that reads and verifies but whose key is refused."""
    reading = parse_csr(pem)  # the self-signature verifies: only the key policy refuses it
    with pytest.raises(KeyRefused) as caught:
        POLICY.check_csr(reading)
    assert (caught.value.code, caught.value.field) == (-4009, "CSR")
    return caught.value.message


def assert_key_not_quoted(message: str, *numbers: int) -> None:
    for number in numbers:
        assert str(number)[:24] not in message
        assert format(number, "x")[:24] not in message.lower()


# ------------------------------------------------------------------ the RSA reproducers


def test_a_prime_rsa_2048_modulus_is_refused() -> None:
    key = kf.prime_modulus_rsa_key(2048)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "modulus is a prime number" in message
    assert_key_not_quoted(message, key.n, key.d)


def test_a_modulus_with_the_factor_65539_is_refused() -> None:
    """65,539 is the first prime above badkeys's small-factor bound (65,537)."""
    key = kf.small_prime_factor_rsa_key(65539)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "small prime factor (below 2^20)" in message
    assert_key_not_quoted(message, key.n, key.d)


@pytest.mark.parametrize("power", [3, 2])
def test_a_modulus_that_is_a_prime_power_is_refused(power: int) -> None:
    """n = p^3 (the issue's reproducer: badkeys only knew squares, through Fermat) and n = p^2."""
    key = kf.prime_power_rsa_key(2048, power)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "modulus is a perfect power" in message
    assert_key_not_quoted(message, key.n, key.d)


def test_a_64_bit_factor_with_smooth_p_minus_1_is_refused() -> None:
    """The kind of 64-bit factor the budget catches: p - 1 a product of primes <= B1 (Pollard p - 1)."""
    key = kf.smooth_factor_rsa_key(64, weakkeys.PM1_B1)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "Pollard's p-1" in message
    assert_key_not_quoted(message, key.n, key.d)


@pytest.mark.xfail(
    strict=True,
    reason="a random 64-bit prime factor needs ECM (seconds to minutes per key), far beyond the "
    "milliseconds per CSR the checks may take: documented in soap_service/ra/weakkeys.py; if this "
    "starts passing, update the docs",
)
def test_a_random_64_bit_factor_is_beyond_the_budget() -> None:
    """The issue's reproducer with a random 64-bit prime factor (p - 1 not B1-smooth) is NOT caught.

    (p + 1 is not checked by the builder: it is B1-smooth about once in 10^8.)"""
    refusal_of_csr(kf.raw_rsa_csr_pem(kf.random_factor_rsa_key(64, weakkeys.PM1_B1)))


# ------------------------------------------------------------------ the attack review's follow-up


def test_primes_near_the_ratio_3_are_refused() -> None:
    """The review's key: q = next_prime(3p + r), r < 2^400.  badkeys's Fermat (multiplier 1) misses it."""
    key = kf.near_ratio_rsa_key(3, 1, 400)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "close to a ratio of small numbers" in message
    assert_key_not_quoted(message, key.n, key.d)


def test_a_factor_with_smooth_p_plus_1_is_refused() -> None:
    """The review's key: a 360-bit p with p + 1 = 2 * (distinct odd primes <= 300); p - 1 is not smooth."""
    key = kf.smooth_plus_one_rsa_key(5, factor_bits=360, smoothness=weakkeys.PP1_B1)
    message = refusal_of_csr(kf.raw_rsa_csr_pem(key))
    assert "Williams' p+1" in message
    assert_key_not_quoted(message, key.n, key.d)


# ------------------------------------------------------------------ the ECDSA reproducers


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
@pytest.mark.parametrize("private_value", [1, 2])
def test_ec_private_keys_1_and_2_are_refused(curve: str, private_value: int) -> None:
    key = kf.small_multiple_ec_key(private_value, curve)
    message = refusal_of_csr(kf.csr_pem(kf.make_csr(key)))
    assert "private key is a small number" in message
    point = key.public_key().public_numbers()
    assert_key_not_quoted(message, point.x, point.y)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_small_multiples_are_found_on_both_signs_up_to_the_bound(curve: str) -> None:
    """k*G and -k*G = (order - k)*G, for k around every seam of the baby-step giant-step table."""
    baby = 1 << 13
    span = 2 * baby + 1
    bound = ec_bound_covered()
    assert bound >= weakkeys.EC_SMALL_MULTIPLE_BOUND >= 1 << 20
    values = [1, 2, 3, 1023, baby - 1, baby, baby + 1, span - 1, span, span + 1, 2 * span, 2 * span + baby,
              (1 << 20) - 1, 1 << 20, bound - 1, bound]
    for k in values:
        for scalar in (k, ORDERS[curve] - k):
            point = ec.derive_private_key(scalar, CURVES[curve]).public_key().public_numbers()
            assert is_small_multiple(curve, point.x, point.y), (curve, k, scalar == k)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_multiples_above_the_bound_and_ordinary_keys_are_accepted(curve: str) -> None:
    bound = ec_bound_covered()
    for k in (bound + 1, bound + 2, 1 << 21):
        for scalar in (k, ORDERS[curve] - k):
            point = ec.derive_private_key(scalar, CURVES[curve]).public_key().public_numbers()
            assert not is_small_multiple(curve, point.x, point.y), (curve, k)
    for index in range(50):
        check_key(kf.ec_key(curve, index=100 + index).public_key())


def test_the_curve_constants_are_those_of_cryptography() -> None:
    """The generators hard-coded in weakkeys are 1*G as OpenSSL computes it, and the arithmetic agrees."""
    for curve, spec in weakkeys._CURVES.items():
        one = ec.derive_private_key(1, CURVES[curve]).public_key().public_numbers()
        assert spec.generator == (one.x, one.y)
        three = weakkeys._add(weakkeys._add(spec.generator, spec.generator, spec.prime), spec.generator, spec.prime)
        expected = ec.derive_private_key(3, CURVES[curve]).public_key().public_numbers()
        assert three == (expected.x, expected.y)


def _invalid_points(curve: str) -> dict[str, bytes]:
    size = 32 if curve == "P-256" else 48
    point = kf.ec_key(curve).public_key().public_numbers()
    return {
        "infinity": b"\x00",
        "off the curve": b"\x04" + point.x.to_bytes(size, "big") + (point.y + 1).to_bytes(size, "big"),
        "x out of range": b"\x04" + b"\xff" * size + point.y.to_bytes(size, "big"),
        "truncated": b"\x04" + point.x.to_bytes(size, "big"),
    }


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
@pytest.mark.parametrize("kind", ["infinity", "off the curve", "x out of range", "truncated"])
def test_the_point_at_infinity_and_invalid_points_are_refused_when_read(curve: str, kind: str) -> None:
    """cryptography cannot load them, before any signature is checked: the reader says so and the
    policy refuses them (-4009)."""
    der = kf.raw_ec_csr_der(_invalid_points(curve)[kind], curve)
    reading = parse_csr(kf.der_to_pem(der))
    assert reading == UnloadableKey(KeyLoadFailure.INVALID)
    with pytest.raises(KeyRefused) as caught:
        POLICY.check_csr(reading)
    assert caught.value.code == -4009
    assert "public key is invalid" in caught.value.message


# ------------------------------------------------------------------ the arithmetic, on numbers


def test_every_prime_factor_below_2_to_the_20_is_found_and_the_next_one_is_not() -> None:
    """1,048,573 is the largest prime below 2^20, 1,048,583 the smallest above."""
    cofactor = kf.small_prime_factor_rsa_key(65539).n // 65539
    for small in (3, 751, 65537, 65539, 1048573):
        assert rsa_weakness(small * cofactor) is RSAWeakness.SMALL_FACTOR, small
    assert rsa_weakness(1048583 * cofactor) is not RSAWeakness.SMALL_FACTOR


def test_the_p_minus_1_bound_is_exact() -> None:
    """A factor whose p - 1 is B1-smooth is found; one just outside (a prime factor above B1) is not."""
    inside = kf.smooth_factor_rsa_key(64, weakkeys.PM1_B1)
    assert rsa_weakness(inside.n) is RSAWeakness.SMOOTH_FACTOR
    outside = kf.random_factor_rsa_key(64, weakkeys.PM1_B1)
    assert rsa_weakness(outside.n) is None


# Fermat's first step on k*n = (k1*p)(k2*q) factors n exactly when |sqrt(k1*p) - sqrt(k2*q)| < sqrt(2)
# and k1 = k2 (mod 2); the check tries every k = k1*k2 <= FERMAT_MULTIPLIERS.  Each pair below is
# one ratio q/p ~ k1/k2: an odd ratio (3), an even one (2, through k = 8), 5/3, 1, and the last
# multiplier (767 = the largest odd k <= 768).
FERMAT_EDGES = [(3, 1), (4, 2), (5, 3), (1, 1), (767, 1)]


@pytest.mark.parametrize(("k1", "k2"), FERMAT_EDGES, ids=[f"{k1}p~{k2}q" for k1, k2 in FERMAT_EDGES])
def test_fermat_with_multipliers_finds_exactly_the_window(k1: int, k2: int) -> None:
    """The largest prime q inside the window is found; the smallest one beyond it is not."""
    assert rsa_weakness(kf.fermat_edge_rsa_key(k1, k2, inside=True).n) is RSAWeakness.NEAR_RATIO
    assert rsa_weakness(kf.fermat_edge_rsa_key(k1, k2, inside=False).n) is None


def test_the_multiplier_bound_is_exact() -> None:
    """q inside the window of 769p is not found: 769 > FERMAT_MULTIPLIERS (767p is, above)."""
    assert weakkeys.FERMAT_MULTIPLIERS == 768
    assert rsa_weakness(kf.fermat_edge_rsa_key(769, 1, inside=True).n) is None


def test_the_three_p_plus_1_seeds_miss_exactly_p_1_mod_24() -> None:
    """Seed D = -1, -3, 2 sees p when p = 3 (mod 4), p = 2 (mod 3), p = 3 or 5 (mod 8): every class
    of p modulo 24 but 1.  7, 17 and 13 are each seen by one seed only."""
    for residue in (5, 7, 11, 13, 17, 19, 23):
        key = kf.smooth_plus_one_rsa_key(residue)
        assert rsa_weakness(key.n) is RSAWeakness.SMOOTH_PLUS_ONE_FACTOR, residue
    assert rsa_weakness(kf.smooth_plus_one_rsa_key(1).n) is None


@pytest.mark.parametrize(
    ("seed", "sees"), [((6, 5), 7), ((2, 7), 17), ((6, 1), 13)], ids=["D=-1", "D=-3", "D=2"]
)
def test_each_p_plus_1_seed_sees_the_primes_whose_d_is_not_a_square(
    monkeypatch: pytest.MonkeyPatch, seed: tuple[int, int], sees: int
) -> None:
    """Alone, each seed finds the class its Jacobi symbol gives and not the two others."""
    assert seed in weakkeys.PP1_SEEDS
    monkeypatch.setattr(weakkeys, "PP1_SEEDS", (seed,))
    for residue in (7, 17, 13):
        found = rsa_weakness(kf.smooth_plus_one_rsa_key(residue).n) is RSAWeakness.SMOOTH_PLUS_ONE_FACTOR
        assert found == (residue == sees), (seed, residue)


@pytest.mark.parametrize(
    ("inside", "outside"),
    [(293, 307), (1 << 5, 1 << 6)],
    ids=["largest prime 293 / smallest above 307", "2^8 / 2^9 dividing p + 1"],
)
def test_the_p_plus_1_bound_is_exact(inside: int, outside: int) -> None:
    """p + 1 made of prime powers <= B1 is found; with one prime (power) above B1 it is not.

    p = 7 (mod 24) (only the seed D = -1 sees it, and 8 | p + 1); the outside key is drawn so that no
    seed finds p by the luck of a small order either.
    """
    seeds = weakkeys.PP1_SEEDS
    assert weakkeys.PP1_B1 == 300
    found = kf.smooth_plus_one_rsa_key(7, extra_factor=inside)
    assert rsa_weakness(found.n) is RSAWeakness.SMOOTH_PLUS_ONE_FACTOR
    missed = kf.smooth_plus_one_rsa_key(7, extra_factor=outside, missed_by=seeds)
    assert rsa_weakness(missed.n) is None


def test_ordinary_rsa_moduli_have_no_weakness() -> None:
    for index in range(20):
        assert rsa_weakness(kf.rsa_key(2048, 65537, 200 + index).public_key().public_numbers().n) is None
    assert rsa_weakness(kf.rsa_key(3072).public_key().public_numbers().n) is None


@pytest.mark.slow
def test_rsa_4096_moduli_have_no_weakness() -> None:
    assert rsa_weakness(kf.rsa_key(4096).public_key().public_numbers().n) is None


def test_the_worst_modulus_is_judged_without_a_blow_up() -> None:
    """A prime modulus runs the full BPSW test (the most expensive path): milliseconds, bounded at 2 s."""
    n = kf.prime_modulus_rsa_key(2048).n
    start = time.perf_counter()
    assert rsa_weakness(n) is RSAWeakness.PRIME
    assert time.perf_counter() - start < 2.0


# ------------------------------------------------------------------ keys people really send


def _openssl_csr(tmp_path: Path, newkey: list[str]) -> str:
    completed = subprocess.run(
        ["openssl", "req", "-new", *newkey, "-nodes", "-keyout", str(tmp_path / "key.pem"),
         "-subj", "/CN=example.com", "-addext", "subjectAltName=DNS:example.com"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return completed.stdout


@pytest.mark.parametrize(
    "newkey",
    [
        ["-newkey", "rsa:2048"],
        ["-newkey", "rsa:3072"],
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    ],
    ids=["rsa2048", "rsa3072", "p256", "p384"],
)
def test_csrs_made_by_the_openssl_command_are_accepted(tmp_path: Path, newkey: list[str]) -> None:
    POLICY.check_csr(parse_csr(_openssl_csr(tmp_path, newkey)))


@pytest.mark.slow
def test_an_openssl_rsa_4096_csr_is_accepted(tmp_path: Path) -> None:
    POLICY.check_csr(parse_csr(_openssl_csr(tmp_path, ["-newkey", "rsa:4096"])))


# ------------------------------------------------------------------ without prepare()

_LAZY_PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import keyfactory as kf
    from soap_service.errors import KeyRefused
    from soap_service.ra import weakkeys
    from soap_service.ra.keypolicy import KeyPolicy

    check_key = KeyPolicy().check_key
    assert weakkeys._small_multiples.cache_info().currsize == 0
    refused = []
    for key in (kf.small_multiple_ec_key(1, "P-384").public_key(), kf.prime_power_rsa_key(2048, 3).public_key()):
        try:
            check_key(key)
        except KeyRefused as refusal:
            refused.append(refusal.code)
    print(refused)
    """
)


def test_the_tables_are_built_on_first_use_when_prepare_was_not_called() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", _LAZY_PROBE, str(REPO / "tests")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[-4009, -4009]"


# ------------------------------------------------------------------ through the RA's reissue

WEAK_CSRS = {
    "prime modulus": lambda: kf.raw_rsa_csr_pem(kf.prime_modulus_rsa_key(2048), ("example.com",)),
    "factor 65539": lambda: kf.raw_rsa_csr_pem(kf.small_prime_factor_rsa_key(65539), ("example.com",)),
    "n = p^3": lambda: kf.raw_rsa_csr_pem(kf.prime_power_rsa_key(2048, 3), ("example.com",)),
    "smooth 64-bit factor": lambda: kf.raw_rsa_csr_pem(kf.smooth_factor_rsa_key(64, weakkeys.PM1_B1)),
    "q about 3p": lambda: kf.raw_rsa_csr_pem(kf.near_ratio_rsa_key(3, 1, 400), ("example.com",)),
    "p+1 smooth factor": lambda: kf.raw_rsa_csr_pem(kf.smooth_plus_one_rsa_key(5), ("example.com",)),
    "P-256 private key 1": lambda: kf.csr_pem(kf.make_csr(kf.small_multiple_ec_key(1, "P-256"))),
    "P-384 private key 2": lambda: kf.csr_pem(kf.make_csr(kf.small_multiple_ec_key(2, "P-384"))),
    "P-256 point at infinity": lambda: kf.der_to_pem(kf.raw_ec_csr_der(b"\x00", "P-256")),
}


@pytest.mark.parametrize("kind", list(WEAK_CSRS))
def test_the_reissue_path_refuses_computable_keys_with_4009(ra, kind: str) -> None:
    partner = new_partner(ra)
    order = new_order(ra, partner, product="QuickSSLPremium", names=("example.com", "www.example.com"))
    poid = order.order.partner_order_id
    before = order_snapshot(ra, poid)
    with pytest.raises(KeyRefused) as caught:
        Reissuer(ra).reissue(partner.credentials(), ReissueRequest(poid, WEAK_CSRS[kind]()), channel="api")
    assert caught.value.code == -4009
    assert order_snapshot(ra, poid) == before


def order_snapshot(ra, partner_order_id: str) -> tuple[object, ...]:
    """The order's current certificate, version, status and number of certificates."""
    with ra.sessions() as session:
        order = session.scalar(select(Order).where(Order.partner_order_id == partner_order_id))
        assert order is not None
        count = len(certificate_store.order_history(session, order.id))
        return (order.current_certificate_id, order.version, order.status, count)
