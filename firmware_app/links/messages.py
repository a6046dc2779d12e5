"""Message envelopes ``{t, v, s, b}`` in msgpack, and the registry of body types by (type, version)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal

import msgspec

from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.rules import TEXT_LIMITS
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
    "Ack",
    "CardEvent",
    "ErrorReport",
    "IdentityChange",
    "Message",
    "MessageCodec",
    "Notify",
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
_Date = Annotated[str, msgspec.Meta(min_length=8, max_length=8, pattern=r"\A[0-9]+\Z")]
_IndividualNumber = Annotated[str, msgspec.Meta(max_length=12, pattern=r"\A(?:[0-9]{12})?\Z")]

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=TEXT_LIMITS["name_kanji"][1])]
_Address = Annotated[str, msgspec.Meta(min_length=1, max_length=TEXT_LIMITS["address"][1])]
_FormerSurname = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["former_surname_kanji"][1])]


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    t: _TypeName
    v: _Version
    s: _Seq
    b: msgspec.Raw


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of message bodies: frozen, and unknown fields are refused."""


class _PersonalBody(_Body, frozen=True, forbid_unknown_fields=True):
    """A body carrying personal data, which its repr must not reveal."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


class Ack(_Body, frozen=True, forbid_unknown_fields=True):
    """The receiver applied (or had already applied) message ``seq``."""

    seq: _Seq


class ErrorReport(_Body, frozen=True, forbid_unknown_fields=True):
    """The receiver refused a message; ``expected_seq`` is set for a sequence gap."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=_TYPE_PATTERN)]
    expected_seq: _Seq | None = None


class IdentityChange(_PersonalBody, frozen=True, forbid_unknown_fields=True):
    """Register → CS: one resident's record created, modified or removed (size bounded by the frame)."""

    op: Literal["create", "modify", "remove"]
    record: IdentityRecord


class CardEvent(_PersonalBody, frozen=True, forbid_unknown_fields=True):
    """Register → CS: an event in the life of a resident's card."""

    kind: Literal["issue", "revoke", "loss", "return", "suspension_lift"]
    resident_code: _ResidentCode
    occurred_on: _Date


class Notify(_PersonalBody, frozen=True, forbid_unknown_fields=True):
    """CS → prefecture: the notice of a change, signed by the CS."""

    resident_code: _ResidentCode
    name: _Name
    birth_date: _Date
    sex: Annotated[str, msgspec.Meta(min_length=1, max_length=1)]
    address: _Address
    former_surname: _FormerSurname
    individual_number: _IndividualNumber
    change_reason: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    change_date: _Date
    signature: Annotated[bytes, msgspec.Meta(max_length=128)]


DEFAULT_REGISTRY: Mapping[tuple[str, int], type[msgspec.Struct]] = MappingProxyType({
    ("ack", 1): Ack,
    ("error", 1): ErrorReport,
    ("identity_change", 1): IdentityChange,
    ("card_event", 1): CardEvent,
    ("notify", 1): Notify,
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
            raise ProtocolError(E_UNSUPPORTED_VERSION if known else E_UNKNOWN_TYPE)
        try:
            body = decoder.decode(envelope.b)
        except msgspec.ValidationError:
            raise ProtocolError(E_INVALID_FIELD) from None
        except _MALFORMED_ERRORS:
            raise ProtocolError(E_MALFORMED) from None
        return Message(envelope.t, envelope.v, envelope.s, body)
