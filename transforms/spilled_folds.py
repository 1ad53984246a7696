"""A local replay's folds kept on disk between the fold and the scoring, instead of in the runner.

Beam's local runner holds every element that crosses from one stage to the
next in its own memory, and serves a side input from one more copy of it;
each worker that reads the side input holds it whole again. A replay's
folds grow with the span it replays: at 4 weeks of the bench they are
10 MB packed, at 16 weeks 40, at 100 times the accounts 99, and with them the
peak memory of every process. Here each range writes its folds to a file
of a scratch directory, one pack per account and week (`SLICE_MS`), and
only the file's path crosses the runner; the slot that scores an account
reads its packs of a week when it comes to that week of the account's
organisation (transforms/detect_in_slots.py). The local runner's workers
are processes of one machine, so they share the directory.

A file holds the packs back to back, then the index (actor, slice, offset,
length) per pack, pickled, then the index's offset in 8 bytes. A range that
is retried writes a new file: only the paths that leave a finished range
are read.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import shutil
import tempfile
import uuid
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

_OFFSET_BYTES = 8
# A replay is scored a slice of time after the other, each organisation's model carried from one to the next: what
# it holds at once is its accounts' models and one slice of windows, whatever the span. A week: at 4 weeks of the
# bench, 4 to 5 slices.
SLICE_MS = 7 * 24 * 3600 * 1000


def scratch_directory() -> str:
    """A directory name of its own for one replay's folds, under the system's temporary directory. Created by the
    first range that writes to it, so that a replay without folds leaves nothing behind; the job removes it when
    it has scored, and this process when it exits (a job stopped by Ctrl-C or by an error never scores)."""
    directory = os.path.join(tempfile.gettempdir(), f"guetteur-folds-{uuid.uuid4().hex}")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def spill(directory: str, folds: Iterable[Tuple[str, int, bytes]]) -> Optional[str]:
    """Writes (actor, slice, packed) to a new file of `directory`; returns its path (None when there were none)."""
    folds = iter(folds)
    first = next(folds, None)
    if first is None:
        return None
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{uuid.uuid4().hex}.folds")
    index: List[Tuple[str, int, int, int]] = []
    offset = 0
    with open(path, "wb") as out:
        for actor, slice_start, packed in itertools.chain((first,), folds):
            out.write(packed)
            index.append((actor, slice_start, offset, len(packed)))
            offset += len(packed)
        out.write(pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
        out.write(offset.to_bytes(_OFFSET_BYTES, "little"))
    return path


def _index(handle) -> List[Tuple[str, int, int, int]]:
    size = os.fstat(handle.fileno()).st_size
    start = int.from_bytes(os.pread(handle.fileno(), _OFFSET_BYTES, size - _OFFSET_BYTES), "little")
    return pickle.loads(os.pread(handle.fileno(), size - _OFFSET_BYTES - start, start))


class SpilledFolds:
    """The packs of the accounts that `keep(actor)` accepts, in the spilled files `paths`, read one account and
    slice at a time. A context manager: the files stay open until it ends."""

    def __init__(self, paths: Sequence[str], keep):
        self._handles = [open(path, "rb") for path in paths]
        self._where: Dict[int, Dict[str, List[Tuple[int, int, int]]]] = {}
        for number, handle in enumerate(self._handles):
            for actor, slice_start, offset, length in _index(handle):
                if keep(actor):
                    self._where.setdefault(slice_start, {}).setdefault(actor, []).append((number, offset, length))

    def __enter__(self) -> "SpilledFolds":
        return self

    def __exit__(self, *_) -> None:
        for handle in self._handles:
            handle.close()

    def slices(self) -> List[int]:
        """The slices that hold packs, in time order."""
        return sorted(self._where)

    def pop(self, actor: str, slice_start: int):
        """The account's packs of the slice, one per file range it had events of the slice in (None once popped,
        or if it had none)."""
        where = self._where.get(slice_start, {}).pop(actor, None)
        if where is None:
            return None
        handles = self._handles
        return [os.pread(handles[number].fileno(), length, offset) for number, offset, length in where]

    def __len__(self) -> int:
        """(Account, slice) pairs not popped yet."""
        return sum(map(len, self._where.values()))


def remove_spilled(paths: Iterable[str]) -> None:
    """Removes the directories the spilled files are in (each is one replay's own: `scratch_directory`)."""
    for directory in sorted({os.path.dirname(path) for path in paths}):
        shutil.rmtree(directory, ignore_errors=True)
