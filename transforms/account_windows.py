"""Events -> per-account activity in fixed event-time windows.

`ActivityFold` is the running summary of one account's events in one window.
Folds are built as close to the input as possible — per file range in batch
(transforms/batch_ingest.py) — so what crosses the shuffle is one small fold per
account and window, not every event. A stream is folded per account in
transforms/stream_fold.py.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import apache_beam as beam

from schemas.activity import AccountActivity
from schemas.event import ACCOUNT_CREATE, CONSULT, EXPORT, SEARCH, AccessEvent
from transforms.record_sketches import DistinctRecords

# Sum slots. A list, not an object: folds are merged and encoded per bundle.
_EVENTS, _TOUCHED, _CONSULTS, _SEARCHES, _EXPORTS, _CREATIONS, _DUPLICATES, _LARGEST_BULK = range(8)
_N_SUMS = 7  # slots that add up; _LARGEST_BULK is a maximum
_N_COUNTED = 6  # the slots an event contributes to (all but _DUPLICATES)
# Per event_id contribution, so that a duplicate seen in another fold can be taken back out.
# (A duplicate's record id needs no taking out: distinct counts are idempotent.)
_Contribution = Tuple[int, int, int, int, int, int, Optional[str]]


# action -> (consult, search, export, account_create): one lookup per event instead of comparisons.
_KIND_FLAGS = {CONSULT: (1, 0, 0, 0), SEARCH: (0, 1, 0, 0), EXPORT: (0, 0, 1, 0), ACCOUNT_CREATE: (0, 0, 0, 1)}
_NO_KIND = (0, 0, 0, 0)
# Contributions without a created account repeat endlessly (every consult is (1, 1, 1, 0, 0, 0, None)): one
# shared tuple each, so that a fold's by_id holds references, and pickling a range's folds writes each once.
_SHARED_CONTRIBUTIONS: Dict[Tuple[int, int, int, int, int], _Contribution] = {}
_SHARED_LIMIT = 1 << 12


def kind_flags(action: str) -> Tuple[int, int, int, int]:
    """(consult, search, export, account_create) of an action, each 0 or 1; all 0 for any other action."""
    return _KIND_FLAGS.get(action, _NO_KIND)


def contribution(touched: int, consult: int, search: int, export: int, create: int,
                 target: Optional[str]) -> _Contribution:
    """What one event adds to a fold's sums, remembered under its event_id."""
    if target is not None:
        return (1, touched, consult, search, export, create, target)
    shared = _SHARED_CONTRIBUTIONS.get((touched, consult, search, export, create))
    if shared is None:
        shared = (1, touched, consult, search, export, create, None)
        if len(_SHARED_CONTRIBUTIONS) < _SHARED_LIMIT:
            _SHARED_CONTRIBUTIONS[(touched, consult, search, export, create)] = shared
    return shared


def _first(a: Optional[str], b: Optional[str]) -> Optional[str]:
    # Deterministic whatever the bundle order: the smallest non-empty value wins.
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class ActivityFold:
    """One account's events of one window, folded; each event_id counted once."""

    __slots__ = ("sums", "by_id", "created", "records", "org", "actor_type")

    def __init__(self):
        self.sums = [0] * (_N_SUMS + 1)
        self.by_id: Dict[str, _Contribution] = {}
        self.created: set = set()
        self.records = DistinctRecords()
        self.org: Optional[str] = None
        self.actor_type: Optional[str] = None

    def __getstate__(self):
        return (self.sums, self.by_id, self.created, self.records, self.org, self.actor_type)

    def __setstate__(self, state):
        self.sums, self.by_id, self.created, self.records, self.org, self.actor_type = state

    @classmethod
    def from_row(cls, sums: list, by_id: dict, created: set, records_state: tuple, org: Optional[str],
                 actor_type: Optional[str]) -> "ActivityFold":
        """A fold from the fields `batch_windows.pack_columns` carries (the records as their state, by_id unpacked)."""
        fold = cls.__new__(cls)
        records = DistinctRecords.__new__(DistinctRecords)
        records.__setstate__(records_state)
        fold.__setstate__((sums, by_id, created, records, org, actor_type))
        return fold

    @property
    def events(self) -> int:
        return self.sums[_EVENTS]

    @property
    def duplicates(self) -> int:
        return self.sums[_DUPLICATES]

    def add_duplicates(self, n: int) -> None:
        """Copies of events counted elsewhere (an earlier pane of the window): counted as duplicates only."""
        self.sums[_DUPLICATES] += n

    def _count(self, contribution: _Contribution, sign: int = 1) -> None:
        sums = self.sums
        for slot in range(_N_COUNTED):
            sums[slot] += sign * contribution[slot]

    def add_event(self, event: AccessEvent) -> None:
        self.add(event.action, event.count, event.record, event.target, event.org, event.actor_type,
                 event.event_id)

    def add(self, action: str, count: int, record: Optional[str], target: Optional[str], org: Optional[str],
            actor_type: Optional[str], event_id: Optional[str]) -> None:
        """One validated event, given field by field: the batch reader folds rows it never makes events of."""
        consult, search, export, create = _KIND_FLAGS.get(action, _NO_KIND)
        touched = 1 if consult else (count if search or export else 0)
        if not create:
            target = None
        sums = self.sums
        if event_id is not None:
            by_id = self.by_id
            if event_id in by_id:
                sums[_DUPLICATES] += 1
                return
            by_id[event_id] = contribution(touched, consult, search, export, create, target)
        sums[_EVENTS] += 1
        sums[_TOUCHED] += touched
        sums[_CONSULTS] += consult
        sums[_SEARCHES] += search
        sums[_EXPORTS] += export
        sums[_CREATIONS] += create
        if (search or export) and touched > sums[_LARGEST_BULK]:
            sums[_LARGEST_BULK] = touched
        if target is not None:
            self.created.add(target)
        if consult and record is not None:
            self.records.add(record)
        if org is not None and org != self.org:
            self.org = _first(self.org, org)
        if actor_type is not None and actor_type != self.actor_type:
            self.actor_type = _first(self.actor_type, actor_type)

    def merge(self, other: "ActivityFold") -> None:
        sums = self.sums
        for slot in range(_N_SUMS):
            sums[slot] += other.sums[slot]
        sums[_LARGEST_BULK] = max(sums[_LARGEST_BULK], other.sums[_LARGEST_BULK])
        for event_id, contribution in other.by_id.items():
            if event_id in self.by_id:
                # Counted on both sides: take one copy back out.
                self._count(contribution, -1)
                sums[_DUPLICATES] += 1
            else:
                self.by_id[event_id] = contribution
        self.created |= other.created
        self.records.merge(other.records)
        self.org = _first(self.org, other.org)
        self.actor_type = _first(self.actor_type, other.actor_type)

    def to_activity(self, actor: str, window_start_ms: int, window_end_ms: int, late: bool) -> AccountActivity:
        records = self.records
        return _activity(actor, window_start_ms, window_end_ms, self.sums, self.created, records.estimate(),
                         records.sample_ids(), self.org, self.actor_type, late)


def activity_fields_of(actor: str, window_start_ms: int, window_end_ms: int, sums: list, created: set,
                       records_state: tuple, org: Optional[str], actor_type: Optional[str]) -> tuple:
    """The activity of a fold given as its packed fields (`batch_windows.pack_columns`), without making it a fold:
    as a plain tuple of AccountActivity's fields, which is how `pack_activity_fields` packs it."""
    exact = records_state[0]
    if exact is not None:
        distinct, sample = len(exact), DistinctRecords.sample_of(exact)
    else:
        records = DistinctRecords.__new__(DistinctRecords)
        records.__setstate__(records_state)
        distinct, sample = records.estimate(), records.sample_ids()
    return _activity_fields(actor, window_start_ms, window_end_ms, sums, created, distinct, sample, org, actor_type,
                            False)


def _activity(actor, window_start_ms, window_end_ms, sums, created, distinct, sample, org, actor_type, late):
    return AccountActivity._make(_activity_fields(actor, window_start_ms, window_end_ms, sums, created, distinct,
                                                  sample, org, actor_type, late))


def _activity_fields(actor, window_start_ms, window_end_ms, sums, created, distinct, sample, org, actor_type, late):
    # In AccountActivity's field order; a plain tuple, one per account and window.
    return (
        actor, org, actor_type, window_start_ms, window_end_ms, sums[_EVENTS], sums[_TOUCHED], sums[_CONSULTS],
        sums[_SEARCHES], sums[_EXPORTS], sums[_LARGEST_BULK], sums[_CREATIONS], sorted(created), distinct, sample,
        sums[_DUPLICATES], late,
    )


class AccountActivityFn(beam.CombineFn):
    """Folds one account's events — or folds already made upstream — of one window."""

    def create_accumulator(self) -> ActivityFold:
        return ActivityFold()

    def add_input(self, acc: ActivityFold, item) -> ActivityFold:
        if isinstance(item, ActivityFold):
            acc.merge(item)
        else:
            acc.add_event(item)
        return acc

    def merge_accumulators(self, accumulators) -> ActivityFold:
        accumulators = iter(accumulators)
        # A streaming runner may merge nothing at all (Flink does).
        merged = next(accumulators, None)
        if merged is None:
            return self.create_accumulator()
        for other in accumulators:
            merged.merge(other)
        return merged

    def extract_output(self, acc: ActivityFold) -> ActivityFold:
        return acc


class SummariseAccountWindows(beam.PTransform):
    """(actor, AccessEvent or ActivityFold), timestamped, bounded -> (actor, AccountActivity), one per account and window.

    A batch has no late data: the window goes into the key and the runner
    groups globally, without the per-window trigger bookkeeping that dominated
    replay time. A stream is folded by `transforms/stream_fold.py` instead,
    which counts each event once across late panes and dead-letters what comes
    too late.
    """

    def __init__(self, window_minutes: int):
        super().__init__()
        self._window_ms = window_minutes * 60_000

    def expand(self, keyed):
        if not keyed.is_bounded:
            raise ValueError("SummariseAccountWindows folds bounded input; a stream goes through FoldAccountStream")
        return (
            keyed
            | "KeyByWindow" >> beam.ParDo(_KeyByWindow(self._window_ms))
            | "Fold" >> beam.CombinePerKey(AccountActivityFn())
            | "ToActivity" >> beam.MapTuple(_activity_of_keyed_window, window_ms=self._window_ms)
            .with_output_types(beam.typehints.KV[str, AccountActivity])
        )


class _KeyByWindow(beam.DoFn):
    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        actor, item = element
        ts_ms = timestamp.micros // 1000
        yield (actor, ts_ms - ts_ms % self._window_ms), item


def _activity_of_keyed_window(key, fold, window_ms=0):  # MapTuple wants a default; the caller always passes it
    actor, window_start_ms = key
    return actor, fold.to_activity(actor, window_start_ms, window_start_ms + window_ms, late=False)


class KeyByActor(beam.PTransform):
    """AccessEvents -> (actor, event), ready for SummariseAccountWindows."""

    def expand(self, events):
        return events | "KeyByActor" >> beam.Map(lambda event: (event.actor, event))
