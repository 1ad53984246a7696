"""The whole detection graph on Beam's local runner, from files to alerts."""

import random

import gzip
import os

import apache_beam as beam
import orjson
import pytest

from pipelines.detect import build_pipeline
from pipelines.options import LOCAL_RUNNER, GuetteurOptions
from schemas.timestamps import format_rfc3339
from schemas.dead_letter import INVALID_JSON, INVALID_UTF8, MISSING_FIELD
from transforms.detection_config import DetectionConfig

from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, burst, office_days, write_jsonl

CONFIG = DetectionConfig()
ATTACK_START = MONDAY_MS + 6 * MS_PER_DAY + 2 * MS_PER_HOUR  # a Sunday, 02:00 UTC


def traffic():
    """Three advisors for six days; then acct-2 scrapes 1,200 records at 2 s intervals."""
    events = []
    for actor in ("acct-1", "acct-2", "acct-3"):
        events += office_days(actor, days=6, per_day=60, seed=1)
    return events + burst("acct-2", ATTACK_START, records=1200, every_ms=2000)


def run_detection(pattern, output_dir):
    """(alert facts, dead-letter reasons) read back from the files the pipeline wrote."""
    options = GuetteurOptions([f"--runner={LOCAL_RUNNER}", f"--input={pattern}", f"--output={output_dir}"])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, options)
    alerts = [orjson.loads(line) for line in open(os.path.join(output_dir, "alerts.jsonl"), "rb")]
    letters = [orjson.loads(line) for line in open(os.path.join(output_dir, "deadletter.jsonl"), "rb")]
    facts = sorted(
        (a["alert_id"], a["actor"], a["status"], a["severity"], a["detected_at"], a["observed"]) for a in alerts
    )
    return facts, sorted(letter["reason"] for letter in letters)


@pytest.fixture(scope="module")
def sorted_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sorted")
    path = write_jsonl(workdir / "events.jsonl", sorted(traffic(), key=lambda e: e["ts"]))
    return run_detection(path, str(workdir / "out"))


def test_the_scraper_is_detected_within_one_window_and_nobody_else_alerts(sorted_run):
    alerts, _ = sorted_run
    assert {actor for _, actor, *_ in alerts} == {"acct-2"}
    first_detected = min(detected_at for _, _, _, _, detected_at, _ in alerts)
    assert first_detected == format_rfc3339(ATTACK_START + CONFIG.window_ms)
    assert len({alert_id for alert_id, *_ in alerts}) == 1


def test_shuffled_and_split_across_files_gives_the_same_alerts(sorted_run, tmp_path):
    events = traffic()
    random.Random(11).shuffle(events)
    third = len(events) // 3
    write_jsonl(tmp_path / "part-1.jsonl", events[:third])
    write_jsonl(tmp_path / "part-2.jsonl", events[third: 2 * third])
    write_jsonl(tmp_path / "part-3.jsonl", events[2 * third:])
    alerts, _ = run_detection(str(tmp_path / "part-*.jsonl"), str(tmp_path / "out"))
    assert alerts == sorted_run[0]


def test_duplicated_events_are_counted_once(sorted_run, tmp_path):
    events = traffic()
    redelivered = events + [e for e in events if e["actor"] == "acct-2"][: len(events) // 4]
    alerts, _ = run_detection(write_jsonl(tmp_path / "events.jsonl", redelivered), str(tmp_path / "out"))
    assert alerts == sorted_run[0]


def test_bad_lines_are_dead_lettered_and_do_not_stop_the_job(sorted_run, tmp_path):
    path = tmp_path / "events.jsonl"
    write_jsonl(path, traffic())
    with open(path, "ab") as handle:
        handle.write(b"{not json\n\xff\xfe\xfd\n{\"ts\": \"2026-03-02T10:00:00Z\", \"action\": \"consult\"}\n")
    alerts, reasons = run_detection(str(path), str(tmp_path / "out"))
    assert reasons == sorted([INVALID_JSON, INVALID_UTF8, MISSING_FIELD])
    assert alerts == sorted_run[0]


def test_gzip_input_is_read(sorted_run, tmp_path):
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        for record in traffic():
            handle.write(orjson.dumps(record) + b"\n")
    alerts, _ = run_detection(str(path), str(tmp_path / "out"))
    assert alerts == sorted_run[0]


_PER_EVENT_ALERTS = []


class _CollectAlert(beam.DoFn):
    def process(self, alert):
        from schemas.alert import alert_to_json

        _PER_EVENT_ALERTS.append(alert_to_json(alert))


def test_the_folded_batch_path_raises_the_alerts_event_by_event_detection_raises(tmp_path):
    # The replay folds lines by columns per range (transforms/column_fold.py) and merges the ranges' folds;
    # the per-event path (ReadEvents -> SummariseAccountWindows) folds each event through ActivityFold.add.
    # Every optimisation of the first must leave it raising what the second raises, field for field.
    from transforms.detection import DetectAnomalies
    from transforms.read_events import ReadEvents

    from tests.simulated_replay import replay_simulation

    path, folded = replay_simulation(tmp_path)

    _PER_EVENT_ALERTS.clear()
    with beam.Pipeline(runner=LOCAL_RUNNER) as pipeline:
        events, _ = pipeline | ReadEvents(path)
        _ = events | DetectAnomalies(CONFIG) | beam.ParDo(_CollectAlert())
    per_event = sorted(orjson.dumps(alert) for alert in _PER_EVENT_ALERTS)
    assert len(folded) >= 3  # the simulation's incidents alert: not an empty comparison
    assert folded == per_event
