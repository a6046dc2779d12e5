"""Range-digest tree and reconciliation: the differing codes are found, exactly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.consistency.messages import Ask, Request, encode
from firmware_app.consistency.range_digest import (
    CODE_SPACE,
    EMPTY,
    RangeTree,
    leaf_digest,
    split,
)
from firmware_app.consistency.reconcile import Reconciler, Responder, reconcile


def _leaves(rng: random.Random, n: int, space: int = CODE_SPACE) -> dict[int, bytes]:
    """n random codes below space, each with a random digest."""
    return {code: rng.randbytes(32) for code in rng.sample(range(space), n)}


def _tree(leaves: dict[int, bytes], **kw: int) -> RangeTree:
    return RangeTree.build(sorted(leaves.items()), **kw)


def _symmetric_difference(a: dict[int, bytes], b: dict[int, bytes]) -> set[int]:
    return {code for code, _ in set(a.items()) ^ set(b.items())}


def _found(a: dict[int, bytes], b: dict[int, bytes], **kw: int) -> tuple[Reconciler, Reconciler]:
    """Reconcile a against b from both ends."""
    ta, tb = _tree(a, **kw), _tree(b, **kw)
    return reconcile(ta, Responder(tb)), reconcile(tb, Responder(ta))


def test_identical_trees_take_one_round_trip() -> None:
    leaves = _leaves(random.Random(1), 5000)
    r = reconcile(_tree(leaves), Responder(_tree(leaves)))
    assert r.differences() == set()
    assert r.round_trips == 1
    assert r.bytes_sent + r.bytes_received < 100


def test_hundred_differences_of_three_kinds_in_100k() -> None:
    rng = random.Random(2)
    a = _leaves(rng, 100_000)
    b = dict(a)
    picked = rng.sample(sorted(a), 67)
    for code in picked[:34]:
        b[code] = rng.randbytes(32)  # changed digest
    for code in picked[34:]:
        del b[code]  # missing on side B
    added = [c for c in rng.sample(range(CODE_SPACE), 40) if c not in a][:33]
    for code in added:
        b[code] = rng.randbytes(32)  # missing on side A
    expected = set(picked) | set(added)
    assert len(expected) == 100
    ab, ba = _found(a, b)
    assert ab.differences() == expected == ba.differences()
    full_listing = len(a) * 37  # the 2 % target is at 1,000,000 leaves (bench/bench_range_digest.py)
    assert ab.bytes_sent + ab.bytes_received < 0.05 * full_listing


@pytest.mark.parametrize("side", ["local", "peer"])
def test_empty_against_non_empty(side: str) -> None:
    leaves = _leaves(random.Random(3), 2000)
    empty = RangeTree.build([])
    full = _tree(leaves)
    local, peer = (empty, full) if side == "local" else (full, empty)
    assert empty.root() == EMPTY
    assert reconcile(local, Responder(peer)).differences() == set(leaves)


def test_both_empty() -> None:
    r = reconcile(RangeTree.build([]), Responder(RangeTree.build([])))
    assert (r.differences(), r.round_trips) == (set(), 1)


def test_all_different_small_sets() -> None:
    rng = random.Random(4)
    a = _leaves(rng, 300, space=10_000)
    b = {code: rng.randbytes(32) for code in a}  # same codes, every digest changed
    c = {code + 10_000: d for code, d in a.items()}  # disjoint codes
    assert _found(a, b, fanout=4, leaf_limit=3)[0].differences() == set(a)
    assert _found(a, c, fanout=4, leaf_limit=3)[0].differences() == set(a) | set(c)


def test_sides_with_different_leaf_limits_still_agree() -> None:
    rng = random.Random(5)
    a = _leaves(rng, 3000)
    b = dict(a)
    for code in rng.sample(sorted(a), 10):
        b[code] = rng.randbytes(32)
    ta, tb = _tree(a, leaf_limit=2), _tree(b, leaf_limit=64)
    assert reconcile(ta, Responder(tb)).differences() == _symmetric_difference(a, b)
    assert reconcile(tb, Responder(ta)).differences() == _symmetric_difference(a, b)


@settings(max_examples=200, deadline=None)
@given(
    a=st.dictionaries(st.integers(0, 600), st.sampled_from([b"\x01" * 32, b"\x02" * 32]), max_size=60),
    b=st.dictionaries(st.integers(0, 600), st.sampled_from([b"\x01" * 32, b"\x02" * 32]), max_size=60),
    offset=st.sampled_from([0, CODE_SPACE - 601]),
    fanout=st.integers(2, 5),
    leaf_limit=st.integers(1, 4),
)
def test_found_set_is_the_symmetric_difference(
    a: dict[int, bytes], b: dict[int, bytes], offset: int, fanout: int, leaf_limit: int
) -> None:
    a = {code + offset: d for code, d in a.items()}
    b = {code + offset: d for code, d in b.items()}
    ab, ba = _found(a, b, fanout=fanout, leaf_limit=leaf_limit)
    assert ab.differences() == _symmetric_difference(a, b) == ba.differences()


def test_unsorted_or_duplicate_leaves_refused() -> None:
    d = b"\x00" * 32
    with pytest.raises(ValueError, match="unsorted or duplicated"):
        RangeTree.build([(5, d), (3, d)])
    with pytest.raises(ValueError, match="unsorted or duplicated"):
        RangeTree.build([(5, d), (5, d)])


@pytest.mark.parametrize("code", [-1, CODE_SPACE, 10**12])
def test_codes_outside_the_space_refused(code: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        RangeTree.build([(code, b"\x00" * 32)])
    with pytest.raises(ValueError, match="outside"):
        leaf_digest(code, b"")


def test_short_digest_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RangeTree.build([(1, b"\x00" * 31)])


def test_leaf_digest_is_domain_separated_sha256() -> None:
    import hashlib

    expected = hashlib.sha256(b"\x00" + (12345678901).to_bytes(5, "big") + b"data").digest()
    assert leaf_digest(12345678901, b"data") == expected


def test_child_digests_answered_below_a_local_leaf_range() -> None:
    leaves = _leaves(random.Random(6), 10)
    tree = _tree(leaves)  # the root is a leaf range here: children are computed on demand
    for lo, hi in split(0, CODE_SPACE, 16):
        alone = _tree({c: d for c, d in leaves.items() if lo <= c < hi})
        assert tree.digest(lo, hi) == alone.digest(lo, hi)


def test_non_canonical_range_with_many_leaves_refused() -> None:
    tree = _tree(_leaves(random.Random(7), 1000))
    request = encode(Request((Ask(0, CODE_SPACE - 1),)))
    with pytest.raises(ValueError, match="not a canonical range"):
        Responder(tree).respond(request)


def test_fanout_mismatch_detected() -> None:
    leaves = _leaves(random.Random(8), 1000)
    with pytest.raises(ValueError, match="fanout"):
        reconcile(_tree(leaves, fanout=16), Responder(_tree(leaves, fanout=8)))


def test_request_before_answer_refused() -> None:
    r = Reconciler(RangeTree.build([]))
    r.next_request()
    with pytest.raises(RuntimeError):
        r.next_request()
