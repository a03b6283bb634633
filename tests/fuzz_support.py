"""Hypothesis settings of the fuzz tests (tests/test_fuzz_*.py) and byte mutations they share.

Two profiles, chosen by ``HYPOTHESIS_PROFILE``:

- ``ci`` (the default): derandomized (the same examples on every run, so a CI failure
  reproduces), no example database, no deadline (a loaded CI machine is no finding), and each
  test's own bounded number of examples (:func:`fuzz_settings`): the whole fuzz set in under a
  minute on two cores.
- ``long``: random, :data:`LONG_EXAMPLES` examples per test, for a run of an hour or so
  (README.md, "Fuzzing"); a failure prints the blob that reproduces it (``@reproduce_failure``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
LONG_EXAMPLES = 20_000
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, print_blob=False, suppress_health_check=_SLOW_IS_FINE
)
settings.register_profile(
    "long", deadline=None, max_examples=LONG_EXAMPLES, print_blob=True, suppress_health_check=_SLOW_IS_FINE
)


def fuzz_settings(ci_examples: int) -> settings:
    """The settings of one fuzz test: ``ci_examples`` examples in the ``ci`` profile, the profile's
    own count in any other."""
    profile = settings.get_profile(PROFILE)
    if PROFILE == "ci":
        return settings(profile, max_examples=ci_examples)
    return settings(profile)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], *, max_mutations: int = 4) -> bytes:
    """One of ``seeds`` with 1 to ``max_mutations`` edits: a bit flipped, a byte replaced,
    inserted or deleted, a range cut out or repeated, the end cut off, or (in DER) a length
    octet rewritten: short, long form, indefinite, too large."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_mutations))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete", "cut", "repeat", "truncate", "length"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at]
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        elif kind == "truncate":
            del data[at:]
        else:  # the length octet after a tag byte; a TLV's length is where DER readers go wrong
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x88, 0xFF]))
            if data[at] in (0x81, 0x82, 0x83, 0x84, 0x88):
                data[at + 1 : at + 1] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)
