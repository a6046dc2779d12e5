"""Consistency-check data against the real SoftHSM2 token and real LMDB files."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from firmware_app.consistency.range_digest import EMPTY, leaf_digest
from firmware_app.consistency.reconcile import Responder, reconcile
from firmware_app.domain.check_item import check_item_of, decode_check_item, encode_check_item
from firmware_app.domain.record import STATUS_REMOVED
from firmware_app.service.check_data import (
    CheckDataRejected,
    CheckTrailer,
    CheckWorkers,
    check_chunks_blocking,
    check_items_blocking,
    check_tree_blocking,
    decode_trailer,
    encode_trailer,
    iter_framed_items,
    leaf_of_item,
    produce_check_data_blocking,
    verify_check_data,
)
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.errors import HsmUnavailable
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from peers.population import generate
from storage.store import Store

TODAY = "20261126"
N = 1_500
CHUNK = 400
CONTEXT = b"request-0001"

#: Every message a refusal may carry: fixed texts, no personal item.
REFUSALS = {
    "check data framing is malformed",
    "check data item count does not match its trailer",
    "check data digest does not match its trailer",
    "check data answers another request",
    "check data signature does not verify",
    "check data item is malformed",
}


@pytest.fixture(scope="module")
def residents():
    return list(generate(N, seed=11, today=TODAY))


def _open(token, store, clock):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    return keyring, IdentityFile(store, keyring, clock)


@pytest.fixture
def side_a(token, store, clock, residents):
    keyring, identity = _open(token, store, clock)
    assert identity.load_blocking(residents, batch_records=500) == N
    return store, keyring, identity


@pytest.fixture
def signer(token):
    return Signer(token, SIGNING_LABEL)


@pytest.fixture
def produced(side_a, signer):
    """(chunks, trailer) of side A's full check data, bound to CONTEXT."""
    store, keyring, _ = side_a
    chunks = []
    trailer = produce_check_data_blocking(store, keyring, signer, chunks.append, context=CONTEXT, chunk_items=CHUNK)
    return chunks, trailer


def _items(chunks) -> list[bytes]:
    return [item for chunk in chunks for item in iter_framed_items(chunk.framed)]


def _framed(items: list[bytes]) -> bytes:
    return b"".join(len(item).to_bytes(4, "big") + item for item in items)


def _refused(public_key_der, framed_chunks, trailer, *, context=CONTEXT) -> str:
    with pytest.raises(CheckDataRejected) as exc:
        verify_check_data(public_key_der, framed_chunks, trailer, context=context)
    assert str(exc.value) in REFUSALS
    return str(exc.value)


# -- production -----------------------------------------------------------------------------------


def test_items_are_the_projection_of_the_file_in_code_order(produced, side_a, residents):
    chunks, trailer = produced
    _, _, identity = side_a
    by_code = sorted(residents, key=lambda r: r.resident_code)
    expected = [encode_check_item(check_item_of(identity.get_blocking(r.resident_code).record)) for r in by_code]
    assert expected == [encode_check_item(check_item_of(r)) for r in by_code]
    assert _items(chunks) == expected
    assert [c.count for c in chunks] == [CHUNK, CHUNK, CHUNK, N - 3 * CHUNK]
    assert trailer.count == N
    assert trailer.digest == hashlib.sha256(_framed(expected)).digest()
    leaves = [leaf for chunk in chunks for leaf in chunk.leaves()]
    assert leaves == [(int(r.resident_code), leaf_digest(int(r.resident_code), item)) for r, item in zip(by_code, expected)]
    assert [decode_check_item(item).resident_code for item in expected] == [r.resident_code for r in by_code]
    assert [leaf_of_item(item) for item in expected] == leaves
    with pytest.raises(CheckDataRejected):
        leaf_of_item(b"\x92\x01\x02")


def test_workers_give_the_same_chunks_as_one_process(side_a, hsm_config):
    store, keyring, _ = side_a
    alone = list(check_chunks_blocking(store, keyring, chunk_items=CHUNK))
    workers = CheckWorkers(hsm_config, store.path, count=2)
    assert list(check_chunks_blocking(store, keyring, workers=workers, chunk_items=CHUNK)) == alone


def test_code_ranges_split_the_whole(side_a, residents):
    store, keyring, _ = side_a
    middle = int(sorted(r.resident_code for r in residents)[N // 3])
    whole = _items(check_chunks_blocking(store, keyring))
    low = _items(check_chunks_blocking(store, keyring, hi_code=middle))
    high = _items(check_chunks_blocking(store, keyring, lo_code=middle))
    assert len(low) == N // 3 and low + high == whole


def test_items_of_chosen_codes(side_a, residents):
    store, keyring, identity = side_a
    chosen = [int(r.resident_code) for r in residents[5:9]]
    chunk = check_items_blocking(store, keyring, chosen + [12345678903])
    assert [code for code, _ in chunk.leaves()] == sorted(chosen)
    assert list(iter_framed_items(chunk.framed)) == [
        encode_check_item(check_item_of(identity.get_blocking(f"{code:011d}").record)) for code in sorted(chosen)
    ]


def test_a_sealed_keyring_gives_no_check_data(side_a):
    store, keyring, _ = side_a
    keyring.seal()
    with pytest.raises(HsmUnavailable):
        next(check_chunks_blocking(store, keyring))


def test_empty_file(token, store, clock, signer):
    keyring, _ = _open(token, store, clock)
    chunks = []
    trailer = produce_check_data_blocking(store, keyring, signer, chunks.append)
    assert chunks == []
    assert trailer.count == 0 and trailer.digest == hashlib.sha256(b"").digest()
    assert verify_check_data(signer.public_key_der(), [], trailer) == 0
    tree = check_tree_blocking(store, keyring)
    assert tree.root() == EMPTY
    assert reconcile(tree, Responder(tree)).differences() == set()


# -- verification -----------------------------------------------------------------------------------


def test_the_trailer_verifies_whatever_the_chunking(produced, signer):
    chunks, trailer = produced
    key = signer.public_key_der()
    assert verify_check_data(key, [c.framed for c in chunks], trailer, context=CONTEXT) == N
    items = _items(chunks)
    rechunked = [_framed(items[k : k + 7]) for k in range(0, N, 7)]
    assert verify_check_data(key, rechunked, decode_trailer(encode_trailer(trailer)), context=CONTEXT) == N


def test_one_changed_byte_in_any_item_is_refused(produced, signer):
    chunks, trailer = produced
    key = signer.public_key_der()
    whole = bytearray(b"".join(c.framed for c in chunks))
    at = 0
    for k, item in enumerate(_items(chunks)):
        # One byte per item, at a different place each time (the length prefix included).
        offset = at + k % (4 + len(item))
        whole[offset] ^= 0x01
        _refused(key, [bytes(whole)], trailer)
        whole[offset] ^= 0x01
        at += 4 + len(item)
    assert verify_check_data(key, [bytes(whole)], trailer, context=CONTEXT) == N


def test_a_dropped_repeated_or_reordered_item_is_refused(produced, signer):
    chunks, trailer = produced
    key = signer.public_key_der()
    items = _items(chunks)
    assert _refused(key, [_framed(items[:700] + items[701:])], trailer).startswith("check data item count")
    assert _refused(key, [_framed(items + items[-1:])], trailer).startswith("check data item count")
    swapped = items[:]
    swapped[10], swapped[11] = swapped[11], swapped[10]
    assert _refused(key, [_framed(swapped)], trailer).startswith("check data digest")
    moved_chunk = [c.framed for c in chunks]
    moved_chunk[0], moved_chunk[1] = moved_chunk[1], moved_chunk[0]
    assert _refused(key, moved_chunk, trailer).startswith("check data digest")
    assert _refused(key, [c.framed for c in chunks] + [b"\x00\x00\x00\x09abc"], trailer) == "check data framing is malformed"


def test_a_wrong_signature_or_trailer_is_refused(produced, signer):
    chunks, trailer = produced
    key = signer.public_key_der()
    framed = [c.framed for c in chunks]
    flipped = bytes([trailer.signature[0] ^ 0x01]) + trailer.signature[1:]
    _refused(key, framed, msgspec.structs.replace(trailer, signature=flipped))
    _refused(key, framed, msgspec.structs.replace(trailer, signature=trailer.signature[:63]))
    # A trailer signed by another P-256 key, over exactly the right bytes.
    other = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(other.sign(trailer.signed_bytes(), ec.ECDSA(hashes.SHA256())))
    forged = msgspec.structs.replace(trailer, signature=r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert _refused(key, framed, forged) == "check data signature does not verify"
    other_der = other.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verify_check_data(other_der, framed, forged, context=CONTEXT) == N
    _refused(other_der, framed, trailer)
    # The signature binds the request context: an old answer is not an answer to a new request.
    assert _refused(key, framed, trailer, context=b"request-0002") == "check data answers another request"
    _refused(key, framed, msgspec.structs.replace(trailer, context=b"request-0002"), context=b"request-0002")
    with pytest.raises(CheckDataRejected):
        decode_trailer(b"\x93\x01\x02")
    with pytest.raises(CheckDataRejected):
        verify_check_data(b"not a key", framed, trailer)
    assert isinstance(trailer, CheckTrailer)


# -- range digests -------------------------------------------------------------------------------------


def test_equal_files_under_different_keys_give_equal_trees(side_a, token, clock, residents, tmp_path):
    store_a, keyring_a, _ = side_a
    store_b = Store(tmp_path / "b")
    try:
        keyring_b, identity_b = _open(token, store_b, clock)
        identity_b.load_blocking(reversed(residents), batch_records=700)
        tree_a, tree_b = check_tree_blocking(store_a, keyring_a), check_tree_blocking(store_b, keyring_b)
        assert tree_a.root() == tree_b.root()
        r = reconcile(tree_a, Responder(tree_b))
        assert r.differences() == set() and r.round_trips == 1
    finally:
        store_b.close()


def test_reconcile_finds_exactly_the_codes_that_differ(side_a, token, clock, residents, tmp_path):
    store_a, keyring_a, _ = side_a
    store_b = Store(tmp_path / "b")
    try:
        keyring_b, identity_b = _open(token, store_b, clock)
        identity_b.load_blocking(residents, batch_records=500)
        expected: set[int] = set()
        for k, record in enumerate(residents[100:1_500:200]):
            moved = msgspec.structs.replace(
                record,
                address=f"東京都目黒区中目黒一丁目{k + 1}番1号",
                change_reason="TENKYO",
                update_sequence=record.update_sequence + 10_000,
            )
            identity_b.put_blocking(moved)
            expected.add(int(record.resident_code))
        for record in residents[7:9]:
            removal = msgspec.structs.replace(
                record, change_reason="SHIBOU", record_status=STATUS_REMOVED, update_sequence=record.update_sequence + 10_000
            )
            identity_b.put_blocking(removal)
            expected.add(int(record.resident_code))
        for record in generate(3, seed=11, start=N, today=TODAY):
            identity_b.put_blocking(record)
            expected.add(int(record.resident_code))
        assert len(expected) == 12
        tree_a, tree_b = check_tree_blocking(store_a, keyring_a), check_tree_blocking(store_b, keyring_b)
        assert reconcile(tree_a, Responder(tree_b)).differences() == expected
        assert reconcile(tree_b, Responder(tree_a)).differences() == expected
        # What the link then sends for those codes: the differing residents' current check items.
        sent = check_items_blocking(store_b, keyring_b, expected)
        assert {code for code, _ in sent.leaves()} == expected - {int(r.resident_code) for r in residents[7:9]}
    finally:
        store_b.close()
