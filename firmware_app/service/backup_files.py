"""File-system steps of backups and restores: private files, durable writes, atomic swaps.

A backup or restore must never leave a half-written result where a complete one is expected, so
everything is written into a temporary sibling directory, fsynced, and renamed into place; a
restore over an existing store swaps the two directories in one ``renameat2(RENAME_EXCHANGE)``.
Copies stream through a fixed buffer, so memory stays bounded whatever the size of the store.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import shutil
from pathlib import Path

__all__ = [
    "COPY_BUFFER_BYTES",
    "copy_and_hash",
    "exchange_or_replace",
    "fsync_dir",
    "fsync_file",
    "hash_file",
    "is_empty_dir",
    "make_private_dir",
    "publish_dir",
    "temporary_sibling",
    "write_private_file",
]

COPY_BUFFER_BYTES = 4 * 1024 * 1024
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def is_empty_dir(path: Path) -> bool:
    """True when ``path`` does not exist or is an empty directory."""
    if not path.exists():
        return True
    return path.is_dir() and not any(path.iterdir())


def make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700); its parents may exist already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    path.chmod(0o700)


def temporary_sibling(path: Path, purpose: str) -> Path:
    """A fresh private directory next to ``path`` (same file system, so a rename moves it into place)."""
    tmp = path.parent / f".{path.name}.{purpose}-{secrets.token_hex(4)}"
    make_private_dir(tmp)
    return tmp


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created or renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's data durable (one written by a copy that did not sync it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600, must not exist) with ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read through a fixed buffer."""
    digest = hashlib.sha256()
    size_bytes = 0
    buffer = bytearray(COPY_BUFFER_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size_bytes += n
    return size_bytes, digest.hexdigest()


def copy_and_hash(source: Path, target: Path) -> tuple[int, str]:
    """Copy ``source`` to a new private file ``target`` (fsynced) and return the copy's (size, SHA-256)
    in the same pass, so a restore reads the backup once."""
    digest = hashlib.sha256()
    size_bytes = 0
    buffer = bytearray(COPY_BUFFER_BYTES)
    view = memoryview(buffer)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(source, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                chunk = view[:n]
                digest.update(chunk)
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
                size_bytes += n
        os.fsync(fd)
    finally:
        os.close(fd)
    return size_bytes, digest.hexdigest()


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when the kernel or C library cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err))


def publish_dir(tmp: Path, out_dir: Path) -> None:
    """Put the finished directory ``tmp`` at ``out_dir`` (absent or empty), durably: its entries
    synced, the rename synced in the parent."""
    fsync_dir(tmp)
    if out_dir.exists():
        out_dir.rmdir()  # empty: the callers check before they write
    tmp.rename(out_dir)
    fsync_dir(out_dir.parent)


def exchange_or_replace(new: Path, target: Path) -> None:
    """Put directory ``new`` at ``target``; an existing ``target`` is removed after the swap.

    With ``renameat2(RENAME_EXCHANGE)`` there is no moment without a complete directory at
    ``target``.  Without it, the old directory is renamed aside first; a crash between the two
    renames leaves both, complete, under their temporary names, and nothing half-written.
    """
    if not target.exists():
        os.rename(new, target)
        fsync_dir(target.parent)
        return
    if _rename_exchange(new, target):
        fsync_dir(target.parent)
        shutil.rmtree(new)  # ``new`` now names the old directory
        return
    aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.rename(target, aside)
    os.rename(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(aside)
