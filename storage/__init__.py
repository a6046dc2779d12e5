"""The LMDB environment and its byte layouts.  Knows LMDB, never PKCS#11 (the service joins them)."""

from storage.errors import CorruptValue, StorageError, StoreClosed

__all__ = ["CorruptValue", "StorageError", "StoreClosed"]
