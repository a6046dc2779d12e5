"""Wire messages of the range-digest exchange (msgpack, array-like frozen structs)."""

from __future__ import annotations

import msgspec


class Ask(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    """Asks about range [lo, hi); ``digest`` (the asker's) lets the answer be Same."""

    lo: int
    hi: int
    digest: bytes | None = None


class Request(msgspec.Struct, frozen=True, array_like=True):
    """One round's questions, a whole tree level at a time."""

    asks: tuple[Ask, ...]


class Same(msgspec.Struct, frozen=True, array_like=True, tag=0):
    """The range's digest equals the asker's."""


class Children(msgspec.Struct, frozen=True, array_like=True, tag=1):
    """The digests of the range's ``fanout`` sub-ranges, concatenated (32 bytes each)."""

    digests: bytes


class Leaves(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """Every leaf of the range, as concatenated code5 || digest records."""

    records: bytes


Reply = Same | Children | Leaves


class Response(msgspec.Struct, frozen=True, array_like=True):
    """The replies to one Request, in the order of its asks."""

    replies: tuple[Reply, ...]


encode = msgspec.msgpack.encode
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)


def decode_request(data: bytes) -> Request:
    """A Request from its wire bytes."""
    return _request_decoder.decode(data)


def decode_response(data: bytes) -> Response:
    """A Response from its wire bytes."""
    return _response_decoder.decode(data)
