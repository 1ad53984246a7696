"""The yardsticks: each fires on a burst, stays quiet on ordinary traffic, writes contract alerts."""

from __future__ import annotations

import orjson
import pytest

from pipelines.evaluation import evaluate, load_alerts, parse_time_ms
from pipelines.reference_detectors import (STATIC_RULE, STATIC_THRESHOLD, ZSCORE_RULE, _crossing_ms, _runs,
                                           run_reference)
from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, burst, event, office_days, \
    write_jsonl

CONTRACT_FIELDS = ("alert_id", "rule", "actor", "related_accounts", "window_start", "window_end", "detected_at",
                   "severity", "score", "observed", "expected", "explanation")


def regular_days(actor: str, days: int, org: str = "org-a") -> list[dict]:
    """08:00-17:00 UTC every day, 10 then 14 consultations an hour, evenly spaced: dull and steady."""
    out = []
    for day in range(days):
        for hour in range(8, 17):
            per_hour = 10 if hour % 2 else 14
            for i in range(per_hour):
                ts = MONDAY_MS + day * MS_PER_DAY + hour * MS_PER_HOUR + i * (MS_PER_HOUR // per_hour)
                out.append(event(ts, actor, record=f"rec-{(day * 131 + i) % 300:04d}", org=org,
                                 actor_type="advisor", event_id=f"{actor}-{day}-{hour}-{i}"))
    return out


def run(tmp_path, name: str, events: list[dict]) -> list[dict]:
    path = write_jsonl(tmp_path / "events.jsonl", sorted(events, key=lambda e: e["ts"]))
    written = run_reference(name, path, str(tmp_path / name))
    alerts = load_alerts(str(tmp_path / name / "alerts.jsonl"))
    assert written == len(alerts)
    return alerts


def check_contract(alert: dict) -> None:
    for field in CONTRACT_FIELDS:
        assert field in alert, field
    assert alert["severity"] in ("low", "medium", "high", "critical")
    for field in ("window_start", "window_end", "detected_at"):
        assert alert[field].endswith("Z") and parse_time_ms(alert[field]) is not None
    assert parse_time_ms(alert["window_start"]) < parse_time_ms(alert["detected_at"]) <= parse_time_ms(
        alert["window_end"])
    assert isinstance(alert["expected"], dict) and alert["expected"]["threshold"] > 0


# --- pure helpers ----------------------------------------------------------------------------

def test_crossing_is_the_end_of_the_minute_that_went_over() -> None:
    minutes = [(100, 150), (101, 40), (102, 20), (103, 500)]
    assert _crossing_ms(minutes, 200) == 103 * MS_PER_MINUTE
    with pytest.raises(ValueError):
        _crossing_ms([(1, 10)], 200)


def test_consecutive_windows_are_one_run() -> None:
    hours = [{"start": s * MS_PER_HOUR, "end": (s + 1) * MS_PER_HOUR} for s in (5, 3, 4, 9)]
    assert [[w["start"] // MS_PER_HOUR for w in run_] for run_ in _runs(hours)] == [[3, 4, 5], [9]]


# --- the static rule -------------------------------------------------------------------------

def test_static_rule_fires_once_on_a_burst_and_never_on_office_work(tmp_path) -> None:
    start = MONDAY_MS + 4 * MS_PER_DAY + 10 * MS_PER_HOUR + 10 * MS_PER_MINUTE  # Friday 10:10
    scraper = burst("acct-scraper", start, 1_500, 6_000)  # 10 a minute for 2.5 hours
    normal = office_days("acct-scraper", 5, 60, seed=1) + office_days("acct-quiet", 5, 150, seed=2)
    alerts = run(tmp_path, "static", scraper + normal)
    assert len(alerts) == 1  # three hours over the limit, one story
    alert = alerts[0]
    check_contract(alert)
    assert alert["rule"] == STATIC_RULE and alert["actor"] == "acct-scraper"
    # The 201st record of the 10:00 hour (its own normal work included) arrives before 10:31.
    assert alert["window_start"] == "2026-03-06T10:00:00Z" and alert["window_end"] == "2026-03-06T13:00:00Z"
    detected = parse_time_ms(alert["detected_at"])
    assert start + 14 * MS_PER_MINUTE <= detected <= start + 21 * MS_PER_MINUTE
    assert alert["observed"] >= 1_500 and alert["expected"]["threshold"] == STATIC_THRESHOLD
    # Stable id: the same input gives the same alert.
    (tmp_path / "again").mkdir()
    again = run(tmp_path / "again", "static", scraper + normal)
    assert [a["alert_id"] for a in again] == [alert["alert_id"]]


# --- Beam's ZScore ---------------------------------------------------------------------------

def test_zscore_flags_the_burst_hour_and_stays_quiet_on_steady_work(tmp_path) -> None:
    history = regular_days("acct-burst", 5) + regular_days("acct-steady", 6)
    day6 = MONDAY_MS + 5 * MS_PER_DAY
    steady_day6 = [e for e in regular_days("acct-burst", 6) if parse_time_ms(e["ts"]) >= day6]
    spike = burst("acct-burst", day6 + 10 * MS_PER_HOUR + 5 * MS_PER_MINUTE, 300, 10_000)  # 300 in 50 minutes
    alerts = run(tmp_path, "zscore", history + steady_day6 + spike)
    assert [a["actor"] for a in alerts] == ["acct-burst"]
    alert = alerts[0]
    check_contract(alert)
    assert alert["rule"] == ZSCORE_RULE
    # Scored when its hour closes: that is also the proof the account's hours reached the detector in
    # time order (the spike, seen among the first two values, would have scored NaN and passed).
    assert alert["window_start"] == "2026-03-07T10:00:00Z" and alert["detected_at"] == "2026-03-07T11:00:00Z"
    assert alert["score"] > 10 and alert["observed"] >= 300


def test_the_yardsticks_go_through_the_same_evaluation(tmp_path) -> None:
    start = MONDAY_MS + 4 * MS_PER_DAY + 10 * MS_PER_HOUR
    scraper = burst("acct-scraper", start, 900, 3_000)
    alerts = run(tmp_path, "static", scraper + office_days("acct-other", 5, 80, seed=3))
    labels = {"active_account_days": 10, "incidents": [{
        "id": "inc-1-scrape", "scenario": "scrape", "accounts": ["acct-scraper"], "creator": None,
        "start": scraper[0]["ts"], "end": scraper[-1]["ts"], "records": 900,
        "progress": [[parse_time_ms(e["ts"]), i + 1] for i, e in enumerate(scraper)]}]}
    result = evaluate(alerts, labels)
    assert result["detected"] == 1 and result["false_alarm_incidents"] == 0
    # Crossed on the 201st record, reported at the end of that minute (20 records a minute here).
    assert 201 <= result["per_incident"][0]["records_before_alert"] <= 221
    assert orjson.loads(orjson.dumps(result)) == result


# --- the comparison ---------------------------------------------------------------------------

def test_false_alarms_are_put_on_the_most_specific_lookalike() -> None:
    from pipelines.compare import _lookalike_index, explain_false_alarm

    labels = {"lookalikes": [
        {"kind": "month_start", "day": "2026-04-01", "scope": "all"},
        {"kind": "org_busy_day", "day": "2026-04-01", "scope": "org", "org": "org-a", "accounts": ["a1", "a2"]},
        {"kind": "heavy_day", "day": "2026-04-01", "scope": "account", "org": "org-a", "accounts": ["a2"]},
        {"kind": "month_end_deadline", "day": "2026-03-31", "scope": "role:training_org"}]}
    index = _lookalike_index(labels)

    def alert(actor, org, day, role="advisor"):
        return {"actor": actor, "org": org, "actor_type": role, "window_start": f"{day}T09:00:00Z",
                "detected_at": f"{day}T09:05:00Z"}

    assert explain_false_alarm(alert("a2", "org-a", "2026-04-01"), index) == "heavy_day"
    assert explain_false_alarm(alert("a1", "org-a", "2026-04-01"), index) == "org_busy_day"
    assert explain_false_alarm(alert("b1", "org-b", "2026-04-01"), index) == "month_start"
    assert explain_false_alarm(alert("t1", "org-t", "2026-03-31", "training_org"), index) == "month_end_deadline"
    assert explain_false_alarm(alert("b1", "org-b", "2026-03-31"), index) == "none"


def test_compare_runs_the_yardsticks_on_a_simulation_and_prints_them_side_by_side(tmp_path, capsys) -> None:
    from pipelines.compare import main

    assert main(["--output", str(tmp_path), "--seed", "3", "--days", "6", "--actors", "30",
                 "--detectors", "static,zscore"]) == 0
    out = capsys.readouterr().out
    assert "static >200 rec/h" in out and "beam ZScore (1 h)" in out and "inc-1-" in out
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    for name in ("static", "zscore"):
        row = summary["detectors"][name]
        assert row["error"] is None and row["evaluation"]["incidents"] == 3
        assert (tmp_path / name / "alerts.jsonl").exists()
