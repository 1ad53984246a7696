"""The simulator: deterministic, contract-valid traffic with consistent incident labels."""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.simulation import SCENARIOS, SEED_SCENARIOS, simulate, write_simulation
from pipelines.simulation.clock import DAY_MS, MINUTE_MS, paris_offset_ms

START = dt.date(2026, 3, 2)
DAYS = 7
START_MS = int(dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc).timestamp() * 1000)
END_MS = START_MS + DAYS * DAY_MS
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
EXTRA_FIELD = {"consult": "record", "search": "count", "export": "count", "account_create": "target"}


def ts_ms(value: str) -> int:
    return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def contract_problem(line: bytes) -> str | None:
    """Why a line breaks CONTRACT §1 (flat form), or None if it is a valid event."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not json"
    if not isinstance(event, dict):
        return "not an object"
    actor = event.get("actor")
    if not isinstance(actor, str) or not 1 <= len(actor) <= 256:
        return "actor"
    if not isinstance(event.get("action"), str):
        return "action"
    ts = event.get("ts")
    if not isinstance(ts, str):
        return "ts"
    try:
        dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "ts"
    count = event.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return "count"
    return None


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
    events, bad = [], []
    for line in path.read_bytes().splitlines():
        problem = contract_problem(line)
        if problem is None:
            events.append(orjson.loads(line))
        else:
            bad.append((line, problem))
    return events, bad


def malicious(events: list[dict[str, Any]], incident: dict[str, Any]) -> list[dict[str, Any]]:
    """Events of an incident: its accounts, from its attacker addresses, within its span."""
    accounts, ips = set(incident["accounts"]), set(incident["ips"])
    start, end = ts_ms(incident["start"]), ts_ms(incident["end"])
    return [e for e in events
            if e["actor"] in accounts and e["ip"] in ips and start <= ts_ms(e["ts"]) <= end]


def records_of(event: dict[str, Any]) -> int:
    if event["action"] == "consult":
        return 1
    if event["action"] in ("search", "export"):
        return event.get("count", 1)
    return 0


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    summary = write_simulation(str(out), seed=11, days=DAYS, actors=60, start=START, bad_line_rate=0.01)
    events, bad = read_lines(out / "events.jsonl")
    labels = orjson.loads((out / "labels.json").read_bytes())
    return {"dir": out, "summary": summary, "events": events, "bad": bad, "labels": labels}


@pytest.fixture(scope="module")
def legit(written: dict[str, Any]) -> list[dict[str, Any]]:
    ids = {e["event_id"] for inc in written["labels"]["incidents"] for e in malicious(written["events"], inc)}
    return [e for e in written["events"] if e["event_id"] not in ids]


# --- determinism ---------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_simulation(str(tmp_path / name), seed=seed, days=5, actors=25)
        runs[name] = ((tmp_path / name / "events.jsonl").read_bytes(), (tmp_path / name / "labels.json").read_bytes())
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]
    assert runs["a"][1] != runs["c"][1]


def test_simulate_returns_what_write_simulation_writes(written: dict[str, Any]) -> None:
    events, labels = simulate(seed=11, days=DAYS, actors=60, start=START, bad_line_rate=0.01)
    assert labels == written["labels"]
    assert events == written["events"]


# --- contract validity ---------------------------------------------------------------------

def test_every_line_is_valid_except_the_counted_bad_lines(written: dict[str, Any]) -> None:
    labels, bad = written["labels"], written["bad"]
    assert len(bad) == labels["bad_lines"] == written["summary"]["bad_lines"]
    assert len(written["events"]) == labels["events"] == written["summary"]["events"]
    assert labels["bad_lines"] > 0
    # All five kinds of damage show up at this rate.
    assert {problem for _, problem in bad} >= {"not json", "actor", "ts", "count"}
    assert any(line.startswith(b'{"ts"') for line, problem in bad if problem == "not json")  # truncated


def test_bad_lines_belong_to_no_incident(written: dict[str, Any]) -> None:
    real_ids = {e["event_id"] for e in written["events"]}
    for line, _ in written["bad"]:
        match = re.search(rb'"event_id":"([^"]+)"', line)
        if match:
            assert match.group(1).decode() not in real_ids
            assert b"-bad-" in match.group(1)


def test_events_have_the_contract_fields_and_neutral_ids(written: dict[str, Any]) -> None:
    events = written["events"]
    assert len({e["event_id"] for e in events}) == len(events)
    for e in events:
        for key in ("ts", "event_id", "actor", "action", "org", "actor_type", "app", "ip", "session"):
            assert isinstance(e[key], str) and e[key], (key, e)
        assert TS_RE.match(e["ts"]), e
        assert re.fullmatch(r"acct-\d{6}", e["actor"]), e
        assert any(ipaddress.ip_address(e["ip"]) in net for net in DOC_NETS), e
        field = EXTRA_FIELD.get(e["action"])
        if field:
            assert field in e, e
        if e["action"] == "consult":
            assert re.fullmatch(r"rec-\d{7}", e["record"]), e
        if e["action"] == "account_create":
            assert re.fullmatch(r"acct-\d{6}", e["target"]), e


def test_events_are_sorted_and_inside_the_period(written: dict[str, Any]) -> None:
    times = [ts_ms(e["ts"]) for e in written["events"]]
    assert times == sorted(times)
    assert START_MS <= times[0] and times[-1] < END_MS
    assert written["labels"]["start"] == "2026-03-02T00:00:00Z"
    assert written["labels"]["end"] == "2026-03-09T00:00:00Z"


def test_active_account_days_matches_a_recount(written: dict[str, Any]) -> None:
    pairs = {(e["actor"], e["ts"][:10]) for e in written["events"]}
    assert written["labels"]["active_account_days"] == len(pairs) == written["summary"]["active_account_days"]


# --- incidents -----------------------------------------------------------------------------

def test_the_three_seed_incidents_are_present(written: dict[str, Any]) -> None:
    incidents = written["labels"]["incidents"]
    assert sorted(i["scenario"] for i in incidents) == sorted(SEED_SCENARIOS)
    assert set(SEED_SCENARIOS) <= set(SCENARIOS)
    assert len({i["id"] for i in incidents}) == len(incidents)


def test_incident_labels_agree_with_the_events(written: dict[str, Any]) -> None:
    events = written["events"]
    actors = {e["actor"] for e in events}
    for incident in written["labels"]["incidents"]:
        mine = malicious(events, incident)
        assert set(incident["accounts"]) <= actors
        assert {e["actor"] for e in mine} == set(incident["accounts"])
        assert mine[0]["ts"] == incident["start"] and mine[-1]["ts"] == incident["end"]
        assert sum(records_of(e) for e in mine) == incident["records"] > 0
        # Attacks start after three days of history and end inside the period.
        assert ts_ms(incident["start"]) >= START_MS + 3 * DAY_MS
        assert ts_ms(incident["end"]) < END_MS


def test_progress_is_a_thinned_cumulative_count_ending_at_records(written: dict[str, Any]) -> None:
    events = written["events"]
    for incident in written["labels"]["incidents"]:
        progress = incident["progress"]
        assert progress[-1][1] == incident["records"]
        times = [t for t, _ in progress]
        assert times == sorted(times) and len({t // MINUTE_MS for t in times}) == len(times)
        values = [v for _, v in progress]
        assert values == sorted(values)
        # Each point is the exact cumulative count at its time.
        mine = malicious(events, incident)
        for t, value in progress[:: max(1, len(progress) // 20)]:
            assert sum(records_of(e) for e in mine if ts_ms(e["ts"]) <= t) == value


def test_creation_chain_creator_and_created_accounts(written: dict[str, Any]) -> None:
    events = written["events"]
    chain = next(i for i in written["labels"]["incidents"] if i["scenario"] == "account_creation_chain")
    creator = chain["creator"]
    created = [a for a in chain["accounts"] if a != creator]
    assert creator in chain["accounts"] and len(created) == 2
    creations = [e for e in malicious(events, chain) if e["action"] == "account_create"]
    assert [e["actor"] for e in creations] == [creator, creator]
    assert sorted(e["target"] for e in creations) == sorted(created)
    assert ts_ms(creations[1]["ts"]) - ts_ms(creations[0]["ts"]) < 15 * MINUTE_MS
    for account in created:
        own = [e for e in events if e["actor"] == account]
        assert {e["actor_type"] for e in own} == {"youth_advisor"}
        assert sum(1 for e in own if e["action"] == "consult") > 100  # at volume


def test_every_created_account_appears_only_after_its_creation(written: dict[str, Any]) -> None:
    first_seen: dict[str, str] = {}
    for e in written["events"]:
        first_seen.setdefault(e["actor"], e["ts"])
    creations = [e for e in written["events"] if e["action"] == "account_create"]
    assert len(creations) > 2  # legitimate creations exist besides the attack
    for e in creations:
        if e["target"] in first_seen:
            assert ts_ms(first_seen[e["target"]]) > ts_ms(e["ts"]), e


def test_incidents_are_not_all_in_office_hours(written: dict[str, Any]) -> None:
    def office(ms: int) -> bool:
        local = dt.datetime.fromtimestamp((ms + paris_offset_ms(ms)) / 1000, dt.timezone.utc)
        return local.weekday() < 5 and 8 <= local.hour < 18
    starts = [ts_ms(i["start"]) for i in written["labels"]["incidents"]]
    assert not all(office(ms) for ms in starts)
    assert len({dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).hour for ms in starts}) > 1


def test_attack_signatures(written: dict[str, Any]) -> None:
    events = written["events"]
    by_scenario = {i["scenario"]: malicious(events, i) for i in written["labels"]["incidents"]}
    bulk = [e for e in by_scenario["bulk_search"] if e["action"] in ("search", "export")]
    assert bulk and all(50 <= e["count"] <= 500 for e in bulk)
    scrape = [e for e in by_scenario["training_org_scrape"] if e["action"] == "consult"]
    assert {e["app"] for e in scrape} == {"kairos"}
    minutes = (ts_ms(scrape[-1]["ts"]) - ts_ms(scrape[0]["ts"])) / MINUTE_MS
    assert len(scrape) / minutes >= 10  # tens per minute
    # Scraped files are not the account's usual ones.
    victim = scrape[0]["actor"]
    usual = {e["record"] for e in events if e["actor"] == victim and e["action"] == "consult"} - {
        e["record"] for e in scrape}
    assert len({e["record"] for e in scrape} & usual) == 0
    # Attackers come from addresses the account never used legitimately.
    for incident in written["labels"]["incidents"]:
        accounts, ips = set(incident["accounts"]), set(incident["ips"])
        mine = {e["event_id"] for e in malicious(events, incident)}
        assert not any(e["ip"] in ips for e in events if e["actor"] in accounts and e["event_id"] not in mine)


# --- legitimate traffic shape ---------------------------------------------------------------

def paris(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp((ms + paris_offset_ms(ms)) / 1000, dt.timezone.utc)


def test_legitimate_traffic_follows_working_hours(legit: list[dict[str, Any]]) -> None:
    local = [paris(ts_ms(e["ts"])) for e in legit]
    office = sum(1 for t in local if t.weekday() < 5 and 7 <= t.hour < 19)
    assert office / len(local) > 0.97
    weekend = sum(1 for t in local if t.weekday() >= 5)
    assert weekend / len(local) < 0.03
    by_hour = collections.Counter(t.hour for t in local if t.weekday() < 5)
    assert by_hour[12] < by_hour[10] and by_hour[12] < by_hour[15]  # lunch dip


def test_legitimate_traffic_is_small_scale_and_varied(legit: list[dict[str, Any]]) -> None:
    searches = [e["count"] for e in legit if e["action"] == "search"]
    assert searches and max(searches) <= 30 and min(searches) >= 1
    exports = [e["count"] for e in legit if e["action"] == "export"]
    assert len(exports) < 0.02 * len(legit) and all(c <= 40 for c in exports)
    assert {"login", "consult", "search", "account_create"} <= {e["action"] for e in legit}
    roles = {e["actor_type"] for e in legit}
    assert {"advisor", "training_org", "youth_advisor", "account_manager"} <= roles
    per_day = collections.Counter((e["actor"], e["ts"][:10]) for e in legit)
    volumes = sorted(per_day.values())
    # Light and heavy users: the busiest account-days are several times the median.
    assert volumes[int(0.95 * len(volumes))] > 2.5 * volumes[len(volumes) // 2]
    # Accounts consult mostly the same files: far fewer distinct records than consultations.
    consults = [e["record"] for e in legit if e["action"] == "consult"]
    assert len(set(consults)) < 0.6 * len(consults)


def test_paris_offset_matches_the_tz_database() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        tz = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database on this machine")
    start = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    for hour in range(0, 3 * 365 * 24, 7):
        ms = start + hour * 3_600_000
        moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
        assert paris_offset_ms(ms) == moment.astimezone(tz).utcoffset().total_seconds() * 1000, moment


# --- scale and arguments ----------------------------------------------------------------------

def test_scale_with_200_actors_over_a_week() -> None:
    events, labels = simulate(seed=7, days=7, actors=200, bad_line_rate=0.0)
    assert 60_000 <= len(events) <= 200_000
    assert labels["bad_lines"] == 0
    attack = sum(len(malicious(events, i)) for i in labels["incidents"])
    assert attack < 0.2 * len(events)


def test_short_periods_and_bad_arguments() -> None:
    events, labels = simulate(seed=1, days=1, actors=10)
    assert labels["incidents"] == [] and labels["events"] == len(events)
    with pytest.raises(ValueError):
        simulate(days=0)
    with pytest.raises(ValueError):
        simulate(days=3, actors=10, bad_line_rate=1.5)
