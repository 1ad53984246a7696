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


def _session(sid: int):
    """(pid, parent pid, command line) of every live process of session `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append((int(entry), int(fields[1]), command))
    return found


def test_ctrl_c_ends_the_command_and_its_workers_with_one_line(tmp_path):
    import signal
    import sys

    from pipelines.simulation import write_simulation

    write_simulation(str(tmp_path / "sim"), seed=11, days=10, actors=60)
    command = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "detect", "--input", str(tmp_path / "sim" / "events.jsonl"),
         "--output", str(tmp_path / "out"), "--workers", "2"],
        start_new_session=True, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
    )
    # Interrupt once the zygote has forked the workers: they are then inside the job.
    deadline = time.monotonic() + 120
    while command.poll() is None and time.monotonic() < deadline:
        forked = [pid for pid, parent, line in _session(command.pid)
                  if "pipelines.warm_workers" in line and parent != command.pid]
        if len(forked) == 2:
            break
        time.sleep(0.005)
    assert command.poll() is None, "the job ended before its workers were seen"
    os.killpg(command.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    err = command.communicate(timeout=60)[1]
    assert command.returncode == 130
    assert err.strip().splitlines() == ["guetteur: interrupted"]  # no worker or runner traceback
    while _session(command.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session(command.pid) == []  # no worker, launcher or zygote left behind
