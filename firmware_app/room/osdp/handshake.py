"""Watch our own OSDP line for the secure-channel handshake and tell which key a reader used.

libosdp with ENFORCE_SECURE refuses a reader whose cryptogram does not verify, but it does not
say why.  This sans-IO watcher sees the CP's ``osdp_CHLNG`` (RND.A) and the reader's
``osdp_CCRYPT`` (RND.B, client cryptogram) on the bytes the channel carries, and checks the
cryptogram against the reader's configured SCBK, the well-known install-mode key SCBK-D and an
all-zero key (what a keyless libosdp PD in install mode answers with).  It never sends anything
and never changes a key: the answer is only evidence for an alarm.  It also reports every valid
reply frame's address, which is how the panel supervises readers that go silent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SCBK_DEFAULT", "FrameScanner", "HandshakeWatch", "Verdict", "crc16"]

#: SCBK-D, the default secure-channel base key the OSDP standard fixes for install mode.
SCBK_DEFAULT = bytes(range(0x30, 0x40))
_SCBK_ZERO = bytes(16)

_SOM = 0x53
_MARK = 0xFF  # OSDP 2.2 line mark before a frame; not garbage
_MAX_PACKET_BYTES = 1024  # longer than any frame libosdp sends or accepts
_MAX_LOOKAHEAD_FRAMES = 32  # bounds the work one read can cause on a hostile line
_CMD_CHLNG = 0x76
_REPLY_CCRYPT = 0x76
_SCS_11 = 0x11
_SCS_12 = 0x12


class Verdict(enum.Enum):
    """Which key a reader's handshake answer was made with."""

    CONFIGURED = "configured"
    INSTALL_MODE = "install_mode"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class _Frame:
    address: int
    reply: bool
    scb_type: int | None
    scb_data: bytes
    code: int
    data: bytes


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """OSDP's CRC-16 (CCITT polynomial 0x1021, initial value 0x1D0F)."""
    crc = 0x1D0F
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


class FrameScanner:
    """Cuts one direction of the line into checked OSDP frames; garbage is skipped, memory bounded."""

    def __init__(self, *, max_buffer_bytes: int = 4 * _MAX_PACKET_BYTES) -> None:
        self._buf = bytearray()
        self._max_buffer_bytes = max_buffer_bytes
        self.skipped_bytes = 0

    def feed(self, chunk: bytes) -> Iterator[_Frame]:
        """Take ``chunk``; yield every complete frame whose length and check bytes are right."""
        self._buf += chunk
        if len(self._buf) > self._max_buffer_bytes:
            drop = len(self._buf) - self._max_buffer_bytes
            del self._buf[:drop]
            self.skipped_bytes += drop
        while True:
            start = self._buf.find(_SOM)
            if start < 0:
                self.skipped_bytes += len(self._buf) - self._buf.count(_MARK)
                self._buf.clear()
                return
            if start:
                self.skipped_bytes += start - self._buf.count(_MARK, 0, start)
                del self._buf[:start]
            if len(self._buf) < 5:
                return
            length = self._buf[2] | (self._buf[3] << 8)
            if not 7 <= length <= _MAX_PACKET_BYTES:
                self._skip_som()
                continue
            if len(self._buf) < length:
                # A false start (noise with a plausible length) must not hide a real frame behind it.
                later = self._next_complete_frame()
                if later is None:
                    return
                self.skipped_bytes += later
                del self._buf[:later]
                continue
            frame = _parse(bytes(self._buf[:length]))
            if frame is None:
                self._skip_som()
                continue
            del self._buf[:length]
            yield frame

    def _next_complete_frame(self) -> int | None:
        """Offset of the first later SOM that starts a complete, valid frame in the buffer."""
        at = self._buf.find(_SOM, 1)
        for _ in range(_MAX_LOOKAHEAD_FRAMES):
            if at < 0 or len(self._buf) - at < 7:
                break
            length = self._buf[at + 2] | (self._buf[at + 3] << 8)
            if 7 <= length <= len(self._buf) - at and _parse(bytes(self._buf[at : at + length])) is not None:
                return at
            at = self._buf.find(_SOM, at + 1)
        return None

    def _skip_som(self) -> None:
        del self._buf[:1]
        self.skipped_bytes += 1


def _parse(packet: bytes) -> _Frame | None:
    ctrl = packet[4]
    if ctrl & 0x04:
        if len(packet) < 8 or crc16(packet[:-2]) != int.from_bytes(packet[-2:], "little"):
            return None
        body = packet[5:-2]
    else:
        if sum(packet) & 0xFF:
            return None
        body = packet[5:-1]
    scb_type, scb_data = None, b""
    if ctrl & 0x08:
        if not body or not 2 <= body[0] <= len(body):
            return None
        scb_type, scb_data = body[1], bytes(body[2 : body[0]])
        body = body[body[0] :]
        if scb_type >= 0x15:  # SCS_15..18 carry a 4-byte MAC before the check bytes
            body = body[:-4]
    if not body:
        return None
    return _Frame(packet[1] & 0x7F, bool(packet[1] & 0x80), scb_type, scb_data, body[0], bytes(body[1:]))


def _ecb(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - OSDP's own construction
    return encryptor.update(block) + encryptor.finalize()


def _client_cryptogram(scbk: bytes, rnd_a: bytes, rnd_b: bytes) -> bytes:
    s_enc = _ecb(scbk, bytes([0x01, 0x82]) + rnd_a[:6] + bytes(8))
    return _ecb(s_enc, rnd_a + rnd_b)


class HandshakeWatch:
    """Both directions of one line: verdicts on handshakes and the addresses that replied.

    ``keys`` maps reader address to its configured SCBK.  Feed the CP's writes to ``sent`` and the
    line's reads to ``received``; each returns the (address, verdict) pairs concluded and adds
    every replying address to the set it returns with them.
    """

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        self._keys = dict(keys)
        self._rnd_a: dict[int, bytes] = {}
        self._out = FrameScanner()
        self._in = FrameScanner()

    def __repr__(self) -> str:
        return f"HandshakeWatch(readers={len(self._keys)})"

    @property
    def skipped_bytes(self) -> int:
        """Bytes that were not part of any valid frame, both directions (garbage on the line)."""
        return self._out.skipped_bytes + self._in.skipped_bytes

    def sent(self, chunk: bytes) -> bool:
        """Bytes the control panel wrote; True when they held a challenge (a new RND.A)."""
        challenged = False
        for frame in self._out.feed(chunk):
            if not frame.reply and frame.code == _CMD_CHLNG and frame.scb_type == _SCS_11 and len(frame.data) == 8:
                self._rnd_a[frame.address] = frame.data
                challenged = True
        return challenged

    def received(self, chunk: bytes) -> tuple[list[tuple[int, Verdict]], set[int]]:
        """Bytes read from the line: (verdicts, addresses that sent a valid reply)."""
        verdicts: list[tuple[int, Verdict]] = []
        replied: set[int] = set()
        for frame in self._in.feed(chunk):
            if not frame.reply:
                continue
            replied.add(frame.address)
            if frame.code == _REPLY_CCRYPT and frame.scb_type == _SCS_12:
                verdict = self._judge(frame)
                if verdict is not None:
                    verdicts.append((frame.address, verdict))
        return verdicts, replied

    def _judge(self, frame: _Frame) -> Verdict | None:
        rnd_a = self._rnd_a.pop(frame.address, None)
        key = self._keys.get(frame.address)
        if rnd_a is None or key is None or len(frame.data) != 32:
            return None
        rnd_b, cryptogram = frame.data[8:16], frame.data[16:32]
        if frame.scb_data[:1] == b"\x00":  # the reader says it used SCBK-D
            return Verdict.INSTALL_MODE
        if _client_cryptogram(key, rnd_a, rnd_b) == cryptogram:
            return Verdict.CONFIGURED
        if any(_client_cryptogram(k, rnd_a, rnd_b) == cryptogram for k in (SCBK_DEFAULT, _SCBK_ZERO)):
            return Verdict.INSTALL_MODE
        return Verdict.MISMATCH
