"""The stored-value envelope, its associated data, and the order-preserving resident-code encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import layout
from storage.envelope import FORMAT_V1, HEADER_BYTES, aad, pack, unpack
from storage.errors import CorruptValue, StorageError

# -- envelope ------------------------------------------------------------------------------------------


def test_pack_unpack_round_trip() -> None:
    sealed = bytes(range(40))
    value = pack(0x01020304, 7, sealed)
    assert HEADER_BYTES == 9
    assert value[:HEADER_BYTES] == bytes([FORMAT_V1, 1, 2, 3, 4, 0, 0, 0, 7])
    env = unpack(value)
    assert (env.key_id, env.version, env.sealed) == (0x01020304, 7, sealed)
    assert isinstance(env.sealed, bytes)


@settings(max_examples=200, deadline=None, database=None)
@given(key_id=st.integers(0, 2**32 - 1), version=st.integers(0, 2**32 - 1), sealed=st.binary(max_size=200))
def test_pack_unpack_round_trip_any(key_id: int, version: int, sealed: bytes) -> None:
    env = unpack(pack(key_id, version, sealed))
    assert (env.key_id, env.version, env.sealed) == (key_id, version, sealed)


def test_unpack_accepts_memoryview() -> None:
    env = unpack(memoryview(pack(1, 2, b"abc")))
    assert (env.key_id, env.version, env.sealed) == (1, 2, b"abc")


@pytest.mark.parametrize("fmt", [0, 2, 0x7F, 0xFF])
def test_unknown_format_byte(fmt: int) -> None:
    value = bytes([fmt]) + pack(1, 1, b"x" * 28)[1:]
    with pytest.raises(CorruptValue):
        unpack(value)


@pytest.mark.parametrize("n", range(HEADER_BYTES))
def test_too_short(n: int) -> None:
    with pytest.raises(CorruptValue):
        unpack(pack(1, 1, b"")[:n])


def test_corrupt_value_is_a_storage_error() -> None:
    assert issubclass(CorruptValue, StorageError)


def test_aad_binds_table_key_version_and_key_id() -> None:
    base = aad("identity", b"\x00\x01\x02\x03\x04", 1, 10)
    assert base == aad("identity", b"\x00\x01\x02\x03\x04", 1, 10)
    variants = [
        aad("history", b"\x00\x01\x02\x03\x04", 1, 10),
        aad("identity", b"\x00\x01\x02\x03\x05", 1, 10),
        aad("identity", b"\x00\x01\x02\x03\x04", 2, 10),
        aad("identity", b"\x00\x01\x02\x03\x04", 1, 11),
        aad("identity", b"\x00\x01\x02\x03\x04\x00", 1, 10),
        aad("identity", b"", 1, 10),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert base.startswith(b"cs-env")


def test_aad_is_unambiguous_across_field_boundaries() -> None:
    # Length prefixes: moving bytes between table and key, or key and version, changes the AAD.
    assert aad("ab", b"c", 1, 1) != aad("a", b"bc", 1, 1)
    assert aad("a", b"\x00\x00\x00\x01", 0, 1) != aad("a", b"", 1, 1)


@settings(max_examples=200, deadline=None, database=None)
@given(
    a=st.tuples(st.sampled_from(layout.ALL), st.binary(max_size=12), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    b=st.tuples(st.sampled_from(layout.ALL), st.binary(max_size=12), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
def test_aad_is_injective(a, b) -> None:
    assert (aad(*a) == aad(*b)) == (a == b)


# -- resident codes ----------------------------------------------------------------------------------

codes = st.integers(0, 10**11 - 1).map(lambda n: f"{n:011d}")


def test_pack_code_examples() -> None:
    assert layout.pack_code("00000000000") == b"\x00" * 5
    assert layout.pack_code("99999999999") == (10**11 - 1).to_bytes(5, "big")
    assert layout.pack_code("12345678903") == (12345678903).to_bytes(5, "big")
    assert layout.unpack_code(layout.pack_code("00000000001")) == "00000000001"


@settings(max_examples=300, deadline=None, database=None)
@given(code=codes)
def test_code_round_trip(code: str) -> None:
    packed = layout.pack_code(code)
    assert len(packed) == layout.CODE_BYTES
    assert layout.unpack_code(packed) == code


@settings(max_examples=300, deadline=None, database=None)
@given(a=codes, b=codes)
def test_code_order_is_byte_order(a: str, b: str) -> None:
    pa, pb = layout.pack_code(a), layout.pack_code(b)
    assert (int(a) < int(b)) == (pa < pb)
    assert (a < b) == (pa < pb)
    assert (a == b) == (pa == pb)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1234567890",  # 10 digits
        "123456789012",  # 12 digits
        "1234567890a",
        "-1234567890",
        "+1234567890",
        " 1234567890",
        "1234567890 ",
        "12345_67890",
        "１２３４５６７８９０３",  # full-width digits
        "١٢٣٤٥٦٧٨٩٠٣",  # Arabic-Indic digits
        "1234567890²",  # superscript two (isdigit() is true)
    ],
)
def test_bad_codes(bad: str) -> None:
    with pytest.raises(ValueError):
        layout.pack_code(bad)


@pytest.mark.parametrize(
    "data",
    [
        (10**11).to_bytes(5, "big"),
        b"\xff" * 5,
        b"\x17\x48\x76\xe8\x00",  # 10**11 exactly
        b"",
        b"\x00" * 4,
        b"\x00" * 6,
    ],
)
def test_unpack_code_out_of_range_or_wrong_length(data: bytes) -> None:
    with pytest.raises(CorruptValue):
        layout.unpack_code(data)


def test_unpack_code_upper_bound() -> None:
    assert layout.unpack_code((10**11 - 1).to_bytes(5, "big")) == "99999999999"


@settings(max_examples=200, deadline=None, database=None)
@given(value=st.integers(10**11, 2**40 - 1))
def test_unpack_code_rejects_everything_above_range(value: int) -> None:
    with pytest.raises(CorruptValue):
        layout.unpack_code(value.to_bytes(5, "big"))


def test_u32_and_keys() -> None:
    assert layout.unpack_u32(layout.pack_u32(0xDEADBEEF)) == 0xDEADBEEF
    with pytest.raises(CorruptValue):
        layout.unpack_u32(b"\x00\x00\x00")
    code5 = layout.pack_code("12345678903")
    day = "21761126"
    assert layout.history_key(day, code5, 1) < layout.history_key(day, code5, 2) < layout.history_key(day, code5, 256)
    assert layout.history_key("20260101", code5, 9) < layout.history_key("20260102", code5, 1)
    assert layout.history_index_key(code5, 1) < layout.history_index_key(code5, 2)
