"""A real Prometheus server scraping a real `guetteur detect` job; every panel and rule checked against it.

Prometheus and promtool are Debian's `prometheus` package, unpacked into .cache/ by
deploy/local/prometheus.sh (make test runs it first; this module runs it too when needed).

What runs for real: `guetteur simulate` writes three days of traffic with incidents and bad lines;
`guetteur detect` runs it on the local runner with `--metrics-port 0`; Prometheus scrapes it every
second with deploy/prometheus/prometheus.yml (targets and intervals adapted, nothing else) and
evaluates deploy/prometheus/rules/. The job waits for a first scrape before it starts
(`--metrics-wait`), so Prometheus sees its counters from zero, and lingers after its end
(`--metrics-linger`) until this module has asked its questions; then it is stopped with SIGTERM.

What stands in for Flink (marked "Flink stand-in" below): no Flink cluster runs here. Two small HTTP
servers answer in the shape of Flink's Prometheus reporter: a TaskManager that re-serves the real
job's Beam metrics as `flink_taskmanager_job_task_operator_guetteur_*` split over two subtasks, and
a JobManager with checkpoint and restart series, with the names and label sets of a real Flink 1.16
scrape. They prove the relabelling maps Flink's names onto the same series as the local job's, in a
few seconds; tests/test_prometheus_on_flink.py proves the same against a real Flink session cluster.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.prometheus_checks import (
    DASHBOARDS, FLINK_JM_JOB, FLINK_TM_JOB, LOCAL_JOB, PROM_DIR, REPO, RULE_FILES, MetricsEndpoint,
    dashboard_queries, expand, flink_jobmanager_only, loaded_rules_are_healthy, prometheus_bin, prometheus_server,
    rule_signals, signals, wait_for,
)


@pytest.fixture(scope="module")
def prom_bin():
    return prometheus_bin()


def test_signals_splits_only_at_the_top_level():
    assert signals("a > 0.01 and a > 2 * b") == ["a", "a", "2 * b"]
    assert signals("deriv(x[10m]) > 0.5 and y > 600") == ["deriv(x[10m])", "y"]
    assert signals('sum by (j) (increase(m{l=">"}[15m])) > 0') == ['sum by (j) (increase(m{l=">"}[15m]))']
    assert signals("x == 0") == ["x"]


# ---------------------------------------------------------------- promtool


def test_promtool_accepts_the_config_and_rules_and_the_rule_unit_tests_pass(prom_bin):
    promtool = str(prom_bin / "promtool")
    for argv in (
        [promtool, "check", "config", str(PROM_DIR / "prometheus.yml")],
        [promtool, "check", "rules", *map(str, RULE_FILES)],
        [promtool, "test", "rules", *map(str, sorted((PROM_DIR / "tests").glob("*.yml")))],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(argv[1:3])}:\n{done.stdout}\n{done.stderr}"
    assert RULE_FILES and DASHBOARDS


def test_dashboards_pick_their_datasource_through_a_variable():
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert "uid" in board and board["uid"].startswith("guetteur-")
        titles = [panel["title"] for panel in board["panels"]]
        assert len(titles) == len(set(titles)), titles
    providers = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/guetteur.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    sources = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/guetteur.yml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"


# ---------------------------------------------------------------- Flink stand-ins

# Label sets as Flink 1.16's reporter writes them (copied from a real scrape by
# tests/test_prometheus_on_flink.py's session cluster): dots and dashes in values become `_`.
FLINK_TM_LABELS = (
    'job_id="95d6371c3022593d2b632209779d5965",task_id="36f3e4dd21c8b062ff40ed36572ebaba",'
    'task_attempt_id="1abb8e189c0306b17f0d1d6eb237f517_36f3e4dd21c8b062ff40ed36572ebaba_0_0",host="127_0_0_1",'
    'operator_id="1f08f7248d14b6f59e8258f2dac5903c",'
    'operator_name="_5__ReadKafkaEvents__ParseKafkaEvents__WriteDeadLettersToKafka__Detect_",'
    'task_name="_3_ReadKafkaEvents_KafkaIO__KafkaIO_Read__Remove_Kafka_Metadata______5__ReadKafkaEvents__Detect_",'
    'task_attempt_num="0",job_name="guetteur_detect",tm_id="127_0_0_1:42929_fb8ea2"'
)
FLINK_JM_LABELS = 'job_id="95d6371c3022593d2b632209779d5965",host="127_0_0_1",job_name="guetteur_detect"'


def flink_taskmanager_mirror(local_url):
    """Flink stand-in: the real job's Beam metrics as Flink's reporter names them, over two subtasks.

    It reads the job's endpoint only once Prometheus has scraped the job directly (`render.first_scraped`,
    set by the fixture): `--metrics-wait` lets the job start on the first scrape it answers, and that
    must be Prometheus's, so that Prometheus sees the counters from zero. Until then it serves nothing.
    Its first answer holds every counter at 0, as a real Flink task reports them when it starts
    (counters are touched at 0 in start_bundle): a fast job may be over before the stand-in's first
    scrape, and a counter first seen at its final value has no increase.
    `render.final_serves` counts the answers given since the real job reported itself done.
    """
    last = {"text": ""}

    def render():
        if not render.first_scraped():
            return ""
        try:
            text = urllib.request.urlopen(local_url, timeout=5).read().decode()
        except OSError:
            return last["text"]
        starting = not last["text"]
        if 'guetteur_job_state{state="done"} 1.0' in text:
            render.final_serves += 1
        out = []
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("guetteur_") or family.name == "guetteur_job_state":
                continue
            name = "flink_taskmanager_job_task_operator_" + family.name
            beam_name = "guetteur." + family.name.removeprefix("guetteur_")
            out.append(f"# HELP {name} {beam_name} (scope: taskmanager_job_task_operator)")
            out.append(f"# TYPE {name} gauge")  # Flink's reporter exposes Flink counters as gauges
            for sample in family.samples:
                value = int(sample.value)
                if family.type == "gauge":
                    shares = (value, value)  # each subtask holds its own position
                elif starting:
                    shares = (0, 0)
                else:
                    shares = (value - value // 2, value // 2)  # counts split between subtasks
                for subtask, share in enumerate(shares):
                    out.append(f'{name}{{{FLINK_TM_LABELS},subtask_index="{subtask}",}} {float(share)}')
        last["text"] = "\n".join(out) + "\n"
        return last["text"]

    render.first_scraped = lambda: False
    render.final_serves = 0
    return render


def flink_jobmanager():
    """Flink stand-in: JobManager job metrics a checkpointing job reports."""
    scrapes = {"n": 0}

    def render():
        scrapes["n"] += 1
        n = scrapes["n"]
        series = {
            "lastCheckpointDuration": 180 + n % 7,
            "lastCheckpointSize": 52_000 + 10 * n,
            "numberOfCompletedCheckpoints": n,
            "numberOfFailedCheckpoints": n // 5,
            "numRestarts": 0,
            "uptime": 1000 * n,
        }
        lines = []
        for metric, value in series.items():
            name = f"flink_jobmanager_job_{metric}"
            lines += [f"# HELP {name} {metric} (scope: jobmanager_job)", f"# TYPE {name} gauge",
                      f"{name}{{{FLINK_JM_LABELS},}} {float(value)}"]
        return "\n".join(lines) + "\n"

    return render


# ---------------------------------------------------------------- the running system


class Scraped:
    def __init__(self, prometheus, job, workdir, metrics_file, out_dir, events):
        self.prometheus, self.job, self.workdir = prometheus, job, workdir
        self.metrics_file, self.out_dir, self.events = metrics_file, out_dir, events
        self.api, self.query, self.value = prometheus.api, prometheus.query, prometheus.value


@pytest.fixture(scope="module")
def scraped(prom_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("prometheus-integration")
    sim = subprocess.run([sys.executable, "-m", "pipelines", "simulate", "--output", str(work / "input"),
                          "--seed", "11", "--days", "3", "--actors", "100"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert sim.returncode == 0, sim.stderr
    events = work / "input" / "events.jsonl"
    metrics_file = work / "guetteur.prom"
    job_log = open(work / "detect.stderr", "w")
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "detect", "--input", str(events), "--output", str(work / "out"),
         "--metrics-port", "0", "--metrics-file", str(metrics_file), "--metrics-wait", "300",
         "--metrics-linger", "900", "--progress"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=job_log,
    )
    servers = []
    try:
        log = work / "detect.stderr"
        url_line = wait_for(lambda: log.read_text(), lambda t: "metrics on http://" in t or job.poll() is not None,
                            "guetteur detect to serve its metrics")
        match = re.search(r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)", url_line)
        assert match, url_line
        local_url, local_port = match.group(1), int(match.group(2))
        mirror = flink_taskmanager_mirror(local_url)
        servers = [MetricsEndpoint(mirror), MetricsEndpoint(flink_jobmanager())]
        targets = {LOCAL_JOB: f"127.0.0.1:{local_port}", FLINK_TM_JOB: f"127.0.0.1:{servers[0].port}",
                   FLINK_JM_JOB: f"127.0.0.1:{servers[1].port}"}
        with prometheus_server(targets, work) as prometheus:
            scraped = Scraped(prometheus, job, work, metrics_file, work / "out", events)
            first = {"seen": False}

            def local_job_scraped():  # `up` has a sample once Prometheus has scraped the job itself
                first["seen"] = first["seen"] or bool(prometheus.query(f'up{{job="{LOCAL_JOB}"}}'))
                return first["seen"]

            mirror.first_scraped = local_job_scraped

            def scrapes_after_done():
                if job.poll() is not None:
                    pytest.fail(f"guetteur detect exited early ({job.returncode}):\n{log.read_text()[-3000:]}")
                return prometheus.value_or_zero(
                    f'sum_over_time(guetteur_job_state{{job="{LOCAL_JOB}",state="done"}}[5m])')

            # The job ran to its end and Prometheus scraped its final figures a few times since.
            wait_for(scrapes_after_done, lambda n: n >= 4, "four scrapes of the finished job")

            # ... and the Flink stand-in's final figures too.
            wait_for(lambda: mirror.final_serves, lambda n: n >= 4, "four scrapes of the Flink stand-in after the end")
            yield scraped
    finally:
        if job.poll() is None:
            job.send_signal(signal.SIGTERM)
            try:
                job.wait(60)
            except subprocess.TimeoutExpired:
                job.kill()
        for server in servers:
            server.close()
        job_log.close()


def _lines(path):
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _newest_accepted_ms(scraped):
    """The newest event time among the input lines that were not dead-lettered."""
    from schemas.timestamps import parse_rfc3339_ms

    rejected = {json.loads(line)["line"] for line in open(scraped.out_dir / "deadletter.jsonl", "rb")}
    newest = 0
    for raw in open(scraped.events, "rb"):
        line = raw.rstrip(b"\n").decode("utf-8", errors="replace")
        if line in rejected:
            continue
        ts = json.loads(line)["ts"]
        newest = max(newest, ts if isinstance(ts, int) else parse_rfc3339_ms(ts))
    return newest


def test_prometheus_scraped_the_running_job_many_times(scraped):
    targets = scraped.api("targets")["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert health == {LOCAL_JOB: "up", FLINK_TM_JOB: "up", FLINK_JM_JOB: "up"}, targets
    assert scraped.value(f'count_over_time(up{{job="{LOCAL_JOB}"}}[10m])') >= 4
    assert scraped.value(f'max_over_time(guetteur_job_state{{job="{LOCAL_JOB}",state="done"}}[10m])') == 1
    # Scraped while running, from zero (the job waited for a first scrape), to its final count.
    assert scraped.value(f'max_over_time(guetteur_job_state{{job="{LOCAL_JOB}",state="running"}}[10m])') == 1
    assert scraped.value(f'min_over_time(guetteur_lines_read{{job="{LOCAL_JOB}"}}[10m])') == 0
    assert scraped.value(f'increase(guetteur_lines_read{{job="{LOCAL_JOB}"}}[10m])') > 0


def test_scraped_figures_are_the_jobs_own(scraped):
    """What Prometheus holds equals the input and outputs on disk, and the metrics file the job wrote."""
    job = f'job="{LOCAL_JOB}"'
    lines_read = scraped.value(f"guetteur_lines_read{{{job}}}")
    dead = scraped.value(f"guetteur_dead_lettered{{{job}}}")
    assert lines_read == _lines(scraped.events)
    assert dead == _lines(scraped.out_dir / "deadletter.jsonl") > 0
    assert scraped.value(f"guetteur_events_accepted{{{job}}}") == lines_read - dead
    assert scraped.value(f"sum(guetteur_dead_lettered_by_reason{{{job}}})") == dead
    assert scraped.value(f"sum(guetteur_alerts{{{job}}})") == _lines(scraped.out_dir / "alerts.jsonl") > 0
    assert scraped.value(f"guetteur_event_time_position_ms{{{job}}}") == _newest_accepted_ms(scraped)
    written = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(scraped.metrics_file.read_text())
        for s in f.samples
    }
    assert written[("guetteur_lines_read", ())] == lines_read
    assert written[("guetteur_job_state", (("state", "done"),))] == 1
    for (name, labels), value in written.items():
        if name.startswith("guetteur_") and not labels:
            raw = scraped.query(f'{{__name__="{name}",{job}}}')
            if raw:  # relabelled ones (per reason, per rule) are checked through their labels below
                assert float(raw[0]["value"][1]) == value, name


def test_relabelling_gives_one_set_of_names_for_the_local_runner_and_flink(scraped):
    for name in ("guetteur_lines_read", "guetteur_events_accepted", "guetteur_dead_lettered",
                 "guetteur_windows_scored", "guetteur_accounts_tracked"):
        assert scraped.value(f'sum({name}{{job="{FLINK_TM_JOB}"}})') == scraped.value(f'sum({name}{{job="{LOCAL_JOB}"}})')
    by_reason = {r["metric"]["reason"]: r["value"][1] for r in scraped.query(
        f'sum by (reason) (guetteur_dead_lettered_by_reason{{job="{LOCAL_JOB}"}})')}
    assert by_reason and by_reason == {r["metric"]["reason"]: r["value"][1] for r in scraped.query(
        f'sum by (reason) (guetteur_dead_lettered_by_reason{{job="{FLINK_TM_JOB}"}})')}
    alerts = scraped.query(f'sum by (rule, severity) (guetteur_alerts{{job="{LOCAL_JOB}"}})')
    assert alerts and all(a["metric"]["severity"] in {"low", "medium", "high", "critical"} for a in alerts)
    assert all(a["metric"]["rule"] for a in alerts)
    assert scraped.value(f'max(guetteur_event_time_position_ms{{job="{FLINK_TM_JOB}"}})') == scraped.value(
        f'guetteur_event_time_position_ms{{job="{LOCAL_JOB}"}}')
    # Nothing is left under a Flink prefix or with a dimension still inside its name.
    leftovers = scraped.query('count by (__name__) ({__name__=~"flink_taskmanager_job_task_operator_guetteur_.*'
                              '|guetteur_dead_lettered_.+|guetteur_alerts_.+"})')
    assert [r["metric"]["__name__"] for r in leftovers if r["metric"]["__name__"] != "guetteur_dead_lettered_by_reason"] == []


@pytest.mark.parametrize("title, expr", dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_every_dashboard_panel_returns_data(scraped, title, expr):
    jobs = ["(Flink stand-in JobManager)"] if flink_jobmanager_only(expr) else [LOCAL_JOB, FLINK_TM_JOB]
    for job in jobs:
        expanded = expand(expr, job)
        result = scraped.query(expanded)
        assert result, f"{title}: no data for {job}: {expanded}"
        values = [float(r["value"][1]) for r in result]
        assert any(v == v for v in values), f"{title}: only NaN for {job}: {expanded}"


@pytest.mark.parametrize("what, expr", list(rule_signals()), ids=[w for w, _ in rule_signals()])
def test_every_rule_signal_returns_data(scraped, what, expr):
    """Each recording rule, and each operand every alert compares, has data on the real scrape.

    Whether alerts fire on those signals is what deploy/prometheus/tests/ (promtool test rules) checks.
    """
    result = scraped.query(expr)
    assert result, f"{what}: no data: {expr}"
    if not flink_jobmanager_only(expr):
        assert {r["metric"].get("job") for r in result} >= {LOCAL_JOB, FLINK_TM_JOB}, result


def test_prometheus_loaded_every_rule_and_evaluates_it_without_error(scraped):
    loaded_rules_are_healthy(scraped.prometheus)


def test_the_job_ends_cleanly_when_its_linger_is_cut_short(scraped):
    scraped.job.send_signal(signal.SIGTERM)
    assert scraped.job.wait(60) == 0
    log = (scraped.workdir / "detect.stderr").read_text()
    assert "Traceback" not in log
    assert re.search(r"guetteur detect: [\d,]+ lines, [\d,]+ events", log), log
