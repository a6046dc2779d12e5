"""The LMDB environment: named databases, read and write transactions, a map that grows by itself.

Every state change is one write transaction (``Store.write``) that commits durably before it
returns.  Readers never block the writer (LMDB MVCC); the only pause is a map resize, which
LMDB allows only while no transaction is open in the process, so a guard lets it wait for
readers to finish.  Writes are blocking: run them on one worker thread, never on the event loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import lmdb

from storage import layout
from storage.errors import StorageError, StoreClosed

T = TypeVar("T")

DEFAULT_MAP_SIZE_BYTES = 256 * 1024**2
MAX_MAP_SIZE_BYTES = 1024**4
_MAX_GROWTHS_PER_WRITE = 16


class _ResizeGuard:
    """Shared access for transactions, exclusive access for a map resize."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Reader:
    """Read access inside one transaction (a consistent snapshot)."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, lmdb._Database]) -> None:
        self._txn = txn
        self._dbs = dbs

    def get(self, db: str, key: bytes) -> bytes | None:
        """The value at ``key``, or None."""
        return self._txn.get(key, db=self._dbs[db])

    def count(self, db: str) -> int:
        """Number of entries in ``db``."""
        return self._txn.stat(self._dbs[db])["entries"]

    def items(self, db: str, start: bytes = b"", stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``start <= key < stop`` in key order (duplicates included)."""
        cursor = self._txn.cursor(self._dbs[db])
        if not cursor.set_range(start):
            return
        for key, value in cursor.iternext():
            if stop is not None and key >= stop:
                return
            yield key, value

    def prefix(self, db: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix``."""
        cursor = self._txn.cursor(self._dbs[db])
        if not cursor.set_range(prefix):
            return
        for key, value in cursor.iternext():
            if not key.startswith(prefix):
                return
            yield key, value

    def last(self, db: str) -> tuple[bytes, bytes] | None:
        """The entry with the greatest key, or None when ``db`` is empty."""
        cursor = self._txn.cursor(self._dbs[db])
        return (cursor.key(), cursor.value()) if cursor.last() else None

    def dup_count(self, db: str, key: bytes) -> int:
        """How many values a duplicate-sorted index holds at ``key``."""
        cursor = self._txn.cursor(self._dbs[db])
        return cursor.count() if cursor.set_key(key) else 0

    def dup_values(self, db: str, key: bytes) -> list[bytes]:
        """All values a duplicate-sorted index holds at ``key``, in order."""
        cursor = self._txn.cursor(self._dbs[db])
        if not cursor.set_key(key):
            return []
        return list(cursor.iternext_dup(keys=False))

    def has_dup(self, db: str, key: bytes, value: bytes) -> bool:
        """True when a duplicate-sorted index holds exactly ``key`` → ``value``."""
        return self._txn.cursor(self._dbs[db]).set_key_dup(key, value)


class Writer(Reader):
    """Write access inside the one write transaction."""

    def put(self, db: str, key: bytes, value: bytes, *, overwrite: bool = True) -> bool:
        """Store ``key`` → ``value``; False when ``overwrite`` is off and the key exists."""
        return self._txn.put(key, value, db=self._dbs[db], overwrite=overwrite)

    def delete(self, db: str, key: bytes, value: bytes = b"") -> bool:
        """Delete ``key`` (or only ``key`` → ``value`` in a duplicate-sorted index)."""
        return self._txn.delete(key, value, db=self._dbs[db])

    def pop_range(self, db: str, start: bytes, stop: bytes, limit: int) -> list[bytes]:
        """Delete up to ``limit`` entries with ``start <= key < stop`` in key order, walking one
        cursor (no descent from the root per key); returns the keys deleted."""
        cursor = self._txn.cursor(self._dbs[db])
        deleted: list[bytes] = []
        if not cursor.set_range(start):
            return deleted
        while len(deleted) < limit:
            key = cursor.key()
            if not key or key >= stop:
                break
            deleted.append(key)
            if not cursor.delete():
                break
        return deleted

    def delete_sorted(self, db: str, keys: Iterable[bytes]) -> int:
        """Delete keys given in ascending order with one cursor; returns how many existed."""
        cursor = self._txn.cursor(self._dbs[db])
        deleted = 0
        for key in keys:
            if cursor.set_key(key):
                deleted += cursor.delete()
        return deleted

    def put_sorted(self, db: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Bulk insert of items already sorted by key (and value for indexes); returns how many were new."""
        # An index keeps many codes per key; a pair already present is not new (dupdata off).
        dup = db in layout.INDEXES
        consumed, added = self._txn.cursor(self._dbs[db]).putmulti(items, dupdata=False, overwrite=dup)
        return added


class Store:
    """The identity file's LMDB environment."""

    def __init__(self, path: Path, *, map_size_bytes: int = DEFAULT_MAP_SIZE_BYTES, sync: bool = True) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
        self.path = path
        old_umask = os.umask(0o077)
        try:
            self._env = lmdb.open(
                str(path),
                map_size=map_size_bytes,
                max_dbs=len(layout.ALL) + 8,
                subdir=True,
                sync=sync,
                metasync=sync,
                # meminit stays on: LMDB must not copy uninitialised heap (possibly plaintext) into the file.
                meminit=True,
                readahead=False,
                max_readers=256,
                mode=0o600,
            )
        except lmdb.Error as exc:
            raise StorageError(f"LMDB environment could not be opened ({type(exc).__name__})") from None
        finally:
            os.umask(old_umask)
        self._dbs: dict[str, lmdb._Database] = {}
        try:
            self._open_dbs()
        except BaseException:
            self._env.close()
            raise
        self._guard = _ResizeGuard()
        self._write_lock = threading.Lock()
        self._closed = False

    def _open_dbs(self) -> None:
        with self._env.begin(write=True) as txn:
            for name in layout.PLAIN:
                self._dbs[name] = self._env.open_db(name.encode(), txn=txn)
            for name in layout.INDEXES:
                self._dbs[name] = self._env.open_db(name.encode(), txn=txn, dupsort=True, dupfixed=True)
            stored = txn.get(b"schema", db=self._dbs[layout.META])
            if stored is None:
                txn.put(b"schema", layout.SCHEMA_VERSION, db=self._dbs[layout.META])
            elif stored != layout.SCHEMA_VERSION:
                raise StorageError("LMDB schema version is not one this software reads")

    def __repr__(self) -> str:
        return f"Store(path={str(self.path)!r})"

    @property
    def map_size_bytes(self) -> int:
        """The current map size."""
        return self._env.info()["map_size"]

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A read-only snapshot; keep it short (a long reader delays map growth)."""
        if self._closed:
            raise StoreClosed("store is closed")
        with self._guard.shared():
            try:
                with self._env.begin(buffers=False) as txn:
                    yield Reader(txn, self._dbs)
            except lmdb.Error as exc:
                raise StorageError(f"LMDB read failed ({type(exc).__name__})") from None

    def write(self, fn: Callable[[Writer], T]) -> T:
        """Run ``fn`` in one write transaction and commit it durably.

        If the map is full the transaction is aborted, the map doubled and ``fn`` run again, so
        ``fn`` must have no effect outside the transaction.  An exception from ``fn`` aborts it.
        """
        if self._closed:
            raise StoreClosed("store is closed")
        with self._write_lock:
            for _ in range(_MAX_GROWTHS_PER_WRITE):
                try:
                    with self._guard.shared():
                        with self._env.begin(write=True) as txn:
                            return fn(Writer(txn, self._dbs))
                except lmdb.MapFullError:
                    self._grow()
                except lmdb.Error as exc:
                    raise StorageError(f"LMDB write failed ({type(exc).__name__})") from None
            raise StorageError("LMDB map could not grow enough for one transaction")

    def _grow(self) -> None:
        new_size = min(self.map_size_bytes * 2, MAX_MAP_SIZE_BYTES)
        if new_size <= self.map_size_bytes:
            raise StorageError("LMDB map is at its maximum size")
        with self._guard.exclusive():
            self._env.set_mapsize(new_size)

    def copy_to(self, path: Path) -> None:
        """Write a consistent copy of the environment as ``path/data.mdb`` (``path`` must exist, empty).

        LMDB's copy (``mdb_env_copy2``) reads from one read transaction, so the copy is a committed
        state even while this or another process keeps writing; it holds the pages up to the
        snapshot's last one (free pages inside included).  Describe the copy by opening it
        (:func:`read_copy`), not this store: the store moves on meanwhile.

        Not the compacting copy (``MDB_CP_COMPACT``): the LMDB 0.9.36 bundled with py-lmdb 3.0.0
        crashes with SIGSEGV in it as soon as a dupsort+dupfixed database has a key with enough
        duplicates to need a sub-database (every index at a million residents; 50 keys with 1,000
        five-byte duplicates each are enough).  The copy holds the map-growth guard for its
        duration: a writer that needs a bigger map waits until it ends.
        """
        if self._closed:
            raise StoreClosed("store is closed")
        old_umask = os.umask(0o077)
        try:
            try:
                self._copy(path)
            except lmdb.MapResizedError:
                # Another process (the daemon) grew the map past ours: adopt its size, once.
                with self._guard.exclusive():
                    self._env.set_mapsize(0)
                self._copy(path)
        except lmdb.Error as exc:
            raise StorageError(f"LMDB copy failed ({type(exc).__name__})") from None
        finally:
            os.umask(old_umask)

    def _copy(self, path: Path) -> None:
        with self._guard.shared():
            self._env.copy(str(path), compact=False)

    def file_bytes(self) -> int:
        """Size of the data file on disk."""
        return (self.path / "data.mdb").stat().st_size

    def used_bytes(self) -> int:
        """Bytes of the data file LMDB has ever used (pages up to the last one allocated)."""
        return (self._env.info()["last_pgno"] + 1) * self._env.stat()["psize"]

    def close(self) -> None:
        """Close the environment; later calls raise ``StoreClosed``."""
        if not self._closed:
            self._closed = True
            with self._write_lock, self._guard.exclusive():
                self._env.close()


@contextmanager
def read_copy(path: Path) -> Iterator[Reader]:
    """Read a copy of the environment (``path/data.mdb``, e.g. a backup) without writing to it:
    read-only, no lock file.  Named databases absent from the copy are absent from the reader."""
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True, max_dbs=len(layout.ALL) + 8, readahead=False)
    except lmdb.Error as exc:
        raise StorageError(f"LMDB copy could not be opened ({type(exc).__name__})") from None
    try:
        with env.begin(buffers=False) as txn:
            dbs: dict[str, lmdb._Database] = {}
            for name in layout.ALL:
                try:
                    dbs[name] = env.open_db(name.encode(), txn=txn, create=False, dupsort=name in layout.INDEXES, dupfixed=name in layout.INDEXES)
                except lmdb.NotFoundError:
                    continue
            yield Reader(txn, dbs)
    except lmdb.Error as exc:
        raise StorageError(f"LMDB copy could not be read ({type(exc).__name__})") from None
    finally:
        env.close()


def store_in_use(path: Path) -> bool:
    """True when another process has the environment at ``path`` open (a running ``csd``).

    Every process that opens an LMDB environment holds a shared ``fcntl`` lock on the first byte of
    ``lock.mdb``; a non-blocking exclusive lock on it fails exactly then.  Never call this on an
    environment this process has open: closing the probe's descriptor would drop this process's
    own lock on the file.
    """
    lock_file = path / "lock.mdb"
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
        return False
    finally:
        os.close(fd)
