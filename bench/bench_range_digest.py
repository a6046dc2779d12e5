"""Benchmark of the range-digest consistency exchange at 1,000,000 records with 100 differences.

Prints figures; it is not a test and asserts nothing.  The synthetic codes and digests (seeded
RNG) are generated outside every timed span.

    .venv/bin/python bench/bench_range_digest.py --records 1000000 --differences 100
"""

from __future__ import annotations

import argparse
import random
import time

from firmware_app.consistency.range_digest import CODE_SPACE, RECORD_BYTES, RangeTree
from firmware_app.consistency.reconcile import Responder, reconcile


def _sides(n: int, differences: int, seed: int) -> tuple[dict[int, bytes], dict[int, bytes], set[int]]:
    """Side A, side B differing in `differences` codes (changed, missing on B, missing on A)."""
    rng = random.Random(seed)
    a = {code: rng.randbytes(32) for code in rng.sample(range(CODE_SPACE), n)}
    b = dict(a)
    picked = rng.sample(sorted(a), differences - differences // 3)
    changed, removed = picked[: differences // 3], picked[differences // 3 :]
    for code in changed:
        b[code] = rng.randbytes(32)
    for code in removed:
        del b[code]
    added: set[int] = set()
    while len(added) < differences // 3:
        code = rng.randrange(CODE_SPACE)
        if code not in a:
            added.add(code)
            b[code] = rng.randbytes(32)
    return a, b, set(picked) | added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--differences", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()

    a, b, expected = _sides(args.records, args.differences, args.seed)
    leaves_a, leaves_b = sorted(a.items()), sorted(b.items())

    start = time.perf_counter()
    tree_a = RangeTree.build(leaves_a)
    build_s = time.perf_counter() - start
    tree_b = RangeTree.build(leaves_b)

    start = time.perf_counter()
    r = reconcile(tree_a, Responder(tree_b))
    exchange_s = time.perf_counter() - start

    full = len(a) * RECORD_BYTES
    moved = r.bytes_sent + r.bytes_received
    found = r.differences()
    print(f"records                 {len(a):,}")
    print(f"tree build              {build_s:.2f} s")
    print(f"full listing            {full:,} bytes ({RECORD_BYTES} per record)")
    print(f"differences             {len(expected)} planted, {len(found)} found, exact: {found == expected}")
    print(f"bytes sent / received   {r.bytes_sent:,} / {r.bytes_received:,}")
    print(f"bytes moved             {moved:,} = {100 * moved / full:.3f} % of the full listing (target <= 2 %)")
    print(f"round trips             {r.round_trips}")
    print(f"exchange (in process)   {exchange_s:.3f} s")


if __name__ == "__main__":
    main()
