"""Detection in event-time order, per organisation.

In a stream, a stateful DoFn buffers windows and replays them in event-time
order when the watermark passes them. In a batch, all of an organisation's
windows are grouped and replayed sorted in one pass, with no state to encode
per window. Either way the same events give the same alerts whether they
arrive sorted, shuffled, in one batch or as a stream.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from schemas.activity import AccountActivity, pack_activities, unpack_activity_fields
from schemas.alert import Alert
from schemas.baseline import AccountBaseline, GroupState
from transforms.detection_config import DetectionConfig
from transforms.gc_pause import paused_gc
from transforms.group_model import EVENT_TIME_ORDER, GroupModel, group_key
from transforms.read_events import METRICS_NAMESPACE

BASELINES_TAG = "baselines"
_LATE, _DUPLICATES = AccountActivity._fields.index("late"), AccountActivity._fields.index("duplicates")


class _DetectionCounters:
    """The detection metrics, shared by the streaming and the batch DoFn."""

    def __init__(self):
        self.windows_scored = Metrics.counter(METRICS_NAMESPACE, "windows_scored")
        self.late_windows = Metrics.counter(METRICS_NAMESPACE, "late_windows")
        self.duplicates = Metrics.counter(METRICS_NAMESPACE, "events_duplicate")
        self.accounts = Metrics.counter(METRICS_NAMESPACE, "accounts_tracked")
        self._alerts: Dict[str, object] = {}

    def touch(self) -> None:
        # At 0 from the first bundle on, on every runner (Flink's reporter shows a counter only once
        # it is reported), like the local exporter's core counters: dashboards get 0, not "no data".
        for counter in (self.windows_scored, self.late_windows, self.duplicates, self.accounts):
            counter.inc(0)

    def scored(self, activities) -> None:
        late = duplicates = 0
        for activity in activities:  # AccountActivities, or the plain tuples of their fields
            late += activity[_LATE]
            duplicates += activity[_DUPLICATES]
        self.windows_scored.inc(len(activities))
        if late:
            self.late_windows.inc(late)
        if duplicates:
            self.duplicates.inc(duplicates)

    def alert(self, alert: Alert) -> None:
        name = f"alerts_{alert.rule}_{alert.severity}"
        counter = self._alerts.get(name)
        if counter is None:
            counter = self._alerts[name] = Metrics.counter(METRICS_NAMESPACE, name)
        counter.inc()


def _replay(model: GroupModel, activities, counters: _DetectionCounters):
    """Score windows in event-time order; yields the alerts."""
    ordered = sorted(activities, key=EVENT_TIME_ORDER)
    counters.scored(ordered)
    for activity in ordered:
        for alert in model.step(activity):
            counters.alert(alert)
            yield alert


class _DetectionFn(beam.DoFn):
    """What both detection DoFns hold: the settings, and the counters touched at 0 per bundle."""

    def __init__(self, config: DetectionConfig, emit_baselines: bool = False):
        self._config = config
        self._emit_baselines = emit_baselines

    def setup(self):
        self._counters = _DetectionCounters()

    def start_bundle(self):
        self._counters.touch()


class DetectPerGroupFn(_DetectionFn):
    """Keyed by organisation. Buffers windows until the watermark passes them, then scores them in order.

    One flush timer per window end, tagged with it: each fires as the
    watermark passes that end and scores the windows buffered up to there.
    Why not one timer moved to the latest window end seen: when the next
    window's activities reach this DoFn before the watermark passes the
    current end (as they do behind a stateful fold on Flink, which emits a
    window's panes from timers within the bundle that moves its watermark
    there), that single timer is pushed forward again and again and never
    fires. (A bounded input takes DetectPerGroupInBatchFn.)
    """

    PENDING = BagStateSpec("pending", beam.coders.registry.get_coder(AccountActivity))
    STATE = ReadModifyWriteStateSpec("state", beam.coders.registry.get_coder(GroupState))
    HORIZON = ReadModifyWriteStateSpec("horizon", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(
        self,
        element,
        baselines,
        pending=beam.DoFn.StateParam(PENDING),
        horizon=beam.DoFn.StateParam(HORIZON),
        state=beam.DoFn.StateParam(STATE),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        key, activity = element
        seen = horizon.read()
        if seen is None and key in baselines:
            # First sight of this organisation: start from what `guetteur train` learned.
            # (Here, not in the timer: timer callbacks get no side inputs.)
            state.write(GroupModel(key, self._config, baselines=baselines[key]).state())
        pending.add(activity)
        end = activity.window_end_ms
        if seen is None or end > seen:
            horizon.write(end)
        # Setting it again for another window of the same end changes nothing.
        flush.set(Timestamp(micros=end * 1000), dynamic_timer_tag=str(end))

    @on_timer(FLUSH)
    def flush(
        self,
        key=beam.DoFn.KeyParam,
        fired_at=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        state=beam.DoFn.StateParam(STATE),
    ):
        due_ms = fired_at.micros // 1000
        activities, later = [], []
        for activity in pending.read():
            (activities if activity.window_end_ms <= due_ms else later).append(activity)
        if not activities:
            return  # scored by an earlier flush (timers of earlier ends fired after a later one's)
        pending.clear()
        for activity in later:
            pending.add(activity)
        stored: Optional[GroupState] = state.read()
        known = 0 if stored is None else len(stored.accounts)
        model = GroupModel(key, self._config, stored)
        yield from _replay(model, activities, self._counters)
        self._counters.accounts.inc(len(model.accounts) - known)
        state.write(model.state())
        if self._emit_baselines:
            for baseline in model.baselines():
                yield pvalue.TaggedOutput(BASELINES_TAG, baseline)


class DetectPerGroupInBatchFn(_DetectionFn):
    """(group, [packed AccountActivities, ...]) -> its alerts: a whole bounded history, replayed once."""

    def process(self, element, baselines):
        key, packs = element
        with paused_gc():
            yield from self.detect_group(key, [fields for packed in packs for fields in unpack_activity_fields(packed)],
                                         baselines)

    def detect_group(self, key: str, activities, baselines):
        """One organisation's windows of the whole replay (AccountActivities, or the plain tuples of their
        fields) -> its alerts (and learned baselines)."""
        model, known = self.start_group(key, baselines)
        yield from self.score_windows(model, activities)
        yield from self.end_group(model, known)

    def start_group(self, key: str, baselines) -> Tuple[GroupModel, int]:
        """The organisation's model before its first window, and how many accounts it knew then."""
        initial = None
        if key in baselines:
            # Through the state Row, exactly as the streaming DoFn starts from what `train` learned.
            initial = GroupModel(key, self._config, baselines=baselines[key]).state()
        model = GroupModel(key, self._config, initial)
        return model, len(model.accounts)

    def score_windows(self, model: GroupModel, activities):
        """Windows later than any the model has scored -> their alerts."""
        return _replay(model, activities, self._counters)

    def end_group(self, model: GroupModel, known: int):
        """After the organisation's last window: the accounts it learned counted (and its baselines, when asked)."""
        self._counters.accounts.inc(len(model.accounts) - known)
        if self._emit_baselines:
            for baseline in model.baselines():
                yield pvalue.TaggedOutput(BASELINES_TAG, baseline)


def baselines_by_group(initial_baselines):
    """The side input of `train`'s baselines, group -> its AccountBaselines sorted; without, a plain empty
    dict (a side input of nothing would cost a stage of its own)."""
    if initial_baselines is None:
        return {}
    by_group = (
        initial_baselines
        | "KeyBaselines" >> beam.Map(lambda b: (b.group, b))
        | "GroupBaselines" >> beam.GroupByKey()
        | "ListBaselines" >> beam.MapTuple(lambda group, rows: (group, sorted(rows)))
    )
    return beam.pvalue.AsDict(by_group)


def scored(grouped, score: beam.ParDo, emit_baselines: bool):
    """Alerts (and, with emit_baselines, AccountBaselines) of a scoring ParDo applied to `grouped`."""
    return typed_results(grouped | "ScoreInOrder" >> score.with_outputs(BASELINES_TAG, main="alerts"), emit_baselines)


def typed_results(results, emit_baselines: bool):
    """A scoring ParDo's alerts (and, with emit_baselines, AccountBaselines), typed."""
    results.alerts.element_type = Alert
    results[BASELINES_TAG].element_type = AccountBaseline
    if emit_baselines:
        return results.alerts, results[BASELINES_TAG]
    return results.alerts


class DetectPerGroup(beam.PTransform):
    """(actor, AccountActivity) -> Alert records (and, with emit_baselines, the final AccountBaselines).

    With `batched=True` the input is instead (group, packed AccountActivities),
    bounded (transforms/batch_windows.py). `initial_baselines`, a
    PCollection of AccountBaseline, seeds accounts seen for the first time
    (from `guetteur train`); they keep learning from there.
    """

    def __init__(self, config: DetectionConfig, initial_baselines=None, emit_baselines: bool = False,
                 batched: bool = False):
        super().__init__()
        self._config = config
        self._initial = initial_baselines
        self._emit_baselines = emit_baselines
        self._batched = batched

    def expand(self, activities):
        side = baselines_by_group(self._initial)
        if self._batched or activities.is_bounded:
            if not self._batched:
                activities = activities | "PackByGroup" >> beam.Map(
                    lambda kv: (group_key(kv[1]), pack_activities([kv[1]]))
                ).with_output_types(beam.typehints.KV[str, bytes])
            grouped = activities | "GroupByOrganisation" >> beam.GroupByKey()
            score = beam.ParDo(DetectPerGroupInBatchFn(self._config, self._emit_baselines), side)
        else:
            keyed = activities | "KeyByGroup" >> beam.Map(lambda kv: (group_key(kv[1]), kv[1])).with_output_types(
                beam.typehints.KV[str, AccountActivity]
            )
            grouped, score = keyed, beam.ParDo(DetectPerGroupFn(self._config, self._emit_baselines), side)
        return scored(grouped, score, self._emit_baselines)
