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
from typing import Dict, List, NamedTuple

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
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

    Two event-time timers per window, tagged with the window's start, both set
    when the window is first seen: `close` at its end, `expire` at its end plus
    the allowed lateness. A late receipt sets `close` again (in the past: it
    fires at the next watermark) for the late pane.

    Why a timer per window, not one per account pointing at the next thing to
    do: a callback only knows its own timestamp, not the watermark, so a single
    timer re-armed from its callback walks one window per firing. On Flink a
    timer set in a callback fires only after the bundle that set it finishes
    (Beam 2.54's ExecutableStageDoFnOperator; bundles end after 1 s), so the
    fold's output watermark advanced 5 min of event time per second while the
    demo streams about an hour of event time per second: measured on the
    session cluster, the fold's output watermark crawled hours behind its input
    and detection scored 0 windows. With a timer per window, one watermark step
    fires every window it passes, in one bundle.
    """

    EVENTS = BagStateSpec("events", PickleCoder())  # events not counted yet
    RECEIPTS = BagStateSpec("receipts", PickleCoder())  # receipts not matched yet
    WINDOWS = ReadModifyWriteStateSpec("windows", PickleCoder())  # window start -> _Window, from its close on
    TIMED = ReadModifyWriteStateSpec("timed", PickleCoder())  # window starts whose timers are set
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, window_ms: int, allowed_lateness_ms: int):
        self._window_ms = window_ms
        self._lateness_ms = allowed_lateness_ms

    def setup(self):
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        self._too_late = Metrics.counter(METRICS_NAMESPACE, f"dead_lettered_{dl.TOO_LATE}")
        self._duplicates = Metrics.counter(METRICS_NAMESPACE, "events_duplicate")

    def process(self, element, events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                timed=beam.DoFn.StateParam(TIMED), close=beam.DoFn.TimerParam(CLOSE),
                expire=beam.DoFn.TimerParam(EXPIRE)):
        _, item = element
        if isinstance(item, Receipt):
            receipts.add(item)
            start = item.window_start_ms
        else:
            events.add(item)
            start = item.ts_ms - item.ts_ms % self._window_ms
        tag = str(start)
        armed = timed.read() or set()
        if start not in armed:
            armed.add(start)
            timed.write(armed)
            close.set(Timestamp(micros=(start + self._window_ms) * 1000), dynamic_timer_tag=tag)
            expire.set(Timestamp(micros=(start + self._window_ms + self._lateness_ms) * 1000), dynamic_timer_tag=tag)
        elif isinstance(item, Receipt) and item.late:
            # The window closed already: its late pane goes out at the next watermark.
            close.set(Timestamp(micros=(start + self._window_ms) * 1000), dynamic_timer_tag=tag)

    @on_timer(CLOSE)
    def on_close(self, key=beam.DoFn.KeyParam, tag=beam.DoFn.DynamicTimerTagParam,
                 events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                 windows_state=beam.DoFn.StateParam(WINDOWS), timed=beam.DoFn.StateParam(TIMED)):
        yield from self._settle(key, int(tag), False, events, receipts, windows_state, timed)

    @on_timer(EXPIRE)
    def on_expire(self, key=beam.DoFn.KeyParam, tag=beam.DoFn.DynamicTimerTagParam,
                  events=beam.DoFn.StateParam(EVENTS), receipts=beam.DoFn.StateParam(RECEIPTS),
                  windows_state=beam.DoFn.StateParam(WINDOWS), timed=beam.DoFn.StateParam(TIMED)):
        yield from self._settle(key, int(tag), True, events, receipts, windows_state, timed)

    def _settle(self, key, start: int, expired: bool, events, receipts, windows_state, timed):
        """Window `start` closed (or expired): count what has its receipt; on expiry dead-letter the rest."""
        window_ms = self._window_ms
        end = start + window_ms
        kept: List[AccessEvent] = []
        candidates: List[AccessEvent] = []
        for event in events.read():
            (candidates if event.ts_ms - event.ts_ms % window_ms == start else kept).append(event)
        other_receipts: List[Receipt] = []
        credit: Counter = Counter()
        on_time = had_receipts = False
        for receipt in receipts.read():
            if receipt.window_start_ms == start:
                had_receipts = True
                credit.update(receipt.ids)
                on_time = on_time or not receipt.late
            else:
                other_receipts.append(receipt)
        windows: Dict[int, _Window] = windows_state.read() or {}
        memory = windows.get(start)
        if memory is None:
            memory = windows[start] = _Window()
        counted, waiting = self._match(candidates, credit)
        if counted:
            yield from self._pane(key, start, end, counted, memory, late=memory.fired or not on_time)
        if expired:
            # No receipt can come any more.
            for event in waiting:
                yield from self._dead_letter(event, start, end)
            waiting = []
            credit = Counter()
            del windows[start]
            armed = timed.read() or set()
            armed.discard(start)
            if armed:
                timed.write(armed)
            else:
                timed.clear()
        # Write back only what changed: this window's events and receipts.
        if candidates:
            events.clear()
            for event in kept + waiting:
                events.add(event)
        if had_receipts:
            receipts.clear()
            for receipt in other_receipts:
                receipts.add(receipt)
            left = {rid: n for rid, n in credit.items() if n > 0}
            if left:
                receipts.add(Receipt(start, not on_time, left))
        if windows:
            windows_state.write(windows)
        else:
            windows_state.clear()

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
