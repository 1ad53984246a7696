"""Where a batch replay's per-range folds become account windows, batched per organisation.

A file range folds the lines it holds (transforms/batch_ingest.py), so one
account's window can be split between two ranges, or two files. Grouping by
account puts each window back together — its duplicates across ranges
counted once — before the window is assigned to its organisation: the
organisation a window belongs to is only known once all its events are in.
"""

from __future__ import annotations

import pickle
import zlib
from itertools import repeat
from typing import Dict, Iterator, List, Sequence, Tuple

import apache_beam as beam

from schemas.activity import AccountActivity, pack_activities
from transforms.account_windows import ActivityFold, activity_of
from transforms.gc_pause import paused_gc
from transforms.group_model import group_key


def pack_event_ids(ids: List[str], contributions: list):
    """A window's `by_id` as it crosses the shuffle.

    Only a window split between ranges needs it again, so it travels as few objects as possible: its
    ids joined in one string, with their contributions, or the one contribution they all share (most
    windows: only consults). A dict as it is when an id holds a newline (the per-line parser reads
    JSON escapes); None when there are no ids.
    """
    if not ids:
        return None
    joined = "\n".join(ids)
    if joined.count("\n") != len(ids) - 1:
        return dict(zip(ids, contributions))
    first = contributions[0]
    return joined, first if contributions.count(first) == len(contributions) else contributions


def event_ids_of(packed) -> dict:
    """`pack_event_ids`'s window, as `by_id` again."""
    if packed is None:
        return {}
    if isinstance(packed, dict):
        return packed
    joined, contributions = packed
    ids = joined.split("\n")
    if isinstance(contributions, tuple):
        return dict.fromkeys(ids, contributions)
    return dict(zip(ids, contributions))


class _EventIdsColumn:
    """A pack's event-id column, unpickled the first time a window split between ranges needs it."""

    __slots__ = ("_blob", "_column")

    def __init__(self, blob: bytes):
        self._blob = blob
        self._column = None

    def __getitem__(self, window: int):
        if self._column is None:
            self._column = pickle.loads(self._blob)
        return self._column[window]


def _rows(packed: bytes) -> Iterator[Tuple[int, tuple]]:
    """(window start, (sums, (event-id column, index), created, records state, org, actor type)) per window."""
    starts, sums, ids_blob, *rest = pickle.loads(zlib.decompress(packed))
    ids = _EventIdsColumn(ids_blob)
    return zip(starts, zip(sums, zip(repeat(ids), range(len(starts))), *rest))


def _fold_of(row) -> ActivityFold:
    sums, (ids, window), *rest = row
    return ActivityFold.from_row(sums, event_ids_of(ids[window]), *rest)


def pack_folds(windows: Sequence[Tuple[int, ActivityFold]]) -> bytes:
    """One account's folds of one range as one element (`pack_columns`)."""
    return pack_columns([start for start, _ in windows], [fold.sums for _, fold in windows],
                        [pack_event_ids(list(fold.by_id), list(fold.by_id.values())) for _, fold in windows],
                        [fold.created for _, fold in windows],
                        [fold.records.__getstate__() for _, fold in windows], [fold.org for _, fold in windows],
                        [fold.actor_type for _, fold in windows])


def pack_columns(starts: list, sums: list, packed_ids: list, created: list, records_states: list, orgs: list,
                 actor_types: list) -> bytes:
    """One account's windows of one range as one element: column by column, pickled once.

    Columns of plain values (lists, sets, strings) rather than a list of fold objects: pickle then
    writes no class reference and calls no `__setstate__` per window, and most windows (those a single
    range holds whole) are turned into activities without ever becoming a fold again. Their event ids
    (`pack_event_ids`) are never read: that column, a third of the bytes, is pickled on its own and
    unpickled only for a window split between ranges.

    The whole is compressed (zlib, fastest level): a third of the bytes cross the runner, which
    in a local replay spent more time receiving, regrouping and sending them than zlib takes.
    """
    ids_blob = pickle.dumps(packed_ids, protocol=pickle.HIGHEST_PROTOCOL)
    return zlib.compress(pickle.dumps((starts, sums, ids_blob, created, records_states, orgs, actor_types),
                                      protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack_folds(packed: bytes) -> Iterator[Tuple[int, ActivityFold]]:
    """`pack_folds`'s windows, as folds again."""
    for start, row in _rows(packed):
        yield start, _fold_of(row)


class _MergeAccountFolds(beam.DoFn):
    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element):
        with paused_gc():
            yield from self._merge(element)

    def _merge(self, element):
        actor, parts = element
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
        window_ms = self._window_ms
        by_group: Dict[str, List[AccountActivity]] = {}
        for start, item in merged.items():
            if isinstance(item, ActivityFold):
                activity = item.to_activity(actor, start, start + window_ms, late=False)
            else:
                sums, _, created, records, org, actor_type = item
                activity = activity_of(actor, start, start + window_ms, sums, created, records, org, actor_type)
            by_group.setdefault(group_key(activity), []).append(activity)
        for group, activities in by_group.items():
            yield group, pack_activities(activities)


class MergeRangeFolds(beam.PTransform):
    """(actor, its windows of one range as `pack_columns` packs them) -> (group, packed AccountActivities).

    A window held whole by one range is read from its packed row as it is; only one split between
    ranges (or files) is made a fold again and merged, its duplicates across them counted once.
    """

    def __init__(self, window_minutes: int):
        super().__init__()
        self._window_ms = window_minutes * 60_000

    def expand(self, folds):
        return (
            folds
            | "GroupByAccount" >> beam.GroupByKey()
            | "MergeWindows" >> beam.ParDo(_MergeAccountFolds(self._window_ms)).with_output_types(
                beam.typehints.KV[str, bytes])
        )
