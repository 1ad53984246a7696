"""Bounded-memory summaries of which records an account read.

- `DistinctRecords`: distinct records in a window — exact while small, a
  HyperLogLog (Apache DataSketches) once large, so an account reading millions
  costs a few kilobytes; plus a bottom-k sample of record ids, the same
  whatever order events arrive in.
- `Portfolio`: a Bloom filter of the records an account usually works on, to
  count how many of a window's records it never consulted before.

Hashes are stable across processes (CRC-32, BLAKE2b), never Python's `hash()`,
which is salted per process and would break restored state.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import List, Optional, Tuple

import datasketches

SAMPLE_SIZE = 64
EXACT_LIMIT = 256
_HLL_LG_K = 12  # ~1.6 % standard error, at most 4 KiB


def record_hash(record: str) -> int:
    return zlib.crc32(record.encode("utf-8"))


def _smallest(records) -> List[Tuple[int, str]]:
    """The bottom-k of distinct records: (hash, record) of the SAMPLE_SIZE smallest, in order."""
    return sorted([(record_hash(record), record) for record in records])[:SAMPLE_SIZE]


class DistinctRecords:
    __slots__ = ("exact", "hll", "sample")

    def __init__(self):
        self.exact: Optional[set] = set()
        self.hll = None
        # record -> hash, the smallest hashes seen: kept once the exact set is given up for the sketch;
        # while the set is exact, its sample is computed from it when asked (the same bottom-k).
        self.sample: dict = {}

    def add(self, record: str) -> None:
        exact = self.exact
        if exact is not None:
            if record in exact:
                return
            exact.add(record)
            if len(exact) > EXACT_LIMIT:
                self._promote()
            return
        self.hll.update(record)
        self._offer(record)

    def _offer(self, record: str) -> None:
        sample = self.sample
        if record not in sample:
            sample[record] = record_hash(record)
            if len(sample) > 2 * SAMPLE_SIZE:
                self.sample = dict(sorted(sample.items(), key=lambda kv: (kv[1], kv[0]))[:SAMPLE_SIZE])

    def _promote(self) -> None:
        exact = self.exact or set()
        self.hll = datasketches.hll_sketch(_HLL_LG_K, datasketches.tgt_hll_type.HLL_8)
        for record in exact:
            self.hll.update(record)
        self.sample = {record: hashed for hashed, record in _smallest(exact)}
        self.exact = None

    def merge(self, other: "DistinctRecords") -> None:
        if other.exact is not None:
            for record in other.exact:
                self.add(record)
            return
        if self.exact is not None:
            self._promote()
        union = datasketches.hll_union(_HLL_LG_K)
        union.update(self.hll)
        union.update(other.hll)
        self.hll = union.get_result(datasketches.tgt_hll_type.HLL_8)
        for record in other.sample:
            self._offer(record)

    def estimate(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        return int(round(self.hll.get_estimate()))

    @staticmethod
    def sample_of(exact) -> List[str]:
        """The bottom-k sample of an exact set of records."""
        if len(exact) <= 1:
            return list(exact)  # most windows: no order to find
        return [record for _, record in _smallest(exact)]

    def sample_ids(self) -> List[str]:
        if self.exact is not None:
            return self.sample_of(self.exact)
        # (hash, record) pairs sort as the key (hash, record) would, without a key function per item.
        return [r for _, r in sorted([(h, r) for r, h in self.sample.items()])[:SAMPLE_SIZE]]

    # Accumulators cross the shuffle: the sketch travels as its compact bytes.
    def __getstate__(self):
        return (self.exact, None if self.hll is None else self.hll.serialize_compact(), self.sample)

    def __setstate__(self, state):
        self.exact, hll_bytes, self.sample = state
        self.hll = None if hll_bytes is None else datasketches.hll_sketch.deserialize(hll_bytes)


class Portfolio:
    """A Bloom filter over the records an account has worked on (8 Kib, 4 hashes).

    The bits live in a bytearray, so that setting or testing one is O(1)
    rather than a new 1 KiB integer each time; its bytes are the same
    little-endian layout as before (`to_bytes`), so saved baselines still load.
    """

    BITS = 8192
    HASHES = 4
    # Records come back window after window (an advisor's own files): their bit positions are
    # remembered, up to this many records per process.
    POSITIONS_CACHE_LIMIT = 1 << 16
    _positions_cache: dict = {}

    __slots__ = ("bits",)

    def __init__(self, data: bytes = b""):
        self.bits = bytearray(self.BITS // 8)
        self.bits[:len(data)] = data[:self.BITS // 8]

    @classmethod
    def _positions(cls, record: str) -> Tuple[int, ...]:
        """The record's bits (bit b is bit b & 7 of byte b >> 3): ints in a flat tuple, so that the cache of
        a replay's records is one object each for the collector to walk, not five."""
        positions = cls._positions_cache.get(record)
        if positions is None:
            digest = hashlib.blake2b(record.encode("utf-8"), digest_size=8).digest()
            first = int.from_bytes(digest[:4], "little")
            step = int.from_bytes(digest[4:], "little") | 1
            positions = tuple((first + i * step) % cls.BITS for i in range(cls.HASHES))
            if len(cls._positions_cache) >= cls.POSITIONS_CACHE_LIMIT:
                cls._positions_cache.clear()
            cls._positions_cache[record] = positions
        return positions

    def __contains__(self, record: str) -> bool:
        bits = self.bits
        for bit in self._positions(record):
            if not bits[bit >> 3] & 1 << (bit & 7):
                return False
        return True

    def add(self, record: str) -> None:
        bits = self.bits
        for bit in self._positions(record):
            bits[bit >> 3] |= 1 << (bit & 7)

    def add_all(self, records) -> None:
        bits = self.bits
        cache = self._positions_cache
        for record in records:
            for bit in cache.get(record) or self._positions(record):
                bits[bit >> 3] |= 1 << (bit & 7)

    def estimated_size(self) -> float:
        """How many distinct records were added: the standard estimate from the bits set."""
        set_bits = int.from_bytes(self.bits, "little").bit_count()
        if set_bits >= self.BITS:
            return float("inf")
        return -self.BITS / self.HASHES * math.log(1.0 - set_bits / self.BITS)

    def to_bytes(self) -> bytes:
        return bytes(self.bits) if any(self.bits) else b""

    def novel_records(self, sample: List[str]) -> List[str]:
        """The sampled records this account never worked on before, in sample order.

        Learning a window adds its sample; the other records' bits are all set already, so adding
        only these leaves the same filter for a fraction of the work.
        """
        bits = self.bits
        cache = self._positions_cache  # read here first: a call per record costs more than the test
        novel = []
        for record in sample:
            for bit in cache.get(record) or self._positions(record):
                if not bits[bit >> 3] & 1 << (bit & 7):
                    novel.append(record)
                    break
        return novel
