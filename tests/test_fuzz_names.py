"""Fuzzing the names rule (ra/names.py, tracker issue 10): random and mutated DNS names and
name lists through ``is_dns_name``, ``order_names`` (the names an order validates) and
``requested_names`` (the names a reissued certificate carries, rule 6 of
docs/design.md, "Reissue rules"). Only the documented refusals come out (-2019 ``InvalidField`` on DNSNames,
-4010 ``NameNotValidated`` on DNSNames or CSR); an accepted name is a syntactically valid
DNS name, and a requested one is one of the order's validated names. Profiles:
tests/fuzz_support.py.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz_support import fuzz_settings
from soap_service.errors import InvalidField, NameNotValidated
from soap_service.ra.catalogue import PRODUCTS, ProductSpec
from soap_service.ra.fields import MAX_DNS_NAME_CHARS, MAX_LABEL_CHARS
from soap_service.ra.names import is_dns_name, normalize, order_names, requested_names

TRICKY = "A_* \t\n\r\x00é\u212a\u0131\u0130\uff0e\u3002\u200b/:@%"
"""Characters that are not in a DNS name but look like, or lower-case into, ones that are:
KELVIN SIGN lower-cases to "k", dotless i, FULLWIDTH and IDEOGRAPHIC FULL STOP, a zero-width space."""
LABEL_CHARS = string.ascii_lowercase[:6] + string.digits[:3] + "-"

labels = st.text(alphabet=LABEL_CHARS + TRICKY, min_size=0, max_size=70)
names = st.one_of(
    st.lists(labels, min_size=1, max_size=5).map(".".join),
    st.lists(labels, min_size=1, max_size=4).map(lambda parts: "*." + ".".join(parts)),
    st.text(max_size=300),
    st.builds(lambda label, count: ".".join([label] * count), st.text(LABEL_CHARS, min_size=1, max_size=64),
              st.integers(1, 130)),
)
products = st.sampled_from(PRODUCTS)


def assert_valid_name(name: str) -> None:
    """An oracle written apart from ``is_dns_name``: what a DNS name of ours is."""
    assert name == name.strip().lower() and not name.endswith(".")
    assert len(name) <= MAX_DNS_NAME_CHARS
    parts = name.split(".")
    if parts[0] == "*":
        parts = parts[1:]
    assert len(parts) >= 2 and not parts[-1].isdigit()
    for label in parts:
        assert 1 <= len(label) <= MAX_LABEL_CHARS
        assert set(label) <= set(string.ascii_lowercase + string.digits + "-")
        assert not label.startswith("-") and not label.endswith("-")


@fuzz_settings(300)
@given(names)
@example("\u212aey.example.com")
@example("example.com\n")
@example("a." * 127 + "com")
@example("*.*.example.com")
@example("1.2.3.4")
def test_is_dns_name_agrees_with_the_oracle(name: str) -> None:
    if is_dns_name(name):
        assert_valid_name(name)


def _mutations(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([
        name.upper(), name + ".", " " + name + " ", name + "\n", "*." + name, name.replace("e", "\u212a"),
        name.replace(".", "\uff0e"), name.replace("i", "\u0130"), name[:-1], name + "-", "x" + name,
        name.replace(".", ".."), name + "." + name,
    ])


@fuzz_settings(300)
@given(products, st.lists(names, max_size=30))
def test_order_names_refuse_as_documented_and_keep_only_dns_names(product: ProductSpec, raw: list[str]) -> None:
    try:
        validated = order_names(raw, product)
    except InvalidField as refusal:
        assert refusal.code == -2019 and refusal.field == "DNSNames"
        return
    assert len(set(validated)) == len(validated) <= product.max_names
    for name in validated:
        assert_valid_name(name)
        assert name in {normalize(r) for r in raw}
        assert product.wildcard_allowed or not name.startswith("*.")


ORDER_NAMES = ("example.com", "www.example.com", "*.example.org", "kexample.net", "i.example.io")


@fuzz_settings(400)
@given(products, st.data())
def test_requested_names_are_validated_names(product: ProductSpec, data: st.DataObject) -> None:
    """Whatever the request's DNSNames or the CSR's names (random, or the order's own mutated:
    upper case, final dot, look-alike characters), the names chosen are among the validated."""
    try:
        validated = order_names(list(data.draw(st.lists(st.sampled_from(ORDER_NAMES), min_size=1))), product)
    except InvalidField:
        validated = ()
    asked = st.one_of(names, st.sampled_from(ORDER_NAMES).flatmap(_mutations), st.sampled_from(ORDER_NAMES))
    dns_names = data.draw(st.none() | st.lists(asked, max_size=8))
    csr_names = data.draw(st.lists(asked, max_size=8))
    try:
        chosen = requested_names(validated=validated, product=product, dns_names=dns_names, csr_names=csr_names)
    except NameNotValidated as refusal:
        assert refusal.code == -4010 and refusal.field in ("DNSNames", "CSR")
        assert len(refusal.message) < 400  # a long name is cut short in the message
        return
    assert set(chosen) <= set(validated)
    assert len(set(chosen)) == len(chosen)
    asked_names = dns_names if dns_names else csr_names
    taken = [raw for raw in asked_names if normalize(raw) in chosen]
    assert all(raw.isascii() for raw in taken), "a non-ASCII name was taken as a validated one"
    for name in chosen:
        assert_valid_name(name)
        assert product.wildcard_allowed or not name.startswith("*.")


@pytest.mark.parametrize("look_alike", ["\u212aexample.net", "\u212aEXAMPLE.NET", "\u0130.example.io"])
def test_a_name_that_lowercases_into_a_validated_one_is_not_it(look_alike: str) -> None:
    """KELVIN SIGN lower-cases to "k": without the ASCII rule of names.normalize, the CSR's
    "\u212aexample.net" was taken as the validated "kexample.net"."""
    product = next(p for p in PRODUCTS if p.validation_level != "CS")
    with pytest.raises(NameNotValidated) as refused:
        requested_names(validated=("kexample.net", "i.example.io"), product=product, dns_names=None,
                        csr_names=[look_alike])
    assert refused.value.code == -4010
