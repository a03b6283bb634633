"""One key authority (issue 7): one table of key algorithms for the CA's own keys and the key
policy, one KeyPolicy per RA, and our own blocked-key table asked in the reissue's transaction,
after the order and the names (docs/design.md, "Reissue rules")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import keyfactory as kf
from factory import fresh_key_csr, new_order, new_partner
from soap_service.ca.algorithms import KEY_ALGORITHMS, generate_key
from soap_service.config import ConfigurationError, load_settings
from soap_service.errors import KeyRefused, NameNotValidated, OrderNotFound
from soap_service.keyalgorithms import (
    EC_CURVES,
    KEY_ALGORITHM_NAMES,
    RSA_EXPONENT,
    RSA_SIZES,
    ECKeyAlgorithm,
    RSAKeyAlgorithm,
    key_algorithm,
)
from soap_service.ra import weakkeys
from soap_service.ra.csr import ParsedCSR, parse_csr, spki_sha256
from soap_service.ra.issuance import refuse_blocked_key
from soap_service.ra.keypolicy import KeyPolicy
from soap_service.ra.reissue import Reissuer, ReissueRequest
from soap_service.storage import certificates as certificate_store

# ----------------------------------------------------------------------------- one table of key algorithms


def test_the_settings_the_ca_and_the_policy_share_one_table() -> None:
    assert KEY_ALGORITHM_NAMES == ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")
    assert KEY_ALGORITHMS == KEY_ALGORITHM_NAMES
    assert RSA_SIZES == (2048, 3072, 4096)
    assert dict(EC_CURVES) == {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}
    assert key_algorithm("rsa-3072") == RSAKeyAlgorithm(3072)
    assert key_algorithm("ecdsa-p384") == ECKeyAlgorithm("P-384", ec.SECP384R1)
    assert key_algorithm("ecdsa-p521") is None


def test_the_weak_key_arithmetic_knows_every_accepted_curve() -> None:
    assert set(EC_CURVES) <= set(weakkeys.EC_CURVES)


@pytest.mark.parametrize(
    "name",
    ["rsa-2048", "ecdsa-p256", "ecdsa-p384", pytest.param("rsa-3072", marks=pytest.mark.slow),
     pytest.param("rsa-4096", marks=pytest.mark.slow)],
)
def test_every_key_the_ca_may_hold_is_one_the_policy_certifies(name: str) -> None:
    """The CA may choose only keys the policy would accept."""
    key = generate_key(name)
    chosen = key_algorithm(name)
    if isinstance(chosen, RSAKeyAlgorithm):
        assert isinstance(key, rsa.RSAPrivateKey)
        assert (key.key_size, key.public_key().public_numbers().e) == (chosen.bits, RSA_EXPONENT)
    else:
        assert isinstance(chosen, ECKeyAlgorithm) and isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, chosen.curve_type)
    KeyPolicy().check_key(key.public_key())


def test_a_ca_key_algorithm_outside_the_table_is_a_configuration_error(tmp_path) -> None:
    env = {"SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_CA_KEY_ALGORITHM": "ecdsa-p521"}
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    assert str(caught.value) == (
        "SOAP_SERVICE_CA_KEY_ALGORITHM must be one of rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, "
        "got 'ecdsa-p521'"
    )
    assert load_settings({**env, "SOAP_SERVICE_CA_KEY_ALGORITHM": "ecdsa-p384"}).ca_key_algorithm == "ecdsa-p384"


# ----------------------------------------------------------------------------- one policy per RA


def test_the_ra_holds_one_key_policy(ra) -> None:
    assert isinstance(ra.key_policy, KeyPolicy)


# ----------------------------------------------------------------------------- our own blocked-key table


def _parsed(csr: str) -> ParsedCSR:
    reading = parse_csr(csr)
    assert isinstance(reading, ParsedCSR)
    return reading


def _block(session, key: ec.EllipticCurvePrivateKey) -> None:
    certificate_store.block_key(session, spki_sha256=spki_sha256(key.public_key()), reason="keyCompromise",
                                at=datetime.now(UTC), certificate_id=None)


def test_the_blocked_key_table_is_read_in_the_callers_transaction(ra) -> None:
    """A block not yet committed in the reissue's own transaction is seen: the lookup uses that
    session, not a reader of its own (which would need a second connection while the order is locked)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _parsed(fresh_key_csr(key=key))
    with ra.sessions() as session, session.begin():
        refuse_blocked_key(ra.key_policy, session, csr)  # not blocked yet
        _block(session, key)
        with pytest.raises(KeyRefused) as caught:
            refuse_blocked_key(ra.key_policy, session, csr)
        assert caught.value.message == "this key was reported compromised and is blocked"
        session.rollback()
    with ra.sessions() as session, session.begin():
        refuse_blocked_key(ra.key_policy, session, csr)  # rolled back: not blocked


def test_a_blocked_key_is_refused_after_the_order_and_the_names(ra) -> None:
    """The rule order of the reissue: the order (-4003) and the names (-4010) come before our blocked-key table."""
    partner = new_partner(ra)
    order = new_order(ra, partner)
    key = ec.generate_private_key(ec.SECP256R1())
    with ra.sessions() as session, session.begin():
        _block(session, key)
    reissuer = Reissuer(ra)

    def reissue(partner_order_id: str, names: tuple[str, ...]) -> None:
        csr = kf.csr_pem(kf.make_csr(key, names=names))
        reissuer.reissue(partner.credentials(), ReissueRequest(partner_order_id, csr), channel="api")

    with pytest.raises(OrderNotFound):
        reissue("PO-no-such-order", ("example.com",))
    with pytest.raises(NameNotValidated):
        reissue(order.order.partner_order_id, ("other.example.org",))
    with pytest.raises(KeyRefused) as caught:
        reissue(order.order.partner_order_id, ("example.com",))
    assert caught.value.message == "this key was reported compromised and is blocked"
