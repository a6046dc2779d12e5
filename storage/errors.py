"""The storage package's error family; LMDB errors are translated at the boundary."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage package raises."""


class StoreClosed(StorageError):
    """The store was closed (or failed closed) and refuses reads and writes."""


class CorruptValue(StorageError):
    """A stored value does not have the layout it must have."""
