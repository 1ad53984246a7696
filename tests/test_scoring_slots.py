"""Organisations dealt to the local workers by their work (transforms/scoring_slots.py)."""

import apache_beam as beam
from hypothesis import given
from hypothesis import strategies as st

from pipelines.detect import build_pipeline
from pipelines.options import LOCAL_RUNNER, GuetteurOptions
from transforms.detect_per_group import DetectSlotInBatchFn
from transforms.scoring_slots import slot_of, slots_by_work

from tests.simulated_replay import replay_simulation

weights = st.dictionaries(st.text(min_size=1, max_size=8), st.integers(min_value=1, max_value=10_000), max_size=60)


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
    assert slot_of(assigned, "small-2") in ("0", "1") and slot_of(assigned, "never-counted") == "0"


def test_two_local_workers_score_each_organisation_in_one_of_two_slots_with_the_same_alerts(tmp_path, monkeypatch):
    path, alone = replay_simulation(tmp_path / "one-worker")
    seen = []
    score = DetectSlotInBatchFn.process

    def recorded(self, element, baselines):
        seen.append((element[0], [group for group, _ in element[1]]))
        yield from score(self, element, baselines)

    monkeypatch.setattr(DetectSlotInBatchFn, "process", recorded)
    out = tmp_path / "two-workers"
    options = GuetteurOptions([f"--runner={LOCAL_RUNNER}", f"--input={path}", f"--output={out}",
                               "--direct_num_workers=2"])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, options)
    assert sorted(open(out / "alerts.jsonl", "rb").read().splitlines()) == alone
    assert len(alone) >= 3
    assert sorted(slot for slot, _ in seen) == ["0", "1"]
    slots_of_group = {}
    for slot, groups in seen:
        for group in groups:
            assert slots_of_group.setdefault(group, slot) == slot  # an organisation is scored in one piece
    assert len(slots_of_group) >= 4
