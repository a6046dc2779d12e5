"""The identity file against the real SoftHSM2 token and real LMDB files."""

from __future__ import annotations

import msgspec
import pytest

from firmware_app.domain.errors import InvalidQuery, InvalidRecord
from firmware_app.domain.record import STATUS_REMOVED
from firmware_app.domain.terms import FourItemQuery
from firmware_app.domain.retention import retention_due
from firmware_app.service.identity_file import DuplicateResident, IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.errors import HsmUnavailable, InvalidCiphertext
from peers.population import generate
from storage import envelope, layout

TODAY = "20261126"
N = 3_000


@pytest.fixture
def residents():
    return list(generate(N, seed=7, today=TODAY))


@pytest.fixture
def identity(token, store, clock):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    return IdentityFile(store, keyring, clock)


@pytest.fixture
def loaded(identity, residents):
    assert identity.load_blocking(residents, batch_records=1_000) == N
    return identity


def _raw_file(store) -> bytes:
    return (store.path / "data.mdb").read_bytes()


def _moved(record, **changes):
    changes.setdefault("update_sequence", record.update_sequence + 10_000)
    return msgspec.structs.replace(record, **changes)


def test_lookup_returns_every_loaded_record(loaded, residents):
    for record in residents[::97]:
        current = loaded.get_blocking(record.resident_code)
        assert current is not None
        assert current.version == 1
        assert current.record == record
    assert loaded.count_blocking() == N


def test_unknown_code_is_none(loaded):
    assert loaded.get_blocking("12345678903") is None


def test_no_personal_data_in_plaintext_anywhere_in_the_file(loaded, residents, store):
    raw = _raw_file(store)
    assert not raw[store.used_bytes() :].strip(b"\0"), "nothing is written past the last used page"
    raw = raw[: store.used_bytes()]
    for record in residents:
        assert record.name_kanji.encode() not in raw
        assert record.name_kana.encode() not in raw
        assert record.address.encode() not in raw
        if record.individual_number:
            assert record.individual_number.encode() not in raw


def test_search_by_number_kana_birth_and_name_address(loaded, residents):
    for record in residents[::151]:
        if record.individual_number:
            assert [c.record for c in loaded.find_by_number_blocking(record.individual_number)] == [record]
        by_kana = loaded.search_blocking(FourItemQuery(name=record.name_kana, birth_date=record.birth_date))
        assert record in [c.record for c in by_kana]
        by_addr = loaded.search_blocking(FourItemQuery(name=record.name_kanji, address=record.address))
        assert record in [c.record for c in by_addr]
        with_sex = loaded.search_blocking(FourItemQuery(name=record.name_kana, birth_date=record.birth_date, sex=record.sex))
        assert record in [c.record for c in with_sex]


def test_search_matches_halfwidth_and_hiragana_kana(loaded, residents):
    import unicodedata

    record = next(r for r in residents if "（" not in r.name_kana)
    hiragana = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in record.name_kana)
    halfwidth_digits = unicodedata.normalize("NFKC", record.birth_date)
    for name in (hiragana, record.name_kana.replace("\u3000", " ")):
        found = loaded.search_blocking(FourItemQuery(name=name, birth_date=halfwidth_digits))
        assert record in [c.record for c in found]


def test_search_confirms_every_item(loaded, residents):
    record = residents[5]
    other_sex = "2" if record.sex == "1" else "1"
    assert loaded.search_blocking(FourItemQuery(name=record.name_kana, birth_date=record.birth_date, sex=other_sex)) == []
    assert loaded.search_blocking(FourItemQuery(name=record.name_kanji, address=record.address + "1")) == []


def test_foreign_resident_found_by_alias(loaded, residents):
    foreign = [r for r in residents if "（" in r.name_kanji]
    assert foreign, "the population has foreign residents with a 通称"
    record = foreign[0]
    alias = record.name_kanji.split("（")[1].rstrip("）")
    found = loaded.search_blocking(FourItemQuery(name=alias, birth_date=record.birth_date))
    assert record in [c.record for c in found]


def test_too_broad_search_is_refused(token, store, clock, residents):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    narrow = IdentityFile(store, keyring, clock, max_candidates=1)
    narrow.load_blocking(residents)
    address = residents[0].address.split("丁目")[0]
    with pytest.raises(InvalidQuery):
        # Many residents share a birth year's day; with a bound of one candidate it is too broad.
        common_birth = max({r.birth_date for r in residents}, key=lambda b: sum(r.birth_date == b for r in residents))
        narrow.search_blocking(FourItemQuery(birth_date=common_birth))
    assert address  # the population's addresses carry 丁目


def test_change_keeps_history_and_moves_indexes(loaded, residents, clock):
    record = residents[10]
    new_address = "東京都目黒区中目黒一丁目1番1号"
    changed = _moved(record, address=new_address, change_reason="TENKYO")
    assert loaded.put_blocking(changed) == 2
    current = loaded.get_blocking(record.resident_code)
    assert current.version == 2 and current.record == changed
    history = loaded.history_blocking(record.resident_code)
    assert [(h.version, h.superseded_on, h.record) for h in history] == [(1, TODAY, record)]
    assert loaded.search_blocking(FourItemQuery(name=record.name_kanji, address=record.address)) == []
    found = loaded.search_blocking(FourItemQuery(name=record.name_kanji, address=new_address))
    assert [c.record for c in found] == [changed]


def test_removal_moves_the_record_to_history(loaded, residents, store):
    record = residents[11]
    removal = _moved(record, change_reason="SHIBOU", record_status=STATUS_REMOVED)
    assert loaded.put_blocking(removal) == 2
    assert loaded.get_blocking(record.resident_code) is None
    assert [h.record for h in loaded.history_blocking(record.resident_code)] == [record, removal]
    assert loaded.search_blocking(FourItemQuery(name=record.name_kana, birth_date=record.birth_date)) == []
    due = retention_due(TODAY)
    with store.read() as r:
        scheduled = [k for k, _ in r.prefix(layout.HISTORY, due.encode())]
    assert len(scheduled) == 2


def test_reentry_continues_version_numbers(loaded, residents):
    record = residents[12]
    loaded.put_blocking(_moved(record, change_reason="TENSHUTSU", record_status=STATUS_REMOVED))
    back = _moved(record, change_reason="TENNYU", update_sequence=record.update_sequence + 20_000)
    assert loaded.put_blocking(back) == 3
    assert loaded.get_blocking(record.resident_code).version == 3


@pytest.mark.parametrize(
    ("field", "value", "item"),
    [
        ("resident_code", "12345678904", 1),
        ("birth_date", "20230229", 6),
        ("birth_date", "19800230", 6),
        ("sex", "3", 7),
        ("individual_number", "621498320258", 13),
        ("address", "東" * 201, 11),
        ("change_reason", "NOT_A_REASON", 21),
    ],
)
def test_bad_records_are_refused_and_change_nothing(loaded, residents, store, field, value, item):
    before = _raw_file(store)
    with store.read() as r:
        counts_before = {db: r.count(db) for db in layout.ALL}
    bad = msgspec.structs.replace(residents[20], **{field: value})
    with pytest.raises(InvalidRecord) as exc:
        loaded.put_blocking(bad)
    assert exc.value.item == item
    assert value not in str(exc.value)
    with pytest.raises(InvalidRecord):
        loaded.load_blocking([bad])
    with store.read() as r:
        assert {db: r.count(db) for db in layout.ALL} == counts_before
    assert _raw_file(store) == before


def test_bulk_load_refuses_a_known_resident_whole_batch(loaded, residents, store):
    with store.read() as r:
        count = r.count(layout.IDENTITY)
    fresh = list(generate(5, seed=7, start=N, today=TODAY))
    with pytest.raises(DuplicateResident):
        loaded.load_blocking(fresh + [residents[0]])
    with store.read() as r:
        assert r.count(layout.IDENTITY) == count


def test_a_ciphertext_moved_to_another_code_does_not_open(loaded, residents, store):
    a, b = (layout.pack_code(r.resident_code) for r in residents[:2])
    with store.read() as r:
        value_a = r.get(layout.IDENTITY, a)
    store.write(lambda w: w.put(layout.IDENTITY, b, value_a))
    with pytest.raises(InvalidCiphertext):
        loaded.get_blocking(residents[1].resident_code)


def test_a_ciphertext_altered_by_one_byte_does_not_open(loaded, residents, store):
    code5 = layout.pack_code(residents[3].resident_code)
    with store.read() as r:
        value = bytearray(r.get(layout.IDENTITY, code5))
    for position in (envelope.HEADER_BYTES + 2, len(value) // 2, len(value) - 1):
        altered = bytearray(value)
        altered[position] ^= 0x01
        store.write(lambda w, v=bytes(altered): w.put(layout.IDENTITY, code5, v))
        with pytest.raises(InvalidCiphertext) as exc:
            loaded.get_blocking(residents[3].resident_code)
        assert str(exc.value) == "ciphertext did not open"


def test_a_relabelled_version_does_not_open(loaded, residents, store):
    code5 = layout.pack_code(residents[4].resident_code)
    with store.read() as r:
        env = envelope.unpack(r.get(layout.IDENTITY, code5))
    store.write(lambda w: w.put(layout.IDENTITY, code5, envelope.pack(env.key_id, env.version + 1, env.sealed)))
    with pytest.raises(InvalidCiphertext):
        loaded.get_blocking(residents[4].resident_code)


def test_history_copied_into_current_does_not_open(loaded, residents, store):
    record = residents[30]
    loaded.put_blocking(_moved(record, change_reason="TENKYO", address="東京都目黒区八雲一丁目1番1号"))
    code5 = layout.pack_code(record.resident_code)
    with store.read() as r:
        history_value = r.get(layout.HISTORY, layout.history_key(retention_due(TODAY), code5, 1))
    store.write(lambda w: w.put(layout.IDENTITY, code5, history_value))
    with pytest.raises(InvalidCiphertext):
        loaded.get_blocking(record.resident_code)


def test_keys_survive_a_restart(token, store, clock, residents):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    IdentityFile(store, keyring, clock).load_blocking(residents[:50])
    again = Keyring(token, store, clock)
    again.open_blocking()
    assert IdentityFile(store, again, clock).get_blocking(residents[7].resident_code).record == residents[7]


def test_wrapped_keys_record_their_mechanism(loaded, store):
    from hsm.keys import WrappedKey

    with store.read() as r:
        wrapped = [msgspec.msgpack.decode(v, type=WrappedKey) for _, v in r.items(layout.KEYS)]
    assert {w.use for w in wrapped} >= {"seal", "mac"}
    assert all(w.mechanism == "CKM_AES_KEY_WRAP" and len(w.blob) == 40 for w in wrapped)


def test_strict_mode_reads_what_process_mode_wrote(token, store, clock, residents):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    IdentityFile(store, keyring, clock).load_blocking(residents[:200])
    strict = Keyring(token, store, clock, strict=True)
    strict.open_blocking()
    identity = IdentityFile(store, strict, clock)
    record = residents[42]
    assert identity.get_blocking(record.resident_code).record == record
    assert record in [c.record for c in identity.search_blocking(FourItemQuery(name=record.name_kana, birth_date=record.birth_date))]
    changed = _moved(record, change_reason="TENKYO", address="東京都目黒区駒場一丁目1番1号")
    assert identity.put_blocking(changed) == 2
    assert IdentityFile(store, keyring, clock).history_blocking(record.resident_code)[0].record == record


def test_sealed_keyring_refuses_personal_data(loaded, residents, identity):
    identity._keyring.seal()
    with pytest.raises(HsmUnavailable):
        loaded.get_blocking(residents[0].resident_code)
    with pytest.raises(HsmUnavailable):
        loaded.search_blocking(FourItemQuery(name=residents[0].name_kana, birth_date=residents[0].birth_date))
    with pytest.raises(HsmUnavailable):
        loaded.put_blocking(_moved(residents[0], change_reason="TENKYO"))
