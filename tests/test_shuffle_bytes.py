"""Packed elements survive their compression on the way through the runner, or being stored as they are
(schemas/shuffle_bytes.py)."""

import pickle
import random

from schemas.shuffle_bytes import compress, decompress, stored


def test_bytes_come_back_exactly_whatever_their_size_or_content():
    rng = random.Random(3)
    for data in (b"", b"x", bytes(range(256)) * 3, rng.randbytes(100_000),
                 pickle.dumps([("acct-1", "org-a", i % 7) for i in range(50_000)])):
        packed = compress(data)
        assert decompress(packed) == data


def test_the_repetitive_pickles_a_replay_moves_shrink_to_a_fraction():
    windows = pickle.dumps([("advisor-17", "org-a", "advisor", 1_700_000_000_000 + 300_000 * i, i % 3, [])
                            for i in range(20_000)])
    assert len(compress(windows)) < len(windows) / 4


def test_bytes_stored_uncompressed_come_back_exactly_through_the_same_decompress():
    rng = random.Random(5)
    for data in (b"", b"\xff" * 8, rng.randbytes(10_000), compress(b"a compressed frame, stored again")):
        assert bytes(decompress(stored(data))) == data
        assert len(stored(data)) == len(data) + 8
