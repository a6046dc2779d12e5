"""The parallel bulk load: worker processes with their own token login, this process writing."""

from __future__ import annotations

import os

import msgspec
import pytest

from firmware_app.domain.errors import InvalidRecord
from firmware_app.service.bulk_load import load_encoded_parallel_blocking, load_parallel_blocking
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from peers.population import generate
from storage import layout

TODAY = "20261126"


@pytest.fixture
def identity(token, store, clock):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    return IdentityFile(store, keyring, clock)


def _counts(store):
    with store.read() as r:
        return {db: r.count(db) for db in layout.ALL}


def test_parallel_load_stores_what_the_workers_prepared(identity, store, clock, hsm_config):
    records = list(generate(1_200, seed=3, today=TODAY))
    loaded = load_parallel_blocking(
        identity, records, hsm_config=hsm_config, store_path=store.path, clock=clock, workers=2, batch_records=500
    )
    assert loaded == 1_200
    for record in records[::111]:
        assert identity.get_blocking(record.resident_code).record == record


def test_malformed_and_hostile_batches_change_nothing(identity, store, clock, hsm_config):
    before = _counts(store)
    wrong_shape = msgspec.msgpack.encode([{"resident_code": "1"}])
    for blob in (os.urandom(4096), b"", wrong_shape, msgspec.msgpack.encode("x" * 100_000)):
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            load_encoded_parallel_blocking(identity, [blob], hsm_config=hsm_config, store_path=store.path, clock=clock, workers=1)
        assert _counts(store) == before


def test_an_invalid_record_refuses_its_batch_with_the_item(identity, store, clock, hsm_config):
    good = list(generate(10, seed=4, today=TODAY))
    bad = msgspec.structs.replace(good[3], sex="3")
    before = _counts(store)
    with pytest.raises(InvalidRecord) as exc:
        load_parallel_blocking(
            identity, good[:3] + [bad] + good[4:], hsm_config=hsm_config, store_path=store.path, clock=clock, workers=1
        )
    assert exc.value.item == 7
    assert _counts(store) == before
