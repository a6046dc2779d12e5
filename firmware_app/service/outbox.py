"""A transactional outbox: entries staged in the same LMDB transaction as the change that caused
them, sent in sequence order, deleted once the peer acknowledged them.

Keys are 8-byte big-endian sequence numbers from 1; ``meta`` holds the next number to assign and
the highest acknowledged one.  Values are sealed under the outbox data key, bound to table, key
and key id, so an entry moved to another sequence number no longer opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from firmware_app.service.keyring import Keyring, SealingKey, seal_value
from storage import layout
from storage.errors import CorruptValue
from storage.store import Reader, Store, Writer

__all__ = ["Outbox", "OutboxState", "SignedBatch"]

_VERSION = 1


@dataclass(frozen=True)
class OutboxState:
    """How far an outbox has got: the next sequence number to assign and the highest acknowledged."""

    next_seq: int
    acked_through: int

    @property
    def depth(self) -> int:
        """Entries staged and not yet acknowledged."""
        return self.next_seq - 1 - self.acked_through


@dataclass(frozen=True)
class SignedBatch:
    """Consecutive outbox entries from ``first_seq`` and the HSM's signature over them."""

    first_seq: int
    entries: list[bytes]
    signature: bytes


class Outbox:
    """One peer's outbox in table ``table`` (``layout.OUTBOX_PREF`` or ``layout.OUTBOX_NATIONAL``)."""

    def __init__(self, store: Store, keyring: Keyring, table: str) -> None:
        if table not in layout.OUTBOXES:
            raise ValueError("not an outbox table")
        self.table = table
        self._store = store
        self._keyring = keyring
        self._next_key = f"outbox_next:{table}".encode()
        self._acked_key = f"outbox_acked:{table}".encode()

    def __repr__(self) -> str:
        return f"Outbox({self.table!r})"

    def state_in(self, r: Reader) -> OutboxState:
        """The outbox's cursors as seen by the caller's transaction."""
        next_value = r.get(layout.META, self._next_key)
        acked_value = r.get(layout.META, self._acked_key)
        return OutboxState(
            1 if next_value is None else layout.unpack_u64(next_value),
            0 if acked_value is None else layout.unpack_u64(acked_value),
        )

    def state_blocking(self) -> OutboxState:
        """The outbox's cursors as committed."""
        with self._store.read() as r:
            return self.state_in(r)

    def stage(self, w: Writer, entries: list[bytes], *, keys: Sequence[SealingKey | None] | None = None) -> int:
        """Seal and append ``entries`` (canonical bytes) inside the caller's transaction; returns
        the sequence number of the first (nothing is appended for an empty list).  ``keys`` may name
        another key per entry (a retention epoch's, so the entry can be erased with it)."""
        first = self.state_in(w).next_seq
        if not entries:
            return first
        default = self._keyring.outbox_key()
        seq = first
        for index, data in enumerate(entries):
            key = (keys[index] if keys is not None else None) or default
            skey = layout.pack_u64(seq)
            w.put(self.table, skey, seal_value(key, self.table, skey, _VERSION, data), overwrite=False)
            seq += 1
        w.put(layout.META, self._next_key, layout.pack_u64(seq))
        return first

    def pending_blocking(self, from_seq: int, *, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` entries (and about ``max_bytes``) from ``from_seq`` on, opened, in order."""
        self._keyring.ensure_live()
        out: list[tuple[int, bytes]] = []
        size = 0
        with self._store.read() as r:
            expected = from_seq
            for skey, value in r.items(self.table, layout.pack_u64(from_seq)):
                seq = layout.unpack_u64(skey)
                if seq != expected:
                    raise CorruptValue("outbox sequence numbers are not contiguous")
                _, data = self._keyring.open_value(self.table, skey, value)
                out.append((seq, data))
                size += len(data)
                expected += 1
                if len(out) >= limit or size >= max_bytes:
                    break
        return out

    def replace_entry(self, w: Writer, seq: int, data: bytes) -> bool:
        """Replace a staged, unacknowledged entry (an expired one by a tombstone) under the outbox
        key; False when it is no longer there (acknowledged and deleted)."""
        skey = layout.pack_u64(seq)
        if w.get(self.table, skey) is None:
            return False
        w.put(self.table, skey, seal_value(self._keyring.outbox_key(), self.table, skey, _VERSION, data))
        return True

    def stage_acked(self, w: Writer, through_seq: int) -> int:
        """Record the peer's acknowledgement of every entry up to ``through_seq`` and delete them;
        returns how many were deleted.  An acknowledgement at or below the last one changes nothing;
        one beyond what was staged is refused (the peer claims what it cannot have)."""
        state = self.state_in(w)
        if through_seq <= state.acked_through:
            return 0
        if through_seq >= state.next_seq:
            raise ValueError("acknowledgement beyond the last staged entry")
        deleted = 0
        for seq in range(state.acked_through + 1, through_seq + 1):
            deleted += w.delete(self.table, layout.pack_u64(seq))
        w.put(layout.META, self._acked_key, layout.pack_u64(through_seq))
        return deleted
