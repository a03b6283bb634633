"""Certificate serial numbers: positive, under 2**159, at least 64 random bits.

docs/design.md, "Certificate profiles".
"""

from __future__ import annotations

import secrets

SERIAL_MINIMUM = 2**64
SERIAL_LIMIT = 2**159


def new_serial() -> int:
    """A serial from the CSPRNG in [2**64, 2**159): about 159 bits of entropy, never tiny."""
    return SERIAL_MINIMUM + secrets.randbelow(SERIAL_LIMIT - SERIAL_MINIMUM)
