"""Start and stop the real services runner tests need (scripts of deploy/local/), on free ports.

Each helper is a context manager: the service is always stopped, even when a test fails.
The first use on a fresh machine downloads the tools into .cache/ (deploy/local/fetch.sh).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Dict, Iterator

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
