"""The identity file (本人確認情報ファイル): current records, their history, and search — all encrypted.

Joins the domain (validation, index terms), storage (LMDB layouts) and hsm (keys).  Every method
blocks; the daemon calls them from its storage worker thread.  Nothing here logs personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from firmware_app.clock import Clock, today_of
from firmware_app.domain.errors import InvalidQuery, InvalidRecord
from firmware_app.domain.retention import retention_due
from firmware_app.domain.record import STATUS_REMOVED, IdentityRecord, decode_record, encode_record
from firmware_app.domain.terms import FourItemQuery, IndexTerms, index_terms
from firmware_app.domain.validate import validate_record
from firmware_app.service.keyring import Keyring, seal_value
from storage import envelope, layout
from storage.errors import CorruptValue
from storage.store import Reader, Store, Writer

log = logging.getLogger(__name__)

DEFAULT_BATCH_RECORDS = 10_000
#: Records per transaction of a parallel load.  Every transaction rewrites most pages of the five
#: indexes (random MACs land everywhere), so fewer, larger transactions write far less.
DEFAULT_COMMIT_RECORDS = 25_000
DEFAULT_MAX_CANDIDATES = 5_000

# Each index MACs its values under its own one-byte domain, so equal values in two indexes
# (a kana name that is also a kanji name) give unrelated keys.
_DOMAIN = {layout.IX_NUMBER: b"N", layout.IX_KANA: b"K", layout.IX_KANJI: b"J", layout.IX_BIRTH: b"B", layout.IX_ADDR: b"A"}

_N, _K, _J, _B, _A = (_DOMAIN[ix] for ix in layout.INDEXES)


def _index_entries(terms: IndexTerms, mac: Callable[[bytes], bytes]) -> list[tuple[str, bytes]]:
    """Every (index, MAC) pair of a record's terms, each index under its own domain byte."""
    entries = [(layout.IX_NUMBER, mac(_N + terms.number.encode()))] if terms.number else []
    entries += [(layout.IX_KANA, mac(_K + name.encode())) for name in terms.kana_names]
    entries += [(layout.IX_KANJI, mac(_J + name.encode())) for name in terms.kanji_names]
    entries.append((layout.IX_BIRTH, mac(_B + terms.birth.encode())))
    entries.append((layout.IX_ADDR, mac(_A + terms.address.encode())))
    return entries


_HISTORY_ENCODER = msgspec.msgpack.Encoder()


class _HistoryPayload(msgspec.Struct, array_like=True, frozen=True):
    superseded_on: str
    record: bytes


_HISTORY_DECODER = msgspec.msgpack.Decoder(_HistoryPayload)


class PreparedBatch(msgspec.Struct, array_like=True):
    """A batch of new residents sealed and indexed, each list sorted: what a load commits."""

    identity: list[tuple[bytes, bytes]]
    ix_number: list[tuple[bytes, bytes]]
    ix_kana: list[tuple[bytes, bytes]]
    ix_kanji: list[tuple[bytes, bytes]]
    ix_birth: list[tuple[bytes, bytes]]
    ix_addr: list[tuple[bytes, bytes]]

    def indexes(self) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
        """The index lists with their database names."""
        return [
            (layout.IX_NUMBER, self.ix_number),
            (layout.IX_KANA, self.ix_kana),
            (layout.IX_KANJI, self.ix_kanji),
            (layout.IX_BIRTH, self.ix_birth),
            (layout.IX_ADDR, self.ix_addr),
        ]


class IdentityFileError(Exception):
    """Base of the identity file's own refusals (domain and HSM errors pass through unchanged)."""


class DuplicateResident(IdentityFileError):
    """A bulk load met a resident code that is already in the file; the batch was not stored."""


@dataclass(frozen=True)
class Current:
    """A resident's current record and its version number."""

    version: int
    record: IdentityRecord


@dataclass(frozen=True)
class Superseded:
    """One superseded (or removal) version, with the date of the notice that superseded it."""

    version: int
    superseded_on: str
    record: IdentityRecord


class IdentityFile:
    """Use cases on the identity file."""

    def __init__(self, store: Store, keyring: Keyring, clock: Clock, *, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self._max_candidates = max_candidates

    # -- sealing ------------------------------------------------------------------------------

    def _query_mac(self, index: str, value: str) -> bytes:
        return self._keyring.index_mac().mac(_DOMAIN[index] + value.encode())

    def _seal_current(self, code5: bytes, version: int, record: IdentityRecord) -> bytes:
        return seal_value(self._keyring.identity_key(), layout.IDENTITY, code5, version, encode_record(record))

    def current_of(self, code5: bytes, value: bytes) -> Current:
        """The current record stored as ``value`` under ``code5`` (read inside a caller's transaction)."""
        return self._open_current(code5, value)

    def _open_current(self, code5: bytes, value: bytes) -> Current:
        version, plaintext = self._keyring.open_value(layout.IDENTITY, code5, value)
        try:
            return Current(version, decode_record(plaintext))
        except msgspec.DecodeError:
            raise CorruptValue("identity value does not decode") from None

    # -- bulk load --------------------------------------------------------------------------------

    def load_blocking(self, records: Iterable[IdentityRecord], *, batch_records: int = DEFAULT_BATCH_RECORDS) -> int:
        """Load new residents (a migration), one durable transaction per batch; returns how many.

        Every record is validated first; a batch holding an invalid record or a resident already
        in the file is refused whole (earlier batches stay).
        """
        self._keyring.ensure_live()
        today = today_of(self._clock)
        loaded = 0
        batch: list[IdentityRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_records:
                loaded += self._load_batch(batch, today)
                batch = []
        if batch:
            loaded += self._load_batch(batch, today)
        return loaded

    def _load_batch(self, batch: list[IdentityRecord], today: str) -> int:
        return self.commit_batch(self.prepare_batch(batch, today))

    def prepare_batch(self, batch: list[IdentityRecord], today: str) -> PreparedBatch:
        """Validate, seal and index a batch of new residents, sorted for LMDB (CPU only, no I/O).

        Raises ``InvalidRecord`` for the first invalid record; nothing is written.
        """
        self._keyring.ensure_live()
        key = self._keyring.identity_key()
        seal, key_id = key.seal, key.key_id
        mac = self._keyring.index_mac().mac
        pack_env, make_aad = envelope.pack, envelope.aad
        identity: list[tuple[bytes, bytes]] = []
        ix: dict[str, list[tuple[bytes, bytes]]] = {name: [] for name in layout.INDEXES}
        for record in batch:
            validate_record(record, today=today)
            if record.record_status == STATUS_REMOVED:
                raise InvalidRecord("record_status", "a bulk load takes live records only", 35)
            code5 = layout.pack_code(record.resident_code)
            identity.append((code5, pack_env(key_id, 1, seal(encode_record(record), make_aad(layout.IDENTITY, code5, 1, key_id)))))
            for index, value in _index_entries(index_terms(record), mac):
                ix[index].append((value, code5))
        identity.sort()
        for items in ix.values():
            items.sort()
        return PreparedBatch(identity, *(ix[name] for name in layout.INDEXES))

    def commit_batch(self, *prepared: PreparedBatch) -> int:
        """Write prepared batches in one durable transaction; refused whole if a resident exists.

        Each batch's lists are written in their own sorted runs, so no merged copy is made.
        """

        def write(w: Writer) -> int:
            if w.count(layout.HISTORY):
                raise IdentityFileError("a bulk load needs a file without history; apply changes one by one")
            for batch in prepared:
                if w.put_sorted(layout.IDENTITY, batch.identity) != len(batch.identity):
                    raise DuplicateResident("a resident code in the batch is already in the file or repeated")
                for name, items in batch.indexes():
                    w.put_sorted(name, items)
            return sum(len(batch.identity) for batch in prepared)

        return self._store.write(write)

    # -- changes ----------------------------------------------------------------------------------

    def put_blocking(self, record: IdentityRecord) -> int:
        """Apply one change (entry, modification or removal) in its own transaction; returns the new version."""
        self.check_change(record)
        self.ensure_history_key()
        return self._store.write(lambda w: self.stage_change(w, record))

    def check_change(self, record: IdentityRecord) -> None:
        """Validate a change before any transaction starts (raises ``InvalidRecord``)."""
        self._keyring.ensure_live()
        validate_record(record, today=today_of(self._clock))

    def ensure_history_key(self) -> None:
        """Create, outside any write transaction, the epoch key today's superseded versions need."""
        self._keyring.epoch_key("history", retention_due(today_of(self._clock))[:4])

    def stage_change(self, w: Writer, record: IdentityRecord) -> int:
        """Apply a validated change inside the caller's write transaction; returns the new version.

        The superseded version moves to history under the epoch key of its deletion year, its index
        entries go, and the new version and its index entries come in.  A removal (消除) version goes
        straight to history and the resident leaves the current file.
        """
        today = today_of(self._clock)
        code5 = layout.pack_code(record.resident_code)
        mac = self._keyring.index_mac().mac
        old_value = w.get(layout.IDENTITY, code5)
        old_entries: set[tuple[str, bytes]] = set()
        if old_value is not None:
            old = self._open_current(code5, old_value)
            self._stage_history(w, code5, old.version, old.record, today)
            old_entries = set(_index_entries(index_terms(old.record), mac))
            version = old.version + 1
        else:
            version = self._last_history_version(w, code5) + 1
        new_entries: set[tuple[str, bytes]] = set()
        if record.record_status == STATUS_REMOVED:
            self._stage_history(w, code5, version, record, today)
            w.delete(layout.IDENTITY, code5)
        else:
            w.put(layout.IDENTITY, code5, self._seal_current(code5, version, record))
            new_entries = set(_index_entries(index_terms(record), mac))
        # Only the entries that change are touched: an address change rewrites one index's pages,
        # not five (every page a transaction dirties is written and synced at commit).
        for index, value in old_entries - new_entries:
            w.delete(index, value, code5)
        for index, value in new_entries - old_entries:
            w.put(index, value, code5)
        return version

    def _stage_history(self, w: Writer, code5: bytes, version: int, record: IdentityRecord, today: str) -> None:
        due = retention_due(today)
        key = self._keyring.epoch_key("history", due[:4], create=False)
        hkey = layout.history_key(due, code5, version)
        payload = _HISTORY_ENCODER.encode(_HistoryPayload(today, encode_record(record)))
        w.put(layout.HISTORY, hkey, seal_value(key, layout.HISTORY, hkey, version, payload))
        w.put(layout.HISTORY_INDEX, layout.history_index_key(code5, version), due.encode("ascii"))

    @staticmethod
    def _last_history_version(r: Reader, code5: bytes) -> int:
        last = 0
        for key, _ in r.prefix(layout.HISTORY_INDEX, code5):
            last = layout.unpack_u32(key[layout.CODE_BYTES :])
        return last

    # -- reads ------------------------------------------------------------------------------------

    def get_blocking(self, resident_code: str) -> Current | None:
        """The current record of a resident, or None (unknown or removed)."""
        self._keyring.ensure_live()
        code5 = layout.pack_code(resident_code)
        with self._store.read() as r:
            value = r.get(layout.IDENTITY, code5)
            return None if value is None else self._open_current(code5, value)

    def history_blocking(self, resident_code: str) -> list[Superseded]:
        """Every superseded or removal version of a resident, oldest first (erased epochs skipped)."""
        self._keyring.ensure_live()
        code5 = layout.pack_code(resident_code)
        out = []
        with self._store.read() as r:
            for index_key, due in r.prefix(layout.HISTORY_INDEX, code5):
                key = due + index_key
                value = r.get(layout.HISTORY, key)
                if value is None:
                    raise CorruptValue("history index names a version that is not stored")
                if self._keyring.erased(envelope.unpack(value).key_id):
                    continue
                version, plaintext = self._keyring.open_value(layout.HISTORY, key, value)
                try:
                    payload = _HISTORY_DECODER.decode(plaintext)
                    out.append(Superseded(version, payload.superseded_on, decode_record(payload.record)))
                except msgspec.DecodeError:
                    raise CorruptValue("history value does not decode") from None
        return out

    def find_by_number_blocking(self, individual_number: str) -> list[Current]:
        """Residents whose current record carries this individual number (normally one)."""
        self._keyring.ensure_live()
        if len(individual_number) != 12 or not individual_number.isascii() or not individual_number.isdigit():
            raise InvalidQuery("individual number must be 12 ASCII digits")
        mac = self._query_mac(layout.IX_NUMBER, individual_number)
        with self._store.read() as r:
            found = [self._open_current(c, r.get(layout.IDENTITY, c)) for c in r.dup_values(layout.IX_NUMBER, mac)]
        return [cur for cur in found if cur.record.individual_number == individual_number]

    def search_blocking(self, query: FourItemQuery, *, limit: int = 100) -> list[Current]:
        """Residents matching every item of a four-item query: candidates from the blind indexes,
        confirmed on the decrypted records.  Refused as too broad when no index narrows it enough.
        """
        self._keyring.ensure_live()
        kana, kanji, birth, address = query.kana_key(), query.kanji_key(), query.birth(), query.address_key()
        criteria: list[tuple[str, bytes]] = []
        if kana:
            criteria.append((layout.IX_KANA, self._query_mac(layout.IX_KANA, kana)))
        elif kanji:
            criteria.append((layout.IX_KANJI, self._query_mac(layout.IX_KANJI, kanji)))
        if birth:
            criteria.append((layout.IX_BIRTH, self._query_mac(layout.IX_BIRTH, birth)))
        if address:
            criteria.append((layout.IX_ADDR, self._query_mac(layout.IX_ADDR, address)))
        if not criteria:
            raise InvalidQuery("a search needs a name, a birth date or an address")
        results: list[Current] = []
        with self._store.read() as r:
            sized = sorted((r.dup_count(index, mac), index, mac) for index, mac in criteria)
            smallest, index, mac = sized[0]
            if smallest > self._max_candidates:
                raise InvalidQuery("search matches too many residents; add more items")
            codes = r.dup_values(index, mac)
            for _, other_index, other_mac in sized[1:]:
                codes = [c for c in codes if r.has_dup(other_index, other_mac, c)]
            for code5 in codes:
                value = r.get(layout.IDENTITY, code5)
                if value is None:
                    continue
                current = self._open_current(code5, value)
                if _matches(current.record, kana=kana, kanji=kanji, birth=birth, address=address, sex=query.sex):
                    results.append(current)
                    if len(results) >= limit:
                        break
        return results

    def count_blocking(self) -> int:
        """How many residents the current file holds."""
        with self._store.read() as r:
            return r.count(layout.IDENTITY)


def _matches(
    record: IdentityRecord, *, kana: str | None, kanji: str | None, birth: str | None, address: str | None, sex: str | None
) -> bool:
    """Confirm a candidate on its decrypted record (index keys can collide; every item must agree)."""
    terms = index_terms(record)
    if kana and kana not in terms.kana_names:
        return False
    if not kana and kanji and kanji not in terms.kanji_names:
        return False
    if birth and birth != terms.birth:
        return False
    if address and address != terms.address:
        return False
    return not (sex and sex != record.sex)
