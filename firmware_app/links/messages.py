"""Message envelopes ``{t, v, s, b}`` in msgpack, and the registry of body types by (type, version)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal

import msgspec

from firmware_app.domain.check_item import CheckItem
from firmware_app.domain.destination import DestinationRecord
from firmware_app.domain.updates import CardEvent, IdentityChange, MoveOutCertificate
from firmware_app.links.errors import (
    E_INVALID_FIELD,
    E_MALFORMED,
    E_UNKNOWN_TYPE,
    E_UNSUPPORTED_VERSION,
    ProtocolError,
)
from firmware_app.links.frames import DEFAULT_MAX_FRAME_BYTES, encode_frame

__all__ = [
    "DEFAULT_REGISTRY",
    "MAX_BATCH_ENTRIES",
    "MAX_ENTRY_BYTES",
    "Ack",
    "CheckChunk",
    "CheckEnd",
    "CheckRequest",
    "DigestReply",
    "DigestRequest",
    "ErrorReport",
    "ItemsReply",
    "ItemsRequest",
    "Message",
    "MessageCodec",
    "MoveOutReply",
    "MoveOutRequest",
    "OutboxBatch",
    "Query",
    "QueryResult",
    "Resume",
]

_SEQ_LIMIT = 2**63
# Besides DecodeError, msgspec raises these on invalid UTF-8 and on nesting deeper than its limit.
_MALFORMED_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_TYPE_PATTERN = r"\A[a-z_]{1,32}\Z"

_Seq = Annotated[int, msgspec.Meta(ge=0, le=_SEQ_LIMIT - 1)]
_TYPE_NAME = re.compile(_TYPE_PATTERN)
# Only bounded here: the pattern is checked for names outside the registry, off the hot path.
_TypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
_Version = Annotated[int, msgspec.Meta(ge=1, le=255)]
_ResidentCode = Annotated[str, msgspec.Meta(min_length=11, max_length=11, pattern=r"\A[0-9]+\Z")]

#: Limits of an outbox batch: entries per frame and bytes per entry (a destination record is the largest).
MAX_BATCH_ENTRIES = 1024
MAX_ENTRY_BYTES = 16 * 1024
MAX_QUERY_RESULTS = 100
#: Check data and digest exchanges travel in pieces below the default frame limit.
MAX_CHUNK_BYTES = 960 * 1024
MAX_ITEMS_CODES = 5_000


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    t: _TypeName
    v: _Version
    s: _Seq
    b: msgspec.Raw


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the link's own message bodies: frozen, and unknown fields are refused."""


class Ack(_Body, frozen=True, forbid_unknown_fields=True):
    """Cumulative: the receiver has committed every message up to and including ``seq``."""

    seq: _Seq


class ErrorReport(_Body, frozen=True, forbid_unknown_fields=True):
    """The receiver refused a message (the envelope's ``s`` names it, 0 when unknown).

    ``expected_seq`` is where the sender must resume (a gap, or an update refused for its content);
    ``field`` and ``item`` name what failed validation, never its value.
    """

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=_TYPE_PATTERN)]
    expected_seq: _Seq | None = None
    field: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    item: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None


class Resume(_Body, frozen=True, forbid_unknown_fields=True):
    """Sent by the receiving side of a sequenced stream as soon as the connection is up: the first
    sequence number it has not committed, so the sender resumes there after a restart or a break."""

    next_seq: Annotated[int, msgspec.Meta(ge=1, le=_SEQ_LIMIT - 1)]


_Entry = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_ENTRY_BYTES)]


class OutboxBatch(_Body, frozen=True, forbid_unknown_fields=True):
    """CS → prefecture or card system: consecutive outbox entries from the envelope's ``s`` on, as
    their canonical bytes, with one HSM signature over them (see :mod:`firmware_app.links.batch`)."""

    entries: Annotated[list[_Entry], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ENTRIES)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class MoveOutRequest(_Body, frozen=True, forbid_unknown_fields=True):
    """Register → CS: the move-out certificate for a special move-in being filed (``s`` = request id)."""

    resident_code: _ResidentCode


class MoveOutReply(_Body, frozen=True, forbid_unknown_fields=True):
    """CS → register: the certificate, or None when none is waiting (``s`` = the request's id)."""

    certificate: MoveOutCertificate | None

    def __repr__(self) -> str:
        return "MoveOutReply(<redacted>)"


class Query(_Body, frozen=True, forbid_unknown_fields=True):
    """CS → national server: an identity query (CS function 5) by one key (``s`` = request id)."""

    by: Literal["code", "number", "four"]
    resident_code: Annotated[str, msgspec.Meta(max_length=11)] = ""
    individual_number: Annotated[str, msgspec.Meta(max_length=12)] = ""
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    sex: Annotated[str, msgspec.Meta(max_length=1)] = ""
    birth_date: Annotated[str, msgspec.Meta(max_length=8)] = ""
    address: Annotated[str, msgspec.Meta(max_length=200)] = ""

    def __repr__(self) -> str:
        return f"Query(by={self.by!r}, <redacted>)"


class QueryResult(_Body, frozen=True, forbid_unknown_fields=True):
    """National server → CS: the matching residents' nine items (``s`` = the query's id)."""

    items: Annotated[list[CheckItem], msgspec.Meta(max_length=MAX_QUERY_RESULTS)]

    def __repr__(self) -> str:
        return f"QueryResult({len(self.items)} items)"


class CheckRequest(_Body, frozen=True, forbid_unknown_fields=True):
    """Prefecture or national → CS: send the full check data (``s`` = request id); ``context`` (a
    nonce) goes into the signed trailer so an old answer cannot be replayed for this request."""

    context: Annotated[bytes, msgspec.Meta(max_length=64)] = b""


class CheckChunk(_Body, frozen=True, forbid_unknown_fields=True):
    """CS → requester: a run of framed check items (``s`` = the request's id)."""

    framed: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_BYTES)]

    def __repr__(self) -> str:
        return f"CheckChunk({len(self.framed)} bytes)"


class CheckEnd(_Body, frozen=True, forbid_unknown_fields=True):
    """CS → requester: the signed trailer closing the check data (``s`` = the request's id)."""

    trailer: Annotated[bytes, msgspec.Meta(max_length=512)]


class DigestRequest(_Body, frozen=True, forbid_unknown_fields=True):
    """One round of the range-digest exchange (a ``consistency.messages.Request``, encoded)."""

    request: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_BYTES)]


class DigestReply(_Body, frozen=True, forbid_unknown_fields=True):
    """The CS's ``consistency.messages.Response`` to one round, encoded."""

    response: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_BYTES)]


class ItemsRequest(_Body, frozen=True, forbid_unknown_fields=True):
    """The check items of the residents a reconciliation found different (``s`` = request id)."""

    codes: Annotated[list[Annotated[int, msgspec.Meta(ge=0, lt=10**11)]], msgspec.Meta(max_length=MAX_ITEMS_CODES)]


class ItemsReply(_Body, frozen=True, forbid_unknown_fields=True):
    """The framed check items of those residents still in the file (``s`` = the request's id)."""

    framed: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_BYTES)]

    def __repr__(self) -> str:
        return f"ItemsReply({len(self.framed)} bytes)"


DEFAULT_REGISTRY: Mapping[tuple[str, int], type[msgspec.Struct]] = MappingProxyType({
    ("ack", 1): Ack,
    ("error", 1): ErrorReport,
    ("resume", 1): Resume,
    ("identity_change", 1): IdentityChange,
    ("card_event", 1): CardEvent,
    ("destination", 1): DestinationRecord,
    ("moveout_certificate", 1): MoveOutCertificate,
    ("moveout_request", 1): MoveOutRequest,
    ("moveout_reply", 1): MoveOutReply,
    ("outbox_batch", 1): OutboxBatch,
    ("query", 1): Query,
    ("query_result", 1): QueryResult,
    ("check_request", 1): CheckRequest,
    ("check_chunk", 1): CheckChunk,
    ("check_end", 1): CheckEnd,
    ("digest_request", 1): DigestRequest,
    ("digest_reply", 1): DigestReply,
    ("items_request", 1): ItemsRequest,
    ("items_reply", 1): ItemsReply,
})


class Message(msgspec.Struct, frozen=True):
    """One decoded message: its type, version, sequence number and validated body."""

    type: str
    version: int
    seq: int
    body: msgspec.Struct

    def __repr__(self) -> str:
        # The body may hold personal data; a log line or traceback shows only the envelope.
        return f"Message(type={self.type!r}, version={self.version}, seq={self.seq})"


class MessageCodec:
    """Encodes bodies to whole frames and decodes frame bodies to :class:`Message`, for one registry."""

    def __init__(
        self,
        registry: Mapping[tuple[str, int], type[msgspec.Struct]] = DEFAULT_REGISTRY,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        for type_name, version in registry:
            if not _TYPE_NAME.match(type_name) or not 1 <= version <= 255:
                raise ValueError(f"bad registry key {(type_name, version)!r}")
        self.max_frame_bytes = max_frame_bytes
        self._decoders = {key: msgspec.msgpack.Decoder(cls) for key, cls in registry.items()}
        self._versions = {(key[0], cls): key[1] for key, cls in registry.items()}
        self._types = frozenset(type_name for type_name, _ in registry)
        self._envelope = msgspec.msgpack.Decoder(_Envelope)
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, type_name: str, seq: int, body: msgspec.Struct) -> bytes:
        """A whole frame carrying ``body`` as ``type_name`` at the version registered for its class.

        The body is not validated against its constraints here; the receiver does that.
        """
        version = self._versions.get((type_name, type(body)))
        if version is None:
            raise TypeError(f"{type(body).__name__} is not registered as {type_name!r}")
        if not 0 <= seq < _SEQ_LIMIT:
            raise ValueError("seq must be in [0, 2**63)")
        data = self._encoder.encode({"t": type_name, "v": version, "s": seq, "b": body})
        return encode_frame(data, max_frame_bytes=self.max_frame_bytes)

    def decode(self, frame_body: bytes) -> Message:
        """The message in ``frame_body``; every failure is a ProtocolError with a fixed message."""
        try:
            envelope = self._envelope.decode(frame_body)
        except _MALFORMED_ERRORS:
            raise ProtocolError(E_MALFORMED) from None
        decoder = self._decoders.get((envelope.t, envelope.v))
        if decoder is None:
            if _TYPE_NAME.match(envelope.t) is None:
                raise ProtocolError(E_MALFORMED)
            known = envelope.t in self._types
            raise ProtocolError(E_UNSUPPORTED_VERSION if known else E_UNKNOWN_TYPE, seq=envelope.s)
        try:
            body = decoder.decode(envelope.b)
        except msgspec.ValidationError:
            raise ProtocolError(E_INVALID_FIELD, seq=envelope.s) from None
        except _MALFORMED_ERRORS:
            raise ProtocolError(E_MALFORMED, seq=envelope.s) from None
        return Message(envelope.t, envelope.v, envelope.s, body)
