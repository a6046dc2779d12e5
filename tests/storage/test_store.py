"""The LMDB environment: tables, duplicate-sorted indexes, map growth, atomicity, permissions, threads."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import lmdb
import pytest

from storage import layout
from storage.errors import StorageError, StoreClosed
from storage.store import Store

IDENTITY, HISTORY, META, IX = layout.IDENTITY, layout.HISTORY, layout.META, layout.IX_NUMBER

CODE_A = layout.pack_code("12345678903")
CODE_B = layout.pack_code("12345678911")
CODE_C = layout.pack_code("00000000019")
MAC_1 = bytes(range(16))
MAC_2 = bytes(range(1, 17))

THREAD_JOIN_TIMEOUT_S = 60


# -- plain tables --------------------------------------------------------------------------------------


def test_put_get_delete(store: Store) -> None:
    assert store.write(lambda w: w.put(IDENTITY, CODE_A, b"v1")) is True
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) == b"v1"
        assert r.get(IDENTITY, CODE_B) is None
        assert r.count(IDENTITY) == 1
    store.write(lambda w: w.put(IDENTITY, CODE_A, b"v2"))
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) == b"v2"
    assert store.write(lambda w: w.put(IDENTITY, CODE_A, b"v3", overwrite=False)) is False
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) == b"v2"
    assert store.write(lambda w: w.delete(IDENTITY, CODE_A)) is True
    assert store.write(lambda w: w.delete(IDENTITY, CODE_A)) is False
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) is None
        assert r.count(IDENTITY) == 0


def test_tables_are_separate(store: Store) -> None:
    store.write(lambda w: w.put(IDENTITY, CODE_A, b"identity"))
    with store.read() as r:
        for name in layout.ALL:
            if name != IDENTITY:
                assert r.get(name, CODE_A) is None
                # meta holds the schema version only
                assert r.count(name) == (1 if name == META else 0)
        assert r.get(META, b"schema") == layout.SCHEMA_VERSION


def test_write_returns_fn_result_and_reader_sees_own_writes(store: Store) -> None:
    def fn(w):
        w.put(IDENTITY, CODE_A, b"x")
        return w.get(IDENTITY, CODE_A), w.count(IDENTITY)

    assert store.write(fn) == (b"x", 1)


def test_items_and_prefix_ranges(store: Store) -> None:
    keys = [layout.history_index_key(code, v) for code in (CODE_C, CODE_A, CODE_B) for v in (1, 2, 3)]

    def fn(w):
        for k in keys:
            w.put(HISTORY, k, k[-1:])

    store.write(fn)
    with store.read() as r:
        assert [k for k, _ in r.items(HISTORY)] == sorted(keys)
        assert [k for k, _ in r.prefix(HISTORY, CODE_A)] == [layout.history_index_key(CODE_A, v) for v in (1, 2, 3)]
        start, stop = layout.history_index_key(CODE_A, 2), layout.history_index_key(CODE_B, 2)
        assert [k for k, _ in r.items(HISTORY, start, stop)] == [
            layout.history_index_key(CODE_A, 2), layout.history_index_key(CODE_A, 3), layout.history_index_key(CODE_B, 1)
        ]
        assert list(r.items(HISTORY, b"\xff")) == []
        assert list(r.prefix(HISTORY, layout.pack_code("99999999999"))) == []
        assert list(r.items(IDENTITY)) == []


# -- duplicate-sorted indexes ----------------------------------------------------------------------


def test_index_add_remove_count(store: Store) -> None:
    def add(w):
        w.put(IX, MAC_1, CODE_B)
        w.put(IX, MAC_1, CODE_A)
        w.put(IX, MAC_1, CODE_C)
        w.put(IX, MAC_2, CODE_A)

    store.write(add)
    with store.read() as r:
        assert r.dup_count(IX, MAC_1) == 3
        assert r.dup_count(IX, MAC_2) == 1
        assert r.dup_count(IX, bytes(16)) == 0
        assert r.dup_values(IX, MAC_1) == sorted([CODE_A, CODE_B, CODE_C])
        assert r.dup_values(IX, bytes(16)) == []
        assert r.has_dup(IX, MAC_1, CODE_B)
        assert not r.has_dup(IX, MAC_2, CODE_B)
        assert not r.has_dup(IX, bytes(16), CODE_A)
        assert r.count(IX) == 4
    # Removing one value leaves the others at that key.
    assert store.write(lambda w: w.delete(IX, MAC_1, CODE_B)) is True
    assert store.write(lambda w: w.delete(IX, MAC_1, CODE_B)) is False
    with store.read() as r:
        assert r.dup_values(IX, MAC_1) == sorted([CODE_A, CODE_C])
        assert not r.has_dup(IX, MAC_1, CODE_B)
        assert r.dup_count(IX, MAC_1) == 2
    # The same pair twice is stored once.
    store.write(lambda w: w.put(IX, MAC_2, CODE_A))
    with store.read() as r:
        assert r.dup_count(IX, MAC_2) == 1
    # Deleting without a value removes every value at the key.
    store.write(lambda w: w.delete(IX, MAC_1))
    with store.read() as r:
        assert r.dup_count(IX, MAC_1) == 0
        assert r.count(IX) == 1


def test_all_indexes_are_duplicate_sorted(store: Store) -> None:
    def fn(w):
        for name in layout.INDEXES:
            w.put(name, MAC_1, CODE_A)
            w.put(name, MAC_1, CODE_B)

    store.write(fn)
    with store.read() as r:
        for name in layout.INDEXES:
            assert r.dup_values(name, MAC_1) == [CODE_A, CODE_B]


def test_put_sorted_identity_counts_new_and_never_overwrites(store: Store) -> None:
    store.write(lambda w: w.put(IDENTITY, CODE_B, b"old"))
    items = sorted([(CODE_A, b"a"), (CODE_B, b"new"), (CODE_C, b"c")])
    assert store.write(lambda w: w.put_sorted(IDENTITY, items)) == 2
    with store.read() as r:
        assert r.get(IDENTITY, CODE_B) == b"old"
        assert r.get(IDENTITY, CODE_A) == b"a"
        assert r.get(IDENTITY, CODE_C) == b"c"
    # A duplicate inside one batch: the first wins and counts once.
    assert store.write(lambda w: w.put_sorted(HISTORY, [(b"k", b"1"), (b"k", b"2")])) == 1
    with store.read() as r:
        assert r.get(HISTORY, b"k") == b"1"
    assert store.write(lambda w: w.put_sorted(IDENTITY, [])) == 0


def test_put_sorted_index_adds_duplicates(store: Store) -> None:
    items = sorted([(MAC_1, CODE_A), (MAC_1, CODE_B), (MAC_2, CODE_C)])
    assert store.write(lambda w: w.put_sorted(IX, items)) == 3
    with store.read() as r:
        assert r.dup_values(IX, MAC_1) == [CODE_A, CODE_B]
        assert r.count(IX) == 3


def test_put_sorted_index_counts_only_new_pairs(store: Store) -> None:
    """``put_sorted`` "returns how many were new": a pair already in an index is not new."""
    store.write(lambda w: w.put(IX, MAC_1, CODE_A))
    items = sorted([(MAC_1, CODE_A), (MAC_1, CODE_B), (MAC_2, CODE_C)])
    added = store.write(lambda w: w.put_sorted(IX, items))
    with store.read() as r:
        assert r.count(IX) == 3  # the index holds the pair once
    assert added == 2, f"put_sorted reported {added} new entries, but only 2 were new"


# -- map growth ---------------------------------------------------------------------------------------


def test_map_grows_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = Store(path, map_size_bytes=64 * 1024)
    initial = store.map_size_bytes
    digests: dict[bytes, bytes] = {}
    calls = 0
    value_bytes = 25 * 1024
    for txn in range(20):  # 20 × 40 × 25 KiB ≈ 20 MB
        batch = {layout.pack_u32(txn * 1000 + i): os.urandom(value_bytes) for i in range(40)}

        def fn(w, batch=batch):
            nonlocal calls
            calls += 1
            for k, v in batch.items():
                w.put(HISTORY, k, v)
            return len(batch)

        assert store.write(fn) == 40
        digests.update({k: hashlib.sha256(v).digest() for k, v in batch.items()})
    assert calls > 20  # some transactions were re-run after the map grew
    assert store.map_size_bytes > initial
    assert store.map_size_bytes >= 20 * 40 * value_bytes
    assert store.file_bytes() >= 20 * 40 * value_bytes

    def check(s: Store) -> None:
        with s.read() as r:
            assert r.count(HISTORY) == len(digests) == 800
            for k, v in r.items(HISTORY):
                assert hashlib.sha256(v).digest() == digests[k]

    check(store)
    store.close()
    # Reopened with the tiny configured size: LMDB keeps the larger file's map, and all is there.
    reopened = Store(path, map_size_bytes=64 * 1024)
    try:
        check(reopened)
        reopened.write(lambda w: w.put(HISTORY, b"after", os.urandom(4 * 1024 * 1024)))
        with reopened.read() as r:
            assert len(r.get(HISTORY, b"after")) == 4 * 1024 * 1024
    finally:
        reopened.close()


def test_one_large_transaction_grows_the_map(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", map_size_bytes=64 * 1024)
    try:
        items = [(layout.pack_u32(i), bytes([i % 251]) * 8192) for i in range(600)]  # ≈ 5 MB in one go
        assert store.write(lambda w: w.put_sorted(HISTORY, items)) == 600
        with store.read() as r:
            assert r.count(HISTORY) == 600
            assert r.get(HISTORY, layout.pack_u32(599)) == bytes([599 % 251]) * 8192
    finally:
        store.close()


# -- atomicity -----------------------------------------------------------------------------------------


def test_a_failing_write_leaves_nothing_behind(store: Store) -> None:
    store.write(lambda w: w.put(IDENTITY, CODE_C, b"before"))

    class Boom(Exception):
        pass

    def fn(w):
        w.put(IDENTITY, CODE_A, b"a")
        w.put(IX, MAC_1, CODE_A)
        w.delete(IDENTITY, CODE_C)
        w.put(META, b"x", b"y")
        raise Boom("stop")

    with pytest.raises(Boom):
        store.write(fn)
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) is None
        assert r.get(IDENTITY, CODE_C) == b"before"
        assert r.count(IX) == 0
        assert r.get(META, b"x") is None
    # The store is still usable afterwards.
    store.write(lambda w: w.put(IDENTITY, CODE_B, b"b"))
    with store.read() as r:
        assert r.get(IDENTITY, CODE_B) == b"b"


def test_an_lmdb_error_in_a_write_is_translated_and_rolled_back(store: Store) -> None:
    def fn(w):
        w.put(IDENTITY, CODE_A, b"a")
        w.put(IDENTITY, b"k" * 600, b"too long a key")  # LMDB's key limit is 511 bytes

    with pytest.raises(StorageError):
        store.write(fn)
    with store.read() as r:
        assert r.get(IDENTITY, CODE_A) is None


def test_a_failing_write_after_growth_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", map_size_bytes=64 * 1024)
    try:
        def fn(w):
            for i in range(200):
                w.put(HISTORY, layout.pack_u32(i), os.urandom(8192))
            raise ValueError("late failure")

        with pytest.raises(ValueError):
            store.write(fn)
        with store.read() as r:
            assert r.count(HISTORY) == 0
    finally:
        store.close()


# -- files and schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000])
def test_files_are_private(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        store = Store(tmp_path / "db")
    finally:
        os.umask(old)
    try:
        store.write(lambda w: w.put(IDENTITY, CODE_A, b"x"))
        assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
        names = sorted(p.name for p in (tmp_path / "db").iterdir())
        assert names == ["data.mdb", "lock.mdb"]
        for name in names:
            assert stat.S_IMODE((tmp_path / "db" / name).stat().st_mode) == 0o600, name
    finally:
        store.close()
    assert os.umask(old) == old  # the process umask is restored


def test_schema_version_is_written_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = Store(path)
    s.write(lambda w: w.put(IDENTITY, CODE_A, b"kept"))
    s.close()
    s = Store(path)  # same version: opens, data intact
    with s.read() as r:
        assert r.get(META, b"schema") == layout.SCHEMA_VERSION
        assert r.get(IDENTITY, CODE_A) == b"kept"
    s.close()

    env = lmdb.open(str(path), max_dbs=32, subdir=True)
    meta = env.open_db(META.encode())
    with env.begin(write=True) as txn:
        txn.put(b"schema", b"999", db=meta)
    env.close()

    with pytest.raises(StorageError, match="schema"):
        Store(path)


# -- closing --------------------------------------------------------------------------------------------


def test_closed_store_refuses_everything(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.write(lambda w: w.put(IDENTITY, CODE_A, b"x"))
    s.close()
    s.close()  # harmless twice
    with pytest.raises(StoreClosed):
        with s.read():
            pass
    with pytest.raises(StoreClosed):
        s.write(lambda w: w.put(IDENTITY, CODE_B, b"y"))
    assert issubclass(StoreClosed, StorageError)
    # The data was committed before closing.
    s2 = Store(tmp_path / "db")
    try:
        with s2.read() as r:
            assert r.get(IDENTITY, CODE_A) == b"x"
            assert r.get(IDENTITY, CODE_B) is None
    finally:
        s2.close()


# -- concurrency ----------------------------------------------------------------------------------------


def _history_value(gen: int) -> bytes:
    return hashlib.sha256(layout.pack_u32(gen)).digest() * 2048  # 64 KiB, known per generation


def test_readers_see_consistent_snapshots_while_the_map_grows(tmp_path: Path) -> None:
    """One writer commits generations (growing the map several times) while readers walk whole snapshots.

    Each snapshot must show one generation everywhere, with every history value intact; walking all
    values keeps read transactions open long enough that a resize under a live reader would show.
    """
    store = Store(tmp_path / "db", map_size_bytes=64 * 1024)
    initial_map = store.map_size_bytes
    keys = [layout.pack_code(f"{i:011d}") for i in range(8)]
    rounds = 60
    n_readers = 3
    max_reads = 20_000
    store.write(lambda w: [w.put(IDENTITY, k, layout.pack_u32(0)) for k in keys])

    errors: list[BaseException] = []
    start = threading.Barrier(n_readers + 1, timeout=THREAD_JOIN_TIMEOUT_S)
    writer_done = threading.Event()
    reads = [0] * n_readers

    def writer() -> None:
        try:
            start.wait()
            for gen in range(1, rounds + 1):

                def fn(w, gen=gen):
                    for k in keys:
                        w.put(IDENTITY, k, layout.pack_u32(gen))
                    w.put(HISTORY, layout.pack_u32(gen), _history_value(gen))  # grows the map now and then

                store.write(fn)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            writer_done.set()

    def reader(n: int) -> None:
        last = 0
        try:
            start.wait()
            for _ in range(max_reads):
                finished = writer_done.is_set()
                with store.read() as r:
                    gens = {layout.unpack_u32(r.get(IDENTITY, k)) for k in keys}
                    history = [(layout.unpack_u32(k), v) for k, v in r.items(HISTORY)]
                assert len(gens) == 1, f"torn snapshot: {sorted(gens)}"
                gen = gens.pop()
                assert [g for g, _ in history] == list(range(1, gen + 1)), "history from another snapshot"
                assert all(v == _history_value(g) for g, v in history), "a value read back damaged"
                assert gen >= last, "a later snapshot went back in time"
                last = gen
                reads[n] += 1
                if finished:
                    assert gen == rounds
                    break
                writer_done.wait(0.0005)  # pace the readers so that they span the whole write phase
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, name="writer")]
    threads += [threading.Thread(target=reader, args=(n,), name=f"reader-{n}") for n in range(n_readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(THREAD_JOIN_TIMEOUT_S)
    try:
        assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock around a map resize?)"
        assert not errors, errors
        assert all(n > 0 for n in reads)
        assert store.map_size_bytes > initial_map
        with store.read() as r:
            assert r.count(HISTORY) == rounds
            assert {layout.unpack_u32(r.get(IDENTITY, k)) for k in keys} == {rounds}
    finally:
        if not any(t.is_alive() for t in threads):
            store.close()


def test_pop_range_deletes_in_order_up_to_the_limit_and_stops_at_stop(store: Store) -> None:
    keys = [b"2026%04d" % i for i in range(10)] + [b"2027%04d" % i for i in range(3)]
    store.write(lambda w: [w.put(layout.HISTORY_INDEX, k, b"") for k in keys])
    first = store.write(lambda w: w.pop_range(layout.HISTORY_INDEX, b"", b"2026\xff", 4))
    assert first == keys[:4]
    rest = store.write(lambda w: w.pop_range(layout.HISTORY_INDEX, b"", b"2026\xff", 100))
    assert rest == keys[4:10]
    assert store.write(lambda w: w.pop_range(layout.HISTORY_INDEX, b"", b"2026\xff", 100)) == []
    with store.read() as r:
        assert [k for k, _ in r.items(layout.HISTORY_INDEX)] == keys[10:]


def test_delete_sorted_counts_only_keys_that_existed(store: Store) -> None:
    store.write(lambda w: [w.put(layout.HISTORY, bytes([i]) * 9, b"v") for i in range(1, 6)])
    deleted = store.write(lambda w: w.delete_sorted(layout.HISTORY, [bytes([i]) * 9 for i in (0, 2, 3, 9)]))
    assert deleted == 2
    with store.read() as r:
        assert [k[0] for k, _ in r.items(layout.HISTORY)] == [1, 4, 5]
