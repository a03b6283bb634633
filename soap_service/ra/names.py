"""DNS names: their syntax, what an order may validate and what a request may ask for."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

from soap_service.errors import InvalidField, NameNotValidated
from soap_service.ra.catalogue import ProductSpec
from soap_service.ra.fields import MAX_DNS_NAME_CHARS, MAX_LABEL_CHARS, MAX_REQUEST_NAMES, bounded, bounded_count

_LABEL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")


def normalize(name: str) -> str:
    """Lowercase, trimmed, without a trailing dot. Only an ASCII name is lowercased: Unicode's
    lowercasing maps some other characters onto ASCII letters (KELVIN SIGN to ``k``), which would
    let a name that is no DNS name match a validated one; a non-ASCII name stays as it is, and so
    is never a DNS name nor one of the order's."""
    stripped = name.strip()
    return (stripped.lower() if stripped.isascii() else stripped).rstrip(".")


def is_dns_name(name: str) -> bool:
    """A host name of at least two labels, or a wildcard ``*.`` in front of one.

    Lowercase ASCII letters, digits and inner hyphens, in labels of 1-63 characters, the
    whole at most 253: plain string code over the whole name (a trailing newline is not a
    valid ending), its length checked before it is split.
    """
    if len(name) > MAX_DNS_NAME_CHARS:
        return False
    labels = name.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if len(labels) < 2:
        return False
    if labels[-1].isdigit():
        return False  # an IP address is not a DNS name
    return all(_is_label(label) for label in labels)


def _is_label(label: str) -> bool:
    return (
        1 <= len(label) <= MAX_LABEL_CHARS
        and label[0] != "-"
        and label[-1] != "-"
        and all(ch in _LABEL_CHARS for ch in label)
    )


def order_names(raw_names: Sequence[str], product: ProductSpec) -> tuple[str, ...]:
    """The validated names of a new order, checked against what its product may carry."""
    names: list[str] = []
    for raw in bounded_count(raw_names, MAX_REQUEST_NAMES, "DNSNames"):
        name = normalize(bounded(raw, MAX_DNS_NAME_CHARS + 1, "DNSNames"))  # a final dot may follow
        if not is_dns_name(name):
            raise InvalidField(f"{raw!r} is not a DNS name", field="DNSNames")
        if name.startswith("*.") and not product.wildcard_allowed:
            raise InvalidField(f"product {product.code} does not allow the wildcard {name}", field="DNSNames")
        if name not in names:
            names.append(name)
    if product.validation_level == "CS":
        if names:
            raise InvalidField("a code signing order carries no DNS names", field="DNSNames")
        return ()
    if not names:
        raise InvalidField("an order needs at least one DNS name", field="DNSNames")
    if len(names) > product.max_names:
        raise InvalidField(
            f"product {product.code} carries at most {product.max_names} names, {len(names)} given",
            field="DNSNames",
        )
    return tuple(names)


def requested_names(
    *,
    validated: Sequence[str],
    product: ProductSpec,
    dns_names: Sequence[str] | None,
    csr_names: Iterable[str],
) -> tuple[str, ...]:
    """The names the new certificate carries (docs/design.md, "Reissue rules", rule 6).

    ``DNSNames`` when the request gives them, else the CSR's SAN and CN; each must be
    a name the order validated. When the request names none, all validated names.
    """
    if product.validation_level == "CS":
        if dns_names:
            raise NameNotValidated("a code signing certificate carries no DNS names", field="DNSNames")
        return ()
    field = "DNSNames" if dns_names else "CSR"
    asked = dns_names if dns_names else list(csr_names)
    allowed = set(validated)
    chosen: list[str] = []
    for raw in asked:
        name = normalize(raw)
        if not name:
            continue
        if name.startswith("*.") and not product.wildcard_allowed:
            raise NameNotValidated(
                f"{_shown(name)}: product {product.code} does not allow wildcard names", field=field
            )
        if name not in allowed:
            raise NameNotValidated(f"{_shown(raw)} is not a name validated for this order", field=field)
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen) if chosen else tuple(validated)


_SHOWN_NAME_CHARS = 64


def _shown(name: str) -> str:
    """A requested name as an answer quotes it: a CSR's names have no bound of their own (a
    40 KB one would come back whole), so one longer than a DNS name is cut short."""
    if len(name) <= MAX_DNS_NAME_CHARS + 1:
        return name
    return f"{name[:_SHOWN_NAME_CHARS]}... ({len(name)} characters)"
