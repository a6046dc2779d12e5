"""Range-digest tree (a Merkle tree over the resident-code space [0, 10**11)).

Ranges.  The root range is [0, 10**11).  A range [lo, hi) splits into ``fanout`` sub-ranges
with bounds ``lo + (hi - lo) * i // fanout`` (i = 0 .. fanout); the rule depends only on
(lo, hi) and fanout, never on the data, so both sides name the same ranges ("canonical" ranges).

Leaf/split decision.  Each side decides by its own data: a range holding at most ``leaf_limit``
leaves is a leaf range, otherwise it is split.  The digest of a range is therefore a function of
the leaf set inside it (and of fanout/leaf_limit) alone:

    leaf range  SHA-256(0x02 || code5 || digest || code5 || digest ...)   (no leaves: EMPTY)
    split range SHA-256(0x01 || digest(child 0) || ... || digest(child fanout-1))

Equal leaf sets give equal digests; different sets give different digests.  The sides need not
agree on the shape: ``digest(lo, hi)`` answers for every canonical range, from the stored node
digests or, below a local leaf range (or in an empty range), computed on demand from the leaves.

``build`` reads the sorted leaves once, then hashes the tree bottom-up, storing the digest of
every non-empty range in a dict keyed by (lo, hi).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator

#: One past the largest resident code (11 digits).
CODE_SPACE = 10**11
#: The root range.
ROOT = (0, CODE_SPACE)
CODE_BYTES = 5
DIGEST_BYTES = 32
#: Bytes of one (code, digest) record in a leaf listing.
RECORD_BYTES = CODE_BYTES + DIGEST_BYTES


def _check_code(code: int) -> None:
    """Refuse anything that is not a resident code as an integer."""
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code < CODE_SPACE:
        raise ValueError(f"code {code!r} is outside [0, 10**11)")


def leaf_digest(code: int, check_data: bytes) -> bytes:
    """The digest of one record: SHA-256(0x00 || code as 5 bytes big-endian || check data)."""
    _check_code(code)
    return hashlib.sha256(b"\x00" + code.to_bytes(CODE_BYTES, "big") + check_data).digest()


def pack_records(leaves: Iterable[tuple[int, bytes]]) -> bytes:
    """Concatenated code5 || digest records, the wire and hash form of a leaf listing."""
    return b"".join(code.to_bytes(CODE_BYTES, "big") + digest for code, digest in leaves)


def unpack_records(data: bytes) -> list[tuple[int, bytes]]:
    """The (code, digest) pairs of a packed leaf listing."""
    if len(data) % RECORD_BYTES:
        raise ValueError("leaf listing is not a whole number of records")
    return [
        (int.from_bytes(data[k : k + CODE_BYTES], "big"), data[k + CODE_BYTES : k + RECORD_BYTES])
        for k in range(0, len(data), RECORD_BYTES)
    ]


def leaf_range_digest(leaves: Iterable[tuple[int, bytes]]) -> bytes:
    """The digest of a leaf range holding these leaves (in code order)."""
    return hashlib.sha256(b"\x02" + pack_records(leaves)).digest()


#: The digest of an empty range (a leaf range with no leaves).
EMPTY = leaf_range_digest(())


def split(lo: int, hi: int, fanout: int) -> list[tuple[int, int]]:
    """The ``fanout`` canonical sub-ranges of [lo, hi) (some empty when hi - lo < fanout)."""
    bounds = [lo + (hi - lo) * i // fanout for i in range(fanout + 1)]
    return list(zip(bounds, bounds[1:]))


class RangeTree:
    """Digests of the canonical ranges over one side's sorted (code, digest) leaves."""

    def __init__(self, codes: list[int], digests: list[bytes], fanout: int, leaf_limit: int):
        if fanout < 2 or leaf_limit < 1:
            raise ValueError("fanout must be >= 2 and leaf_limit >= 1")
        self.fanout = fanout
        self.leaf_limit = leaf_limit
        self._codes = codes
        self._digests = digests
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._hash(*ROOT, 0, len(codes))

    @classmethod
    def build(
        cls, leaves: Iterable[tuple[int, bytes]], *, fanout: int = 16, leaf_limit: int = 32
    ) -> RangeTree:
        """The tree over leaves given in strictly ascending code order (one pass over them)."""
        codes: list[int] = []
        digests: list[bytes] = []
        previous = -1
        for code, digest in leaves:
            _check_code(code)
            if code <= previous:
                raise ValueError(f"code {code} is not after {previous}: leaves unsorted or duplicated")
            if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
                raise ValueError(f"digest of code {code} is not {DIGEST_BYTES} bytes")
            codes.append(code)
            digests.append(digest)
            previous = code
        return cls(codes, digests, fanout, leaf_limit)

    def _hash(self, lo: int, hi: int, i: int, j: int) -> bytes:
        """Hash [lo, hi), whose leaves are at indexes [i, j), storing every non-empty range."""
        if j - i <= self.leaf_limit:
            digest = leaf_range_digest(zip(self._codes[i:j], self._digests[i:j]))
        else:
            parts = []
            start = i
            for c_lo, c_hi in split(lo, hi, self.fanout):
                end = bisect_left(self._codes, c_hi, start, j)
                parts.append(self._hash(c_lo, c_hi, start, end))
                start = end
            digest = hashlib.sha256(b"\x01" + b"".join(parts)).digest()
        if j > i:
            self._nodes[(lo, hi)] = digest
        return digest

    def _span(self, lo: int, hi: int) -> tuple[int, int]:
        """Indexes [i, j) of the leaves with lo <= code < hi."""
        return bisect_left(self._codes, lo), bisect_left(self._codes, hi)

    def count(self, lo: int, hi: int) -> int:
        """How many leaves lie in [lo, hi)."""
        i, j = self._span(lo, hi)
        return j - i

    def leaves_in(self, lo: int, hi: int) -> Iterator[tuple[int, bytes]]:
        """The (code, digest) leaves in [lo, hi), in code order."""
        i, j = self._span(lo, hi)
        return zip(self._codes[i:j], self._digests[i:j])

    def digest(self, lo: int, hi: int) -> bytes:
        """The digest of canonical range [lo, hi); ValueError if it cannot be a range of this tree."""
        stored = self._nodes.get((lo, hi))
        if stored is not None:
            return stored
        if not 0 <= lo <= hi <= CODE_SPACE or self.count(lo, hi) > self.leaf_limit:
            raise ValueError(f"[{lo}, {hi}) is not a canonical range of this tree")
        return leaf_range_digest(self.leaves_in(lo, hi))

    def root(self) -> bytes:
        """The digest of the whole code space."""
        return self.digest(*ROOT)
