"""Organisations dealt to the local workers by their work (transforms/scoring_slots.py), each worker merging
and scoring its own (transforms/detect_in_slots.py)."""

import json
import os
from collections import Counter

import apache_beam as beam
from hypothesis import given
from hypothesis import strategies as st

from pipelines import detect
from pipelines.detect import build_pipeline
from pipelines.options import LOCAL_RUNNER, GuetteurOptions
from pipelines.simulation import write_simulation
from schemas.activity import AccountActivity
from transforms import batch_ingest
from transforms.detect_in_slots import _MergeAndDetectSlotFn
from transforms.scoring_slots import ScoringPlan, slots_by_work


weights = st.dictionaries(st.text(min_size=1, max_size=8), st.integers(min_value=1, max_value=10_000), max_size=60)
counts = st.dictionaries(st.tuples(st.sampled_from(["org-a", "org-b", "org-c", "org-d", "org-e", "~x"]),
                                   st.sampled_from(["u1", "u2", "u3", "u4", "u5", "u6", "u7"])),
                         st.integers(min_value=1, max_value=500), max_size=20)


@given(weights, st.integers(min_value=1, max_value=8))
def test_every_group_gets_a_slot_and_no_slot_exceeds_another_by_more_than_one_group(windows, slots):
    assigned = slots_by_work(windows, slots)
    assert set(assigned) == set(windows) and set(assigned.values()) <= set(range(slots))
    loads = [sum(w for g, w in windows.items() if assigned[g] == slot) for slot in range(slots)]
    # Each group went to the least loaded slot: no slot ends more than the largest group above another.
    assert max(loads) - min(loads) <= max(windows.values(), default=0)


@given(weights, st.integers(min_value=1, max_value=8), st.randoms())
def test_the_deal_is_the_same_whatever_order_the_counts_arrive_in(windows, slots, random):
    shuffled = list(windows.items())
    random.shuffle(shuffled)
    assert slots_by_work(dict(shuffled), slots) == slots_by_work(windows, slots)


def test_the_heaviest_organisations_are_spread_first():
    assigned = slots_by_work({"big-a": 50, "big-b": 48, "small-1": 2, "small-2": 1}, 2)
    assert assigned["big-a"] != assigned["big-b"]


def test_organisations_an_account_worked_for_are_dealt_together():
    # u2 read for org-a and org-b: they go as one (52 windows), against org-c (50).
    plan = ScoringPlan({("org-a", "u1"): 30, ("org-a", "u2"): 2, ("org-b", "u2"): 20, ("org-c", "u3"): 50}, 2)
    assert plan.slot_of("u1") == plan.slot_of("u2") != plan.slot_of("u3")
    assert plan.units_in(plan.slot_of("u2")) == [[("org-a", ["u1", "u2"]), ("org-b", ["u2"])]]
    assert plan.units_in(plan.slot_of("u3")) == [[("org-c", ["u3"])]]
    assert plan.slot_of("never-counted") == "0" and plan.units_in("7") == []


@given(counts, st.integers(min_value=1, max_value=4), st.randoms())
def test_every_account_is_planned_with_each_of_its_organisations_whatever_the_order(windows, slots, random):
    plan = ScoringPlan(windows, slots)
    shuffled = list(windows.items())
    random.shuffle(shuffled)
    again = ScoringPlan(dict(shuffled), slots)
    slot_of_group = {}
    for group, actor in windows:
        slot = plan.slot_of(actor)
        assert again.slot_of(actor) == slot and int(slot) < slots
        unit = next(dict(unit) for unit in plan.units_in(slot) if group in dict(unit))
        assert actor in unit[group]
        # Every organisation the account has windows in is in the same unit.
        assert all(other in unit for other, someone in windows if someone == actor)
        assert slot_of_group.setdefault(group, slot) == slot  # an organisation is scored in one slot


def _event(line: bytes):
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _with_accounts_changing_organisation(path, out):
    """The simulation, with two accounts that worked for a second organisation on some days and one whose
    events on some days name no organisation: their windows end in several groups."""
    lines = open(path, "rb").read().splitlines()
    events = [event for event in map(_event, lines) if event is not None]
    home = {e["actor"]: e["org"] for e in events if e.get("org") and isinstance(e.get("actor"), str)}
    orgs = sorted(set(home.values()))
    first, second, third = sorted(home)[:3]
    movers = {first: next(org for org in orgs if org != home[first]),
              second: next(org for org in reversed(orgs) if org != home[second]), third: None}
    with open(out, "wb") as target:
        for line in lines:
            event = _event(line)
            if event is None or event.get("actor") not in movers or str(event.get("ts"))[9:10] not in "13579":
                target.write(line + b"\n")  # the simulation's bad lines stay as they are
                continue
            event["org"] = movers[event["actor"]]
            if event["org"] is None:
                del event["org"]
            target.write(json.dumps(event).encode() + b"\n")
    return movers


def _replay(path, out, *flags):
    options = GuetteurOptions([f"--runner={LOCAL_RUNNER}", f"--input={path}", f"--output={out}", *flags])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, options)
    return sorted(open(out / "alerts.jsonl", "rb").read().splitlines())


def test_two_local_workers_merge_and_score_each_organisation_in_one_slot_with_the_alerts_of_organisations_as_keys(
        tmp_path, monkeypatch):
    write_simulation(str(tmp_path / "sim"), seed=11, days=5, actors=30)
    path = tmp_path / "changing.jsonl"
    movers = _with_accounts_changing_organisation(tmp_path / "sim" / "events.jsonl", path)
    with monkeypatch.context() as keys:  # organisations as keys, as on Flink and Dataflow: merged per account, then
        keys.setattr(detect, "scoring_slots", lambda options: None)  # grouped by organisation and scored
        alone = _replay(path, tmp_path / "organisations-as-keys")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # where the ranges spill their folds
    monkeypatch.setattr(batch_ingest, "SLICE_MS", 24 * 3600 * 1000)  # five days: five or six slices
    started, scored, spilled = [], [], []
    process = _MergeAndDetectSlotFn.process
    start_group, score_windows = _MergeAndDetectSlotFn.start_group, _MergeAndDetectSlotFn.score_windows

    def recorded_process(self, element, baselines, windows, paths):
        self.recorded_slot = element[0]
        spilled.append([(path, os.path.exists(path)) for path in paths])
        yield from process(self, element, baselines, windows, paths)

    def recorded_start(self, group, baselines):
        started.append(group)
        return start_group(self, group, baselines)

    def recorded_score(self, model, activities):
        windows = [AccountActivity._make(fields) for fields in activities]
        starts = [window.window_start_ms for window in windows]
        scored.append((self.recorded_slot, model.group, {window.actor for window in windows}, min(starts), max(starts)))
        return score_windows(self, model, activities)

    monkeypatch.setattr(_MergeAndDetectSlotFn, "process", recorded_process)
    monkeypatch.setattr(_MergeAndDetectSlotFn, "start_group", recorded_start)
    monkeypatch.setattr(_MergeAndDetectSlotFn, "score_windows", recorded_score)
    assert _replay(path, tmp_path / "two-workers", "--direct_num_workers=2") == alone
    assert len(alone) >= 3
    assert sorted({slot for slot, *_ in scored}) == ["0", "1"]
    # Both slots read the same files, all there then, all in the scratch directory, which is gone after the job.
    assert len(spilled) == 2 and spilled[0] == spilled[1] and len(spilled[0]) >= 1
    assert all(there and path.startswith(str(scratch)) for path, there in spilled[0])
    assert os.listdir(scratch) == []
    # Each organisation: one model, in one slot, carried from a day's slice to the next in time order.
    assert sorted(started) == sorted(set(started)) == sorted({group for _, group, *_ in scored})
    slot_of_group, last_start = {}, {}
    for slot, group, _, first, last in scored:
        assert slot_of_group.setdefault(group, slot) == slot
        assert last_start.get(group, -1) < first
        last_start[group] = last
    assert len(slot_of_group) >= 4
    assert max(Counter(group for _, group, *_ in scored).values()) >= 5
    for mover in movers:
        groups = {group for _, group, actors, *_ in scored if mover in actors}
        assert len(groups) == 2 and len({slot_of_group[group] for group in groups}) == 1
