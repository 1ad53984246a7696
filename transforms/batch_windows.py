"""Where a batch replay's per-range folds become account windows, batched per organisation.

A file range folds the lines it holds (transforms/batch_ingest.py), so one
account's window can be split between two ranges, or two files. Grouping by
account puts each window back together — its duplicates across ranges
counted once — before the window is assigned to its organisation: the
organisation a window belongs to is only known once all its events are in.
"""

from __future__ import annotations

import pickle
from itertools import repeat
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np

from schemas.activity import AccountActivity, pack_activity_fields
from schemas.shuffle_bytes import compress, decompress, stored
from transforms.account_windows import ActivityFold, activity_fields_of, contribution
from transforms.gc_pause import paused_gc
from transforms.group_model import group_of

_ORG = AccountActivity._fields.index("org")


class EventIds(NamedTuple):
    """The event ids of one account's windows of one range, as they cross the shuffle.

    Only a window split between ranges needs them again, to count an event delivered to both once,
    so they travel as a few flat values rather than a string and a tuple per event: the ids' UTF-8
    bytes back to back, the length of each, where each window's ids end, and what each event added
    (`account_windows.contribution`, as a small integer, with the accounts created named apart).
    A range's fold takes them straight from pyarrow's buffers (transforms/column_fold.py).
    """

    text: bytes  # every id's UTF-8 bytes, in window order then line order
    lengths: Tuple[str, bytes]  # per id, the length of its bytes (`small_ints`)
    window_ends: List[int]  # per window: how many ids the windows up to it hold
    kinds: Tuple[str, bytes]  # per id (`small_ints`): touched << 4 | consult << 3 | search << 2 | export << 1 | create
    targets: Dict[int, str]  # id index -> the account its account_create event created


def small_ints(values: np.ndarray) -> Tuple[str, bytes]:
    """Non-negative integers in the narrowest type that holds them, as (numpy type, bytes): ids are a
    few dozen bytes long and most events are consults, so a byte each instead of eight."""
    top = int(values.max()) if len(values) else 0
    kind = next(t for t in (np.uint8, np.uint16, np.uint32, np.int64) if top <= np.iinfo(t).max)
    return np.dtype(kind).str, values.astype(kind).tobytes()


def _ints(packed: Tuple[str, bytes]) -> np.ndarray:
    return np.frombuffer(packed[1], dtype=packed[0])


def contribution_kind(touched: int, consult: int, search: int, export: int, create: int) -> int:
    return touched << 4 | consult << 3 | search << 2 | export << 1 | create


def event_ids_of_windows(windows: Sequence[dict]) -> EventIds:
    """`EventIds` of windows given as their `by_id` dicts, in order."""
    ids = [event_id.encode("utf-8") for by_id in windows for event_id in by_id]
    contributions = [c for by_id in windows for c in by_id.values()]
    window_ends = np.cumsum([len(by_id) for by_id in windows], dtype=np.int64).tolist()
    kinds = np.array([contribution_kind(*c[1:6]) for c in contributions], dtype=np.int64)
    targets = {i: c[6] for i, c in enumerate(contributions) if c[6] is not None}
    return EventIds(b"".join(ids), small_ints(np.array([len(i) for i in ids], dtype=np.int64)), window_ends,
                    small_ints(kinds), targets)


class _EventIdsColumn:
    """A pack's `EventIds`, unpickled the first time a window split between ranges needs them."""

    __slots__ = ("_blob", "_ids", "_ends", "_kinds")

    def __init__(self, blob: bytes):
        self._blob = blob
        self._ids: Optional[EventIds] = None

    def __getitem__(self, window: int) -> dict:
        """The window's `by_id`."""
        if self._ids is None:
            self._ids = pickle.loads(self._blob)
            self._ends = np.cumsum(_ints(self._ids.lengths), dtype=np.int64).tolist()
            self._kinds = _ints(self._ids.kinds).tolist()
        text, _, window_ends, _, targets = self._ids
        ends, kinds = self._ends, self._kinds
        first = window_ends[window - 1] if window else 0
        by_id = {}
        for i in range(first, window_ends[window]):
            kind = kinds[i]
            by_id[text[ends[i - 1] if i else 0:ends[i]].decode("utf-8")] = contribution(
                kind >> 4, kind >> 3 & 1, kind >> 2 & 1, kind >> 1 & 1, kind & 1, targets.get(i))
        return by_id


def _rows(packed: bytes) -> Iterator[Tuple[int, tuple]]:
    """(window start, (sums, (event-id column, index), created, records state, org, actor type)) per window."""
    starts, sums, ids_blob, *rest = pickle.loads(decompress(packed))
    ids = _EventIdsColumn(ids_blob)
    return zip(starts, zip(sums, zip(repeat(ids), range(len(starts))), *rest))


def _fold_of(row) -> ActivityFold:
    sums, (ids, window), *rest = row
    return ActivityFold.from_row(sums, ids[window], *rest)


def pack_folds(windows: Sequence[Tuple[int, ActivityFold]]) -> bytes:
    """One account's folds of one range as one element (`pack_columns`)."""
    return pack_columns([start for start, _ in windows], [fold.sums for _, fold in windows],
                        event_ids_of_windows([fold.by_id for _, fold in windows]),
                        [fold.created for _, fold in windows],
                        [fold.records.__getstate__() for _, fold in windows], [fold.org for _, fold in windows],
                        [fold.actor_type for _, fold in windows])


def pack_columns(starts: list, sums: list, event_ids: EventIds, created: list, records_states: list, orgs: list,
                 actor_types: list, compressed: bool = True) -> bytes:
    """One account's windows of one range as one element: column by column, pickled once.

    Columns of plain values (lists, sets, strings) rather than a list of fold objects: pickle then
    writes no class reference and calls no `__setstate__` per window, and most windows (those a single
    range holds whole) are turned into activities without ever becoming a fold again. Their event ids
    are never read: that column (`EventIds`) is pickled on its own and unpickled only for a window
    split between ranges.

    The whole is compressed (schemas/shuffle_bytes.py): a quarter of the bytes cross the runner, which
    in a local replay spent more time receiving, regrouping and sending them than compressing takes.
    Folds spilled to a local disk instead (transforms/spilled_folds.py) are not: `compressed=False`.
    """
    ids_blob = pickle.dumps(event_ids, protocol=pickle.HIGHEST_PROTOCOL)
    return (compress if compressed else stored)(pickle.dumps(
        (starts, sums, ids_blob, created, records_states, orgs, actor_types), protocol=pickle.HIGHEST_PROTOCOL))


def unpack_folds(packed: bytes) -> Iterator[Tuple[int, ActivityFold]]:
    """`pack_folds`'s windows, as folds again."""
    for start, row in _rows(packed):
        yield start, _fold_of(row)


def merge_account_windows(actor: str, parts: Iterable[bytes], window_ms: int) -> Dict[str, List[tuple]]:
    """An account's folds of several ranges (`pack_columns`) -> group -> its windows, as AccountActivity tuples.

    A window held whole by one range is read from its packed row as it is; only one split between
    ranges (or files) is made a fold again and merged, its duplicates across them counted once.
    """
    # window start -> its one row as packed, or the fold its rows from several ranges were merged into
    merged: Dict[int, object] = {}
    for packed in parts:
        for start, row in _rows(packed):
            seen = merged.get(start)
            if seen is None:
                merged[start] = row
                continue
            if not isinstance(seen, ActivityFold):
                seen = merged[start] = _fold_of(seen)
            seen.merge(_fold_of(row))
    # Each window's activity as the plain tuple it is packed as: no AccountActivity made only to be taken apart.
    by_group: Dict[str, List[tuple]] = {}
    for start, item in merged.items():
        if isinstance(item, ActivityFold):
            fields = tuple(item.to_activity(actor, start, start + window_ms, late=False))
        else:
            sums, _, created, records, org, actor_type = item
            fields = activity_fields_of(actor, start, start + window_ms, sums, created, records, org, actor_type)
        by_group.setdefault(group_of(fields[_ORG], actor), []).append(fields)
    return by_group


class _MergeAccountFolds(beam.DoFn):
    """(actor, its packed folds of every range) -> (group, its windows of that group, packed) per group."""

    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element):
        actor, parts = element
        with paused_gc():
            for group, rows in merge_account_windows(actor, parts, self._window_ms).items():
                yield group, pack_activity_fields(rows)


class MergeRangeFolds(beam.PTransform):
    """Ranges' folds, as lists of (actor, its windows of the range as `pack_columns` packs them) ->
    (group, packed AccountActivities).

    Grouping by account puts each window split between ranges back together (`merge_account_windows`).
    (A local replay merges in the slots that score, from the folds it spilled: transforms/detect_in_slots.py.)
    """

    def __init__(self, window_minutes: int):
        super().__init__()
        self._window_ms = window_minutes * 60_000

    def expand(self, folds):
        return (
            folds
            | "PerAccount" >> beam.FlatMap(lambda batch: batch).with_output_types(beam.typehints.KV[str, bytes])
            | "GroupByAccount" >> beam.GroupByKey()
            | "MergeWindows" >> beam.ParDo(_MergeAccountFolds(self._window_ms)).with_output_types(
                beam.typehints.KV[str, bytes])
        )
