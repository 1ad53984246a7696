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
a JobManager with checkpoint and restart series. They prove the relabelling maps Flink's names onto
the same series as the local job's, and that the Flink-only panels and alerts query names and labels
of that shape; they do not prove Flink itself emits them (deploy/flink/ owns the reporter).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests import polling

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
LOCAL_JOB, FLINK_TM_JOB, FLINK_JM_JOB = "guetteur-local", "flink-taskmanager", "flink-jobmanager"
# Grafana's built-in variables, as a Grafana over this short test run would expand them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "15s", "$__range": "10m"}


# ---------------------------------------------------------------- tools


def _prometheus_bin() -> Path:
    configured = os.environ.get("PROMETHEUS_BIN_DIR")
    bin_dir = Path(configured) if configured else REPO / ".cache" / "prometheus" / "usr" / "bin"
    if not (bin_dir / "prometheus").exists():
        done = subprocess.run([str(REPO / "deploy" / "local" / "prometheus.sh"), "install"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"deploy/local/prometheus.sh install failed:\n{done.stderr}"
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    return bin_dir


@pytest.fixture(scope="module")
def prom_bin() -> Path:
    return _prometheus_bin()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(read, done, what):
    return polling.wait_for(read, done, what, timeout_s=180, interval_s=0.2)


# ---------------------------------------------------------------- what the dashboards and rules ask


def dashboard_queries():
    """(id, expr) of every query of every panel of every dashboard."""
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.stem}: {panel['title']} [{target['refId']}]", target["expr"]))
    return found


def rules():
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


_TOP_LEVEL_SPLIT = re.compile(
    r"\s+(?:and|or|unless)\s+(?:(?:on|ignoring)\s*\([^)]*\)\s*)?"
    r"|\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?"
)


def signals(expr: str):
    """The operands an expression compares or combines at its top level (numbers left out).

    `a > 0.01 and a > 2 * b` -> [`a`, `a`, `2 * b`]. Whatever is inside brackets stays whole.
    """
    depth, cuts, i = 0, [], 0
    while i < len(expr):
        ch = expr[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "\"'":
            i = expr.index(ch, i + 1)
        elif depth == 0:
            match = _TOP_LEVEL_SPLIT.match(expr, i)
            if match and match.end() > i:
                cuts.append((match.start(), match.end()))
                i = match.end()
                continue
        i += 1
    pieces, start = [], 0
    for begin, end in cuts:
        pieces.append(expr[start:begin])
        start = end
    pieces.append(expr[start:])
    return [p.strip() for p in pieces if p.strip() and not re.fullmatch(r"[-+]?[0-9.eE]+", p.strip())]


def rule_signals():
    for rule in rules():
        if "record" in rule:
            yield f"record {rule['record']}", rule["expr"]
        else:
            for n, operand in enumerate(signals(rule["expr"])):
                yield f"alert {rule['alert']} operand {n + 1}", operand


def test_signals_splits_only_at_the_top_level():
    assert signals("a > 0.01 and a > 2 * b") == ["a", "a", "2 * b"]
    assert signals("deriv(x[10m]) > 0.5 and y > 600") == ["deriv(x[10m])", "y"]
    assert signals('sum by (j) (increase(m{l=">"}[15m])) > 0') == ['sum by (j) (increase(m{l=">"}[15m]))']
    assert signals("x == 0") == ["x"]


def flink_jobmanager_only(expr: str) -> bool:
    return "flink_jobmanager_" in expr


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


FLINK_TM_LABELS = (
    'host="localhost",tm_id="127_0_0_1:41000-a1b2c3",job_id="8f5e3c2a9b7d4e6f8a1b2c3d4e5f6a7b",'
    'job_name="guetteur-detect",task_id="cbc357ccb763df2852fee8c4fc7d55f2",'
    'task_attempt_id="4a6f0e9d2c1b8a7f6e5d4c3b2a190817",task_name="ReadEvents-Parse",'
    'task_attempt_num="0",operator_id="cbc357ccb763df2852fee8c4fc7d55f2",'
    'operator_name="ReadEvents-Parse-Validate"'
)
FLINK_JM_LABELS = 'host="localhost",job_id="8f5e3c2a9b7d4e6f8a1b2c3d4e5f6a7b",job_name="guetteur-detect"'


class _Serve:
    """A tiny HTTP server answering GET /metrics with text from `render()`."""

    def __init__(self, render):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def flink_taskmanager_mirror(local_url):
    """Flink stand-in: the real job's Beam metrics as Flink's reporter names them, over two subtasks.

    `render.final_serves` counts the answers given since the real job reported itself done.
    """
    last = {"text": ""}

    def render():
        try:
            text = urllib.request.urlopen(local_url, timeout=5).read().decode()
        except OSError:
            return last["text"]
        if 'guetteur_job_state{state="done"} 1.0' in text:
            render.final_serves += 1
        out = []
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("guetteur_") or family.name == "guetteur_job_state":
                continue
            name = "flink_taskmanager_job_task_operator_" + family.name
            out.append(f"# HELP {name} {family.name.removeprefix('guetteur_')} (scope: taskmanager_job_task_operator)")
            out.append(f"# TYPE {name} gauge")  # Flink's reporter exposes Flink counters as gauges
            for sample in family.samples:
                value = int(sample.value)
                if family.type == "gauge":
                    shares = (value, value)  # each subtask holds its own position
                else:
                    shares = (value - value // 2, value // 2)  # counts split between subtasks
                for subtask, share in enumerate(shares):
                    out.append(f'{name}{{{FLINK_TM_LABELS},subtask_index="{subtask}"}} {float(share)}')
        last["text"] = "\n".join(out) + "\n"
        return last["text"]

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
                      f"{name}{{{FLINK_JM_LABELS}}} {float(value)}"]
        return "\n".join(lines) + "\n"

    return render


# ---------------------------------------------------------------- the running system


class Scraped:
    def __init__(self, prom_url, job, workdir, metrics_file, out_dir, events):
        self.prom_url, self.job, self.workdir = prom_url, job, workdir
        self.metrics_file, self.out_dir, self.events = metrics_file, out_dir, events

    def api(self, path, **params):
        url = f"{self.prom_url}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr):
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


def _prometheus_config(local_port, tm_port, jm_port, data_dir):
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in RULE_FILES]
    targets = {LOCAL_JOB: local_port, FLINK_TM_JOB: tm_port, FLINK_JM_JOB: jm_port}
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{targets[job['job_name']]}"]
    path = data_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


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
    servers, prometheus = [], None
    try:
        log = work / "detect.stderr"
        url_line = wait_for(lambda: log.read_text(), lambda t: "metrics on http://" in t or job.poll() is not None,
                            "guetteur detect to serve its metrics")
        match = re.search(r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)", url_line)
        assert match, url_line
        local_url, local_port = match.group(1), int(match.group(2))
        mirror = flink_taskmanager_mirror(local_url)
        servers = [_Serve(mirror), _Serve(flink_jobmanager())]
        prom_port = _free_port()
        (work / "tsdb").mkdir()
        config = _prometheus_config(local_port, servers[0].port, servers[1].port, work)
        prometheus = subprocess.Popen(
            [str(prom_bin / "prometheus"), f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"),
        )
        scraped = Scraped(f"http://127.0.0.1:{prom_port}", job, work, metrics_file, work / "out", events)

        def ready():
            if prometheus.poll() is not None:
                pytest.fail(f"prometheus exited:\n{(work / 'prometheus.log').read_text()[-3000:]}")
            try:
                return urllib.request.urlopen(f"{scraped.prom_url}/-/ready", timeout=5).status == 200
            except OSError:
                return False

        wait_for(ready, bool, "prometheus to be ready")

        def scrapes_after_done():
            if job.poll() is not None:
                pytest.fail(f"guetteur detect exited early ({job.returncode}):\n{log.read_text()[-3000:]}")
            found = scraped.query(f'sum_over_time(guetteur_job_state{{job="{LOCAL_JOB}",state="done"}}[5m])')
            return float(found[0]["value"][1]) if found else 0.0

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
        if prometheus is not None:
            prometheus.terminate()
            try:
                prometheus.wait(60)
            except subprocess.TimeoutExpired:
                prometheus.kill()
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


def _expand(expr: str, job: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr.replace("$job", job).replace("${job}", job)


@pytest.mark.parametrize("title, expr", dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_every_dashboard_panel_returns_data(scraped, title, expr):
    jobs = ["(Flink stand-in JobManager)"] if flink_jobmanager_only(expr) else [LOCAL_JOB, FLINK_TM_JOB]
    for job in jobs:
        expanded = _expand(expr, job)
        assert "$" not in expanded, f"unexpanded variable in {expanded}"
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
    loaded = [r for g in scraped.api("rules")["groups"] for r in g["rules"]]
    assert {r.get("name") for r in loaded} == {r.get("record") or r.get("alert") for r in rules()}
    assert all(r["health"] == "ok" and not r.get("lastError") for r in loaded), loaded


def test_the_job_ends_cleanly_when_its_linger_is_cut_short(scraped):
    scraped.job.send_signal(signal.SIGTERM)
    assert scraped.job.wait(60) == 0
    log = (scraped.workdir / "detect.stderr").read_text()
    assert "Traceback" not in log
    assert re.search(r"guetteur detect: [\d,]+ lines, [\d,]+ events", log), log
