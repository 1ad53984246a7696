"""Local workers forked warm from a zygote (pipelines/warm_workers.py), and started cold when there is none."""

import json
import os
import shlex
import subprocess
import time

import pytest

from pipelines import warm_workers
from pipelines.cli import main
from tests.warm_targets import THREAD_AT_IMPORT

pytestmark = pytest.mark.skipif(not warm_workers.supported(), reason="the zygote forks: Linux only")

COLD_EXIT = 7
TARGET = "tests.warm_targets:report"


@pytest.fixture
def zygote():
    started = warm_workers.Zygote.start(target=TARGET, warm_modules=())
    yield started
    started.stop()


def _launch(command: str, report, **env) -> subprocess.CompletedProcess:
    """The worker command as Beam's local runner runs it: through a shell, with the worker's environment."""
    return subprocess.run(command, shell=True, env={**os.environ, "WARM_REPORT": str(report), **env}, timeout=60)


def _with_cold_fallback(zygote) -> str:
    """The zygote's worker command, with a cold command that says it ran by its exit status."""
    launcher = zygote.worker_command().split(" -m pipelines.quiet_worker")[0].rsplit(" ", 1)[0]
    return f"{launcher} python3 -c {shlex.quote(f'import sys; sys.exit({COLD_EXIT})')}"


def test_a_launched_worker_is_forked_by_the_zygote_with_the_runner_s_environment(zygote, tmp_path):
    report = tmp_path / "report.json"
    done = _launch(_with_cold_fallback(zygote), report, WORKER_ID="worker_3")
    assert done.returncode == 0
    seen = json.loads(report.read_text())
    assert seen["worker_id"] == "worker_3"
    assert seen["parent"] == zygote._process.pid  # forked, not started cold
    assert seen["stdin_is_devnull"]  # the zygote's lifeline stays with the zygote


def test_the_worker_s_exit_status_reaches_the_runner(zygote, tmp_path):
    assert _launch(_with_cold_fallback(zygote), tmp_path / "a.json", WARM_EXIT="3").returncode == 3
    # An uncaught exception ends a worker with status 1, as it ends a cold one.
    assert _launch(_with_cold_fallback(zygote), tmp_path / "b.json", WARM_RAISE="1").returncode == 1
    # The zygote serves worker after worker.
    assert _launch(_with_cold_fallback(zygote), tmp_path / "c.json").returncode == 0
    assert zygote.alive()


def test_without_a_zygote_the_worker_starts_cold(zygote, tmp_path):
    command = _with_cold_fallback(zygote)
    zygote.stop()
    assert not zygote.alive()
    assert _launch(command, tmp_path / "report.json").returncode == COLD_EXIT
    assert not (tmp_path / "report.json").exists()


def test_a_zygote_left_with_a_thread_after_its_imports_does_not_fork(tmp_path):
    threaded = warm_workers.Zygote.start(target=TARGET, warm_modules=(THREAD_AT_IMPORT,))
    try:
        deadline = time.monotonic() + 60
        while threaded.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not threaded.alive()
        assert _launch(_with_cold_fallback(threaded), tmp_path / "report.json").returncode == COLD_EXIT
    finally:
        threaded.stop()


def test_the_command_s_workers_run_forked_from_its_zygote_and_it_ends_with_the_command(
        capfd, tmp_path, monkeypatch):
    from tests.event_factory import MONDAY_MS, burst, write_jsonl

    events = write_jsonl(tmp_path / "events.jsonl", burst("u1", MONDAY_MS, 40, 1_000, org="org-a")
                         + burst("u2", MONDAY_MS, 40, 1_000, org="org-b"))
    record = tmp_path / "workers"
    record.mkdir()
    monkeypatch.setenv("WARM_RECORD", str(record))
    zygote = warm_workers.Zygote.start(target="tests.warm_targets:recorded_harness")
    monkeypatch.setattr(warm_workers, "_zygote", zygote)  # the command's warm_up() keeps the one it finds
    code = main(["detect", "--input", events, "--output", str(tmp_path / "out"), "--workers", "2"])
    assert code == 0, capfd.readouterr().err
    parents = [(record / pid).read_text() for pid in os.listdir(record)]
    assert parents == [str(zygote._process.pid)] * 2
    assert warm_workers._zygote is None and not zygote.alive()  # stopped when the command ended
