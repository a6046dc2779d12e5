"""Length-prefixed frames: a 4-byte big-endian length N, then N bytes of message."""

from __future__ import annotations

import struct

from firmware_app.links.errors import E_FRAME_EMPTY, E_FRAME_TOO_LARGE, ProtocolError

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FrameDecoder", "encode_frame"]

DEFAULT_MAX_FRAME_BYTES = 1 << 20
_HEADER = struct.Struct(">I")
_HEADER_BYTES = _HEADER.size
_HEADER_MAX = (1 << 32) - 1


def _check_limit(max_frame_bytes: int) -> int:
    if not 1 <= max_frame_bytes <= _HEADER_MAX:
        raise ValueError("max_frame_bytes must be between 1 and 2**32 - 1")
    return max_frame_bytes


def encode_frame(body: bytes, *, max_frame_bytes: int) -> bytes:
    """``body`` with its length prefix; ProtocolError if it is empty or over ``max_frame_bytes``."""
    size = len(body)
    if size == 0:
        raise ProtocolError(E_FRAME_EMPTY)
    if size > _check_limit(max_frame_bytes):
        raise ProtocolError(E_FRAME_TOO_LARGE)
    return _HEADER.pack(size) + body


class FrameDecoder:
    """Splits a byte stream into frame bodies; after a ProtocolError it refuses all further input.

    A length over ``max_frame_bytes`` is refused as soon as its header arrives, before any of the
    body is kept.  Frames completed earlier in the failing ``feed`` call are discarded with the
    stream; the peer resends whatever was not acknowledged.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max_frame_bytes = _check_limit(max_frame_bytes)
        self._buffer = bytearray()
        self._offset = 0  # start of the unconsumed bytes in _buffer
        self._error: ProtocolError | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buffer) - self._offset

    @property
    def broken(self) -> bool:
        """True once the stream is out of sync; the connection must be closed."""
        return self._error is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return the bodies of every frame now complete, in order."""
        if self._error is not None:
            raise ProtocolError(self._error.code)
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset = self._offset
        end = len(buffer)
        try:
            while end - offset >= _HEADER_BYTES:
                (size,) = _HEADER.unpack_from(buffer, offset)
                if size == 0:
                    raise ProtocolError(E_FRAME_EMPTY)
                if size > self._max_frame_bytes:
                    raise ProtocolError(E_FRAME_TOO_LARGE)
                start = offset + _HEADER_BYTES
                if end - start < size:
                    break
                offset = start + size
                frames.append(bytes(buffer[start:offset]))
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            self._offset = 0
            raise
        # Drop consumed bytes once they outweigh the rest, so each byte is moved O(1) times.
        if offset == end:
            buffer.clear()
            offset = 0
        elif offset > end - offset:
            del buffer[:offset]
            offset = 0
        self._offset = offset
        return frames
