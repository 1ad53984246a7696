"""Start and stop the real services runner tests need (scripts of deploy/local/), on free ports.

Each helper is a context manager: the service is always stopped, even when a test fails.
The first use on a fresh machine downloads the tools into .cache/ (deploy/local/fetch.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.request
from typing import Dict, Iterator

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(REPO_ROOT, "deploy", "local")


def _script(name: str, *args: str, run_dir: str, env: Dict[str, str] | None = None, timeout: int = 900) -> str:
    full_env = dict(os.environ, RUN_DIR=run_dir, **(env or {}))
    done = subprocess.run(
        [os.path.join(LOCAL, name), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def _parse_env(text: str) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def fetch(*tools: str) -> None:
    _script("fetch.sh", *tools, run_dir=os.path.join(REPO_ROOT, "out", "local-services"), timeout=1800)


@contextlib.contextmanager
def beam_services(run_dir: str, flink_master: str = "[local]") -> Iterator[Dict[str, str]]:
    """Flink job server (+ KafkaIO expansion service): yields JOB_ENDPOINT, EXPANSION_SERVICE."""
    try:
        yield _parse_env(_script("beam-services.sh", "start", run_dir=run_dir, env={"FLINK_MASTER": flink_master}))
    finally:
        _script("beam-services.sh", "stop", run_dir=run_dir)


@contextlib.contextmanager
def kafka_broker(run_dir: str) -> Iterator[Dict[str, str]]:
    """A single-node KRaft Kafka broker: yields BOOTSTRAP (127.0.0.1:port)."""
    try:
        yield _parse_env(_script("kafka.sh", "start", run_dir=run_dir))
    finally:
        _script("kafka.sh", "stop", run_dir=run_dir)


@contextlib.contextmanager
def flink_cluster(run_dir: str, prometheus_port: int) -> Iterator[Dict[str, str]]:
    """A Flink session cluster (JobManager + TaskManager) with its Prometheus reporter on
    `prometheus_port` and after: yields FLINK_MASTER, FLINK_WEB, PROMETHEUS_JOBMANAGER, PROMETHEUS_TASKMANAGER."""
    try:
        yield _parse_env(_script("flink-cluster.sh", "start", run_dir=run_dir,
                                 env={"FLINK_PROMETHEUS_PORT": str(prometheus_port)}))
    finally:
        _script("flink-cluster.sh", "stop", run_dir=run_dir)


def free_port_range(size: int) -> int:
    """The first of `size` consecutive free loopback ports (for the Flink reporters' port range)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + size > 65535:
            continue
        held = []
        try:
            for port in range(first, first + size):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {size} consecutive free ports on 127.0.0.1")


def cancel_flink_jobs(flink_web: str, name: str) -> None:
    """Cancels the running jobs called `name` on a session cluster, through Flink's REST API.

    Cancelling a portable job through Beam's job server stops its submission, not the job on a
    remote session cluster (Beam 2.54), so tests cancel what they started here too.
    """
    with urllib.request.urlopen(f"{flink_web}/jobs/overview", timeout=30) as response:
        jobs = json.load(response)["jobs"]
    for job in jobs:
        if job["name"] == name and job["state"] not in ("CANCELED", "FAILED", "FINISHED"):
            request = urllib.request.Request(f"{flink_web}/jobs/{job['jid']}?mode=cancel", method="PATCH")
            urllib.request.urlopen(request, timeout=30).close()


# Session-wide (registered in tests/conftest.py): each service starts once, when a test first asks
# for it, and stops at the end of the session. tests/test_prometheus_on_flink.py uses them; the
# older Flink modules still start their own job server (an embedded job before a session-cluster job
# in one job server and one pytest process was not yet shown to work: see that module's history).


@pytest.fixture(scope="session")
def shared_kafka(tmp_path_factory) -> Iterator[Dict[str, str]]:
    """A Kafka broker: BOOTSTRAP, RUN_DIR (for `kafka.sh topics`). Tests use their own topic names."""
    run_dir = str(tmp_path_factory.mktemp("kafka"))
    with kafka_broker(run_dir) as kafka:
        yield {**kafka, "RUN_DIR": run_dir}


@pytest.fixture(scope="session")
def shared_beam_services(tmp_path_factory) -> Iterator[Dict[str, str]]:
    """Beam's Flink job server and KafkaIO expansion service: JOB_ENDPOINT, EXPANSION_SERVICE.

    Its default Flink master is the embedded mini-cluster; a job sent with `--flink_master=host:port`
    runs on that session cluster instead, so one job server serves both kinds of test.
    """
    with beam_services(str(tmp_path_factory.mktemp("beam-services"))) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def flink_session_cluster(tmp_path_factory) -> Iterator[Dict[str, str]]:
    """A real Flink session cluster with the Prometheus reporter deploy/ configures, on free ports."""
    with flink_cluster(str(tmp_path_factory.mktemp("flink-cluster")), free_port_range(11)) as cluster:
        yield cluster
