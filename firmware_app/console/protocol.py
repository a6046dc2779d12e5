"""The console's wire format (sans-IO): length-prefixed msgpack frames over the Unix socket.

Client → server: ``Request(v, id, cmd, args)``; ``id`` increases strictly within a connection
(a repeated or older id is refused as a replay).  Server → client: ``Response(v, id, ok, result,
error)``; the first frame the server sends is the greeting (id 0).  Requests are at most
``MAX_REQUEST_BYTES``; responses at most ``MAX_RESPONSE_BYTES`` (a room report).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from firmware_app.console.errors import E_MALFORMED, E_TOO_LARGE, ConsoleError
from firmware_app.links.errors import ProtocolError
from firmware_app.links.frames import FrameDecoder, encode_frame

__all__ = ["MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES", "VERSION", "Framer", "Request", "Response", "decode_request", "encode_request",
           "decode_response", "encode_response"]

VERSION = 1
MAX_REQUEST_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_ARG_CHARS = 1024

Arg = Annotated[str, msgspec.Meta(max_length=_ARG_CHARS)] | int | bool | None | Annotated[
    list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=1000)
]


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    id: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    cmd: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    args: Annotated[dict[Annotated[str, msgspec.Meta(max_length=32)], Arg], msgspec.Meta(max_length=32)] = {}

    def __repr__(self) -> str:
        return f"Request(id={self.id}, cmd={self.cmd!r}, <args redacted>)"


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str


class Response(msgspec.Struct, frozen=True):
    v: int
    id: int
    ok: bool
    result: Any = None
    error: ErrorBody | None = None


_ENCODER = msgspec.msgpack.Encoder()
_REQUEST = msgspec.msgpack.Decoder(Request)
_RESPONSE = msgspec.msgpack.Decoder(Response)


def encode_request(request: Request) -> bytes:
    return encode_frame(_ENCODER.encode(request), max_frame_bytes=MAX_REQUEST_BYTES)


def decode_request(body: bytes) -> Request:
    """A request, or ``ConsoleError(malformed)`` naming no content."""
    try:
        request = _REQUEST.decode(body)
    except msgspec.DecodeError:
        raise ConsoleError(E_MALFORMED, "malformed request") from None
    if request.v != VERSION:
        raise ConsoleError(E_MALFORMED, f"protocol version {request.v} is not supported")
    return request


def encode_response(response: Response) -> bytes:
    body = _ENCODER.encode(response)
    if len(body) > MAX_RESPONSE_BYTES:
        body = _ENCODER.encode(Response(VERSION, response.id, False, None, ErrorBody(E_TOO_LARGE, "response too large")))
    return encode_frame(body, max_frame_bytes=MAX_RESPONSE_BYTES)


def decode_response(body: bytes) -> Response:
    try:
        return _RESPONSE.decode(body)
    except msgspec.DecodeError:
        raise ConsoleError(E_MALFORMED, "malformed response") from None


def ok(request_id: int, result: object) -> Response:
    return Response(VERSION, request_id, True, result)


def failed(request_id: int, code: str, message: str) -> Response:
    return Response(VERSION, request_id, False, None, ErrorBody(code, message))


class Framer:
    """Splits a byte stream into frame bodies; translates the frame codec's errors to this package's."""

    def __init__(self, max_frame_bytes: int) -> None:
        self._decoder = FrameDecoder(max_frame_bytes)

    def feed(self, data: bytes) -> list[bytes]:
        try:
            return self._decoder.feed(data)
        except ProtocolError:
            raise ConsoleError(E_TOO_LARGE, "frame too large or empty") from None
