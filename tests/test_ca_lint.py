"""The pre-issuance linter: pkilint's findings, the one public-URL exception, and its cost."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca_support import (
    LEAF_KINDS,
    LOOPBACK_URL,
    PUBLIC_URL,
    hierarchy,
    issuer,
    issuing_ca,
    leaf_request,
    linter,
)
from soap_service.ca import lint
from soap_service.ca.algorithms import generate_key
from soap_service.ca.leaf import leaf_builder
from soap_service.ca.lint import INTERNAL_URL_FINDING_CODES, PreIssuanceLinter
from soap_service.vocabulary import ValidationLevel

THROW_AWAY = generate_key("ecdsa-p256")


def _unsigned_leaf(urls_from: str, dns_names: tuple[str, ...] = ("www.example.com",)) -> x509.Certificate:
    """A DV leaf whose AIA, OCSP and CRL URLs are built from ``urls_from``, signed by a throw-away key."""
    ca = issuing_ca(hierarchy("ecdsa-p256"), "RAPIDSSL-TLS")
    request = leaf_request(ValidationLevel.DV, dns_names)
    return leaf_builder(request, ca.certificate, ca.name, urls_from).sign(THROW_AWAY, hashes.SHA256())


def test_the_filtered_codes_are_pkilints_internal_domain_name() -> None:
    assert frozenset({"cabf.internal_domain_name"}) == INTERNAL_URL_FINDING_CODES


def test_internal_urls_on_the_public_url_host_are_ignored() -> None:
    assert linter(LOOPBACK_URL).findings(_unsigned_leaf(LOOPBACK_URL), ValidationLevel.DV) == []


def test_internal_urls_on_another_host_are_not_ignored() -> None:
    findings = linter(LOOPBACK_URL).findings(_unsigned_leaf("http://10.1.2.3:8080"), ValidationLevel.DV)
    assert findings == ['ERROR cabf.internal_domain_name: Internal domain name: "10.1.2.3"'] * 3


def test_a_public_linter_does_not_ignore_loopback_urls() -> None:
    findings = linter(PUBLIC_URL).findings(_unsigned_leaf(LOOPBACK_URL), ValidationLevel.DV)
    assert len(findings) == 3 and all("127.0.0.1" in f for f in findings)


def test_the_public_url_host_in_a_dns_name_is_not_ignored() -> None:
    # the exception covers the URLs only, even when a SAN names the same internal host
    loopback_linter = PreIssuanceLinter("http://intranet.local:8080")
    findings = loopback_linter.findings(
        _unsigned_leaf("http://intranet.local:8080", ("intranet.local",)), ValidationLevel.DV
    )
    assert findings == ['ERROR cabf.internal_domain_name: Internal domain name: "intranet.local"']


def test_findings_are_severity_code_message_strings() -> None:
    leaf = _unsigned_leaf(PUBLIC_URL, ("intranet.local",))
    assert linter().findings(leaf, ValidationLevel.DV) == [
        'ERROR cabf.internal_domain_name: Internal domain name: "intranet.local"'
    ]


def test_a_leaf_linted_as_the_wrong_level_has_findings() -> None:
    dv_leaf = _unsigned_leaf(PUBLIC_URL)
    assert linter().findings(dv_leaf, ValidationLevel.DV) == []
    assert any("missing_reserved_policy_oid" in f for f in linter().findings(dv_leaf, ValidationLevel.OV))


def test_ca_findings_uses_the_type_of_each_kind() -> None:
    materials = hierarchy("ecdsa-p256")
    assert linter().ca_findings(materials["THAWTE-CS"].certificate, "codesigning") == []
    as_tls = linter().ca_findings(materials["THAWTE-CS"].certificate, "tls")
    assert any("serverauth" in f for f in as_tls)
    as_root = linter().ca_findings(materials["GEOTRUST-TLS"].certificate, "root")
    assert as_root


def test_ca_findings_report_warnings() -> None:
    # a TLS issuing CA linted as a root draws only WARNINGs and worse; WARNINGs are kept
    as_root = linter().ca_findings(hierarchy("ecdsa-p256")["GEOTRUST-TLS"].certificate, "root")
    assert any(f.startswith("WARNING ") for f in as_root)


def test_linting_from_many_threads_gives_the_same_answer() -> None:
    fresh = PreIssuanceLinter(PUBLIC_URL)
    bad = _unsigned_leaf(PUBLIC_URL, ("intranet.local",))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: fresh.findings(bad, ValidationLevel.DV), range(16)))
    assert all(answer == answers[0] for answer in answers) and answers[0]


def test_lint_cost_per_issuance_once_validators_are_built() -> None:
    """Prints the mean cost of the lint alone and of a whole issuance (run with -s to see it)."""
    materials = hierarchy("ecdsa-p256")
    warm = issuer()
    cases = [(issuing_ca(materials, ca), leaf_request(level, names)) for ca, level, names in LEAF_KINDS.values()]
    for ca, request in cases:
        warm.issue(ca, request)  # builds every validator and the throw-away keys
    rounds = 50
    lint_seconds = issue_seconds = 0.0
    for index in range(rounds):
        ca, request = cases[index % len(cases)]
        leaf = leaf_builder(request, ca.certificate, ca.name, PUBLIC_URL).sign(THROW_AWAY, hashes.SHA256())
        started = time.perf_counter()
        assert linter().findings(leaf, request.level) == []
        lint_seconds += time.perf_counter() - started
        started = time.perf_counter()
        warm.issue(ca, request)
        issue_seconds += time.perf_counter() - started
    lint_ms, issue_ms = 1000 * lint_seconds / rounds, 1000 * issue_seconds / rounds
    print(f"\npkilint per certificate: {lint_ms:.1f} ms; whole issuance (ECDSA P-256 CA): {issue_ms:.1f} ms")
    # rebuilding the validators costs ~0.4 s; a lint must be far below that
    assert lint_ms < 150


@pytest.mark.parametrize("kind", ["dv", "ov", "ev"])
def test_the_linter_agrees_with_a_clean_issued_leaf(kind: str) -> None:
    ca_name, level, names = LEAF_KINDS[kind]
    leaf = issuer().issue(issuing_ca(hierarchy("rsa-2048"), ca_name), leaf_request(level, names))
    assert linter().findings(leaf, level) == []


def _count_validator_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every validator pkilint is asked to build from now on (each costs 0.2-0.4 s)."""
    built: list[str] = []
    serverauth_profile, pkix_profile = lint._serverauth_profile, lint._pkix_profile

    def counted_serverauth(certificate_type: Any) -> Any:
        built.append(str(certificate_type))
        return serverauth_profile(certificate_type)

    def counted_pkix() -> Any:
        built.append("PKIX")
        return pkix_profile()

    monkeypatch.setattr(lint, "_serverauth_profile", counted_serverauth)
    monkeypatch.setattr(lint, "_pkix_profile", counted_pkix)
    return built


def _lint_every_kind(linter: PreIssuanceLinter) -> None:
    leaf = _unsigned_leaf(PUBLIC_URL)
    root = hierarchy("ecdsa-p256")["ROOT"].certificate
    for level in ValidationLevel:
        linter.findings(leaf, level)
    for kind in ("root", "tls", "codesigning"):
        linter.ca_findings(root, kind)  # type: ignore[arg-type]


def test_prepare_builds_every_validator_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() builds the seven validators (four leaf types, three CA types); linting
    afterwards builds none, so no request pays for one."""
    built = _count_validator_builds(monkeypatch)
    prepared = PreIssuanceLinter(PUBLIC_URL)
    prepared.prepare()
    assert len(built) == 7 and len(set(built)) == 7
    _lint_every_kind(prepared)
    assert len(built) == 7


def test_without_prepare_each_validator_is_built_on_first_use_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _count_validator_builds(monkeypatch)
    unprepared = PreIssuanceLinter(PUBLIC_URL)
    _lint_every_kind(unprepared)
    _lint_every_kind(unprepared)
    assert len(built) == 7 and len(set(built)) == 7


def test_every_name_validator_shares_one_parsed_public_suffix_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """pkilint would parse the Public Suffix List once per name validator (30 of them, 50 ms each,
    at every worker start); prepare() parses it once (soap_service.ca.lint.share_public_suffix_lists)."""
    import publicsuffixlist

    parsed: list[object] = []
    real_init = publicsuffixlist.PublicSuffixList.__init__

    def counting_init(self: object, *args: Any, **kwargs: Any) -> None:
        parsed.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(publicsuffixlist.PublicSuffixList, "__init__", counting_init)
    already = len(parsed)
    linter = PreIssuanceLinter(PUBLIC_URL)
    linter.prepare()
    # pkilint's name validators hold it as _psl: all of them the same one, parsed at most once here
    holders = _objects_with_psl(linter)
    assert len(holders) >= 10
    assert len({id(holder._psl) for holder in holders}) == 1
    assert len(parsed) - already <= 1
    _lint_every_kind(linter)  # and the linter's answers are those of the other tests


def _objects_with_psl(root: object) -> list[Any]:
    """Every object reachable from ``root`` through attributes, lists, tuples and dicts that has ``_psl``."""
    found, seen, pending = [], set(), [root]
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, type)) or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        else:
            try:
                attributes = vars(item)
            except TypeError:  # no __dict__
                continue
            if "_psl" in attributes:
                found.append(item)
            else:
                pending.extend(attributes.values())
    return found
