"""Tests of the length-prefixed frame codec: splits, limits, broken state and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.links.errors import E_FRAME_EMPTY, E_FRAME_TOO_LARGE, ProtocolError
from firmware_app.links.frames import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode_frame

BODIES = [b"a", b"hello", bytes(range(256)), b"\x00" * 1000]


def test_round_trip_one_chunk() -> None:
    stream = b"".join(encode_frame(body, max_frame_bytes=4096) for body in BODIES)
    decoder = FrameDecoder(4096)
    assert decoder.feed(stream) == BODIES
    assert decoder.pending_bytes == 0


def test_header_is_big_endian_length() -> None:
    assert encode_frame(b"abc", max_frame_bytes=10) == b"\x00\x00\x00\x03abc"


@pytest.mark.parametrize("split", range(4 + 5 + 4 + 3 + 1))
def test_split_at_every_byte_boundary(split: int) -> None:
    stream = encode_frame(b"hello", max_frame_bytes=64) + encode_frame(b"abc", max_frame_bytes=64)
    decoder = FrameDecoder(64)
    first = decoder.feed(stream[:split])
    assert first + decoder.feed(stream[split:]) == [b"hello", b"abc"]
    assert decoder.pending_bytes == 0


def test_one_byte_at_a_time() -> None:
    stream = b"".join(encode_frame(body, max_frame_bytes=4096) for body in BODIES)
    decoder = FrameDecoder(4096)
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == BODIES


def test_many_small_frames_in_one_chunk() -> None:
    bodies = [str(i).encode() for i in range(20_000)]
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(encode_frame(b, max_frame_bytes=16) for b in bodies)) == bodies
    assert decoder.pending_bytes == 0


def test_truncated_frame_stays_pending() -> None:
    frame = encode_frame(b"hello world", max_frame_bytes=64)
    decoder = FrameDecoder(64)
    assert decoder.feed(frame[:-1]) == []
    assert decoder.pending_bytes == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [b"hello world"]
    assert decoder.pending_bytes == 0


def test_huge_length_refused_at_header_without_buffering() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(struct.pack(">I", 100 * 1024 * 1024) + b"x" * 100)
    assert info.value.code == E_FRAME_TOO_LARGE
    assert decoder.pending_bytes == 0
    assert decoder.broken


def test_limit_is_inclusive() -> None:
    decoder = FrameDecoder(8)
    assert decoder.feed(encode_frame(b"12345678", max_frame_bytes=8)) == [b"12345678"]
    with pytest.raises(ProtocolError) as info:
        decoder.feed(struct.pack(">I", 9))
    assert info.value.code == E_FRAME_TOO_LARGE


def test_zero_length_refused() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"\x00\x00\x00\x00")
    assert info.value.code == E_FRAME_EMPTY


def test_broken_decoder_refuses_further_input() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError) as info:
        decoder.feed(encode_frame(b"ok", max_frame_bytes=16))
    assert info.value.code == E_FRAME_EMPTY
    assert decoder.broken


def test_encode_refuses_empty_and_oversized() -> None:
    with pytest.raises(ProtocolError) as empty:
        encode_frame(b"", max_frame_bytes=8)
    with pytest.raises(ProtocolError) as large:
        encode_frame(b"123456789", max_frame_bytes=8)
    assert (empty.value.code, large.value.code) == (E_FRAME_EMPTY, E_FRAME_TOO_LARGE)


def test_bad_limit_refused() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_raise_only_protocol_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(256)
    for chunk in chunks:
        try:
            for body in decoder.feed(chunk):
                assert 1 <= len(body) <= 256
        except ProtocolError:
            assert decoder.broken
            return
        assert decoder.pending_bytes < 4 + 256


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=10), st.data())
def test_any_split_round_trips(bodies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(b, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES) for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    out: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        out += decoder.feed(stream[start:end])
    assert out == bodies
    assert decoder.pending_bytes == 0
