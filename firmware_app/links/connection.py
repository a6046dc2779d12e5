"""A framed, decoded message stream over an asyncio stream pair: the thin adapter between the
sans-IO codecs (frames, messages) and a TLS socket."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque

import msgspec

from firmware_app.links.errors import ConnectionClosed, ProtocolError
from firmware_app.links.frames import FrameDecoder
from firmware_app.links.messages import ErrorReport, Message, MessageCodec

__all__ = ["Connection"]

_READ_BYTES = 256 * 1024
#: Flow control: ``send`` callers await ``drain`` once this much is buffered for the peer.
_HIGH_WATER_BYTES = 1 << 20


class Connection:
    """One peer's messages in and out.  ``recv`` raises ProtocolError for a bad message; when
    ``broken`` is then True the byte stream is out of sync and the connection must be closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: MessageCodec, *, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = codec
        self._decoder = FrameDecoder(codec.max_frame_bytes)
        self._frames: deque[bytes] = deque()
        self.name = name
        self.bytes_in = 0
        self.bytes_out = 0

    def __repr__(self) -> str:
        return f"Connection({self.name!r})"

    @property
    def broken(self) -> bool:
        """True after a framing error: nothing more can be read from this stream."""
        return self._decoder.broken

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS state of the connection (for the pin check)."""
        return self._writer.get_extra_info("ssl_object")

    async def recv(self) -> Message:
        """The next message; ``ConnectionClosed`` at end of stream."""
        while not self._frames:
            try:
                data = await self._reader.read(_READ_BYTES)
            except (ConnectionError, ssl.SSLError, OSError):
                raise ConnectionClosed("connection broke") from None
            if not data:
                raise ConnectionClosed("peer closed the connection")
            self.bytes_in += len(data)
            self._frames.extend(self._decoder.feed(data))
        return self._codec.decode(self._frames.popleft())

    def send(self, type_name: str, seq: int, body: msgspec.Struct) -> None:
        """Queue one message (call ``drain`` to wait for the peer to take it)."""
        frame = self._codec.encode(type_name, seq, body)
        self.bytes_out += len(frame)
        self._writer.write(frame)

    def send_error(self, error: ProtocolError, *, field: str | None = None, item: int | None = None) -> None:
        """Answer a refusal with its code (and where to resume, for a sequenced stream)."""
        seq = error.seq if error.seq is not None else 0
        self.send("error", seq, ErrorReport(error.code, expected_seq=error.expected_seq, field=field, item=item))

    def transport_state(self) -> str:
        """Flow-control state of the transport, for diagnostics."""
        transport = self._writer.transport
        if transport is None or transport.is_closing():
            return "closed"
        reading = "reading" if transport.is_reading() else "paused"
        return f"{reading} buffered_in={len(self._reader._buffer)} frames_ready={len(self._frames)} out={transport.get_write_buffer_size()}"

    @property
    def needs_drain(self) -> bool:
        """True when enough is buffered that the sender should wait for the peer."""
        transport = self._writer.transport
        return transport is not None and transport.get_write_buffer_size() > _HIGH_WATER_BYTES

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            raise ConnectionClosed("connection broke") from None

    def close_soon(self) -> None:
        """Close after what is queued has been written; a pending ``recv`` then sees the end."""
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Flush what is queued (bounded in time) and close."""
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), timeout_s)
