"""Room events the OSDP adapter needs that ``firmware_app.room.events`` does not have yet.

Same shape and conventions as that module; to move there (see /work/notes/osdp-needs.md).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReaderKeyMismatch"]


@dataclass(frozen=True, slots=True)
class ReaderKeyMismatch:
    """A reader failed the secure-channel handshake with its configured key (a wrong key or a
    swapped reader): it is kept offline and never re-keyed."""

    reader: str
