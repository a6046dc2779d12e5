"""The handshake watcher: frames cut from noisy byte streams, verdicts on real libosdp captures
and on frames built here with known keys; hostile input never raises and memory stays bounded."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware_app.room.osdp.handshake import SCBK_DEFAULT, FrameScanner, HandshakeWatch, Verdict, crc16

# A real exchange between libosdp 3.2.9's CP and a keyless PD in install mode (address 101):
# ID, CAP and CHLNG from the CP (each after a 0xFF mark), PDID, PDCAP and CCRYPT back.
CP_TX = bytes.fromhex("ff53650900046100d97aff53650900056200ba18ff536513000e03110176d764c8cce93255c4f105")
PD_RX_INSTALL = bytes.fromhex(
    "53e514000445bebafe0101afbeaddeaddead07fd53e51a0005460101040201010801000901000a00011002000b95"
    "53e52b000e03120176beba0100afbeadde478d7aa05d83f3eaea0a1be29d5ea29c12e3ea262d2a4af85709"
)
KEY = bytes(range(0xA0, 0xB0))


def _ecb(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def frame(address: int, code: int, data: bytes, *, scb: bytes = b"", seq: int = 1, crc: bool = True) -> bytes:
    """An OSDP packet as the standard lays it out (independent of the watcher's parser)."""
    ctrl = seq | (0x04 if crc else 0) | (0x08 if scb else 0)
    length = 5 + len(scb) + 1 + len(data) + (2 if crc else 1)
    head = bytes([0x53, address, length & 0xFF, length >> 8, ctrl]) + scb + bytes([code]) + data
    if crc:
        return head + crc16(head).to_bytes(2, "little")
    return head + bytes([(-sum(head)) & 0xFF])


def chlng(address: int, rnd_a: bytes) -> bytes:
    return b"\xff" + frame(address, 0x76, rnd_a, scb=bytes([3, 0x11, 1]))


def ccrypt(address: int, key: bytes, rnd_a: bytes, rnd_b: bytes, *, key_byte: int = 1) -> bytes:
    s_enc = _ecb(key, bytes([1, 0x82]) + rnd_a[:6] + bytes(8))
    data = bytes(8) + rnd_b + _ecb(s_enc, rnd_a + rnd_b)
    return frame(address | 0x80, 0x76, data, scb=bytes([3, 0x12, key_byte]))


def test_crc_matches_libosdp_on_the_wire():
    assert crc16(bytes.fromhex("53650900046100")) == 0x7AD9


def test_real_install_mode_capture_is_recognised():
    watch = HandshakeWatch({101: KEY})
    watch.sent(CP_TX)
    assert watch.received(PD_RX_INSTALL) == ([(101, Verdict.INSTALL_MODE)], {101})
    assert watch.skipped_bytes == 0  # 0xFF marks are not noise


@pytest.mark.parametrize(
    ("pd_key", "key_byte", "expected"),
    [
        (KEY, 1, Verdict.CONFIGURED),
        (SCBK_DEFAULT, 1, Verdict.INSTALL_MODE),
        (bytes(16), 1, Verdict.INSTALL_MODE),
        (KEY, 0, Verdict.INSTALL_MODE),  # the reader says it used SCBK-D
        (bytes(range(16)), 1, Verdict.MISMATCH),
    ],
)
def test_verdict_by_the_key_the_reader_used(pd_key, key_byte, expected):
    rnd_a, rnd_b = os.urandom(8), os.urandom(8)
    watch = HandshakeWatch({7: KEY})
    watch.sent(chlng(7, rnd_a))
    assert watch.received(ccrypt(7, pd_key, rnd_a, rnd_b, key_byte=key_byte)) == ([(7, expected)], {7})


def test_ccrypt_without_a_challenge_or_for_an_unknown_reader_gives_no_verdict():
    rnd_a, rnd_b = os.urandom(8), os.urandom(8)
    watch = HandshakeWatch({7: KEY})
    assert watch.received(ccrypt(7, KEY, rnd_a, rnd_b)) == ([], {7})  # replayed: no challenge
    watch.sent(chlng(8, rnd_a))
    assert watch.received(ccrypt(8, KEY, rnd_a, rnd_b)) == ([], {8})
    watch.sent(chlng(7, rnd_a))
    assert watch.received(ccrypt(7, KEY, rnd_a, rnd_b))[0] == [(7, Verdict.CONFIGURED)]
    assert watch.received(ccrypt(7, KEY, rnd_a, rnd_b))[0] == []  # a challenge answers once


def test_frames_split_across_reads_and_surrounded_by_noise():
    rnd_a, rnd_b = os.urandom(8), os.urandom(8)
    watch = HandshakeWatch({7: KEY})
    watch.sent(b"\x00\x53\x53" + chlng(7, rnd_a)[:5])
    watch.sent(chlng(7, rnd_a)[5:] + b"garbage")
    stream = b"\x13\x53\x01" + ccrypt(7, KEY, rnd_a, rnd_b) + b"\x53"
    verdicts, replied = [], set()
    for i in range(len(stream)):
        v, r = watch.received(stream[i : i + 1])
        verdicts += v
        replied |= r
    assert verdicts == [(7, Verdict.CONFIGURED)] and replied == {7}
    assert watch.skipped_bytes > 0


def test_checksum_frames_and_bad_check_bytes():
    scanner = FrameScanner()
    good = frame(0x85, 0x40, b"", crc=False)
    assert [f.code for f in scanner.feed(good)] == [0x40]
    bad = bytearray(frame(0x85, 0x40, b"\x01\x02"))
    bad[-1] ^= 1
    assert list(scanner.feed(bytes(bad))) == []


def test_commands_are_not_counted_as_replies():
    watch = HandshakeWatch({7: KEY})
    assert watch.received(frame(7, 0x60, b"")) == ([], set())
    assert watch.received(frame(0x87, 0x40, b"")) == ([], {7})


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x53" * 5000,
        b"\x53\x00\xff\xff" * 1000,  # claims 65535 bytes
        b"\x53\x00\x07\x00\x0c\x03\x11",  # SCB claims more than the frame holds
        bytes(range(256)) * 40,
        os.urandom(20000),
        frame(0x87, 0x40, b"")[:-3] * 200,
    ],
)
def test_hostile_streams_never_raise_and_stay_bounded(hostile):
    watch = HandshakeWatch({7: KEY})
    for i in range(0, len(hostile), 97):
        watch.sent(hostile[i : i + 97])
        watch.received(hostile[i : i + 97])
    assert len(watch._in._buf) <= 4096 and len(watch._out._buf) <= 4096
    # and it still works afterwards
    rnd_a, rnd_b = os.urandom(8), os.urandom(8)
    watch.sent(b"\x00" * 8 + chlng(7, rnd_a))
    assert (7, Verdict.CONFIGURED) in watch.received(b"\x00" * 8 + ccrypt(7, KEY, rnd_a, rnd_b))[0]


def test_repr_has_no_key():
    assert KEY.hex() not in repr(HandshakeWatch({7: KEY})) and "a0a1" not in repr(HandshakeWatch({7: KEY}))
