"""`make bench` plumbing on a tiny input: counting, account spreading, table and report. Never speed."""

import json
import os
import signal
import subprocess
import sys

from pipelines import bench

LINES = [
    b'{"ts":"2026-03-23T06:27:01.721Z","event_id":"evt-1","actor":"acct-1","action":"login"}\n',
    b'{"ts":"2026-03-23T06:29:59.000Z","event_id":"evt-2","actor":"acct-1","action":"consult"}\n',
    b'{"ts":"2026-03-23T06:30:00.000Z","event_id":"evt-3","actor":"acct-1","action":"consult"}\n',
    b'{"ts":"2026-03-23T06:31:00.000Z","event_id":"evt-4","actor":"acct-2","action":"consult"}\n',
    b'not json at all\n',
]


def _write(tmp_path, lines=LINES):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))
    return str(path)


def test_plain_count_counts_per_actor_and_five_minute_window(tmp_path):
    result = bench.plain_count(_write(tmp_path))
    assert result["events"] == 4
    assert result["bad_lines"] == 1
    assert result["accounts"] == 2
    # acct-1: 06:25 window (2 events) and 06:30 window (1); acct-2: 06:30 window.
    assert result["account_windows"] == 3


def test_spread_accounts_keeps_every_line_and_multiplies_accounts(tmp_path):
    many = [
        b'{"ts":"2026-03-23T06:27:01.721Z","event_id":"evt-%d","actor":"acct-1","action":"consult"}\n' % i
        for i in range(200)
    ] + [b"broken\n"]
    source = _write(tmp_path, many)
    target = str(tmp_path / "spread.jsonl")
    bench.spread_accounts(source, target, 10)
    with open(target, "rb") as handle:
        out = handle.readlines()
    assert len(out) == len(many)
    assert out[-1] == b"broken\n"
    spread = bench.plain_count(target)
    assert spread["events"] == 200
    assert 2 < spread["accounts"] <= 10
    # Deterministic: the same file twice.
    again = str(tmp_path / "again.jsonl")
    bench.spread_accounts(source, again, 10)
    assert open(again, "rb").read() == open(target, "rb").read()


def _row(name, events, accounts, rss, ratio=0.05, pss=None):
    return {
        "row": name, "events": events, "accounts": accounts, "plain_events_per_s": 100_000.0,
        "detect_seconds": 2.0, "detect_events_per_s": 5_000.0, "ratio": ratio, "detect_peak_rss_mb": rss,
        "detect_peak_pss_mb": pss,
    }


def test_table_report_and_verdict():
    rows = [_row("events x1", 1000, 10, 100.0, pss=80.0), _row("events x4", 4000, 10, 120.0, pss=88.0),
            _row("accounts x1", 1000, 10, 100.0, pss=80.0), _row("accounts x100", 1000, 1000, 300.0)]
    table = bench.format_table(rows).splitlines()
    assert table[0].split()[:3] == ["row", "events", "accounts"]
    assert len(table) == 2 + len(rows)
    assert "accounts x100" in table[-1] and "1,000" in table[-1]
    verdict = bench.verdict(rows)
    assert verdict["meets_speed_target"] is False
    assert verdict["rss_events_max_over_x1"] == 1.2
    assert verdict["rss_accounts_max_over_x1"] == 3.0
    assert verdict["pss_events_max_over_x1"] == 1.1
    assert verdict["pss_accounts_max_over_x1"] is None  # not measured on that row: no ratio, and "-" shown
    assert verdict["meets_memory_target"] is True  # 88 / 80 MB
    rows[1]["detect_peak_pss_mb"] = 80.0 * bench.EVENTS_MEMORY_TARGET + 1
    assert bench.verdict(rows)["meets_memory_target"] is False
    assert bench.verdict(rows[2:])["meets_memory_target"] is None  # no events row beyond x1
    assert table[2].split()[-1] == "80" and table[-1].split()[-1] == "-"
    growth = bench.rss_per_account(rows)
    assert growth["bytes_per_extra_account"] == 200 * 1024 * 1024 / 990
    json.dumps({"rows": rows, "verdict": verdict, "growth": growth})


def test_main_writes_report_with_a_stub_detect(tmp_path, monkeypatch):
    events = _write(tmp_path)
    monkeypatch.setattr(bench, "simulate", lambda work, guetteur, seed, days, actors: events)
    monkeypatch.setattr(bench, "run_detect",
                        lambda guetteur, path, output, workers=1, sample_memory=True: {
                            "seconds": 2.0 / workers, "pipeline_seconds": 0.5, "peak_rss_mb": 64.0})
    out = tmp_path / "bench"
    assert bench.main(["--output", str(out), "--scale", "tiny", "--no-train", "--workers", "2",
                       "--events-factors", "1,2", "--accounts-factors", "1,10"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["row"] for row in report["rows"]] == ["events x1", "events x2", "accounts x1", "accounts x10",
                                                      "x1 one process"]
    one_process = report["rows"][-1]
    assert one_process["workers"] == 1 and report["rows"][0]["workers"] == 2
    assert report["rows"][0]["detect_events_per_s"] == 2 * one_process["detect_events_per_s"]
    assert report["verdict"]["ratio_x1_one_process"] == one_process["ratio"]
    assert report["verdict"]["workers_x1"] == 2
    assert report["rows"][0]["ratio"] == report["rows"][0]["detect_events_per_s"] / report["rows"][0]["plain_events_per_s"]
    assert report["rows"][0]["detect_events_per_s"] == 4.0
    assert report["state_per_account"] is None
    assert report["rows"][1]["events"] == 2 * report["rows"][0]["events"]  # a shifted copy, nothing merged
    assert report["rows"][1]["account_windows"] == 2 * report["rows"][0]["account_windows"]


def test_without_workers_each_row_runs_as_detect_would_pick(tmp_path, monkeypatch):
    events = _write(tmp_path)
    monkeypatch.setattr(bench, "simulate", lambda work, guetteur, seed, days, actors: events)
    asked = []
    monkeypatch.setattr(bench, "run_detect", lambda guetteur, path, output, workers=1, sample_memory=True:
                        asked.append(workers) or {"seconds": 1.0, "pipeline_seconds": 0.5, "peak_rss_mb": 64.0})
    monkeypatch.delenv("BENCH_WORKERS", raising=False)
    assert bench.main(["--output", str(tmp_path / "bench"), "--scale", "tiny", "--no-train",
                       "--events-factors", "1", "--accounts-factors", "1", "--runs", "2"]) == 0
    # A tiny file: in one process (once for memory, twice timed, as asked), and no separate one-process row.
    assert asked == [1, 1, 1]


def test_tree_rss_adds_up_the_worker_processes(tmp_path):
    # A parent holding little, with two workers holding 60 MB each: the tree holds their sum.
    child = tmp_path / "child.py"
    child.write_text("import sys, time\nheld = b'x' * (60 << 20)\nprint('ready', flush=True)\ntime.sleep(30)\n")
    parent = tmp_path / "parent.py"
    parent.write_text("import subprocess, sys\n"
                      f"workers = [subprocess.Popen([sys.executable, {str(child)!r}]) for _ in range(2)]\n"
                      "for worker in workers:\n    worker.wait()\n")
    process = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert [process.stdout.readline() for _ in range(2)] == [b"ready\n"] * 2
        rss, pss = bench._tree_memory_kb(process.pid)
        assert rss > 120 * 1024
        # Each worker's 60 MB is its own: shared only are the interpreter's pages, which PSS splits.
        assert 120 * 1024 < pss <= rss
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_shifted_copies_move_dates_and_keep_bad_dates(tmp_path):
    source = _write(tmp_path, LINES + [b'{"ts":"2026-02-30T00:00:00Z","event_id":"evt-9","actor":"acct-1"}\n'])
    target = str(tmp_path / "x2.jsonl")
    bench.shifted_copies(source, target, 2, 28)
    lines = open(target, "rb").read().splitlines()
    assert len(lines) == 2 * (len(LINES) + 1)
    assert b'"ts":"2026-04-20T06:27:01.721Z","event_id":"evt-1-c1"' in lines[len(LINES) + 1]
    assert lines[-1] == b'{"ts":"2026-02-30T00:00:00Z","event_id":"evt-9-c1","actor":"acct-1"}'


def test_the_ratio_is_taken_against_the_faster_plain_run(tmp_path, monkeypatch):
    # The VM's speed drifts: plain Python runs before and after detect, and the faster one is the limit.
    rates = iter([200_000.0, 300_000.0])
    monkeypatch.setattr(bench, "plain_count", lambda path: {
        "seconds": 1.0, "events": 1000, "bad_lines": 0, "accounts": 3, "account_windows": 9,
        "events_per_s": next(rates)})
    monkeypatch.setattr(bench, "run_detect", lambda guetteur, path, output, workers=1, sample_memory=True: {
        "seconds": 0.01, "pipeline_seconds": 0.005, "peak_rss_mb": 64.0})
    row = bench.measure_row("events x1", _write(tmp_path), "guetteur", str(tmp_path / "out"))
    assert row["plain_runs_events_per_s"] == [200_000.0, 300_000.0]
    assert row["plain_events_per_s"] == 300_000.0
    assert row["ratio"] == 100_000.0 / 300_000.0


def test_each_side_is_taken_at_its_fastest_run_and_memory_in_a_run_of_its_own(tmp_path, monkeypatch):
    plain_rates = iter([300_000.0, 250_000.0, 400_000.0, 350_000.0])
    monkeypatch.setattr(bench, "plain_count", lambda path: {
        "seconds": 1.0, "events": 1000, "bad_lines": 0, "accounts": 3, "account_windows": 9,
        "events_per_s": next(plain_rates)})
    timed = iter([0.04, 0.02, 0.03])

    def run_detect(guetteur, path, output, workers=1, sample_memory=True):
        if sample_memory:  # slowed by its sampling: never the time kept
            return {"seconds": 0.01, "pipeline_seconds": 0.005, "peak_rss_mb": 90.0, "peak_pss_mb": 50.0}
        seconds = next(timed)
        return {"seconds": seconds, "pipeline_seconds": seconds / 2, "peak_rss_mb": 30.0, "peak_pss_mb": None}

    monkeypatch.setattr(bench, "run_detect", run_detect)
    row = bench.measure_row("events x1", _write(tmp_path), "guetteur", str(tmp_path / "out"), runs=3)
    assert row["plain_runs_events_per_s"] == [300_000.0, 250_000.0, 400_000.0, 350_000.0]
    assert row["detect_runs_seconds"] == [0.04, 0.02, 0.03]
    assert row["detect_seconds"] == 0.02 and row["plain_events_per_s"] == 400_000.0
    assert row["ratio"] == (1000 / 0.02) / 400_000.0
    assert (row["detect_peak_rss_mb"], row["detect_peak_pss_mb"]) == (90.0, 50.0)
