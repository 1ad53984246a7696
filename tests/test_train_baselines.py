"""`guetteur train` learns baselines in batch; `detect --baselines` starts from them and keeps learning."""

import json

import pyarrow.parquet as pq

from pipelines.cli import main
from schemas.baseline import BASELINE_ARROW_SCHEMA

from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, burst, office_days, write_jsonl

ACTORS = ("acct-1", "acct-2", "acct-3", "acct-4")
SPLIT_MS = MONDAY_MS + 6 * MS_PER_DAY


def history_and_live(tmp_path):
    events = [e for actor in ACTORS for e in office_days(actor, days=8, per_day=60, seed=2)]
    # Day 8, 10:00: acct-2 reads 80 records in four minutes — far above its own habits,
    # yet under what the role prior allows an account nobody knows.
    events += burst("acct-2", SPLIT_MS + MS_PER_DAY + 10 * MS_PER_HOUR, records=80, every_ms=3000)
    history = [e for e in events if e["ts"] < "2026-03-08"]
    live = [e for e in events if e["ts"] >= "2026-03-08"]
    return write_jsonl(tmp_path / "history.jsonl", history), write_jsonl(tmp_path / "live.jsonl", live)


def alerts_in(directory):
    return [json.loads(line) for line in (directory / "alerts.jsonl").read_text().splitlines()]


def test_train_writes_one_baseline_per_account(tmp_path):
    history, _ = history_and_live(tmp_path)
    baselines = tmp_path / "baselines.parquet"
    assert main(["train", "--input", history, "--output", str(baselines)]) == 0
    table = pq.read_table(baselines)
    assert table.schema.equals(BASELINE_ARROW_SCHEMA, check_metadata=False)
    rows = {row["actor"]: row for row in table.to_pylist()}
    assert set(rows) == set(ACTORS)
    assert all(row["active_days"] == 6 for row in rows.values())
    assert all(row["peaks"][0] > 0 for row in rows.values())


def test_detection_from_trained_baselines_knows_each_account_from_its_first_live_window(tmp_path):
    history, live = history_and_live(tmp_path)
    baselines = tmp_path / "baselines.parquet"
    assert main(["train", "--input", history, "--output", str(baselines)]) == 0

    assert main(["detect", "--input", live, "--output", str(tmp_path / "cold")]) == 0
    assert main(["detect", "--input", live, "--output", str(tmp_path / "warm"), "--baselines", str(baselines)]) == 0

    assert alerts_in(tmp_path / "cold") == []
    warm = alerts_in(tmp_path / "warm")
    assert [a["actor"] for a in warm] == ["acct-2"]
    assert warm[0]["expected"]["source"] == "own_history"
    assert warm[0]["expected"]["history_days"] >= 6


def test_detect_refuses_missing_baselines_in_one_line(tmp_path, capsys):
    _, live = history_and_live(tmp_path)
    code = main(["detect", "--input", live, "--output", str(tmp_path / "o"), "--baselines", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "baselines" in err[0]
