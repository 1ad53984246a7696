"""A stream's events -> per-account activity per window: each event counted once, none lost.

Why not Beam's window panes alone: a pane's accumulator forgets the event_ids it
counted once it fires, so a redelivery within the allowed lateness was counted
again in a late pane; and events behind the watermark by more than the allowed
lateness were dropped by the windowing without a trace.

How. A DoFn cannot read the watermark (apache/beam#23379), so the runner's own
windowing still judges lateness, but only on a receipt per event (its id, a few
bytes): receipts are windowed with the allowed lateness and counted per account
and pane (lifted per bundle, like any combine), and the runner drops the
receipts of events that are too late. The events themselves go, next to their
receipts, to a stateful fold keyed by account, in the global window (where
nothing expires, so nothing is dropped):

- an event is counted once its receipt is in and the watermark has passed its
  window's end: the first pane of a window when it closes, later ones as late
  receipts come in (flagged `late`, as Beam's late panes were);
- an event still without a receipt when the watermark passes its window's end
  plus the allowed lateness will never get one: it is dead-lettered `too_late`;
- the event_ids counted per window are remembered until the window expires, so
  a redelivery is a duplicate in whichever pane it arrives.

Why the receipts are always in time: the runner holds the receipts' watermark at
a window's end until its on-time pane is out, and keeps a late receipt only
while the watermark is within the allowed lateness, so every receipt of a window
reaches the fold before the fold's watermark passes that window's end plus the
lateness. Only state, event-time timers and a windowed combine: portable to Flink.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Dict, List, NamedTuple, Optional

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from schemas import dead_letter as dl
from schemas.activity import AccountActivity
from schemas.event import AccessEvent
from schemas.timestamps import format_rfc3339_ms
from transforms.account_windows import ActivityFold
from transforms.read_events import DEAD_LETTER_TAG, METRICS_NAMESPACE


def receipt_id(event: AccessEvent) -> str:
    """What a receipt names: the event_id, or for an event without one, a digest of the whole event."""
    if event.event_id is not None:
        return event.event_id
    # "\0" cannot start a JSON string that parsed into an event_id here by accident; same event, same digest.
    return "\0" + hashlib.blake2b(repr(tuple(event)).encode("utf-8"), digest_size=12).hexdigest()


class Receipt(NamedTuple):
    """The runner's word on some events of one account and window: kept (not too late), in which pane."""

    window_start_ms: int
    late: bool
    ids: Dict[str, int]  # receipt_id -> copies kept


class _CountIds(beam.CombineFn):
    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, receipt):
        acc[receipt] += 1
        return acc

    def merge_accumulators(self, accumulators):
        merged = Counter()
        for acc in accumulators:
            merged.update(acc)
        return merged

    def extract_output(self, acc):
        return dict(acc)


class _ToReceipt(beam.DoFn):
    """A pane of receipts -> one Receipt; empty panes are dropped.

    Why empty panes come at all: the Python SDK writes every windowing strategy with closing
    behaviour EMIT_ALWAYS and on-time behaviour FIRE_ALWAYS (apache_beam/transforms/core.py,
    EMIT_IF_NONEMPTY is a TODO there). Beam's own Python runners ignore both; the Java
    ReduceFnRunner that groups on Flink honours them: every window ends with an extra, empty pane
    when it expires (LATE), or, when one watermark step passes both its end and its expiry, a
    second empty ON_TIME pane. Measured on Flink (make demo-flink, 4 days x 30 accounts): 7,182
    panes for 3,591 account-windows, and every one of the 1,167 LATE panes was empty.
    """

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        actor, ids = element
        if ids:
            yield actor, Receipt(win.start.micros // 1000, pane.timing == PaneInfoTiming.LATE, ids)


def _event_line(event: AccessEvent) -> bytes:
    """The event back as a contract JSON line, for its dead letter (the raw line is gone by then)."""
    record = {field: value for field, value in event._asdict().items() if value is not None}
    record["ts"] = format_rfc3339_ms(event.ts_ms)
    return orjson.dumps(record)


class _Window:
    """What the fold remembers of one window until it expires."""

    __slots__ = ("fired", "ids")

    def __init__(self):
        self.fired = False  # a pane of it went out: what follows is late
        self.ids: set = set()  # event_ids counted in it


class FoldAccountStreamFn(beam.DoFn):
    """Keyed by account: (actor, AccessEvent or Receipt) -> (actor, AccountActivity); too-late events dead-lettered.

    One timer armed per account, always at the earliest thing still to do: a
    window to close (its end) or a window to expire (its end + the allowed
    lateness).

    Two timers take turns: a callback arms the other one, never the timer that
    is firing. Beam 2.54's Flink runner loses track of a timer set again from
    its own callback: its watermark hold outlives it, this DoFn's output
    watermark stops there, and nothing downstream of it (detection's own
    timers) ever fires again (seen on Flink: panes folded for six days of
    event time, not one detection flush).
    """

    EVENTS = BagStateSpec("events", PickleCoder())  # events not counted yet
    RECEIPTS = BagStateSpec("receipts", PickleCoder())  # receipts not matched yet
    WINDOWS = ReadModifyWriteStateSpec("windows", PickleCoder())  # window start -> _Window
    NEXT = ReadModifyWriteStateSpec("next", VarIntCoder())  # where the armed timer points
    ARMED = ReadModifyWriteStateSpec("armed", VarIntCoder())  # which timer is armed: 0 or 1
    DUE_0 = TimerSpec("due_0", TimeDomain.WATERMARK)
    DUE_1 = TimerSpec("due_1", TimeDomain.WATERMARK)

    def __init__(self, window_ms: int, allowed_lateness_ms: int):
        self._window_ms = window_ms
        self._lateness_ms = allowed_lateness_ms

    def setup(self):
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        self._too_late = Metrics.counter(METRICS_NAMESPACE, f"dead_lettered_{dl.TOO_LATE}")
        self._duplicates = Metrics.counter(METRICS_NAMESPACE, "events_duplicate")

    def process(self, element, events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                next_due=beam.DoFn.StateParam(NEXT), armed=beam.DoFn.StateParam(ARMED),
                due_0=beam.DoFn.TimerParam(DUE_0), due_1=beam.DoFn.TimerParam(DUE_1)):
        _, item = element
        if isinstance(item, Receipt):
            receipts.add(item)
            start = item.window_start_ms
        else:
            events.add(item)
            start = item.ts_ms - item.ts_ms % self._window_ms
        # Behind the watermark already (a late receipt or event): the timer fires at the next watermark.
        self._point(start + self._window_ms, next_due, armed, (due_0, due_1))

    @staticmethod
    def _point(at_ms: int, next_due, armed, timers) -> None:
        current = next_due.read()
        if current is None or at_ms < current:
            next_due.write(at_ms)
            timers[armed.read() or 0].set(Timestamp(micros=at_ms * 1000))

    @on_timer(DUE_0)
    def on_due_0(self, key=beam.DoFn.KeyParam, fired_at=beam.DoFn.TimestampParam,
                 events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                 windows_state=beam.DoFn.StateParam(WINDOWS), next_due=beam.DoFn.StateParam(NEXT),
                 armed=beam.DoFn.StateParam(ARMED), due_0=beam.DoFn.TimerParam(DUE_0),
                 due_1=beam.DoFn.TimerParam(DUE_1)):
        armed.write(1)
        yield from self._on_due(key, fired_at, events, receipts, windows_state, next_due, armed, (due_0, due_1))

    @on_timer(DUE_1)
    def on_due_1(self, key=beam.DoFn.KeyParam, fired_at=beam.DoFn.TimestampParam,
                 events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                 windows_state=beam.DoFn.StateParam(WINDOWS), next_due=beam.DoFn.StateParam(NEXT),
                 armed=beam.DoFn.StateParam(ARMED), due_0=beam.DoFn.TimerParam(DUE_0),
                 due_1=beam.DoFn.TimerParam(DUE_1)):
        armed.write(0)
        yield from self._on_due(key, fired_at, events, receipts, windows_state, next_due, armed, (due_0, due_1))

    def _on_due(self, key, fired_at, events, receipts, windows_state, next_due, armed, timers):
        now_ms = fired_at.micros // 1000  # the watermark is at least here
        window_ms, lateness_ms = self._window_ms, self._lateness_ms
        windows: Dict[int, _Window] = windows_state.read() or {}
        pending: Dict[int, List[AccessEvent]] = {}
        for event in events.read():
            pending.setdefault(event.ts_ms - event.ts_ms % window_ms, []).append(event)
        credit: Dict[int, Counter] = {}
        on_time: set = set()
        for receipt in receipts.read():
            credit.setdefault(receipt.window_start_ms, Counter()).update(receipt.ids)
            if not receipt.late:
                on_time.add(receipt.window_start_ms)

        for start in sorted(set(pending) | set(credit) | set(windows)):
            end = start + window_ms
            if end > now_ms:
                continue  # still open
            memory = windows.get(start)
            if memory is None:
                memory = windows[start] = _Window()
            counted, waiting = self._match(pending.pop(start, []), credit.get(start, Counter()))
            if counted:
                yield from self._pane(key, start, end, counted, memory, late=memory.fired or start not in on_time)
            if end + lateness_ms <= now_ms:
                # Expired: no receipt can come any more.
                for event in waiting:
                    yield from self._dead_letter(event, start, end)
                credit.pop(start, None)
                del windows[start]
            elif waiting:
                pending[start] = waiting

        self._store(pending, credit, on_time, windows, events, receipts, windows_state, next_due, armed, timers)

    @staticmethod
    def _match(candidates: List[AccessEvent], credit: Counter):
        counted, waiting = [], []
        for event in candidates:
            rid = receipt_id(event)
            if credit[rid] > 0:
                credit[rid] -= 1
                counted.append(event)
            else:
                waiting.append(event)
        return counted, waiting

    def _pane(self, actor, start: int, end: int, counted: List[AccessEvent], memory: _Window, late: bool):
        fold = ActivityFold()
        duplicates = 0
        for event in counted:
            if event.event_id is not None and event.event_id in memory.ids:
                duplicates += 1  # counted in an earlier pane of this window
                continue
            fold.add_event(event)
        fold.add_duplicates(duplicates)
        memory.ids.update(fold.by_id)
        if fold.events == 0:
            # Nothing new (a redelivery): a pane would only re-score the window. Count, emit nothing.
            self._duplicates.inc(fold.duplicates)
            return
        memory.fired = True
        yield actor, fold.to_activity(actor, start, end, late)

    def _dead_letter(self, event: AccessEvent, start: int, end: int):
        self._rejected.inc()
        self._too_late.inc()
        detail = (f"event time {format_rfc3339_ms(event.ts_ms)}: the watermark passed the end of its window "
                  f"[{format_rfc3339_ms(start)}, {format_rfc3339_ms(end)}) by more than the allowed lateness "
                  f"({self._lateness_ms // 60_000} min) before it arrived")
        yield pvalue.TaggedOutput(DEAD_LETTER_TAG, dl.DeadLetter(dl.TOO_LATE, detail, None, _event_line(event)))

    def _store(self, pending, credit, on_time, windows, events, receipts, windows_state, next_due, armed, timers):
        events.clear()
        receipts.clear()
        for batch in pending.values():
            for event in batch:
                events.add(event)
        for start, ids in credit.items():
            left = {rid: n for rid, n in ids.items() if n > 0}
            if left:
                receipts.add(Receipt(start, start not in on_time, left))
        window_ms, lateness_ms = self._window_ms, self._lateness_ms
        # Next: the first open window to close, else the first window to expire.
        closes = [start + window_ms for start in set(pending) | set(credit) if start not in windows]
        expires = [start + window_ms + lateness_ms for start in set(windows) | set(pending) | set(credit)]
        upcoming = closes + expires
        next_due.clear()
        if not upcoming:
            windows_state.clear()  # nothing left: the account's state is gone until it shows up again
            return
        windows_state.write(windows)
        self._point(min(upcoming), next_due, armed, timers)


class FoldAccountStream(beam.PTransform):
    """(actor, AccessEvent), event-timestamped, unbounded -> ((actor, AccountActivity), too-late dead letters)."""

    def __init__(self, window_minutes: int, allowed_lateness_minutes: int):
        super().__init__()
        self._window_minutes = window_minutes
        self._lateness_minutes = allowed_lateness_minutes

    def expand(self, keyed):
        window_seconds = self._window_minutes * 60
        receipts = (
            keyed
            | "ReceiptIds" >> beam.MapTuple(lambda actor, event: (actor, receipt_id(event))).with_output_types(
                beam.typehints.KV[str, str])
            | "ReceiptWindows"
            >> beam.WindowInto(
                window.FixedWindows(window_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=self._lateness_minutes * 60),
            )
            | "CountReceipts" >> beam.CombinePerKey(_CountIds())
            | "ToReceipts" >> beam.ParDo(_ToReceipt())
            | "ReceiptsGlobal" >> beam.WindowInto(window.GlobalWindows())
        )
        # One coder on both sides of the Flatten: a runner moves its inputs' bytes as they are.
        either = beam.typehints.KV[str, beam.typehints.Any]
        events = keyed | "EventsAsAny" >> beam.Map(lambda kv: kv).with_output_types(either)
        receipts = receipts | "ReceiptsAsAny" >> beam.Map(lambda kv: kv).with_output_types(either)
        results = (
            (events, receipts)
            | "EventsAndReceipts" >> beam.Flatten().with_output_types(either)
            | "Fold"
            >> beam.ParDo(FoldAccountStreamFn(window_seconds * 1000, self._lateness_minutes * 60_000)).with_outputs(
                DEAD_LETTER_TAG, main="activities")
        )
        activities, too_late = results.activities, results[DEAD_LETTER_TAG]
        activities.element_type = beam.typehints.KV[str, AccountActivity]
        too_late.element_type = dl.DeadLetter
        return activities, too_late
