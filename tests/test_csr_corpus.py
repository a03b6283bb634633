"""A real-world CSR corpus through the SOAP API (tracker issue 10): every CSR of
tests/fixtures/csr (openssl, certtool, keytool) and of tests/csr_seeds.py, and deterministic
mutations of each (cut short, a bit flipped, a length octet changed, trailing bytes, another
PEM label, bare base64, CRLF line ends, words around the block, two blocks, no END line), are
sent as ParseCSR and as Reissue to the Order API's WSGI application. Every outcome is a
success or a documented code (docs/design.md, "Error model"): never a fault, never an
incident; and a CSR that ParseCSR refuses is not reissued either.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest

from api_support import envelope
from conftest import TestInstallation as Installation
from conftest import build_installation, database_environment
from csr_seeds import FIXTURE_NAMES, der_to_pem, seed_ders
from factory import TestPartner as Partner
from factory import new_order, new_partner
from inprocess_api import assert_clean, call, success_code
from soap_service.api.application import create_wsgi_app
from soap_service.api.guard import SOAPGuard
from soap_service.errors import CSRUnreadable, InvalidField, KeyRefused

CSR_CODES = {0, 1001, InvalidField.code, CSRUnreadable.code, KeyRefused.code}
"""What a CSR alone may be answered with: accepted (1001: the current certificate's key again), -2019,
-4007, -4009. A reissue of a valid order adds no other code for a CSR: its names are the order's."""


def mutations(der: bytes) -> dict[str, str]:
    """The CSR field's text for ``der`` and each deterministic mutation of it."""
    pem = der_to_pem(der)
    flipped = [bytearray(der) for _ in range(3)]
    for copy, at in zip(flipped, (len(der) // 3, len(der) // 2, len(der) - 10), strict=True):
        copy[at] ^= 0x04
    longer = bytearray(der)
    longer[1] ^= 0x01  # the outer SEQUENCE's length octet (or its first length byte)
    tagged = bytearray(der)
    tagged[0] = 0x31  # a SET where the SEQUENCE is
    return {
        "as-is": pem,
        "bare-base64": base64.b64encode(der).decode("ascii"),
        "crlf": pem.replace("\n", "\r\n"),
        "legacy-label": pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
        "certificate-label": pem.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
        "words-around": "Here is my CSR:\n" + pem + "thanks\n",
        "two-blocks": pem + pem,
        "no-end-line": pem.rsplit("-----END", 1)[0],
        "half": der_to_pem(der[: len(der) // 2]),
        "last-byte-cut": der_to_pem(der[:-1]),
        "trailing-byte": der_to_pem(der + b"\x00"),
        "flip-third": der_to_pem(bytes(flipped[0])),
        "flip-half": der_to_pem(bytes(flipped[1])),
        "flip-end": der_to_pem(bytes(flipped[2])),
        "outer-length": der_to_pem(bytes(longer)),
        "outer-tag": der_to_pem(bytes(tagged)),
        "base64-broken": pem.replace("A", "*", 1),
    }


UNREADABLE_SEEDS = dict.fromkeys(("keyfactory-sha1", "keyfactory-broken-signature", "keyfactory-ed25519"),
                                 CSRUnreadable.code)
"""The seeds ParseCSR itself refuses: a SHA-1 signature, one that does not verify, an Ed25519 one
(off the signature allowlist)."""


@pytest.fixture(scope="module")
def corpus_installation(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    Installation
]:
    """An installation of this module's own: the corpus's certificates hold the fixtures' keys, which
    another partner of the shared installation could then no longer have certified (one key, one
    subscriber: tests/test_csr_from_tools.py reissues with the same fixtures)."""
    data_dir = tmp_path_factory.mktemp(f"corpus-{installation.backend}")
    for environ in database_environment(installation.backend, data_dir, "corpus"):
        own = build_installation(environ, installation.backend)
        try:
            yield own
        finally:
            own.ra.close()


@pytest.fixture(scope="module")
def app(corpus_installation: Installation) -> SOAPGuard:
    return create_wsgi_app(corpus_installation.ra)


@pytest.fixture(scope="module")
def partner(corpus_installation: Installation) -> Partner:
    return new_partner(corpus_installation.ra)


def _auth(partner: Partner) -> str:
    return (f"<o:PartnerCode>{partner.code}</o:PartnerCode><o:AuthToken><o:UserName>{partner.username}"
            f"</o:UserName><o:Password>{escape(partner.password)}</o:Password></o:AuthToken>")


@pytest.mark.parametrize("seed", sorted(seed_ders()))
def test_every_corpus_csr_and_its_mutations_get_a_documented_outcome(
    app: SOAPGuard, corpus_installation: Installation, partner: Partner, seed: str
) -> None:
    order = new_order(corpus_installation.ra, partner, product="QuickSSLPremium", names=FIXTURE_NAMES).order
    outcomes: dict[str, tuple[int, int]] = {}
    for kind, text in mutations(seed_ders()[seed]).items():
        parse = envelope("ParseCSR", f"<o:Request><o:QueryRequestHeader>{_auth(partner)}</o:QueryRequestHeader>"
                                     f"<o:CSR>{escape(text)}</o:CSR></o:Request>")
        status, answer = call(app, parse)
        assert status.startswith("200"), (kind, answer[:500])
        assert_clean(status, answer)
        parsed = success_code(answer)
        reissue = envelope(
            "Reissue",
            f"<o:Request><o:OrderRequestHeader>{_auth(partner)}<o:PartnerOrderID>{order.partner_order_id}"
            f"</o:PartnerOrderID></o:OrderRequestHeader><o:OrderParameters><o:CSR>{escape(text)}</o:CSR>"
            "</o:OrderParameters></o:Request>",
        )
        status, answer = call(app, reissue)
        assert status.startswith("200"), (kind, answer[:500])
        assert_clean(status, answer)
        reissued = success_code(answer)
        assert parsed in CSR_CODES and reissued in CSR_CODES, (kind, parsed, reissued, answer[:800])
        outcomes[kind] = (parsed, reissued)
    for kind, (parsed, reissued) in outcomes.items():
        # ParseCSR reads as the reissue does; of the key rules it applies one
        # (docs/design.md, "The SOAP contract"): what it cannot read is not reissued either.
        if parsed in (InvalidField.code, CSRUnreadable.code):
            assert reissued == parsed, (kind, parsed, reissued)
    assert outcomes["as-is"][0] == UNREADABLE_SEEDS.get(seed, 0), outcomes["as-is"]
    assert outcomes["half"] == (CSRUnreadable.code, CSRUnreadable.code)
