"""Beam metrics as Prometheus metrics: live during a local run, exposed with Flink's names, written at the end."""

import io
import os
import socket
import threading
import time
import urllib.request

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families

from pipelines.cli import EXIT_USAGE, main
from pipelines.metrics_export import (
    CORE_COUNTERS,
    JobMetrics,
    LiveFnApiRunner,
    MetricsExporter,
    MetricsSnapshot,
    prometheus_name,
    snapshot_from_results,
)
from pipelines.progress import ProgressReporter, format_progress

from tests.event_factory import MONDAY_MS, MS_PER_MINUTE, burst, office_days, write_jsonl
from tests.polling import wait_for

NS = "guetteur_test"


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text):
    """{(sample name, frozenset(labels)): value} from Prometheus text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


# ---------------------------------------------------------------- live metrics mid-bundle

_RELEASE = threading.Event()
_SEEN = []
_BLOCK_AT = 37


class _CountThenWait(beam.DoFn):
    """Counts each element; at one element, holds the bundle open until the test has looked."""

    def __init__(self):
        self._seen = Metrics.counter(NS, "seen")
        self._last = Metrics.gauge(NS, "last")

    def process(self, element):
        _SEEN.append(element)
        self._seen.inc()
        self._last.set(element)
        if element == _BLOCK_AT and not _RELEASE.wait(300):
            raise RuntimeError("the test never released the bundle")
        yield element


def test_counters_and_gauges_move_while_a_bundle_is_still_running():
    """The FnApiRunner reports metrics only per finished bundle; LiveFnApiRunner sees inside the bundle."""
    _RELEASE.clear()
    _SEEN.clear()
    runner = LiveFnApiRunner()
    pipeline = beam.Pipeline(runner=runner)
    _ = pipeline | beam.Create(list(range(1, 101))) | beam.ParDo(_CountThenWait())
    outcome = {}

    def run():
        try:
            outcome["result"] = pipeline.run()
        except BaseException as err:  # surfaced below
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        blocked = wait_for(lambda: len(_SEEN) and _BLOCK_AT in _SEEN, bool, "the DoFn to reach the blocking element")
        assert blocked
        live = wait_for(runner.live_snapshot, lambda s: s.counter("seen", NS) >= len(_SEEN), "a live counter")
        # The bundle is held open at this element: what we read is mid-bundle, not a final report.
        assert live.counter("seen", NS) == len(_SEEN) < 100
        assert live.gauge("last", NS) == _BLOCK_AT
        assert thread.is_alive()
    finally:
        _RELEASE.set()
        thread.join(300)
    assert "error" not in outcome, outcome.get("error")
    final = snapshot_from_results(outcome["result"].metrics())
    assert final.counter("seen", NS) == 100
    assert runner.live_snapshot().counter("seen", NS) == 100


class _ScriptedRunner:
    def __init__(self, values):
        self._values = iter(values)

    def live_snapshot(self):
        value = next(self._values)
        return MetricsSnapshot({(NS, "seen"): value}, {(NS, "last"): (value, float(value))})


def test_exposed_counters_never_go_down_even_when_a_live_read_misses_a_bundle():
    job = JobMetrics(_ScriptedRunner([5, 3, 9]))
    assert [job.snapshot().counter("seen", NS) for _ in range(3)] == [5, 5, 9]


def test_the_final_figures_are_the_runners_own():
    class Result:
        def metrics(self):
            class Results:
                def query(self_inner):
                    return {"counters": [], "gauges": []}

            return Results()

    job = JobMetrics(_ScriptedRunner([5]))
    assert job.snapshot().counter("seen", NS) == 5
    final = job.finish(Result(), "done")
    assert final.counter("seen", NS) == 0 and job.state == "done"


class _FailAtFive(beam.DoFn):
    def __init__(self):
        self._seen = Metrics.counter("guetteur", "lines_read")

    def process(self, element):
        self._seen.inc()
        if element == 5:
            raise ValueError("boom")
        yield element


def test_a_failed_job_still_leaves_its_metrics_file_marked_failed(tmp_path):
    from pipelines.metrics_export import JobObservation
    from pipelines.options import LOCAL_RUNNER

    path = tmp_path / "failed.prom"
    observation = JobObservation(LOCAL_RUNNER, LOCAL_RUNNER, path=str(path), stream=io.StringIO())
    assert isinstance(observation.runner, LiveFnApiRunner)
    pipeline = beam.Pipeline(runner=observation.runner)
    _ = pipeline | beam.Create([1, 2, 3, 4, 5, 6]) | beam.ParDo(_FailAtFive())
    with pytest.raises(Exception, match="boom"):
        observation.run(pipeline)
    observation.close()
    got = samples(path.read_text())
    assert got[("guetteur_job_state", frozenset({("state", "failed")}))] == 1
    # What a failed bundle counted is discarded with it (Beam's rule): the series is there, from the
    # bundles that finished.
    assert ("guetteur_lines_read", frozenset()) in got


def test_nothing_watches_and_nothing_changes_when_no_metrics_or_progress_are_asked():
    from pipelines.metrics_export import JobObservation
    from pipelines.options import LOCAL_RUNNER

    observation = JobObservation(LOCAL_RUNNER, LOCAL_RUNNER)
    assert observation.runner is None and not observation.watching
    observation.close()


# ---------------------------------------------------------------- exposition


def test_prometheus_names_are_the_tail_of_flinks_names():
    assert prometheus_name("guetteur", "lines_read") == "guetteur_lines_read"
    assert prometheus_name("guetteur", "alerts_consultation_volume_high") == "guetteur_alerts_consultation_volume_high"
    assert prometheus_name("my.ns", "a-b c") == "my_ns_a_b_c"
    assert prometheus_name("9ns", "x") == "_9ns_x"


def test_the_exporter_serves_beam_metrics_with_flinks_names_and_writes_the_final_file(tmp_path):
    snapshot = MetricsSnapshot(
        {("guetteur", "lines_read"): 12, ("guetteur", "dead_lettered_invalid_json"): 2},
        {("guetteur", "event_time_position_ms"): (MONDAY_MS, 1.0)},
    )

    class Fixed:
        def live_snapshot(self):
            return snapshot

    job = JobMetrics(Fixed())
    exporter = MetricsExporter(job, port=0, path=str(tmp_path / "final.prom"))
    try:
        assert exporter.url.startswith("http://127.0.0.1:")
        text = urllib.request.urlopen(exporter.url, timeout=30).read().decode()
    finally:
        exporter.close()
    found = families(text)
    assert found["guetteur_lines_read"].type == "unknown"  # untyped: no _total suffix, like Flink
    got = samples(text)
    assert got[("guetteur_lines_read", frozenset())] == 12
    assert got[("guetteur_dead_lettered_invalid_json", frozenset())] == 2
    assert got[("guetteur_event_time_position_ms", frozenset())] == MONDAY_MS
    for name in CORE_COUNTERS:  # a series from the first scrape, even before Beam reports it
        assert ("guetteur_" + name, frozenset()) in got
    assert got[("guetteur_job_state", frozenset({("state", "running")}))] == 1
    assert got[("guetteur_job_state", frozenset({("state", "done")}))] == 0
    assert not any(name.endswith("_total") and name.startswith("guetteur") for name, _ in got)
    assert any(name.startswith("process_") for name, _ in got)  # the served page also has the process

    job.finish(None, "done")
    exporter.write_file()
    written = samples((tmp_path / "final.prom").read_text())
    assert written[("guetteur_job_state", frozenset({("state", "done")}))] == 1
    assert written[("guetteur_lines_read", frozenset())] == 12
    assert not any(name.startswith("process_") for name, _ in written)  # the record is the job's only


# ---------------------------------------------------------------- progress


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _snap(lines, position_ms, windows=0, alerts=0):
    counters = {("guetteur", "lines_read"): lines, ("guetteur", "dead_lettered"): 3}
    if windows:
        counters[("guetteur", "windows_scored")] = windows
    if alerts:
        counters[("guetteur", "alerts_consultation_volume_high")] = alerts
    return MetricsSnapshot(counters, {("guetteur", "event_time_position_ms"): (position_ms, 1.0)})


def test_progress_line_shows_lines_rate_and_event_time():
    line = format_progress(_snap(123_456, MONDAY_MS + 90 * MS_PER_MINUTE, windows=42, alerts=2), 75.0, 4120.4, 7.0)
    assert line == (
        "guetteur detect: 123,456 lines (4,120/s), event time 2026-03-02T01:30:00Z, 3 dead letters, "
        "42 windows scored (7/s), 2 alerts, 01:15"
    )
    assert format_progress(MetricsSnapshot(), 3725.0, 0.0) == (
        "guetteur detect: 0 lines (0/s), event time -, 0 dead letters, 1:02:05"
    )


def test_progress_rate_is_over_the_last_interval_and_redraws_in_place_on_a_terminal():
    clock, stream = _Clock(), io.StringIO()
    reporter = ProgressReporter(job=None, stream=stream, tty=True, clock=clock)
    clock.now += 2
    reporter.report(_snap(1000, MONDAY_MS))
    clock.now += 2
    line = reporter.report(_snap(5000, MONDAY_MS))
    assert "5,000 lines (2,000/s)" in line
    reporter.stop()
    assert stream.getvalue().count("\r\x1b[K") == 3 and "\n" not in stream.getvalue()


def test_progress_off_a_terminal_prints_whole_lines():
    clock, stream = _Clock(), io.StringIO()
    reporter = ProgressReporter(job=None, stream=stream, tty=False, clock=clock)
    clock.now += 10
    reporter.report(_snap(1000, MONDAY_MS))
    reporter.stop()
    assert stream.getvalue().endswith("\n") and "\r" not in stream.getvalue()


# ---------------------------------------------------------------- guetteur detect flags


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_detect_writes_its_metrics_file_with_the_event_time_position(capsys, tmp_path):
    events = office_days("acct-1", days=2, per_day=40, seed=3) + burst("acct-2", MONDAY_MS + 3_600_000, 300, 1000)
    events.reverse()  # the position is the newest event time, whatever the order of the lines
    path = write_jsonl(tmp_path / "events.jsonl", events)
    with open(path, "ab") as handle:
        handle.write(b"{not json\n")
    metrics_file = tmp_path / "metrics" / "guetteur.prom"
    metrics_file.parent.mkdir()
    code, _, err = run_cli(capsys, "detect", "--input", path, "--output", str(tmp_path / "out"),
                           "--metrics-port", "0", "--metrics-file", str(metrics_file), "--no-progress")
    assert code == 0, err
    assert "metrics on http://127.0.0.1:" in err
    got = samples(metrics_file.read_text())
    assert got[("guetteur_lines_read", frozenset())] == len(events) + 1
    assert got[("guetteur_events_accepted", frozenset())] == len(events)
    assert got[("guetteur_dead_lettered_invalid_json", frozenset())] == 1
    newest = max(e["ts"] for e in events)
    from schemas.timestamps import parse_rfc3339_ms

    assert got[("guetteur_event_time_position_ms", frozenset())] == parse_rfc3339_ms(newest)
    assert got[("guetteur_job_state", frozenset({("state", "done")}))] == 1
    assert got[("guetteur_windows_scored", frozenset())] > 0


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--metrics-port", "70000"], ["--metrics-port"]),
        (["--metrics-port", "http"], ["--metrics-port"]),
        (["--metrics-linger", "-1"], ["--metrics-linger"]),
        (["--metrics-linger", "5"], ["--metrics-linger needs --metrics-port"]),
        (["--metrics-wait", "5", "--metrics-file", "x.prom"], ["--metrics-wait needs --metrics-port"]),
        (["--metrics-file", "/nonexistent-dir/x.prom"], ["--metrics-file", "does not exist"]),
    ],
)
def test_detect_metrics_flags_are_checked_before_the_job(capsys, tmp_path, flags, words):
    path = write_jsonl(tmp_path / "events.jsonl", burst("acct-1", MONDAY_MS, 5, 1000))
    code, _, err = run_cli(capsys, "detect", "--input", path, "--output", str(tmp_path / "out"), *flags)
    assert code == EXIT_USAGE
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_detect_says_so_when_the_metrics_port_is_taken(capsys, tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl", burst("acct-1", MONDAY_MS, 5, 1000))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "detect", "--input", path, "--output", str(tmp_path / "out"),
                               "--metrics-port", str(port))
    assert code == EXIT_USAGE
    assert len(err.strip().splitlines()) == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in err
    assert not os.path.exists(tmp_path / "out" / "alerts.jsonl")
