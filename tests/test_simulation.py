"""The simulator: deterministic, contract-valid traffic with consistent incident labels."""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import re
import statistics
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.simulation import (HARDER_SCENARIOS, SCENARIOS, SEED_SCENARIOS, default_scenarios, simulate,
                                  write_simulation)
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


def test_legitimate_traffic_is_small_scale_and_varied(written: dict[str, Any], legit: list[dict[str, Any]]) -> None:
    searches = [e["count"] for e in legit if e["action"] == "search"]
    assert searches and max(searches) <= 30 and min(searches) >= 1
    exports = [e for e in legit if e["action"] == "export"]
    assert len(exports) < 0.02 * len(legit)
    # Exports are small, except the rare whole-portfolio export, which labels list as a look-alike.
    big = {(e["actor"], e["ts"][:10], e["count"]) for e in exports if e["count"] > 40}
    listed = {(entry["accounts"][0], entry["day"], entry["count"]) for entry in written["labels"]["lookalikes"]
              if entry["kind"] == "portfolio_export"}
    assert big <= listed and all(e["count"] <= 400 for e in exports)
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


# --- harder scenarios (default from 14 days) ---------------------------------------------------

HOUR_MS = 3_600_000
HARD_DAYS = 14


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The default simulation of two weeks: eight incidents and every kind of look-alike."""
    out = tmp_path_factory.mktemp("hard")
    write_simulation(str(out), seed=5, days=HARD_DAYS, actors=150, bad_line_rate=0.0)
    events, bad = read_lines(out / "events.jsonl")
    labels = orjson.loads((out / "labels.json").read_bytes())
    attack_ids = {e["event_id"] for inc in labels["incidents"] for e in malicious(events, inc)}
    return {"events": events, "labels": labels, "bad": bad,
            "by_scenario": {inc["scenario"]: inc for inc in labels["incidents"]},
            "legit": [e for e in events if e["event_id"] not in attack_ids]}


def buckets(events: list[dict[str, Any]], size_ms: int) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for e in events:
        out[ts_ms(e["ts"]) // size_ms] += records_of(e)
    return out


def of(events: list[dict[str, Any]], actor: str) -> list[dict[str, Any]]:
    return [e for e in events if e["actor"] == actor]


def test_default_scenarios_by_length() -> None:
    assert default_scenarios(13) == SEED_SCENARIOS
    assert default_scenarios(HARD_DAYS) == SEED_SCENARIOS + HARDER_SCENARIOS
    assert len(default_scenarios(28)) == 8 and set(HARDER_SCENARIOS) <= set(SCENARIOS)


def test_every_default_scenario_is_present_and_consistently_labelled(hard: dict[str, Any]) -> None:
    events, labels = hard["events"], hard["labels"]
    assert not hard["bad"]
    assert sorted(i["scenario"] for i in labels["incidents"]) == sorted(SEED_SCENARIOS + HARDER_SCENARIOS)
    assert labels["scenarios"] == list(SEED_SCENARIOS + HARDER_SCENARIOS)
    start, end = ts_ms(labels["start"]), ts_ms(labels["end"])
    first_seen: dict[str, int] = {}
    for e in events:
        first_seen.setdefault(e["actor"], ts_ms(e["ts"]))
    for incident in labels["incidents"]:
        mine = malicious(events, incident)
        assert {e["actor"] for e in mine} == set(incident["accounts"]), incident["id"]
        assert mine[0]["ts"] == incident["start"] and mine[-1]["ts"] == incident["end"]
        assert sum(records_of(e) for e in mine) == incident["records"] == incident["progress"][-1][1] > 0
        assert start + 3 * DAY_MS <= ts_ms(incident["start"]) and ts_ms(incident["end"]) < end
        ids = {e["event_id"] for e in mine}
        accounts, ips = set(incident["accounts"]), set(incident["ips"])
        # Attacker addresses are used by nobody else, ever.
        assert not any(e["ip"] in ips for e in events if e["event_id"] not in ids), incident["id"]
        for account in accounts - {incident["creator"]}:
            created = [e for e in mine if e["action"] == "account_create" and e["target"] == account]
            if created:
                assert first_seen[account] > ts_ms(created[0]["ts"])
        assert isinstance(incident["params"], dict)


def test_low_and_slow_stays_under_every_short_window(hard: dict[str, Any]) -> None:
    incident = hard["by_scenario"]["low_and_slow"]
    mine = malicious(hard["events"], incident)
    hours = (ts_ms(incident["end"]) - ts_ms(incident["start"])) / HOUR_MS
    assert hours >= 22
    assert max(buckets(mine, 5 * MINUTE_MS).values()) <= 10
    assert max(buckets(mine, HOUR_MS).values()) <= 100
    assert incident["records"] >= 2 * 12 * 22  # >= 2 per 5 min, all along
    # Day and night alike, from several addresses, and never the account's own files.
    assert len({paris(ts_ms(e["ts"])).hour for e in mine}) == 24
    assert len({e["ip"] for e in mine}) >= 2
    victim = incident["accounts"][0]
    own = {e["record"] for e in of(hard["legit"], victim) if e["action"] == "consult"}
    assert not own & {e["record"] for e in mine if e["action"] == "consult"}


def test_heavy_user_compromised_is_a_few_times_its_own_maximum(hard: dict[str, Any]) -> None:
    incident = hard["by_scenario"]["heavy_user_compromised"]
    victim = incident["accounts"][0]
    legit = hard["legit"]
    # One of the heaviest accounts of the population (by records per active day).
    volume: collections.Counter = collections.Counter()
    days_active: collections.Counter = collections.Counter(actor for actor, _ in {(e["actor"], e["ts"][:10])
                                                                                  for e in legit})
    for e in legit:
        volume[e["actor"]] += records_of(e)
    ranking = sorted(volume, key=lambda a: -volume[a] / days_active[a])
    assert ranking.index(victim) < max(5, len(ranking) // 8)  # in the busiest eighth
    mine = malicious(hard["events"], incident)
    own = of(legit, victim)
    own_hours = sorted(buckets(own, HOUR_MS).values())
    usual = own_hours[int(0.95 * len(own_hours))]
    start, end = ts_ms(incident["start"]), ts_ms(incident["end"])
    # The real user keeps working meanwhile: the attack rides on top.
    assert any(start <= ts_ms(e["ts"]) <= end for e in own)
    both = buckets(mine, HOUR_MS) + buckets([e for e in own if start - HOUR_MS <= ts_ms(e["ts"]) <= end + HOUR_MS],
                                            HOUR_MS)
    attack_hours = sorted(both[h] for h in buckets(mine, HOUR_MS) if buckets(mine, HOUR_MS)[h] > 60)
    ratio = statistics.median(attack_hours) / usual
    assert 1.4 <= ratio <= 6.0, (attack_hours, usual)
    # Not a burst: a few times its own busiest five minutes at most.
    assert max(buckets(mine, 5 * MINUTE_MS).values()) <= 3 * max(buckets(own, 5 * MINUTE_MS).values())
    local = [paris(ts_ms(e["ts"])) for e in mine]
    assert all(t.weekday() < 5 and 8 <= t.hour < 19 for t in local)


def test_many_small_created_accounts_each_under_a_new_account_prior(hard: dict[str, Any]) -> None:
    incident = hard["by_scenario"]["many_small_created_accounts"]
    mine = malicious(hard["events"], incident)
    creator = incident["creator"]
    created = [a for a in incident["accounts"] if a != creator]
    creations = [e for e in mine if e["action"] == "account_create"]
    assert 6 <= len(creations) == len(created) <= 12 and {e["actor"] for e in creations} == {creator}
    assert ts_ms(creations[-1]["ts"]) - ts_ms(creations[0]["ts"]) <= 2.5 * HOUR_MS
    single_hours = []
    for account in created:
        reads = of(mine, account)
        assert max(buckets(reads, 5 * MINUTE_MS).values()) <= 12
        single_hours.append(max(buckets(reads, HOUR_MS).values()))
        assert single_hours[-1] <= 80
        assert sum(records_of(e) for e in reads) <= 250
        assert {e["actor_type"] for e in of(hard["events"], account)} <= {"advisor", "youth_advisor"}
    together = buckets([e for e in mine if e["actor"] != creator], HOUR_MS)
    assert max(together.values()) >= 3 * max(single_hours)


def test_search_exfiltration_is_a_few_huge_searches(hard: dict[str, Any]) -> None:
    incident = hard["by_scenario"]["search_exfiltration"]
    mine = malicious(hard["events"], incident)
    big = [e["count"] for e in mine if e["action"] == "search" and e["count"] >= 1000]
    assert 3 <= len(big) <= 8 and all(c <= 5000 for c in big)
    assert len(mine) < 60  # a handful of events, thousands of records
    assert ts_ms(incident["end"]) - ts_ms(incident["start"]) <= 2 * HOUR_MS
    own = [e for e in of(hard["legit"], incident["accounts"][0]) if e["action"] == "search"]
    assert len(own) >= 20 and max(e["count"] for e in own) <= 30  # a frequent searcher of small results


def test_dormant_account_wakes_at_night_after_a_long_silence(hard: dict[str, Any]) -> None:
    incident = hard["by_scenario"]["dormant_wakes_at_night"]
    start = ts_ms(incident["start"])
    own = of(hard["legit"], incident["accounts"][0])
    if own:
        assert ts_ms(own[-1]["ts"]) <= start - 7 * DAY_MS
        assert not any(ts_ms(e["ts"]) > start for e in own)
    assert 0 <= paris(start).hour < 5
    mine = malicious(hard["events"], incident)
    consults = [e for e in mine if e["action"] == "consult"]
    minutes = (ts_ms(consults[-1]["ts"]) - ts_ms(consults[0]["ts"])) / MINUTE_MS
    assert len(consults) / minutes >= 10


# --- legitimate look-alikes, never labelled ---------------------------------------------------

def test_lookalikes_are_present_and_never_part_of_an_incident(hard: dict[str, Any]) -> None:
    entries = hard["labels"]["lookalikes"]
    kinds = collections.Counter(e["kind"] for e in entries)
    assert {"org_busy_day", "month_start", "month_end_deadline", "dst_change", "absence_return", "heavy_day",
            "team_onboarding"} <= set(kinds), kinds
    spans = [(set(i["accounts"]), i["start"][:10], i["end"][:10]) for i in hard["labels"]["incidents"]]
    for entry in entries:
        for account in entry.get("accounts") or []:
            for accounts, first, last in spans:
                assert not (account in accounts and first <= entry["day"] <= last), entry


def day_records(events: list[dict[str, Any]]) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for e in events:
        out[(e["actor"], e["ts"][:10])] += records_of(e)
    return out


def test_an_organisation_busy_day_is_a_real_org_wide_peak(hard: dict[str, Any]) -> None:
    per_day = day_records(hard["legit"])
    weekdays = sorted({e["ts"][:10] for e in hard["legit"] if dt.date.fromisoformat(e["ts"][:10]).weekday() < 5})
    entries = [e for e in hard["labels"]["lookalikes"] if e["kind"] == "org_busy_day" and len(e["accounts"]) >= 3]
    assert entries
    for entry in entries:
        members = entry["accounts"]
        that_day = sum(per_day[(a, entry["day"])] for a in members)
        others = [sum(per_day[(a, d)] for a in members) for d in weekdays if d != entry["day"]]
        assert that_day >= 1.5 * statistics.median(others), entry


def test_team_onboarding_and_returns_from_absence(hard: dict[str, Any]) -> None:
    entries = hard["labels"]["lookalikes"]
    legit = hard["legit"]
    for entry in (e for e in entries if e["kind"] == "team_onboarding"):
        creations = [e for e in of(legit, entry["accounts"][0])
                     if e["action"] == "account_create" and e["ts"][:10] == entry["day"]]
        assert len(creations) >= 6 and sorted(e["target"] for e in creations) >= sorted(entry["created"])
        assert ts_ms(creations[-1]["ts"]) - ts_ms(creations[0]["ts"]) <= 2.5 * HOUR_MS
    per_day = day_records(legit)
    returns = [(e["accounts"][0], e["day"]) for e in entries if e["kind"] == "absence_return"]
    assert returns
    ratios = []
    for account, day in returns:
        usual = [n for (a, d), n in per_day.items() if a == account and d != day]
        if len(usual) >= 3 and per_day[(account, day)]:
            ratios.append(per_day[(account, day)] / statistics.median(usual))
    assert statistics.median(ratios) >= 1.2


def test_first_working_day_of_a_month_is_busier(hard: dict[str, Any]) -> None:
    first = [e["day"] for e in hard["labels"]["lookalikes"] if e["kind"] == "month_start" and e["factor"] >= 1.5]
    assert first
    per_day = day_records(hard["legit"])
    by_account: dict[str, list[int]] = collections.defaultdict(list)
    for (account, day), n in per_day.items():
        if day != first[0] and dt.date.fromisoformat(day).weekday() < 5:
            by_account[account].append(n)
    # Each account against its own ordinary days: organisations' mixes do not blur it.
    ratios = [per_day[(a, first[0])] / statistics.median(days) for a, days in by_account.items()
              if len(days) >= 4 and per_day[(a, first[0])]]
    assert len(ratios) >= 20 and statistics.median(ratios) >= 1.3


# --- choosing scenarios ---------------------------------------------------------------------

def test_scenarios_can_be_named_repeated_or_none() -> None:
    names = ["search_exfiltration", "bulk_search", "search_exfiltration"]
    _, labels = simulate(seed=2, days=8, actors=80, bad_line_rate=0.0, scenarios=names)
    assert [i["scenario"] for i in labels["incidents"]] == names
    assert len({i["id"] for i in labels["incidents"]}) == 3
    assert len({i["accounts"][0] for i in labels["incidents"]}) == 3
    _, quiet = simulate(seed=2, days=8, actors=80, bad_line_rate=0.0, scenarios=[])
    assert quiet["incidents"] == [] and quiet["lookalikes"]
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        simulate(days=8, actors=30, scenarios=["bulk_search", "nope"])
    with pytest.raises(ValueError, match="needs at least"):
        simulate(days=8, actors=30, scenarios=["dormant_wakes_at_night"])


def test_cli_scenarios_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipelines.cli import EXIT_USAGE, main

    assert main(["simulate", "--output", str(tmp_path / "a"), "--days", "6", "--actors", "40",
                 "--scenarios", "low_and_slow,bulk_search"]) == 0
    labels = orjson.loads((tmp_path / "a" / "labels.json").read_bytes())
    assert [i["scenario"] for i in labels["incidents"]] == ["low_and_slow", "bulk_search"]
    capsys.readouterr()
    for bad in ("bulk_search,bogus", "dormant_wakes_at_night"):
        assert main(["simulate", "--output", str(tmp_path / "b"), "--days", "6", "--scenarios", bad]) == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0] and "scenario" in err[0]
    assert not (tmp_path / "b" / "events.jsonl").exists()
