"""Events -> per-account activity in fixed event-time windows.

The fold runs as a CombineFn so the runner pre-aggregates each bundle before
the shuffle: what crosses the network is one small accumulator per account and
window, not every event.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from schemas.activity import AccountActivity
from schemas.event import ACCOUNT_CREATE, CONSULT, EXPORT, SEARCH, AccessEvent, action_kind
from transforms.record_sketches import DistinctRecords

# Accumulator slots. A list, not an object: it is merged and encoded per bundle.
_EVENTS, _TOUCHED, _CONSULTS, _SEARCHES, _EXPORTS, _CREATIONS, _DUPLICATES = range(7)
_N_SUMS = 7
# Per event_id contribution, so that a duplicate seen in another bundle can be taken back out.
# (A duplicate's record id needs no taking out: distinct counts are idempotent.)
_Contribution = Tuple[int, int, int, int, int, int, Optional[str]]


def _contribution(event: AccessEvent) -> _Contribution:
    kind = action_kind(event.action)
    return (
        1,
        event.records_touched,
        kind == CONSULT,
        kind == SEARCH,
        kind == EXPORT,
        kind == ACCOUNT_CREATE,
        event.target if kind == ACCOUNT_CREATE else None,
    )


class _Accumulator:
    __slots__ = ("sums", "by_id", "created", "records", "org", "actor_type")

    def __init__(self):
        self.sums = [0] * _N_SUMS
        self.by_id: Dict[str, _Contribution] = {}
        self.created: set = set()
        self.records = DistinctRecords()
        self.org: Optional[str] = None
        self.actor_type: Optional[str] = None

    def __getstate__(self):
        return (self.sums, self.by_id, self.created, self.records, self.org, self.actor_type)

    def __setstate__(self, state):
        self.sums, self.by_id, self.created, self.records, self.org, self.actor_type = state

    def add(self, contribution: _Contribution) -> None:
        sums = self.sums
        for slot in range(6):
            sums[slot] += contribution[slot]
        if contribution[6] is not None:
            self.created.add(contribution[6])


def _first(a: Optional[str], b: Optional[str]) -> Optional[str]:
    # Deterministic whatever the bundle order: the smallest non-empty value wins.
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class AccountActivityFn(beam.CombineFn):
    """Folds one account's events of one window into its activity counts, once per event_id."""

    def create_accumulator(self) -> _Accumulator:
        return _Accumulator()

    def add_input(self, acc: _Accumulator, event: AccessEvent) -> _Accumulator:
        contribution = _contribution(event)
        if event.event_id is not None:
            if event.event_id in acc.by_id:
                acc.sums[_DUPLICATES] += 1
                return acc
            acc.by_id[event.event_id] = contribution
        acc.add(contribution)
        if event.record is not None and contribution[2]:
            acc.records.add(event.record)
        acc.org = _first(acc.org, event.org)
        acc.actor_type = _first(acc.actor_type, event.actor_type)
        return acc

    def merge_accumulators(self, accumulators) -> _Accumulator:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            sums = merged.sums
            for slot in range(_N_SUMS):
                sums[slot] += other.sums[slot]
            for event_id, contribution in other.by_id.items():
                if event_id in merged.by_id:
                    # Counted on both sides: take one copy back out.
                    for slot in range(6):
                        sums[slot] -= contribution[slot]
                    sums[_DUPLICATES] += 1
                else:
                    merged.by_id[event_id] = contribution
            merged.created |= other.created
            merged.records.merge(other.records)
            merged.org = _first(merged.org, other.org)
            merged.actor_type = _first(merged.actor_type, other.actor_type)
        return merged

    def extract_output(self, acc: _Accumulator):
        return acc


class _ToActivity(beam.DoFn):
    """Names the window and pane of each fold, and leaves the windowed world.

    Per-account state downstream lives in the global window: it spans all
    windows of the account, which is the point of learning a baseline.
    """

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        actor, acc = element
        sums = acc.sums
        activity = AccountActivity(
            actor=actor,
            org=acc.org,
            actor_type=acc.actor_type,
            window_start_ms=win.start.micros // 1000,
            window_end_ms=win.end.micros // 1000,
            events=sums[_EVENTS],
            records_touched=sums[_TOUCHED],
            consults=sums[_CONSULTS],
            searches=sums[_SEARCHES],
            exports=sums[_EXPORTS],
            creations=sums[_CREATIONS],
            created=sorted(acc.created),
            distinct_records=acc.records.estimate(),
            record_sample=acc.records.sample_ids(),
            duplicates=sums[_DUPLICATES],
            late=pane.timing == PaneInfoTiming.LATE,
        )
        yield actor, activity


class SummariseAccountWindows(beam.PTransform):
    """Timestamped AccessEvents -> (actor, AccountActivity), one per account and window.

    Late events within `allowed_lateness_minutes` produce an extra, late pane
    holding only themselves (discarding mode), flagged `late=True`.
    """

    def __init__(self, window_minutes: int, allowed_lateness_minutes: int):
        super().__init__()
        self._window_seconds = window_minutes * 60
        self._allowed_lateness = Duration(seconds=allowed_lateness_minutes * 60)

    def expand(self, events):
        return (
            events
            | "Window"
            >> beam.WindowInto(
                window.FixedWindows(self._window_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=self._allowed_lateness,
            )
            | "KeyByActor" >> beam.Map(lambda event: (event.actor, event)).with_output_types(
                beam.typehints.KV[str, AccessEvent]
            )
            | "Fold" >> beam.CombinePerKey(AccountActivityFn())
            | "ToActivity" >> beam.ParDo(_ToActivity()).with_output_types(beam.typehints.KV[str, AccountActivity])
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
        )
