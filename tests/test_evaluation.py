"""The evaluator: matching alerts to labelled incidents, delays, exposure and false alarms."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.evaluation import evaluate, load_alerts, parse_time_ms
from pipelines.simulation import simulate

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
T0 = int(dt.datetime(2026, 3, 5, 22, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)


def iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def incident(ident: str, accounts: list[str], start: int, end: int, progress: list[list[int]],
             creator: str | None = None) -> dict[str, Any]:
    return {"id": ident, "scenario": ident.split("-", 2)[2], "title": "t", "accounts": accounts,
            "creator": creator, "start": iso(start), "end": iso(end), "records": progress[-1][1],
            "progress": progress}


def alert(alert_id: str, actor: str, detected: int, related: list[str] | None = None,
          rule: str = "consultation_volume", severity: str = "medium") -> dict[str, Any]:
    return {"alert_id": alert_id, "rule": rule, "actor": actor, "related_accounts": related or [],
            "window_start": iso(detected - 10 * MINUTE_MS), "window_end": iso(detected),
            "detected_at": iso(detected), "severity": severity, "score": 3.0}


def step(progress: list[list[int]], at: int) -> int:
    """Reference step function, written independently of the evaluator."""
    return max((value for t, value in progress if t <= at), default=0)


def make_labels() -> dict[str, Any]:
    scrape_start = T0
    scrape = [[scrape_start + i * MINUTE_MS, 40 * (i + 1)] for i in range(120)]
    chain_start = T0 + 24 * HOUR_MS
    chain = [[chain_start + 30 * MINUTE_MS + i * MINUTE_MS, 15 * (i + 1)] for i in range(90)]
    quiet_start = T0 + 48 * HOUR_MS
    quiet = [[quiet_start + i * 5 * MINUTE_MS, 300 * (i + 1)] for i in range(30)]
    return {
        "format": "guetteur-labels/1", "active_account_days": 1600,
        "incidents": [
            incident("inc-1-training_org_scrape", ["acct-000001"], scrape_start, scrape[-1][0], scrape),
            incident("inc-2-account_creation_chain", ["acct-000010", "acct-000011", "acct-000012"],
                     chain_start, chain[-1][0], chain, creator="acct-000010"),
            incident("inc-3-bulk_search", ["acct-000020"], quiet_start, quiet[-1][0], quiet),
        ],
    }


@pytest.fixture()
def labels() -> dict[str, Any]:
    return make_labels()


@pytest.fixture()
def alerts(labels: dict[str, Any]) -> list[dict[str, Any]]:
    scrape, chain, _ = labels["incidents"]
    s_start, c_start = parse_time_ms(scrape["start"]), parse_time_ms(chain["start"])
    s_end = parse_time_ms(scrape["end"])
    assert s_start is not None and c_start is not None and s_end is not None
    return [
        # Escalation listed before the first version: the earliest detected_at must win.
        alert("a-scrape", "acct-000001", s_start + 47 * MINUTE_MS + 500, severity="critical"),
        alert("a-scrape", "acct-000001", s_start + 17 * MINUTE_MS + 250),
        alert("a-scrape-late", "acct-000001", s_end + HOUR_MS),  # last moment that still counts
        alert("a-too-late", "acct-000001", s_end + HOUR_MS + 1),  # false alarm
        alert("a-before", "acct-000001", s_start - 1),  # before the incident: false alarm
        # Created account named only in related_accounts.
        alert("a-chain", "acct-999999", c_start + 42 * MINUTE_MS, related=["acct-000012"],
              rule="created_account_activity"),
        alert("a-chain-rate", "acct-000010", c_start + 50 * MINUTE_MS, rule="account_creation_rate"),
        alert("a-noise", "acct-000500", c_start),  # unrelated account: false alarm
    ]


def test_detected_missed_and_false_alarms(labels: dict[str, Any], alerts: list[dict[str, Any]]) -> None:
    result = evaluate(alerts, labels)
    orjson.dumps(result)  # JSON-serialisable
    assert result["incidents"] == 3
    assert result["detected"] == 2
    assert result["missed"] == ["inc-3-bulk_search"]
    assert result["alerts"] == len({a["alert_id"] for a in alerts})
    assert sorted(result["false_alarm_alert_ids"]) == ["a-before", "a-noise", "a-too-late"]
    assert result["false_alarm_incidents"] == 3
    assert result["false_alarms_per_1000_account_days"] == pytest.approx(3 * 1000 / labels["active_account_days"])
    assert result["active_account_days"] == labels["active_account_days"]


def test_per_incident_delays_and_exposure(labels: dict[str, Any], alerts: list[dict[str, Any]]) -> None:
    result = evaluate(alerts, labels)
    by_id = {r["id"]: r for r in result["per_incident"]}
    expected_delays = []
    for label, first_id in zip(labels["incidents"][:2], ["a-scrape", "a-chain"]):
        start = parse_time_ms(label["start"])
        first = min(parse_time_ms(a["detected_at"]) for a in alerts if a["alert_id"] == first_id)
        assert start is not None and first is not None
        row = by_id[label["id"]]
        assert row["detected"] is True
        assert row["first_alert_id"] == first_id
        assert row["rule"] == next(a["rule"] for a in alerts if a["alert_id"] == first_id)
        assert row["time_to_detect_s"] == pytest.approx((first - start) / 1000)
        assert row["records_before_alert"] == step(label["progress"], first)
        assert row["records_total"] == label["records"]
        expected_delays.append((first - start) / 1000)
    missed = by_id["inc-3-bulk_search"]
    assert missed["detected"] is False and missed["first_alert_id"] is None
    assert missed["time_to_detect_s"] is None and missed["records_before_alert"] is None
    assert result["time_to_detect_median_s"] == pytest.approx(statistics.median(expected_delays))
    assert result["time_to_detect_max_s"] == pytest.approx(max(expected_delays))
    expected_records = [by_id[label["id"]]["records_before_alert"] for label in labels["incidents"][:2]]
    assert result["records_before_alert_median"] == statistics.median(expected_records)


def test_chain_alert_before_the_created_accounts_act_has_seen_no_records(labels: dict[str, Any]) -> None:
    chain = labels["incidents"][1]
    start = parse_time_ms(chain["start"])
    assert start is not None
    result = evaluate([alert("x", "acct-000010", start + 5 * MINUTE_MS, rule="account_creation_rate")], labels)
    row = next(r for r in result["per_incident"] if r["id"] == chain["id"])
    assert row["detected"] and row["records_before_alert"] == 0 == step(chain["progress"], start + 5 * MINUTE_MS)


def test_an_alert_on_the_creator_matches_even_if_accounts_omit_it(labels: dict[str, Any]) -> None:
    chain = labels["incidents"][1]
    chain["accounts"] = [a for a in chain["accounts"] if a != chain["creator"]]
    start = parse_time_ms(chain["start"])
    assert start is not None
    result = evaluate([alert("c", chain["creator"], start + MINUTE_MS, rule="account_creation_rate")], labels)
    assert result["per_incident"][1]["first_alert_id"] == "c" and result["false_alarm_incidents"] == 0


def test_progress_is_read_as_a_step_function(labels: dict[str, Any]) -> None:
    scrape = labels["incidents"][0]
    t, value = scrape["progress"][10]
    for at, expected in ((t, value), (t + 59_999, value), (t - 1, scrape["progress"][9][1])):
        result = evaluate([alert("s", "acct-000001", at)], labels)
        assert result["per_incident"][0]["records_before_alert"] == expected


def test_zero_alerts_never_crash(labels: dict[str, Any]) -> None:
    result = evaluate([], labels)
    assert result["detected"] == 0 and result["alerts"] == 0 and result["false_alarm_incidents"] == 0
    assert result["missed"] == [i["id"] for i in labels["incidents"]]
    assert result["time_to_detect_median_s"] is None and result["time_to_detect_max_s"] is None
    assert result["records_before_alert_median"] is None
    assert result["false_alarms_per_1000_account_days"] == 0.0
    empty = evaluate([], {"incidents": [], "active_account_days": 0})
    assert empty["incidents"] == 0 and empty["false_alarms_per_1000_account_days"] is None


def test_malformed_alerts_count_as_unmatched_rather_than_crash(labels: dict[str, Any]) -> None:
    odd = [{"alert_id": "no-time", "actor": "acct-000001"}, {"actor": "acct-000001", "detected_at": "garbage"},
           {"alert_id": "no-actor", "detected_at": labels["incidents"][0]["start"]}]
    result = evaluate(odd, labels)
    assert result["detected"] == 0 and result["false_alarm_incidents"] == 3


def test_load_alerts_reads_globs_and_directories(tmp_path: Path, alerts: list[dict[str, Any]]) -> None:
    half = len(alerts) // 2
    (tmp_path / "alerts-00000-of-00002.jsonl").write_bytes(b"\n".join(orjson.dumps(a) for a in alerts[:half]) + b"\n\n")
    (tmp_path / "alerts-00001-of-00002.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts[half:]))
    (tmp_path / "deadletter.jsonl").write_bytes(b'{"reason": "x"}\n')
    loaded = load_alerts(str(tmp_path / "alerts*.jsonl"))
    assert loaded == alerts
    assert len(load_alerts(str(tmp_path))) == len(alerts) + 1
    assert load_alerts(str(tmp_path / "nothing-*.jsonl")) == []
    (tmp_path / "alerts-broken.jsonl").write_bytes(b'{"alert_id": \n')
    with pytest.raises(ValueError, match="alerts-broken.jsonl:1"):
        load_alerts(str(tmp_path / "alerts*.jsonl"))


def test_perfect_alerts_on_a_simulation_detect_everything_without_false_alarms() -> None:
    _, labels = simulate(seed=3, days=5, actors=30, bad_line_rate=0.0)
    assert labels["incidents"]
    alerts = []
    for number, inc in enumerate(labels["incidents"]):
        start = parse_time_ms(inc["start"])
        assert start is not None
        alerts.append(alert(f"p{number}", inc["accounts"][-1], start + 2 * MINUTE_MS))
    result = evaluate(alerts, labels)
    assert result["detected"] == len(labels["incidents"]) and result["false_alarm_incidents"] == 0
    assert result["time_to_detect_max_s"] == pytest.approx(120.0)
    for row, inc in zip(result["per_incident"], labels["incidents"]):
        assert row["records_before_alert"] == step(inc["progress"], parse_time_ms(inc["start"]) + 2 * MINUTE_MS)


ACCOUNTS = ["acct-000001", "acct-000010", "acct-000012", "acct-000020", "acct-000500"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(ACCOUNTS),
                          st.integers(min_value=-6 * HOUR_MS, max_value=72 * HOUR_MS)), max_size=12))
def test_every_alert_id_is_either_matched_or_a_false_alarm(raw: list[tuple[str, str, int]]) -> None:
    labels_ = make_labels()
    alerts_ = [alert(alert_id, actor, T0 + offset) for alert_id, actor, offset in raw]
    result = evaluate(alerts_, labels_)
    matched = {r["first_alert_id"] for r in result["per_incident"] if r["detected"]}
    assert result["alerts"] == len({a for a, _, _ in raw})
    assert matched.isdisjoint(result["false_alarm_alert_ids"])
    assert result["detected"] + len(result["missed"]) == result["incidents"]
    for row in result["per_incident"]:
        if row["detected"]:
            assert row["time_to_detect_s"] >= 0 and 0 <= row["records_before_alert"] <= row["records_total"]
