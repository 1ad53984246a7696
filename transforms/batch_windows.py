"""Where a batch replay's per-range folds become account windows, batched per organisation.

A file range folds the lines it holds (transforms/batch_ingest.py), so one
account's window can be split between two ranges, or two files. Grouping by
account puts each window back together — its duplicates across ranges
counted once — before the window is assigned to its organisation: the
organisation a window belongs to is only known once all its events are in.
"""

from __future__ import annotations

import pickle
from typing import Dict, List, Sequence, Tuple

import apache_beam as beam

from schemas.activity import AccountActivity, pack_activities
from transforms.account_windows import ActivityFold
from transforms.gc_pause import paused_gc
from transforms.group_model import group_key


def pack_folds(windows: Sequence[Tuple[int, ActivityFold]]) -> bytes:
    """One account's folds of one range as one element, pickled once rather than fold by fold."""
    return pickle.dumps(list(windows), protocol=pickle.HIGHEST_PROTOCOL)


class _MergeAccountFolds(beam.DoFn):
    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element):
        with paused_gc():
            yield from self._merge(element)

    def _merge(self, element):
        actor, parts = element
        merged: Dict[int, ActivityFold] = {}
        for packed in parts:
            for window_start_ms, fold in pickle.loads(packed):
                seen = merged.get(window_start_ms)
                if seen is None:
                    merged[window_start_ms] = fold
                else:
                    seen.merge(fold)
        by_group: Dict[str, List[AccountActivity]] = {}
        for window_start_ms, fold in merged.items():
            activity = fold.to_activity(actor, window_start_ms, window_start_ms + self._window_ms, late=False)
            by_group.setdefault(group_key(activity), []).append(activity)
        for group, activities in by_group.items():
            yield group, pack_activities(activities)


class MergeRangeFolds(beam.PTransform):
    """(actor, pack_folds([(window_start_ms, ActivityFold), ...])) per range -> (group, packed AccountActivities)."""

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
