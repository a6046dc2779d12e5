"""The links' error family: a refusal carries a stable code and a fixed message, never payload."""

from __future__ import annotations

__all__ = [
    "KNOWN_CODES",
    "E_BAD_SIGNATURE",
    "E_NOT_ALLOWED",
    "E_CONFLICT",
    "E_INVALID_RECORD",
    "E_NOT_PINNED",
    "E_UPDATE_PROHIBITED",
    "E_UNAVAILABLE",
    "E_FRAME_EMPTY",
    "E_FRAME_TOO_LARGE",
    "E_INVALID_FIELD",
    "E_MALFORMED",
    "E_SEQUENCE_GAP",
    "E_UNKNOWN_TYPE",
    "E_UNSUPPORTED_VERSION",
    "ConnectionClosed",
    "LinkError",
    "ProtocolError",
]

E_FRAME_EMPTY = "frame_empty"
E_FRAME_TOO_LARGE = "frame_too_large"
E_MALFORMED = "malformed"
E_UNKNOWN_TYPE = "unknown_type"
E_UNSUPPORTED_VERSION = "unsupported_version"
E_INVALID_FIELD = "invalid_field"
E_SEQUENCE_GAP = "sequence_gap"
E_BAD_SIGNATURE = "bad_signature"
E_NOT_ALLOWED = "not_allowed"
E_UNAVAILABLE = "unavailable"
E_NOT_PINNED = "not_pinned"
E_INVALID_RECORD = "invalid_record"
E_CONFLICT = "conflict"
E_UPDATE_PROHIBITED = "update_prohibited"

# One fixed message per code: the text is sent to the peer and logged, so it never varies with input.
_MESSAGES = {
    E_FRAME_EMPTY: "frame has zero length",
    E_FRAME_TOO_LARGE: "frame exceeds the size limit",
    E_MALFORMED: "message is not well-formed",
    E_UNKNOWN_TYPE: "message type is not known",
    E_UNSUPPORTED_VERSION: "message version is not supported",
    E_INVALID_FIELD: "message body fails validation",
    E_SEQUENCE_GAP: "sequence number is ahead of the expected one",
    E_BAD_SIGNATURE: "signature does not verify",
    E_NOT_ALLOWED: "message type is not accepted on this link",
    E_UNAVAILABLE: "service is temporarily unavailable; retry later",
    E_NOT_PINNED: "peer certificate is not pinned for this link",
    E_INVALID_RECORD: "update fails the domain model's validation",
    E_CONFLICT: "update does not fit the current file",
    E_UPDATE_PROHIBITED: "resident's record is under an update prohibition",
}


#: Every code this side knows (a code a peer sends back outside this set is treated as malformed).
KNOWN_CODES = frozenset(_MESSAGES)


class LinkError(Exception):
    """Base of every error raised by the links package."""


class ConnectionClosed(LinkError):
    """The peer closed the connection (or it broke) — not a protocol error."""


class ProtocolError(LinkError):
    """The peer broke the protocol; ``code`` (one of the ``E_*`` constants) is answered back.

    ``expected_seq`` is set for :data:`E_SEQUENCE_GAP`: the sequence number the peer must resend from.
    ``seq`` is the refused message's own sequence number when its envelope could be read.
    """

    def __init__(self, code: str, *, expected_seq: int | None = None, seq: int | None = None) -> None:
        if code not in _MESSAGES:
            raise ValueError(f"unknown protocol error code {code!r}")
        self.code = code
        self.expected_seq = expected_seq
        self.seq = seq
        super().__init__(f"{code}: {_MESSAGES[code]}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (self.code, self.expected_seq, self.seq))


def _rebuild(code: str, expected_seq: int | None, seq: int | None = None) -> ProtocolError:
    return ProtocolError(code, expected_seq=expected_seq, seq=seq)
