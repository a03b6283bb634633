"""The little DER this service handles by hand: the CA puts a certificate together from its TBS,
algorithm and signature; the CSR reader (``ra.csr``) looks at the key's algorithm identifier and
the RSASSA-PSS parameters that cryptography does not report.

Only definite lengths in their shortest form and one-byte tags (X.690, 8.1.2 and 10.1); anything
else read here is refused with ``ValueError``.
"""

from __future__ import annotations

SEQUENCE = 0x30
BIT_STRING = 0x03

_MAX_LENGTH_OCTETS = 4  # 4 GiB: far beyond any certificate


def encode_length(length: int) -> bytes:
    """The length octets of ``length``: one octet below 128, else 0x80 + n and n big-endian octets."""
    if length < 0:
        raise ValueError("a DER length cannot be negative")
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(octets) > _MAX_LENGTH_OCTETS:
        raise ValueError("a DER length this large is not supported")
    return bytes([0x80 | len(octets)]) + octets


def encode(tag: int, content: bytes) -> bytes:
    """One element: its tag (one octet), its length, its content."""
    if not 0 <= tag <= 0xFF or tag & 0x1F == 0x1F:
        raise ValueError("only one-octet tags are supported")
    return bytes([tag]) + encode_length(len(content)) + content


def sequence(*elements: bytes) -> bytes:
    """A SEQUENCE of already encoded elements."""
    return encode(SEQUENCE, b"".join(elements))


def bit_string(data: bytes) -> bytes:
    """A BIT STRING of whole octets (0 unused bits), as a signature value is."""
    return encode(BIT_STRING, b"\x00" + data)


def read_element(der: bytes, offset: int = 0) -> tuple[int, int, int]:
    """The element starting at ``offset``: (tag, where its content starts, where it ends)."""
    if offset >= len(der):
        raise ValueError("DER element missing")
    tag = der[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER element with a multi-octet tag")
    if offset + 1 >= len(der):
        raise ValueError("DER element without a length")
    first = der[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise ValueError("DER forbids the indefinite length")
        if count > _MAX_LENGTH_OCTETS or start + count > len(der):
            raise ValueError("DER length octets missing or too many")
        octets = der[start : start + count]
        length = int.from_bytes(octets, "big")
        if octets[0] == 0 or length < 0x80:
            raise ValueError("DER length not in its shortest form")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("DER element longer than its data")
    return tag, start, end


def sequence_elements(der: bytes) -> list[bytes]:
    """The elements (each whole: tag, length, content) of the one SEQUENCE that ``der`` is."""
    tag, start, end = read_element(der)
    if tag != SEQUENCE:
        raise ValueError("DER data is not a SEQUENCE")
    if end != len(der):
        raise ValueError("DER data after the SEQUENCE")
    elements = []
    offset = start
    while offset < end:
        _, _, element_end = read_element(der[:end], offset)
        elements.append(der[offset:element_end])
        offset = element_end
    return elements
