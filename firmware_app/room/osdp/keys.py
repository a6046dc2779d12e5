"""A reader's secure-channel base key (SCBK) read from its own file, never from the configuration.

The file holds 32 hex digits (whitespace around them ignored).  It must be a regular file owned
by the daemon's user or by root and closed to group and others (0600 or 0400, as a systemd
credential under /run/credentials/ is);
the default install-mode key and an all-zero key are refused.  Errors name the file's role,
never its contents.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from firmware_app.room.osdp.errors import KeyFileError
from firmware_app.room.osdp.handshake import SCBK_DEFAULT

__all__ = ["SCBK_BYTES", "load_scbk_blocking"]

SCBK_BYTES = 16
_MAX_FILE_BYTES = 256


def load_scbk_blocking(path: Path) -> bytes:
    """The 16-byte SCBK in ``path`` (blocking file I/O: call off the event loop)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise KeyFileError(f"reader key file cannot be opened ({type(exc).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError("reader key file is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError("reader key file is readable by group or others (chmod 0600)")
        if st.st_uid not in (os.geteuid(), 0):
            raise KeyFileError("reader key file is not owned by the daemon's user or root")
        raw = os.read(fd, _MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE_BYTES:
        raise KeyFileError("reader key file is too long")
    try:
        text = raw.decode("ascii").strip()
        key = bytes.fromhex(text) if len(text) == 2 * SCBK_BYTES else b""
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != SCBK_BYTES:
        raise KeyFileError(f"reader key file must hold {2 * SCBK_BYTES} hex digits")
    if key in (SCBK_DEFAULT, bytes(SCBK_BYTES)):
        raise KeyFileError("reader key file holds the default install-mode key or zeros")
    return key
