"""`guetteur detect --runner PrismRunner` (Beam's portable runner, a real Go binary built by
deploy/local/fetch.sh) gives the alerts of the local runner.

Prism runs in a fresh `guetteur detect` process, as a user would run it. Known Prism v2.77.0 defect,
reproduced outside Guetteur (a stateful DoFn with watermark timers and a side input, as
DetectPerGroup has): when the machine or the process is busy, the job sometimes succeeds with no
output from that DoFn at all. Such an empty run is retried, three runs at most; any run with alerts
must match the local runner exactly, and three empty runs fail.
"""

import os
import subprocess
import sys

import pytest

from pipelines.options import LOCAL_RUNNER
from pipelines.runners import prism_location

from tests.runner_services import REPO_ROOT, fetch
from tests.test_flink_runner import alert_facts, fixed_input, run
from tests.event_factory import write_jsonl

ATTEMPTS = 3


@pytest.fixture(scope="module")
def prism():
    fetch("prism")
    return prism_location()


def detect_on_prism(prism, path, output_dir):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "detect", "--input", path, "--output", output_dir,
         "--runner", "PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK",
         "--max_cache_memory_usage_mb=64"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return alert_facts(output_dir)


def test_prism_and_local_runner_give_the_same_alerts(prism, tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl", fixed_input())
    local = run(path, str(tmp_path / "local"), [f"--runner={LOCAL_RUNNER}"])
    assert local, "the fixture must alert"
    for attempt in range(ATTEMPTS):
        on_prism = detect_on_prism(prism, path, str(tmp_path / f"prism-{attempt}"))
        if on_prism:
            break
    assert on_prism == local
