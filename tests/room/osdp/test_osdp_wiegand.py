"""Wiegand decoding: known layouts built bit by bit here (independently of the encoder), every
parity bit flipped, every malformed and oversized length refused with DecodeError."""

from __future__ import annotations

import pytest

from firmware_app.room.osdp.errors import DecodeError
from firmware_app.room.osdp.wiegand import (
    MAX_CARD_BITS,
    Credential,
    decode,
    decode_card,
    encode_c1k35,
    encode_h10301,
    encode_h10304,
    to_osdp,
)


def _bits(n: int, width: int) -> str:
    return format(n, f"0{width}b")


def _even(bits: str) -> str:
    return str(bits.count("1") % 2)


def _odd(bits: str) -> str:
    return str(1 - bits.count("1") % 2)


def h10301_string(fc: int, cn: int) -> str:
    body = _bits(fc, 8) + _bits(cn, 16)
    return _even(body[:12]) + body + _odd(body[12:])


def h10304_string(fc: int, cn: int) -> str:
    body = _bits(fc, 16) + _bits(cn, 19)
    return _even(body[:18]) + body + _odd(body[17:])


def c1k35_string(company: int, cn: int) -> str:
    # HID, 1-indexed: bit 2 even over 3-4, 6-7, ... 33-34; bit 35 odd over 2-3, 5-6, ... 32-33;
    # bit 1 odd over all; company 3-14, number 15-34.  Here 0-indexed.
    s = ["0"] * 35
    s[2:14] = _bits(company, 12)
    s[14:34] = _bits(cn, 20)
    p1 = [i for i in range(2, 34) if (i - 2) % 3 != 2]  # 2,3, 5,6, ... 32,33
    s[1] = _even("".join(s[i] for i in p1))
    p34 = [1] + [i for i in range(2, 34) if (i - 2) % 3 != 1]  # 1,2, 4,5, ... 31,32
    s[34] = _odd("".join(s[i] for i in p34))
    s[0] = _odd("".join(s[1:]))
    return "".join(s)


VECTORS = [
    # (bit string, length, format, facility, number)
    (h10301_string(0, 0), 26, "h10301", 0, 0),
    (h10301_string(255, 65535), 26, "h10301", 255, 65535),
    (h10301_string(37, 1001), 26, "h10301", 37, 1001),
    (h10304_string(65535, 524287), 37, "h10304", 65535, 524287),
    (h10304_string(1234, 56789), 37, "h10304", 1234, 56789),
    (c1k35_string(4095, 1048575), 35, "c1k35", 4095, 1048575),
    (c1k35_string(777, 123456), 35, "c1k35", 777, 123456),
    (c1k35_string(0, 1), 35, "c1k35", 0, 1),
]


def test_h10301_published_layout():
    # FC 37, card 1001: the first 12 data bits 001001010000 have three ones, so the leading even
    # parity bit is 1; the last 12, 001111101001, have seven, so the trailing odd parity bit is 0.
    bits = "1" + "00100101" + "0000001111101001" + "0"
    assert bits == h10301_string(37, 1001)
    cred = decode(int(bits, 2), 26)
    assert (cred.card_format, cred.facility, cred.number, cred.badge) == ("h10301", 37, 1001, "37-1001")


@pytest.mark.parametrize(("bits", "length", "fmt", "fc", "cn"), VECTORS)
def test_known_vectors_decode(bits, length, fmt, fc, cn):
    assert len(bits) == length
    cred = decode_card(to_osdp(int(bits, 2), length), length)
    assert (cred.card_format, cred.facility, cred.number, cred.bit_length) == (fmt, fc, cn, length)
    assert cred.badge == f"{fc}-{cn}"


@pytest.mark.parametrize(("bits", "length", "fmt", "fc", "cn"), VECTORS)
def test_encoders_agree_with_the_layouts(bits, length, fmt, fc, cn):
    encoder = {"h10301": encode_h10301, "h10304": encode_h10304, "c1k35": encode_c1k35}[fmt]
    assert encoder(fc, cn) == int(bits, 2)


@pytest.mark.parametrize(("bits", "length", "fmt", "fc", "cn"), VECTORS)
def test_every_single_bit_flip_is_refused(bits, length, fmt, fc, cn):
    value = int(bits, 2)
    for position in range(length):
        with pytest.raises(DecodeError, match="parity"):
            decode(value ^ (1 << position), length)


def test_osdp_layout_is_left_aligned_msb_first():
    # The reference capture: 26 bits 0x12 0x34 0x56 0xC0 (the last 6 bits are padding).
    assert to_osdp(0x48D15B, 26) == bytes([0x12, 0x34, 0x56, 0xC0])
    assert to_osdp(int(h10301_string(37, 1001), 2), 26)[-1] & 0x3F == 0


def test_unknown_length_is_a_raw_credential_keyed_by_its_bits():
    cred = decode_card(bytes([0xAB, 0xCD]), 16)
    assert (cred.card_format, cred.facility, cred.badge) == ("raw16", None, "abcd")
    assert decode_card(bytes([0x80]), 1).badge == "1"
    assert decode_card(bytes(16), MAX_CARD_BITS).badge == "0" * 32


@pytest.mark.parametrize("length", [0, -1, MAX_CARD_BITS + 1, 1000, 2**31])
def test_lengths_out_of_range_are_refused(length):
    with pytest.raises(DecodeError, match="length"):
        decode_card(bytes(4), length)


@pytest.mark.parametrize(("data", "length"), [(b"", 26), (bytes(3), 26), (bytes(5), 26), (bytes(64), 26), (bytes(17), MAX_CARD_BITS)])
def test_data_not_matching_its_length_is_refused(data, length):
    with pytest.raises(DecodeError, match="does not match"):
        decode_card(data, length)


def test_bits_past_the_length_are_refused():
    good = to_osdp(int(h10301_string(1, 2), 2), 26)
    for pad_bit in range(6):
        with pytest.raises(DecodeError, match="past its length"):
            decode_card(good[:-1] + bytes([good[-1] | (1 << pad_bit)]), 26)


@pytest.mark.parametrize(("data", "length"), [("abcd", 26), (None, 26), (bytes(4), "26"), (bytes(4), 26.0), (bytes(4), True)])
def test_wrong_types_are_refused(data, length):
    with pytest.raises(DecodeError):
        decode_card(data, length)


def test_decode_refuses_values_wider_than_their_length():
    with pytest.raises(DecodeError):
        decode(1 << 26, 26)
    with pytest.raises(DecodeError):
        decode(-1, 26)


@pytest.mark.parametrize(
    ("encoder", "fc", "cn"),
    [(encode_h10301, 256, 0), (encode_h10301, 0, 65536), (encode_h10304, 65536, 0), (encode_h10304, 0, 1 << 19), (encode_c1k35, 4096, 0), (encode_c1k35, 0, 1 << 20), (encode_h10301, -1, 0)],
)
def test_encoders_refuse_fields_that_do_not_fit(encoder, fc, cn):
    with pytest.raises(DecodeError):
        encoder(fc, cn)


def test_repr_and_errors_carry_no_card_numbers():
    cred = decode(int(h10301_string(37, 1001), 2), 26)
    assert "1001" not in repr(cred) and "37" not in repr(cred).replace("bit_length=26", "")
    with pytest.raises(DecodeError) as info:
        decode(int(h10301_string(37, 1001), 2) ^ 1, 26)
    assert "1001" not in str(info.value)
    assert isinstance(cred, Credential)
