"""Property tests: any bytes into the frame scanner and any card data into the decoder end in a
result or the one documented error, with the scanner's memory bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.room.osdp.errors import DecodeError
from firmware_app.room.osdp.handshake import FrameScanner, HandshakeWatch
from firmware_app.room.osdp.wiegand import MAX_CARD_BITS, decode_card, encode_h10301, to_osdp


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=20))
def test_scanner_takes_any_chunks(chunks):
    scanner = FrameScanner()
    watch = HandshakeWatch({1: bytes(range(16))})
    for chunk in chunks:
        list(scanner.feed(chunk))
        watch.sent(chunk)
        verdicts, replied = watch.received(chunk)
        assert all(0 <= a <= 127 for a in replied)
        assert len(scanner._buf) <= 4096


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=20), st.integers(min_value=-5, max_value=MAX_CARD_BITS + 5))
def test_decoder_takes_any_card_data(data, bits):
    try:
        credential = decode_card(data, bits)
    except DecodeError:
        return
    assert credential.bit_length == bits and credential.badge


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 65535))
def test_every_h10301_card_round_trips(facility, number):
    credential = decode_card(to_osdp(encode_h10301(facility, number), 26), 26)
    assert (credential.facility, credential.number) == (facility, number)
