"""How a batch replay's packed elements are compressed on their way through the runner.

A replay moves each account's folds, then each organisation's windows, as one
pickled element apiece (transforms/batch_windows.py, schemas/activity.py).
On the local runner, moving those bytes costs more than compressing them, and
Zstandard at its fastest level, which pyarrow already carries, compresses
them smaller than zlib's fastest level in about a third of the time. Folds
that only go to a local disk and back are framed the same way but stored as
they are (`stored`): there, compressing cost more than writing four times
the bytes to the page cache.
"""

from __future__ import annotations

import pyarrow as pa

_CODEC = pa.Codec("zstd", compression_level=1)
_SIZE_BYTES = 8  # the uncompressed size leads: Arrow's codecs are told how much to decompress


_STORED = b"\xff" * _SIZE_BYTES  # in place of the size: the bytes follow as they are


def compress(data: bytes) -> bytes:
    return len(data).to_bytes(_SIZE_BYTES, "little") + _CODEC.compress(data, asbytes=True)


def stored(data: bytes) -> bytes:
    """`data` framed as `compress` frames it, not compressed: for bytes that stay on this machine's disk
    (transforms/spilled_folds.py), where compressing them costs more than it saves."""
    return _STORED + data


def decompress(packed: bytes):
    """The bytes `compress` or `stored` framed (a bytes-like object)."""
    if packed[:_SIZE_BYTES] == _STORED:
        return memoryview(packed)[_SIZE_BYTES:]
    size = int.from_bytes(packed[:_SIZE_BYTES], "little")
    return _CODEC.decompress(memoryview(packed)[_SIZE_BYTES:], decompressed_size=size, asbytes=True)
