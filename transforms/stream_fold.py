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
import zlib
from collections import Counter
from typing import Dict, List, NamedTuple, Tuple

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.coders import FastPrimitivesCoder, PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from schemas import dead_letter as dl
from schemas.activity import AccountActivity
from schemas.event import AccessEvent
from schemas.timestamps import format_rfc3339_ms
from transforms.account_windows import ActivityFold
from transforms.read_events import DEAD_LETTER_TAG, METRICS_NAMESPACE


SHARDS = 16  # the fold's keys: accounts hashed into this many (see FoldAccountStreamFn for why)
# Expiry timers are set per hour of event time, not per window: an expiry only frees memory and
# dead-letters what never got a receipt, so doing it up to an hour of event time later changes no count.
EXPIRY_STEP_MS = 3_600_000
_TS, _ACTOR, _EVENT_ID = 0, 1, 12  # AccessEvent's fields, in a plain tuple
_EVENTS_TAG, _RECEIPTS_TAG = 0, 1


def shard_of(actor: str) -> int:
    """The fold's key of an account: stable across processes (unlike hash() of a str)."""
    return zlib.crc32(actor.encode("utf-8")) % SHARDS


def receipt_id(event: tuple) -> str:
    """What a receipt names (an AccessEvent or its plain tuple): the event_id, or for an event without
    one, a digest of the whole event."""
    event_id = event[_EVENT_ID]
    if event_id is not None:
        return event_id
    # "\0" cannot start a JSON string that parsed into an event_id here by accident; same event, same digest.
    return "\0" + hashlib.blake2b(repr(tuple(event)).encode("utf-8"), digest_size=12).hexdigest()


class Receipt(NamedTuple):
    """The runner's word on some events of one shard and window: kept (not too late), in which pane."""

    window_start_ms: int
    late: bool
    ids: Dict[Tuple[str, str], int]  # (actor, receipt_id) -> copies kept


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
    """A pane of receipts -> (shard, (_RECEIPTS_TAG, Receipt as a plain tuple)); empty panes are dropped.

    Why empty panes come at all: the Python SDK writes every windowing strategy with closing
    behaviour EMIT_ALWAYS and on-time behaviour FIRE_ALWAYS (apache_beam/transforms/core.py,
    EMIT_IF_NONEMPTY is a TODO there). Beam's own Python runners ignore both; the Java
    ReduceFnRunner that groups on Flink honours them: every window ends with an extra, empty pane
    when it expires (LATE), or, when one watermark step passes both its end and its expiry, a
    second empty ON_TIME pane. Measured on Flink (make demo-flink, 4 days x 30 accounts): 7,182
    panes for 3,591 account-windows, and every one of the 1,167 LATE panes was empty.
    """

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        shard, ids = element
        if ids:
            yield shard, (_RECEIPTS_TAG, tuple(Receipt(win.start.micros // 1000, pane.timing == PaneInfoTiming.LATE,
                                                        ids)))


class _BatchPerShard(beam.DoFn):
    """(actor, AccessEvent) -> (shard, (_EVENTS_TAG, [event tuples])): one element per shard and bundle.

    Why: the fold's cost is per element it receives (a state append, a runner round trip), not per
    event; a bundle's events of one shard go as one list of plain tuples (encoded without pickle).
    Held back until the bundle ends, which is safe: Flink's DoFnOperator does not let the watermark
    past a bundle that is still open.
    """

    def start_bundle(self):
        self._batches: Dict[int, list] = {}
        self._oldest: Dict[int, int] = {}

    def process(self, element):
        actor, event = element
        shard = shard_of(actor)
        batch = self._batches.get(shard)
        if batch is None:
            batch = self._batches[shard] = []
            self._oldest[shard] = event.ts_ms
        elif event.ts_ms < self._oldest[shard]:
            self._oldest[shard] = event.ts_ms
        batch.append(tuple(event))

    def finish_bundle(self):
        for shard, batch in self._batches.items():
            yield WindowedValue((shard, (_EVENTS_TAG, batch)), Timestamp(micros=self._oldest[shard] * 1000),
                                [window.GlobalWindow()])
        self._batches, self._oldest = {}, {}


def _event_line(event: tuple) -> bytes:
    """The event back as a contract JSON line, for its dead letter (the raw line is gone by then)."""
    record = {field: value for field, value in AccessEvent(*event)._asdict().items() if value is not None}
    record["ts"] = format_rfc3339_ms(event[_TS])
    return orjson.dumps(record)


class FoldAccountStreamFn(beam.DoFn):
    """Keyed by shard: event batches and receipts -> (actor, AccountActivity); too-late events dead-lettered.

    Timers, tagged: `close` per window start, at its end (set when the window is first seen; set
    again, in the past, when a late receipt or a late event comes for a window already closed: it
    fires at the next watermark); `expire` per hour of event time, at the first hour boundary at
    or after a window's end plus the allowed lateness, settling every window expired by then.

    Why shards, not one key per account: every timer firing and every state write is a round trip
    between Flink and the Python worker, and with a key per account there were two timers per
    account and window, each settling a few events. Measured on make demo-flink before this
    (300 events/s, 80 accounts, one worker): the fold 100 % busy at ~186 records/s. A shard's
    timers settle all its accounts' windows at once. SHARDS bounds the fold's parallelism.

    Why a timer per window, not one per key pointing at the next thing to do: a callback only knows
    its own timestamp, not the watermark, so a single timer re-armed from its callback walks one
    window per firing. On Flink a timer set in a callback fires only after the bundle that set it
    finishes (Beam 2.54's ExecutableStageDoFnOperator; bundles end after 1 s), so the fold's output
    watermark crawled hours of event time behind its input and detection scored 0 windows. With a
    timer per window, one watermark step fires every window it passes, in one bundle.
    """

    EVENTS = BagStateSpec("events", FastPrimitivesCoder())  # batches of event tuples not counted yet
    RECEIPTS = BagStateSpec("receipts", FastPrimitivesCoder())  # receipts (tuples) not matched yet
    # window start -> {actor: [fired, event_ids counted]}, from the window's close to its expiry
    WINDOWS = ReadModifyWriteStateSpec("windows", PickleCoder())
    # [window starts with a close timer not yet settled as expired, expiry times set, latest start closed]
    TIMED = ReadModifyWriteStateSpec("timed", PickleCoder())
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
        _, (tag, item) = element
        window_ms = self._window_ms
        if tag == _RECEIPTS_TAG:
            receipts.add(item)
            starts = {item[0]}
            late = item[1]
        else:
            events.add(item)
            starts = {event[_TS] - event[_TS] % window_ms for event in item}
            late = False
        armed, expiries, closed = timed.read() or (set(), set(), None)
        changed = False
        for start in starts:
            if start not in armed:
                armed.add(start)
                changed = True
                close.set(Timestamp(micros=(start + window_ms) * 1000), dynamic_timer_tag=str(start))
                due = self._expiry_due(start)
                if due not in expiries:
                    expiries.add(due)
                    expire.set(Timestamp(micros=due * 1000), dynamic_timer_tag=str(due))
            elif late or (closed is not None and start <= closed):
                # The window closed already: its late pane goes out at the next watermark.
                close.set(Timestamp(micros=(start + window_ms) * 1000), dynamic_timer_tag=str(start))
        if changed:
            timed.write((armed, expiries, closed))

    def _expiry_due(self, start: int) -> int:
        expiry = start + self._window_ms + self._lateness_ms
        return -(-expiry // EXPIRY_STEP_MS) * EXPIRY_STEP_MS

    @on_timer(CLOSE)
    def on_close(self, tag=beam.DoFn.DynamicTimerTagParam, events=beam.DoFn.StateParam(EVENTS),
                 receipts=beam.DoFn.StateParam(RECEIPTS), windows_state=beam.DoFn.StateParam(WINDOWS),
                 timed=beam.DoFn.StateParam(TIMED)):
        start = int(tag)
        armed, expiries, closed = timed.read() or (set(), set(), None)
        if start not in armed:
            return  # expired already (a close set again after its window's expiry settled it)
        if closed is None or start > closed:
            timed.write((armed, expiries, start))
        yield from self._settle([start], False, events, receipts, windows_state)

    @on_timer(EXPIRE)
    def on_expire(self, tag=beam.DoFn.DynamicTimerTagParam, events=beam.DoFn.StateParam(EVENTS),
                  receipts=beam.DoFn.StateParam(RECEIPTS), windows_state=beam.DoFn.StateParam(WINDOWS),
                  timed=beam.DoFn.StateParam(TIMED)):
        due = int(tag)
        armed, expiries, closed = timed.read() or (set(), set(), None)
        expiries.discard(due)
        expired = sorted(start for start in armed if self._expiry_due(start) <= due)
        armed.difference_update(expired)
        if armed or expiries:
            timed.write((armed, expiries, closed))
        else:
            timed.clear()
        if expired:
            yield from self._settle(expired, True, events, receipts, windows_state)

    def _settle(self, starts: List[int], expired: bool, events, receipts, windows_state):
        """Windows `starts` closed (or expired): count what has its receipt; on expiry dead-letter the rest."""
        window_ms = self._window_ms
        settling = set(starts)
        kept: list = []
        candidates: Dict[int, list] = {}
        for batch in events.read():
            for event in batch:
                start = event[_TS] - event[_TS] % window_ms
                if start in settling:
                    candidates.setdefault(start, []).append(event)
                else:
                    kept.append(event)
        other_receipts: list = []
        credit: Dict[int, Counter] = {}
        on_time: Dict[int, set] = {}  # start -> actors with an on-time receipt
        matched_receipts = False
        for receipt in receipts.read():
            start, late, ids = receipt
            if start in settling:
                matched_receipts = True
                credit.setdefault(start, Counter()).update(ids)
                if not late:
                    on_time.setdefault(start, set()).update(actor for actor, _ in ids)
            else:
                other_receipts.append(receipt)
        windows: Dict[int, Dict[str, list]] = windows_state.read() or {}
        waiting_all: list = []
        leftovers: list = []
        for start in starts:
            counted, waiting = self._match(candidates.get(start, ()), credit.get(start, Counter()))
            memory = windows.setdefault(start, {})
            for actor, actor_events in counted.items():
                yield from self._pane(actor, start, actor_events, memory, actor not in on_time.get(start, ()))
            if expired:
                # No receipt can come any more.
                for event in waiting:
                    yield from self._dead_letter(event, start)
                windows.pop(start, None)
                continue
            waiting_all += waiting
            left = credit.get(start)
            if left:
                punctual = on_time.get(start, set())
                for late in (False, True):
                    ids = {key: n for key, n in left.items() if n > 0 and (key[0] not in punctual) == late}
                    if ids:
                        leftovers.append((start, late, ids))
        # Write back only what changed.
        if candidates:
            events.clear()
            if kept or waiting_all:
                events.add(kept + waiting_all)
        if matched_receipts:
            receipts.clear()
            for receipt in other_receipts + leftovers:
                receipts.add(receipt)
        if windows:
            windows_state.write(windows)
        else:
            windows_state.clear()

    @staticmethod
    def _match(candidates, credit: Counter):
        """Events with a receipt, per actor; and those still without one."""
        counted: Dict[str, list] = {}
        waiting = []
        for event in candidates:
            key = (event[_ACTOR], receipt_id(event))
            if credit[key] > 0:
                credit[key] -= 1
                counted.setdefault(event[_ACTOR], []).append(event)
            else:
                waiting.append(event)
        return counted, waiting

    def _pane(self, actor: str, start: int, counted: list, memory: Dict[str, list], late: bool):
        remembered = memory.get(actor)
        if remembered is None:
            remembered = memory[actor] = [False, set()]
        seen = remembered[1]
        fold = ActivityFold()
        duplicates = 0
        for event in counted:
            event_id = event[_EVENT_ID]
            if event_id is not None and event_id in seen:
                duplicates += 1  # counted in an earlier pane of this window
                continue
            # ts, actor, action, count, record, target, org, actor_type, ..., event_id
            fold.add(event[2], event[3], event[4], event[5], event[6], event[7], event_id)
        fold.add_duplicates(duplicates)
        seen.update(fold.by_id)
        if fold.events == 0:
            # Nothing new (a redelivery): a pane would only re-score the window. Count, emit nothing.
            self._duplicates.inc(fold.duplicates)
            return
        late = late or remembered[0]
        remembered[0] = True
        yield actor, fold.to_activity(actor, start, start + self._window_ms, late)

    def _dead_letter(self, event: tuple, start: int):
        self._rejected.inc()
        self._too_late.inc()
        end = start + self._window_ms
        detail = (f"event time {format_rfc3339_ms(event[_TS])}: the watermark passed the end of its window "
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
        either = beam.typehints.KV[int, beam.typehints.Any]
        receipts = (
            keyed
            | "ReceiptIds" >> beam.MapTuple(lambda actor, event: (shard_of(actor), (actor, receipt_id(event))))
            .with_output_types(beam.typehints.KV[int, beam.typehints.Tuple[str, str]])
            | "ReceiptWindows"
            >> beam.WindowInto(
                window.FixedWindows(window_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=self._lateness_minutes * 60),
            )
            | "CountReceipts" >> beam.CombinePerKey(_CountIds())
            | "ToReceipts" >> beam.ParDo(_ToReceipt()).with_output_types(either)
            | "ReceiptsGlobal" >> beam.WindowInto(window.GlobalWindows())
        )
        # One coder on both sides of the Flatten: a runner moves its inputs' bytes as they are.
        events = keyed | "BatchPerShard" >> beam.ParDo(_BatchPerShard()).with_output_types(either)
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
