"""The key algorithms of this CA, defined once (docs/design.md, "Key policy").

One table says which keys exist here: the CA's own keys (``SOAP_SERVICE_CA_KEY_ALGORITHM``,
spelled ``rsa-2048`` ... ``ecdsa-p384``, made by :func:`soap_service.ca.algorithms.generate_key`)
and the keys the key policy certifies in a CSR (:class:`soap_service.ra.keypolicy.KeyPolicy`:
RSA of these sizes with exponent :data:`RSA_EXPONENT`, ECDSA on these curves).  They are the
same facts on purpose: the CA may hold only a key the policy would certify, and a size or curve
added here is accepted on both sides at once.

This module sits in the lowest layer with the settings, which read the CA's choice from it; it
holds facts only, no rule and no message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec

RSA_EXPONENT = 65537
"""The only RSA public exponent: the CA's keys are made with it and a CSR's key must have it."""


@dataclass(frozen=True)
class RSAKeyAlgorithm:
    """RSA with a modulus of exactly ``bits`` bits."""

    bits: int

    @property
    def name(self) -> str:
        """The setting's spelling: ``rsa-2048``."""
        return f"rsa-{self.bits}"


@dataclass(frozen=True)
class ECKeyAlgorithm:
    """ECDSA on one named curve."""

    curve: str
    """The curve as answers name it: "P-256"."""
    curve_type: type[ec.EllipticCurve]
    """cryptography's class of the curve: ``ec.SECP256R1``."""

    @property
    def name(self) -> str:
        """The setting's spelling: ``ecdsa-p256``."""
        return "ecdsa-" + self.curve.replace("-", "").lower()


KeyAlgorithm: TypeAlias = RSAKeyAlgorithm | ECKeyAlgorithm

KEY_ALGORITHMS: tuple[KeyAlgorithm, ...] = (
    RSAKeyAlgorithm(2048),
    RSAKeyAlgorithm(3072),
    RSAKeyAlgorithm(4096),
    ECKeyAlgorithm("P-256", ec.SECP256R1),
    ECKeyAlgorithm("P-384", ec.SECP384R1),
)
"""Every key algorithm of this CA, in the order settings and messages list them."""

KEY_ALGORITHM_NAMES: tuple[str, ...] = tuple(algorithm.name for algorithm in KEY_ALGORITHMS)
"""``rsa-2048``, ``rsa-3072``, ``rsa-4096``, ``ecdsa-p256``, ``ecdsa-p384``."""

RSA_SIZES: tuple[int, ...] = tuple(a.bits for a in KEY_ALGORITHMS if isinstance(a, RSAKeyAlgorithm))
"""2048, 3072, 4096."""

EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = {
    a.curve: a.curve_type for a in KEY_ALGORITHMS if isinstance(a, ECKeyAlgorithm)
}
""""P-256" and "P-384", with cryptography's class of each."""


def key_algorithm(name: str) -> KeyAlgorithm | None:
    """The algorithm a setting names (``rsa-3072``), or None when it names none of them."""
    return next((algorithm for algorithm in KEY_ALGORITHMS if algorithm.name == name), None)
