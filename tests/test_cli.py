"""The `guetteur` command: a bad command line is one line and a non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys

import pytest

from pipelines.cli import EXIT_USAGE, main

from tests.event_factory import MONDAY_MS, burst, write_jsonl


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *words):
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], ["required"]),
        (["fly"], ["invalid choice"]),
        (["detect", "--output", "x"], ["--input"]),
        (["detect", "--input", "x"], ["--output"]),
        (["simulate", "--output", "x", "--days", "0"], ["--days"]),
        (["simulate", "--output", "x", "--actors", "many"], ["--actors"]),
        (["simulate", "--output", "x", "--bogus", "1"], ["--bogus"]),
        (["evaluate", "--alerts", "x"], ["--labels"]),
        (["detect", "--input", "x", "--output", "y", "--workers", "0"], ["--workers"]),
    ],
)
def test_bad_arguments(capsys, argv, words):
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *words)


def test_detect_with_no_matching_input(capsys, tmp_path):
    code, _, err = run_cli(capsys, "detect", "--input", str(tmp_path / "nothing-*.jsonl"), "--output", str(tmp_path / "o"))
    assert_one_line_error(code, err, "no input file matches")


def test_detect_with_an_unreadable_input(capsys, tmp_path):
    code, _, err = run_cli(capsys, "detect", "--input", str(tmp_path), "--output", str(tmp_path / "o"))
    assert_one_line_error(code, err, "cannot read input")


def test_detect_with_an_output_that_cannot_be_a_directory(capsys, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", burst("acct-1", MONDAY_MS, 10, 1000))
    code, _, err = run_cli(capsys, "detect", "--input", events, "--output", os.path.join(events, "out"))
    assert_one_line_error(code, err, "cannot create output directory")


def test_detect_with_a_broken_settings_file(capsys, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", burst("acct-1", MONDAY_MS, 10, 1000))
    config = tmp_path / "detection.toml"
    config.write_text("[volume]\nmultiplier = 'three'\n")
    code, _, err = run_cli(capsys, "detect", "--input", events, "--output", str(tmp_path / "o"), "--config", str(config))
    assert_one_line_error(code, err, "--config", "multiplier")


def test_evaluate_with_missing_labels(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--alerts", str(tmp_path / "a.jsonl"), "--labels", str(tmp_path / "l.json"))
    assert_one_line_error(code, err, "labels")


def test_detect_end_to_end_writes_alerts_and_dead_letters(capsys, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", burst("acct-9", MONDAY_MS, 600, 1000, actor_type="youth_advisor"))
    with open(events, "ab") as handle:
        handle.write(b"garbage\n")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "detect", "--input", events, "--output", str(out))
    assert code == 0, err
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    letters = [json.loads(line) for line in (out / "deadletter.jsonl").read_text().splitlines()]
    assert {a["actor"] for a in alerts} == {"acct-9"}
    assert [letter["line"] for letter in letters] == ["garbage"]
    assert "601 lines" in err and "1 dead letters" in err


def test_the_installed_module_entry_point_reports_errors_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "detect", "--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == EXIT_USAGE
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("guetteur:")


def test_the_command_leaves_after_its_threads_and_exit_handlers_with_main_s_status(tmp_path):
    # `run` skips the interpreter's teardown, not what an exit owes: a thread still writing and an exit
    # handler (Beam stops a job server it started with one) must both have done their work.
    script = f"""
import atexit, sys, threading, time
from pipelines import cli
returned = threading.Event()
atexit.register(lambda: open({str(tmp_path / 'handler')!r}, "w").write("ran"))
threading.Thread(target=lambda: (returned.wait(), time.sleep(0.3),
                                 open({str(tmp_path / 'thread')!r}, "w").write("done"))).start()
main = cli.main
cli.main = lambda: (main(), returned.set())[0]  # the thread is still working when main has returned
sys.argv = ["guetteur", "detect", "--input", {str(tmp_path / 'none.jsonl')!r}, "--output", {str(tmp_path)!r}]
cli.run()
print("not reached")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    assert done.stderr.startswith("guetteur:") and len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "handler").read_text() == "ran" and (tmp_path / "thread").read_text() == "done"


def test_workers_are_for_the_local_runner_only(capsys, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", burst("acct-1", MONDAY_MS, 10, 1000))
    code, _, err = run_cli(capsys, "detect", "--input", events, "--output", str(tmp_path / "o"), "--runner", "PrismRunner",
                           "--workers", "2")
    assert_one_line_error(code, err, "--workers", "local runner")


def test_worker_processes_write_the_same_alerts_and_baselines_byte_for_byte(capfd, tmp_path):
    # Organisations are scored on two workers in whatever order: the alerts file must not show it.
    # (capfd: the workers are processes of their own, writing to the terminal's file descriptors.)
    capsys = capfd
    assert run_cli(capsys, "simulate", "--output", str(tmp_path / "sim"), "--seed", "11", "--days", "6",
                   "--actors", "40")[0] == 0
    events = str(tmp_path / "sim" / "events.jsonl")
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"workers-{workers}"
        code, _, err = run_cli(capsys, "detect", "--input", events, "--output", str(out), "--workers", workers)
        assert code == 0, err
        # One line, ours: nothing from the worker processes' start-up or shutdown.
        assert [line.split(":")[0] for line in err.strip().splitlines()] == ["guetteur detect"], err
        outputs[workers] = (out / "alerts.jsonl").read_bytes()
    alerts = [json.loads(line) for line in outputs["1"].splitlines()]
    assert len({a["org"] for a in alerts}) >= 2  # several organisations, so their order could show
    assert [a["detected_at"] for a in alerts] == sorted(a["detected_at"] for a in alerts)
    assert outputs["2"] == outputs["1"]
    baselines = {}
    for workers in ("1", "2"):
        path = tmp_path / f"baselines-{workers}.parquet"
        code, _, err = run_cli(capsys, "train", "--input", events, "--output", str(path), "--workers", workers)
        assert code == 0, err
        baselines[workers] = path.read_bytes()
    assert baselines["2"] == baselines["1"]
