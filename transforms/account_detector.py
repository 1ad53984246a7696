"""Per-account detection in event-time order: score each window, then learn from it.

`AccountDetector` is the pure state machine; `DetectPerAccount` runs it inside
a stateful DoFn. Windows are buffered and replayed in event-time order when
the watermark passes them, so the same events give the same alerts whether
they arrive sorted, shuffled, in one batch or as a stream.
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from schemas.activity import AccountActivity
from schemas.alert import Alert
from schemas.baseline import EMPTY_BASELINE, AccountState
from transforms.baselines import age_to, expectation, learn
from transforms.consultation_volume import assess_volume
from transforms.detection_config import DetectionConfig
from transforms.incidents import track_incident
from transforms.read_events import METRICS_NAMESPACE

INITIAL_STATE = AccountState(baseline=EMPTY_BASELINE, incident=None)


class AccountDetector:
    """One account's windows, fed in event-time order, in; alerts out."""

    def __init__(self, config: DetectionConfig):
        self.config = config

    def step(self, state: AccountState, activity: AccountActivity) -> Tuple[AccountState, List[Alert]]:
        config = self.config
        # A window at or before what was already scored is a late pane: it is
        # scored (a late burst still alerts) but does not teach the baseline.
        late = activity.late or activity.window_end_ms <= state.baseline.last_window_end_ms
        baseline = age_to(state.baseline, activity.window_end_ms, config)
        expected = expectation(baseline, activity.actor_type, config)
        finding = assess_volume(activity, expected)
        incident, alerts = track_incident(state.incident, activity, finding, config.incident, config.window_minutes)
        if not late:
            baseline = learn(baseline, activity, alerted=finding is not None, config=config)
        return AccountState(baseline=baseline, incident=incident), alerts

    def run(self, activities: Iterable[AccountActivity], state: AccountState = INITIAL_STATE):
        """All alerts for a sequence of windows, sorted into event-time order first."""
        alerts: List[Alert] = []
        for activity in sorted(activities, key=lambda a: (a.window_start_ms, a.late)):
            state, emitted = self.step(state, activity)
            alerts.extend(emitted)
        return state, alerts


class DetectPerAccountFn(beam.DoFn):
    """Keyed by actor. Buffers windows until the watermark passes them, then scores them in order.

    The flush timer always points at the latest window end seen: in a stream it
    fires as each window closes; in a batch it fires once, after all input,
    and the whole history is replayed sorted — one pass, not one per window.
    """

    PENDING = BagStateSpec("pending", beam.coders.registry.get_coder(AccountActivity))
    STATE = ReadModifyWriteStateSpec("state", beam.coders.registry.get_coder(AccountState))
    HORIZON = ReadModifyWriteStateSpec("horizon", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, config: DetectionConfig):
        self._config = config

    def setup(self):
        self._detector = AccountDetector(self._config)
        self._windows_scored = Metrics.counter(METRICS_NAMESPACE, "windows_scored")
        self._late_windows = Metrics.counter(METRICS_NAMESPACE, "late_windows")
        self._duplicates = Metrics.counter(METRICS_NAMESPACE, "events_duplicate")
        self._accounts = Metrics.counter(METRICS_NAMESPACE, "accounts_tracked")
        self._alert_counters = {}

    def process(
        self,
        element,
        pending=beam.DoFn.StateParam(PENDING),
        horizon=beam.DoFn.StateParam(HORIZON),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        _, activity = element
        pending.add(activity)
        latest = max(horizon.read() or 0, activity.window_end_ms)
        horizon.write(latest)
        flush.set(Timestamp(micros=latest * 1000))

    @on_timer(FLUSH)
    def flush(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        state=beam.DoFn.StateParam(STATE),
    ):
        activities = list(pending.read())
        pending.clear()
        current = state.read()
        if current is None:
            current = INITIAL_STATE
            self._accounts.inc()
        for activity in sorted(activities, key=lambda a: (a.window_start_ms, a.late)):
            self._windows_scored.inc()
            if activity.late:
                self._late_windows.inc()
            if activity.duplicates:
                self._duplicates.inc(activity.duplicates)
            current, alerts = self._detector.step(current, activity)
            for alert in alerts:
                self._count_alert(alert)
                yield alert
        state.write(current)

    def _count_alert(self, alert: Alert) -> None:
        name = f"alerts_{alert.rule}_{alert.severity}"
        counter = self._alert_counters.get(name)
        if counter is None:
            counter = self._alert_counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
        counter.inc()


class DetectPerAccount(beam.PTransform):
    """(actor, AccountActivity) -> Alert records."""

    def __init__(self, config: DetectionConfig):
        super().__init__()
        self._config = config

    def expand(self, activities):
        return activities | "ScoreInOrder" >> beam.ParDo(DetectPerAccountFn(self._config)).with_output_types(Alert)
