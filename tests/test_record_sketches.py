"""Distinct records in bounded memory, a sample independent of arrival order, and portfolios."""

import pickle
import random

from transforms.record_sketches import EXACT_LIMIT, SAMPLE_SIZE, DistinctRecords, Portfolio


def fill(records):
    distinct = DistinctRecords()
    for record in records:
        distinct.add(record)
    return distinct


def test_small_sets_are_counted_exactly():
    assert fill(["a", "b", "a", "c"]).estimate() == 3


def test_a_million_records_are_estimated_within_five_percent_in_a_few_kilobytes():
    distinct = fill(f"rec-{i}" for i in range(1_000_000))
    assert abs(distinct.estimate() - 1_000_000) < 50_000
    assert len(pickle.dumps(distinct)) < 8_192


def test_merging_bundles_matches_one_pass_and_the_sample_ignores_order():
    records = [f"rec-{i}" for i in range(3 * EXACT_LIMIT)] * 2
    shuffled = list(records)
    random.Random(5).shuffle(shuffled)
    left, right = fill(shuffled[: len(shuffled) // 3]), fill(shuffled[len(shuffled) // 3:])
    left.merge(pickle.loads(pickle.dumps(right)))
    whole = fill(records)
    assert abs(left.estimate() - whole.estimate()) <= 0.03 * whole.estimate()
    assert left.sample_ids() == whole.sample_ids()
    assert len(whole.sample_ids()) == SAMPLE_SIZE


def test_a_portfolio_knows_what_it_saw_and_mostly_not_what_it_did_not():
    portfolio = Portfolio()
    for i in range(300):
        portfolio.add(f"mine-{i}")
    restored = Portfolio(portfolio.to_bytes())
    assert all(f"mine-{i}" in restored for i in range(300))
    strangers = [f"other-{i}" for i in range(1000)]
    assert len(restored.novel_records(strangers)) > 0.98 * len(strangers)
    assert restored.novel_records([f"mine-{i}" for i in range(50)]) == []


def test_learning_only_the_novel_records_of_a_sample_leaves_the_same_filter():
    rng = random.Random(11)
    everything, only_novel = Portfolio(), Portfolio()
    for _ in range(400):
        sample = [f"file-{rng.randrange(3000)}" for _ in range(rng.randrange(1, 12))]
        novel = only_novel.novel_records(sample)
        assert novel == [record for record in sample if record not in only_novel]
        everything.add_all(sample)
        only_novel.add_all(novel)
        assert only_novel.to_bytes() == everything.to_bytes()
    assert Portfolio().novel_records([]) == []
