"""The OSDP adapter's errors: one family under the room's, with no card bits or key bytes in them."""

from __future__ import annotations

from firmware_app.room.errors import RoomConfigError, RoomError

__all__ = ["DecodeError", "KeyFileError", "OsdpConfigError", "OsdpError"]


class OsdpError(RoomError):
    """Base of every error the OSDP adapter raises."""


class DecodeError(OsdpError):
    """Raw card bits are not a valid credential (bad length, padding or parity)."""


class KeyFileError(OsdpError):
    """A reader's secure-channel key file is missing, too open or malformed (never its contents)."""


class OsdpConfigError(OsdpError, RoomConfigError):
    """The ``[room.osdp]`` table is not usable; the message names the key."""
