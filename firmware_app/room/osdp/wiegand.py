"""Raw Wiegand card bits to a credential: HID H10301 (26-bit), Corporate 1000 (35-bit), H10304 (37-bit).

Pure functions.  Bit positions count from the first bit sent (position 0, the most significant
bit of the value).  Formats with parity refuse a parity error (a misread or a forged card) with
``DecodeError``; a length with no known format becomes a ``raw<bits>`` credential that only an
exact badge-list entry can match.  Layouts as HID publishes them (and as proxmark3 implements).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_app.room.osdp.errors import DecodeError

__all__ = ["MAX_CARD_BITS", "Credential", "decode", "decode_card", "encode_c1k35", "encode_h10301", "encode_h10304", "to_osdp"]

#: Longest raw read accepted (OSDP raw card data; real credentials stop well below).
MAX_CARD_BITS = 128


@dataclass(frozen=True, slots=True)
class Credential:
    """A decoded card: its format, facility (company) code and number; ``badge`` is the list key."""

    card_format: str
    facility: int | None = field(repr=False)
    number: int = field(repr=False)
    bit_length: int

    @property
    def badge(self) -> str:
        """``"<facility>-<number>"`` for known formats, the hex of the bits for raw reads."""
        if self.facility is None:
            return f"{self.number:0{(self.bit_length + 3) // 4}x}"
        return f"{self.facility}-{self.number}"


def _parity(value: int) -> int:
    return value.bit_count() & 1


def _field(value: int, length: int, start: int, width: int) -> int:
    """Bits ``start`` .. ``start + width - 1`` (positions from the first bit sent)."""
    return (value >> (length - start - width)) & ((1 << width) - 1)


def _bit(value: int, length: int, position: int) -> int:
    return _field(value, length, position, 1)


def decode_card(data: bytes, bit_length: int) -> Credential:
    """Decode an OSDP raw card read: ``bit_length`` bits, left-aligned in ``data`` (MSB first)."""
    if not isinstance(data, (bytes, bytearray)) or isinstance(bit_length, bool) or not isinstance(bit_length, int):
        raise DecodeError("card data must be bytes and its length an int")
    if not 1 <= bit_length <= MAX_CARD_BITS:
        raise DecodeError(f"card length must be 1-{MAX_CARD_BITS} bits")
    if len(data) != (bit_length + 7) // 8:
        raise DecodeError("card data does not match its bit length")
    padding = len(data) * 8 - bit_length
    whole = int.from_bytes(data, "big")
    if whole & ((1 << padding) - 1):
        raise DecodeError("card data has bits past its length")
    return decode(whole >> padding, bit_length)


def decode(value: int, bit_length: int) -> Credential:
    """Decode ``bit_length`` bits held in ``value`` (first bit sent = most significant)."""
    if not 1 <= bit_length <= MAX_CARD_BITS or not 0 <= value < (1 << bit_length):
        raise DecodeError("card bits out of range")
    if bit_length == 26:
        return _h10301(value)
    if bit_length == 35:
        return _c1k35(value)
    if bit_length == 37:
        return _h10304(value)
    return Credential(f"raw{bit_length}", None, value, bit_length)


def _h10301(v: int) -> Credential:
    # P0 even over 1-12; facility 1-8; number 9-24; P25 odd over 13-24.
    if _bit(v, 26, 0) != _parity(_field(v, 26, 1, 12)) or _bit(v, 26, 25) != 1 - _parity(_field(v, 26, 13, 12)):
        raise DecodeError("H10301 parity error")
    return Credential("h10301", _field(v, 26, 1, 8), _field(v, 26, 9, 16), 26)


def _h10304(v: int) -> Credential:
    # P0 even over 1-18; facility 1-16; number 17-35; P36 odd over 18-35.
    if _bit(v, 37, 0) != _parity(_field(v, 37, 1, 18)) or _bit(v, 37, 36) != 1 - _parity(_field(v, 37, 18, 18)):
        raise DecodeError("H10304 parity error")
    return Credential("h10304", _field(v, 37, 1, 16), _field(v, 37, 17, 19), 37)


# Corporate 1000 (35-bit), masks over the value (bit 34 = position 0):
# position 1 is even parity over position 2 and positions 3-4, 6-7, ... 33;
# position 34 is odd parity over positions 1-2 and 4-5, 7-8, ... 32-33; position 0 is odd parity
# over all the others.  Company code 2-13, number 14-33.
_C1K_P1 = (1 << 32) | 0xB6DB6DB6
_C1K_P34 = (3 << 32) | 0x6DB6DB6C
_C1K_P0 = (3 << 32) | 0xFFFFFFFF


def _c1k35_parity_ok(v: int) -> bool:
    return (
        (v >> 33) & 1 == _parity(v & _C1K_P1)
        and v & 1 == 1 - _parity(v & _C1K_P34)
        and (v >> 34) & 1 == 1 - _parity(v & _C1K_P0)
    )


def _c1k35(v: int) -> Credential:
    if not _c1k35_parity_ok(v):
        raise DecodeError("Corporate 1000 parity error")
    return Credential("c1k35", _field(v, 35, 2, 12), _field(v, 35, 14, 20), 35)


def encode_h10301(facility: int, number: int) -> int:
    """The 26 bits of an H10301 card (for simulators and tests)."""
    if not (0 <= facility < 1 << 8 and 0 <= number < 1 << 16):
        raise DecodeError("H10301 facility is 8 bits and number 16 bits")
    body = (facility << 16) | number  # positions 1-24
    first, second = body >> 12, body & 0xFFF
    return (_parity(first) << 25) | (body << 1) | (1 - _parity(second))


def encode_h10304(facility: int, number: int) -> int:
    """The 37 bits of an H10304 card."""
    if not (0 <= facility < 1 << 16 and 0 <= number < 1 << 19):
        raise DecodeError("H10304 facility is 16 bits and number 19 bits")
    body = (facility << 19) | number  # positions 1-35
    return (_parity(body >> 17) << 36) | (body << 1) | (1 - _parity(body & 0x3FFFF))


def encode_c1k35(company: int, number: int) -> int:
    """The 35 bits of a Corporate 1000 card."""
    if not (0 <= company < 1 << 12 and 0 <= number < 1 << 20):
        raise DecodeError("Corporate 1000 company is 12 bits and number 20 bits")
    v = (company << 21) | (number << 1)
    v |= _parity(v & _C1K_P1) << 33
    v |= 1 - _parity(v & _C1K_P34)
    v |= (1 - _parity(v & _C1K_P0)) << 34
    return v


def to_osdp(value: int, bit_length: int) -> bytes:
    """Bits as OSDP carries them: left-aligned in whole bytes, MSB first, zero padding."""
    size = (bit_length + 7) // 8
    return (value << (size * 8 - bit_length)).to_bytes(size, "big")
