"""Two yardsticks Guetteur is judged against, as real Beam pipelines writing contract alerts.

- `StaticHourlyRule`: the rule a SOC writes first (a Sigma `event_count` correlation): alert when
  an account touches more than 200 records in a clock hour (consult = 1, search/export = count).
  It fires at the event time the hour's running count crosses the threshold (to the minute), as a
  streaming rule with a per-element trigger would; consecutive firing hours of one account are one
  alert (one `alert_id`), so it is not charged a false alarm per hour of the same story.

- `BeamZScore`: Beam's own `apache_beam.ml.anomaly.AnomalyDetection` with its `ZScore` detector
  keyed by account, on records touched per account per clock hour (defaults throughout: online
  mean and standard deviation over the account's last 1,000 values, `FixedThreshold(3)`); each
  outlier (label 1) becomes an alert at the end of its hour, consecutive outlier hours of one
  account merged into one alert like the static rule's.
  Why an hour and not 5 minutes: the ZScore documentation describes a univariate stream of values
  scored against their own running mean and deviation, and says nothing of the bucket; the Beam
  Z-score notebook feeds it one value per data point. An hour is the bucket the static rule uses,
  keeps sparse office traffic from being a mass of 0-3 counts whose deviation is meaningless, and
  keeps the cost sane: `AnomalyDetection` pickles the whole detector (two 1,000-value windows)
  into state on every element, so 5-minute buckets would cost ~10x more for the same days.
  Only active hours are values (an hour without records emits nothing), as in any per-key
  windowed count.
  Ordering: the detector learns online, so it must see an account's hours in time order. Hours
  are grouped per account, sorted, and emitted in order; Beam gives no ordering guarantee, but the
  local runner (one worker) keeps that order through `AnomalyDetection`'s reshuffle and state
  (tested: an account's first two hours always score NaN, i.e. are the first it sees).

Both yardsticks know nothing of peers, roles, account creation, novelty or time of day, learn no
seasonality, and ignore `event_id` duplicates (simulated input has none).

    run_reference("static" | "zscore", input_glob, output_dir) -> number of alert lines written
"""

from __future__ import annotations

import hashlib
import os
import typing
from typing import Any, Iterable

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import window

from pipelines.options import LOCAL_RUNNER
from schemas.timestamps import MS_PER_MINUTE, format_rfc3339
from transforms.read_events import ReadEvents

STATIC_RULE = "static_records_per_hour"
ZSCORE_RULE = "beam_zscore_records_per_hour"
STATIC_THRESHOLD = 200
ZSCORE_CUTOFF = 3.0
# Severity by records touched over the alert's span (the same steps Guetteur's defaults use).
SEVERITY_STEPS = ((10_000, "critical"), (2_000, "high"), (500, "medium"))

REFERENCES = ("static", "zscore")


def _severity(records: int) -> str:
    for floor, name in SEVERITY_STEPS:
        if records >= floor:
            return name
    return "low"


def _alert_id(rule: str, actor: str, start_ms: int) -> str:
    digest = hashlib.sha1(f"{rule}|{actor}|{start_ms}".encode()).hexdigest()[:16]
    return f"{rule}-{digest}"


def _keyed_records(event) -> Iterable[tuple[str, tuple[int, int, str | None, str | None]]]:
    touched = event.records_touched
    if touched > 0:
        yield event.actor, (event.ts_ms, touched, event.org, event.actor_type)


class _HourFn(beam.CombineFn):
    """One account, one window: records per minute (to find when a threshold was crossed), org, role."""

    def create_accumulator(self):
        return {}, None, None

    def add_input(self, acc, value):
        minutes, org, role = acc
        ts_ms, touched, event_org, event_role = value
        minute = ts_ms // MS_PER_MINUTE
        minutes[minute] = minutes.get(minute, 0) + touched
        return minutes, org or event_org, role or event_role

    def merge_accumulators(self, accs):
        merged: dict[int, int] = {}
        org = role = None
        for minutes, acc_org, acc_role in accs:
            for minute, n in minutes.items():
                merged[minute] = merged.get(minute, 0) + n
            org, role = org or acc_org, role or acc_role
        return merged, org, role

    def extract_output(self, acc):
        return acc


class _WindowSummary(beam.DoFn):
    """(actor, per-minute counts) in a window -> (actor, summary dict of that window)."""

    def process(self, element, win=beam.DoFn.WindowParam):
        actor, (minutes, org, role) = element
        start_ms = int(win.start.micros // 1000)
        end_ms = int(win.end.micros // 1000)
        yield actor, {"start": start_ms, "end": end_ms, "minutes": sorted(minutes.items()),
                      "records": sum(minutes.values()), "org": org, "actor_type": role}


def _runs(windows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive windows (each starting where the previous ended) grouped together."""
    runs: list[list[dict[str, Any]]] = []
    for item in sorted(windows, key=lambda w: w["start"]):
        if runs and item["start"] <= runs[-1][-1]["end"]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _alert(rule: str, actor: str, run: list[dict[str, Any]], detected_ms: int, score: float,
           expected: dict[str, Any], explanation: str) -> dict[str, Any]:
    observed = sum(w["records"] for w in run)
    first = run[0]
    return {
        "alert_id": _alert_id(rule, actor, first["start"]),
        "rule": rule,
        "status": "new",
        "actor": actor,
        "org": next((w["org"] for w in run if w["org"]), None),
        "actor_type": next((w["actor_type"] for w in run if w["actor_type"]), None),
        "window_start": format_rfc3339(first["start"]),
        "window_end": format_rfc3339(run[-1]["end"]),
        "detected_at": format_rfc3339(detected_ms),  # a minute or window end: whole seconds
        "observed": observed,
        "peak": max(w["records"] for w in run),
        "expected": expected,
        "score": round(score, 3),
        "severity": _severity(observed),
        "related_accounts": [],
        "explanation": explanation,
    }


def _crossing_ms(minutes: list[tuple[int, int]], threshold: int) -> int:
    """End of the minute in which the running count first exceeded `threshold`."""
    total = 0
    for minute, n in minutes:
        total += n
        if total > threshold:
            return (minute + 1) * MS_PER_MINUTE
    raise ValueError("threshold never crossed")


class _StaticAlerts(beam.DoFn):
    def __init__(self, threshold: int):
        self._threshold = threshold

    def process(self, element):
        actor, hours = element
        for run in _runs(list(hours)):
            detected = _crossing_ms(run[0]["minutes"], self._threshold)
            peak = max(w["records"] for w in run)
            yield _alert(
                STATIC_RULE, actor, run, detected, peak / self._threshold,
                {"value": self._threshold, "unit": "records per hour", "source": "static_rule",
                 "own": None, "role": None, "history_days": 0, "threshold": self._threshold},
                f"{actor} touched {peak:,} records in one hour ({len(run)} hour(s) over the static "
                f"limit of {self._threshold}, {sum(w['records'] for w in run):,} records in all).")


class StaticHourlyRule(beam.PTransform):
    """Timestamped AccessEvents -> alert dicts: more than `threshold` records in one clock hour."""

    def __init__(self, threshold: int = STATIC_THRESHOLD):
        super().__init__()
        self._threshold = threshold

    def expand(self, events):
        threshold = self._threshold
        return (
            events
            | "Records" >> beam.FlatMap(_keyed_records)
            | "Hours" >> beam.WindowInto(window.FixedWindows(3600))
            | "PerHour" >> beam.CombinePerKey(_HourFn())
            | "Summarise" >> beam.ParDo(_WindowSummary())
            | "OverLimit" >> beam.Filter(lambda kv: kv[1]["records"] > threshold)
            | "Whole" >> beam.WindowInto(window.GlobalWindows())
            | "PerAccount" >> beam.GroupByKey()
            | "Alerts" >> beam.ParDo(_StaticAlerts(threshold))
        )


def _in_time_order(element) -> Iterable[tuple[str, beam.Row]]:
    actor, summaries = element
    for s in sorted(summaries, key=lambda w: w["start"]):
        yield actor, beam.Row(records=float(s["records"]), start=s["start"], end=s["end"],
                              org=s["org"], actor_type=s["actor_type"])


def _outlier(element) -> Iterable[tuple[str, dict[str, Any]]]:
    actor, result = element
    prediction = next(iter(result.predictions))
    if prediction.label == 1:
        row = result.example
        yield actor, {"start": row.start, "end": row.end, "records": int(row.records), "org": row.org,
                      "actor_type": row.actor_type, "score": prediction.score, "threshold": prediction.threshold}


class _ZScoreAlerts(beam.DoFn):
    def __init__(self, window_minutes: int):
        self._unit = "hour" if window_minutes == 60 else f"{window_minutes} min"

    def process(self, element):
        actor, outliers = element
        for run in _runs(list(outliers)):
            score = max(w["score"] for w in run)
            cutoff = run[0]["threshold"]
            peak = max(w["records"] for w in run)
            yield _alert(
                ZSCORE_RULE, actor, run, run[0]["end"], score,
                {"value": cutoff, "unit": f"|z-score| of records per {self._unit}",
                 "source": "own_history (Beam ZScore: running mean and stdev of the account's last 1000 "
                           "active windows)",
                 "own": None, "role": None, "history_days": None, "threshold": cutoff},
                f"{actor} touched {peak:,} records in one {self._unit}, {score:.1f} standard deviations "
                f"from its own running mean ({len(run)} window(s), {sum(w['records'] for w in run):,} "
                "records in all).")


class BeamZScore(beam.PTransform):
    """Timestamped AccessEvents -> alert dicts from Beam's AnomalyDetection(ZScore) per account."""

    def __init__(self, window_minutes: int = 60, cutoff: float = ZSCORE_CUTOFF):
        super().__init__()
        self._window_minutes = window_minutes
        self._cutoff = cutoff

    def expand(self, events):
        from apache_beam.ml.anomaly.detectors.zscore import ZScore
        from apache_beam.ml.anomaly.thresholds import FixedThreshold
        from apache_beam.ml.anomaly.transforms import AnomalyDetection

        detector = ZScore(features=["records"], threshold_criterion=FixedThreshold(self._cutoff))
        return (
            events
            | "Records" >> beam.FlatMap(_keyed_records)
            | "Windows" >> beam.WindowInto(window.FixedWindows(self._window_minutes * 60))
            | "PerWindow" >> beam.CombinePerKey(_HourFn())
            | "Summarise" >> beam.ParDo(_WindowSummary())
            | "Whole" >> beam.WindowInto(window.GlobalWindows())
            | "PerAccount" >> beam.GroupByKey()
            | "InTimeOrder" >> beam.FlatMap(_in_time_order).with_output_types(typing.Tuple[str, typing.Any])
            | "ZScore" >> AnomalyDetection(detector)
            | "Outliers" >> beam.FlatMap(_outlier)
            | "OutliersPerAccount" >> beam.GroupByKey()
            | "Alerts" >> beam.ParDo(_ZScoreAlerts(self._window_minutes))
        )


def reference_transform(name: str) -> beam.PTransform:
    if name == "static":
        return StaticHourlyRule()
    if name == "zscore":
        return BeamZScore()
    raise ValueError(f"unknown reference detector {name!r} (known: {', '.join(REFERENCES)})")


def build_reference(pipeline: beam.Pipeline, name: str, input_pattern: str, output_dir: str):
    """Read events, run one yardstick, write `output_dir/alerts.jsonl`; returns the alerts PCollection."""
    events, _dead_letters = pipeline | "ReadEvents" >> ReadEvents(input_pattern)
    alerts = events | name.capitalize() >> reference_transform(name)
    (alerts
     | "ToJson" >> beam.Map(orjson.dumps)
     | "Write" >> beam.io.WriteToText(os.path.join(output_dir, "alerts"), file_name_suffix=".jsonl", num_shards=1,
                                      shard_name_template="", coder=beam.coders.BytesCoder()))
    return alerts


def run_reference(name: str, input_pattern: str, output_dir: str, runner: str = LOCAL_RUNNER) -> int:
    """Run one yardstick on the local runner; returns how many alerts it wrote."""
    reference_transform(name)  # fail fast on an unknown name
    os.makedirs(output_dir, exist_ok=True)
    pipeline = beam.Pipeline(options=PipelineOptions([f"--runner={runner}"]))
    build_reference(pipeline, name, input_pattern, output_dir)
    pipeline.run().wait_until_finish()
    path = os.path.join(output_dir, "alerts.jsonl")
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
