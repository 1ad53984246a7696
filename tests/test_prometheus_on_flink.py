"""Flink's own Prometheus reporter, scraped by a real Prometheus: the Flink panels and rules have data.

What runs for real: a Flink 1.16 session cluster (deploy/local/flink-cluster.sh, with the Prometheus
reporter deploy/flink/ configures), Beam's job server and a Kafka broker (shared with the other
Flink tests, tests/runner_services.py); the detection pipeline, streaming from a Kafka topic with
checkpoints every second, runs on that cluster. A Prometheus (deploy/local/prometheus.sh's binary)
scrapes the JobManager's and the TaskManager's reporter with deploy/prometheus/prometheus.yml (targets
and intervals adapted, relabelling untouched) and evaluates deploy/prometheus/rules/.

The same lines also go through `guetteur detect` on the local runner, and the metrics file it writes
is served as the `guetteur-local` target, so the local runner's figures pass through the same
relabelling: the Beam metrics must come out of Flink under the same names and labels, the same
dead-letter reasons and event-time position, and at least as many lines read.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import apache_beam as beam
import pytest

from pipelines.detect import build_pipeline
from pipelines.options import GuetteurOptions
from pipelines.replay import replay
from pipelines.runners import flink_args
from schemas.alert import SEVERITIES
from schemas.timestamps import parse_rfc3339_ms
from tests.event_factory import MS_PER_DAY, event, to_lines
from tests.prometheus_checks import (
    FLINK_JM_JOB, FLINK_TM_JOB, LOCAL_JOB, REPO, MetricsEndpoint, dashboard_queries, expand,
    flink_jobmanager_only, loaded_rules_are_healthy, prometheus_server, rule_signals, wait_for,
)
from tests.runner_services import _script, cancel_flink_jobs
from tests.test_flink_runner import fixed_input
from transforms.account_creation import CREATED_ACCOUNT_ACTIVITY, CREATION_RATE
from transforms.consultation_volume import RULE as CONSULTATION_VOLUME

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning")

JOB_NAME = "guetteur-metrics-on-flink"
FLINK_JOB = 'job_name="guetteur_metrics_on_flink"'  # how Flink's reporter writes JOB_NAME (`-` becomes `_`)
TOPIC = "flinkmetrics"
CHECKPOINT_MS = 1000
BAD_LINES = [b"{not json", b'{"ts": "2026-03-02T10:00:00Z", "action": "consult"}']
# Read-side counters: what was read is read whatever the windowing, so Flink must count exactly this.
READ_COUNTERS = ("guetteur_lines_read", "guetteur_events_accepted", "guetteur_dead_lettered")


def input_lines():
    """The Flink runner test's input (one account scrapes 1,200 records) in two parts: the first half;
    then two bad lines, the second half, and a login a day after the last event, so that event time
    passes every window of the stream."""
    events = fixed_input()
    closer = event(parse_rfc3339_ms(events[-1]["ts"]) + MS_PER_DAY, "zz-clock", "login")
    lines = list(to_lines(events))
    middle = len(lines) // 2
    return lines[:middle], BAD_LINES + lines[middle:] + list(to_lines([closer]))


def _by_labels(result, *labels):
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in result}


@pytest.fixture(scope="module")
def on_flink(shared_kafka, shared_beam_services, flink_session_cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("prometheus-on-flink")
    first, second = input_lines()
    lines = first + second
    events_path = work / "events.jsonl"
    events_path.write_bytes(b"".join(line + b"\n" for line in lines))
    bootstrap = shared_kafka["BOOTSTRAP"]
    _script("kafka.sh", "topics", f"{TOPIC}.events", f"{TOPIC}.alerts", f"{TOPIC}.deadletter",
            run_dir=shared_kafka["RUN_DIR"])

    # The local runner's figures for the same lines, while Flink gets going.
    metrics_file = work / "local.prom"
    local = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "detect", "--input", str(events_path), "--output", str(work / "local"),
         "--metrics-file", str(metrics_file)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    options = GuetteurOptions(
        flink_args(job_endpoint=shared_beam_services["JOB_ENDPOINT"], flink_master=flink_session_cluster["FLINK_MASTER"],
                   streaming=True, checkpointing_interval_ms=CHECKPOINT_MS, restarts=0)
        + [f"--input=kafka://{bootstrap}/{TOPIC}.events", f"--output=kafka://{bootstrap}/{TOPIC}",
           f"--expansion_service={shared_beam_services['EXPANSION_SERVICE']}", f"--job_name={JOB_NAME}"]
    )
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    result = pipeline.run()  # a streaming job: it runs until cancelled
    # The local job's --metrics-file, served (empty until it exists).
    served = MetricsEndpoint(lambda: metrics_file.read_text() if metrics_file.exists() else "")
    targets = {LOCAL_JOB: f"127.0.0.1:{served.port}",
               FLINK_JM_JOB: flink_session_cluster["PROMETHEUS_JOBMANAGER"],
               FLINK_TM_JOB: flink_session_cluster["PROMETHEUS_TASKMANAGER"]}
    try:
        with prometheus_server(targets, work) as prometheus:
            def flink(expr):
                if str(result.state).rsplit(".", 1)[-1] != "RUNNING":
                    pytest.fail(f"the Flink job is {result.state}")
                return prometheus.query(expr)

            def flink_sum(name):
                found = flink(f'sum({name}{{job="{FLINK_TM_JOB}"}})')
                return float(found[0]["value"][1]) if found else None

            # The stream in two parts, so that Prometheus sees the counters move (rates, increases), as
            # it would on a live stream: the first half read (and the detection step's counters there,
            # at 0 until its first windows close), then the rest.
            replay(bootstrap, f"{TOPIC}.events", first)
            wait_for(lambda: (flink_sum("guetteur_lines_read"), flink_sum("guetteur_windows_scored"),
                              flink_sum("guetteur_dead_lettered")),
                     lambda p: (p[0] or 0) >= len(first) and p[1] is not None and p[2] == 0,
                     "Flink's reporter to show the first half read", timeout_s=420)
            replay(bootstrap, f"{TOPIC}.events", second)

            _, stderr = local.communicate(timeout=600)
            assert local.returncode == 0, stderr[-3000:]
            wait_for(lambda: prometheus.query(f'guetteur_lines_read{{job="{LOCAL_JOB}"}}'), bool,
                     "a scrape of the local job's metrics file")

            def progress():
                return {
                    "lines": flink_sum("guetteur_lines_read"),
                    "windows": flink_sum("guetteur_windows_scored"),
                    # two samples of each reason, so that rate() has a value
                    "reasons": len(flink(f'rate(guetteur_dead_lettered_by_reason{{job="{FLINK_TM_JOB}"}}[5m])')),
                    "alerts": len(flink(f'rate(guetteur_alerts{{job="{FLINK_TM_JOB}"}}[5m])')),
                    # checkpoints this Prometheus saw complete
                    "checkpoints": prometheus.value_or_zero(
                        f'sum(increase(flink_jobmanager_job_numberOfCompletedCheckpoints{{{FLINK_JOB}}}[10m]))'),
                }

            # Every line read, windows scored, alerts counted, checkpoints taken. Which alerts a stream
            # raises, and when, is tests/test_kafka_io.py's subject, not this module's.
            # A series missing from one query (a scrape that timed out on a loaded machine) is "not yet".
            wait_for(progress, lambda p: (p["lines"] or 0) >= len(lines) and (p["windows"] or 0) > 0 and p["alerts"] > 0
                     and p["reasons"] == len(BAD_LINES) and p["checkpoints"] >= 3,
                     "Flink's reporter to show every line read, windows scored, alerts and checkpoints",
                     timeout_s=420)
            (work / "scrape-excerpt.txt").write_text(_excerpt(targets))
            yield prometheus
    finally:
        if local.poll() is None:
            local.kill()
        try:
            result.cancel()
        finally:
            cancel_flink_jobs(flink_session_cluster["FLINK_WEB"], JOB_NAME)
            served.close()


def _excerpt(targets):
    """Lines of the reporters' own text this test relies on, kept beside the test's files for a reader."""
    keep = ("flink_jobmanager_job_lastCheckpoint", "flink_jobmanager_job_numberOf", "flink_jobmanager_job_numRestarts",
            "flink_jobmanager_job_uptime", "flink_taskmanager_job_task_operator_guetteur_")
    out = []
    for job in (FLINK_JM_JOB, FLINK_TM_JOB):
        text = urllib.request.urlopen(f"http://{targets[job]}/metrics", timeout=10).read().decode()
        out += [line for line in text.splitlines() if line.startswith(keep) or line.startswith(tuple("# TYPE " + k for k in keep))]
    return "\n".join(out) + "\n"


def _series(prometheus, job):
    """{(name, reason, rule, severity)} of every guetteur_* series of `job`, after the relabelling."""
    found = prometheus.query(f'group by (__name__, reason, rule, severity) ({{__name__=~"guetteur_.+", job="{job}"}})')
    return {tuple(r["metric"].get(k, "") for k in ("__name__", "reason", "rule", "severity")) for r in found}


DETECTOR_RULES = (CONSULTATION_VOLUME, CREATION_RATE, CREATED_ACCOUNT_ACTIVITY)


def test_beam_metrics_come_out_of_flink_under_the_local_runners_names(on_flink):
    local = {s for s in _series(on_flink, LOCAL_JOB) if s[0] != "guetteur_job_state"}  # the local exporter's own
    assert {s[0] for s in local} >= {*READ_COUNTERS, "guetteur_windows_scored", "guetteur_alerts",
                                     "guetteur_dead_lettered_by_reason", "guetteur_event_time_position_ms"}
    on_flink_series = _series(on_flink, FLINK_TM_JOB)
    # Alerts by rule and severity: the same name and labels, with the values the detector uses. Which
    # alerts a stream has raised by now, and how far they escalated, is for tests/test_kafka_io.py:
    # a stream sent in two bursts can stop at another severity than the batch replay.
    alerts = {s for s in on_flink_series if s[0] == "guetteur_alerts"}
    assert alerts and all(rule in DETECTOR_RULES and severity in SEVERITIES for _, _, rule, severity in alerts)
    assert on_flink_series - alerts == {s for s in local if s[0] != "guetteur_alerts"}
    # Nothing left under Flink's prefix, or with a dimension still inside its name.
    leftovers = on_flink.query('count by (__name__) ({__name__=~"flink_taskmanager_job_task_operator_guetteur_.*'
                               '|guetteur_dead_lettered_.+|guetteur_alerts_.+"})')
    assert [r["metric"]["__name__"] for r in leftovers if r["metric"]["__name__"] != "guetteur_dead_lettered_by_reason"] == []


def test_flink_counts_what_was_read_as_the_local_runner_does(on_flink):
    # At least every line: Beam 2.54's KafkaIO on Flink was seen to read a part of the topic twice
    # (issue 4's streaming path); that is for the Kafka tests to pin down, not for the metric names.
    for name in READ_COUNTERS:
        assert on_flink.value(f'sum({name}{{job="{FLINK_TM_JOB}"}})') >= on_flink.value(f'{name}{{job="{LOCAL_JOB}"}}') > 0
    by_reason = "sum by (reason) (guetteur_dead_lettered_by_reason{{job=\"{}\"}})"
    assert _by_labels(on_flink.query(by_reason.format(FLINK_TM_JOB)), "reason").keys() == _by_labels(
        on_flink.query(by_reason.format(LOCAL_JOB)), "reason").keys() == {("invalid_json",), ("missing_field",)}
    assert on_flink.value(f'max(guetteur_event_time_position_ms{{job="{FLINK_TM_JOB}"}})') == on_flink.value(
        f'guetteur_event_time_position_ms{{job="{LOCAL_JOB}"}}')


def test_the_jobmanager_reports_the_checkpointing_job(on_flink):
    assert on_flink.value(f"flink_jobmanager_job_numberOfCompletedCheckpoints{{{FLINK_JOB}}}") >= 3
    assert on_flink.value(f"flink_jobmanager_job_lastCheckpointSize{{{FLINK_JOB}}}") > 0
    assert on_flink.value(f"flink_jobmanager_job_lastCheckpointDuration{{{FLINK_JOB}}}") >= 0
    assert on_flink.value(f"flink_jobmanager_job_uptime{{{FLINK_JOB}}}") > 0
    assert on_flink.value(f"flink_jobmanager_job_numRestarts{{{FLINK_JOB}}}") == 0


@pytest.mark.parametrize("title, expr", dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_every_dashboard_panel_returns_data_for_flink(on_flink, title, expr):
    expanded = expand(expr, FLINK_TM_JOB)
    result = on_flink.query(expanded)
    assert result, f"{title}: no data from Flink: {expanded}"
    values = [float(r["value"][1]) for r in result]
    assert any(v == v for v in values), f"{title}: only NaN from Flink: {expanded}"
    if flink_jobmanager_only(expr):
        assert {f'job_name="{r["metric"].get("job_name")}"' for r in result} >= {FLINK_JOB}, result


@pytest.mark.parametrize("what, expr", list(rule_signals()), ids=[w for w, _ in rule_signals()])
def test_every_rule_signal_returns_data_for_flink(on_flink, what, expr):
    result = on_flink.query(expr)
    if flink_jobmanager_only(expr):
        assert {f'job_name="{r["metric"].get("job_name")}"' for r in result} >= {FLINK_JOB}, f"{what}: {result}"
    else:
        assert FLINK_TM_JOB in {r["metric"].get("job") for r in result}, f"{what}: no data from Flink: {result}"


def test_prometheus_evaluates_every_rule_on_flink_without_error(on_flink):
    loaded_rules_are_healthy(on_flink)
