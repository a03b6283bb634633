"""Serial numbers: positive, under 2**159, at least 64 random bits, never repeated."""

from __future__ import annotations

from soap_service.ca.serials import new_serial


def test_serials_are_in_range_and_distinct() -> None:
    serials = [new_serial() for _ in range(1000)]
    assert all(2**64 <= serial < 2**159 for serial in serials)
    assert len(set(serials)) == 1000


def test_serials_use_the_high_bits() -> None:
    # with ~159 random bits, 1000 draws all below 2**150 would happen with probability 2**-9000
    serials = [new_serial() for _ in range(1000)]
    assert max(serials).bit_length() >= 150
    assert max(serial.bit_length() for serial in serials) <= 159


def test_serials_fit_the_twenty_octet_der_limit() -> None:
    for _ in range(200):
        serial = new_serial()
        # DER INTEGER content: positive, so a leading zero octet when the top bit is set
        assert (serial.bit_length() + 8) // 8 <= 20
