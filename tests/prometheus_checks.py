"""What the Prometheus tests share: the real server, its HTTP API, and what the dashboards and rules ask.

Prometheus and promtool are Debian's `prometheus` package, unpacked into .cache/ by
deploy/local/prometheus.sh (make test runs it first; `prometheus_bin` runs it too when needed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Iterator

import yaml

from tests import polling

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
LOCAL_JOB, FLINK_TM_JOB, FLINK_JM_JOB = "guetteur-local", "flink-taskmanager", "flink-jobmanager"
# Grafana's built-in variables, as a Grafana over a short test run would expand them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "15s", "$__range": "10m"}


def prometheus_bin() -> Path:
    configured = os.environ.get("PROMETHEUS_BIN_DIR")
    bin_dir = Path(configured) if configured else REPO / ".cache" / "prometheus" / "usr" / "bin"
    if not (bin_dir / "prometheus").exists():
        done = subprocess.run([str(REPO / "deploy" / "local" / "prometheus.sh"), "install"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"deploy/local/prometheus.sh install failed:\n{done.stderr}"
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    return bin_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(read, done, what, timeout_s: float = 180):
    return polling.wait_for(read, done, what, timeout_s=timeout_s, interval_s=0.2)


# ---------------------------------------------------------------- the server


class MetricsEndpoint:
    """A tiny HTTP server on loopback answering GET with the text exposition `render()` returns."""

    def __init__(self, render: Callable[[], str]):
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


def write_config(targets: Dict[str, str], work: Path) -> Path:
    """deploy/prometheus/prometheus.yml with 1 s intervals, the rules by path, and `targets` (job -> host:port).

    Jobs of the file not in `targets` are left out; nothing else (relabelling, labels) changes.
    """
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in RULE_FILES]
    assert set(targets) <= {job["job_name"] for job in config["scrape_configs"]}, targets
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class PrometheusAPI:
    def __init__(self, url: str):
        self.url = url

    def api(self, path, **params):
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?" + urllib.parse.urlencode(params), timeout=30) as r:
            body = json.load(r)
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

    def value_or_zero(self, expr):
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0


@contextlib.contextmanager
def prometheus_server(targets: Dict[str, str], work: Path) -> Iterator[PrometheusAPI]:
    """A real Prometheus on a free loopback port scraping `targets` (see write_config); always stopped."""
    config = write_config(targets, work)
    (work / "tsdb").mkdir()
    log_path = work / "prometheus.log"
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(prometheus_bin() / "prometheus"), f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    api = PrometheusAPI(f"http://127.0.0.1:{port}")
    try:
        def ready():
            assert process.poll() is None, f"prometheus exited:\n{log_path.read_text()[-3000:]}"
            try:
                return urllib.request.urlopen(f"{api.url}/-/ready", timeout=5).status == 200
            except OSError:
                return False

        wait_for(ready, bool, "prometheus to be ready")
        yield api
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    """(what, expr) of every recording rule, and of every operand every alert compares."""
    for rule in rules():
        if "record" in rule:
            yield f"record {rule['record']}", rule["expr"]
        else:
            for n, operand in enumerate(signals(rule["expr"])):
                yield f"alert {rule['alert']} operand {n + 1}", operand


def flink_jobmanager_only(expr: str) -> bool:
    return "flink_jobmanager_" in expr


def expand(expr: str, job: str) -> str:
    """A dashboard query as Grafana would send it with the `job` variable set to `job`."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    expanded = expr.replace("${job}", job).replace("$job", job)
    assert "$" not in expanded, f"unexpanded variable in {expanded}"
    return expanded


def loaded_rules_are_healthy(api: PrometheusAPI) -> None:
    loaded = [r for g in api.api("rules")["groups"] for r in g["rules"]]
    assert {r.get("name") for r in loaded} == {r.get("record") or r.get("alert") for r in rules()}
    assert all(r["health"] == "ok" and not r.get("lastError") for r in loaded), loaded
