"""A batch replay's per-range folds put back together per account window (transforms/batch_windows.py)."""

from schemas.activity import unpack_activities
from transforms.account_windows import ActivityFold
import pickle

from transforms.batch_windows import _EventIdsColumn, _MergeAccountFolds, event_ids_of_windows, pack_folds, unpack_folds
from transforms.record_sketches import EXACT_LIMIT

WINDOW_MS = 5 * 60_000


def _fold(events):
    fold = ActivityFold()
    for action, count, record, target, event_id in events:
        fold.add(action, count, record, target, "org-a", "advisor", event_id)
    return fold


def _merged(*packs):
    [(group, packed)] = list(_MergeAccountFolds(WINDOW_MS).process(("acct-1", list(packs))))
    assert group == "org-a"
    return {a.window_start_ms: a for a in unpack_activities(packed)}


def test_folds_round_trip_through_their_packed_columns():
    many = _fold([("consult", 1, f"rec-{i}", None, f"e{i}") for i in range(EXACT_LIMIT + 40)])  # a sketch
    few = _fold([("consult", 1, "rec-1", None, "e1"), ("account_create", 1, None, "acct-new", "e2")])
    packed = pack_folds([(0, many), (WINDOW_MS, few)])
    got = list(unpack_folds(packed))
    assert [start for start, _ in got] == [0, WINDOW_MS]
    for (_, back), original in zip(got, (many, few)):
        assert back.to_activity("acct-1", 0, WINDOW_MS, False) == original.to_activity("acct-1", 0, WINDOW_MS, False)
        assert back.by_id == original.by_id


def test_a_window_held_by_one_range_reads_as_its_fold_would():
    whole = [("consult", 1, f"rec-{i % 7}", None, f"e{i}") for i in range(30)] + [("search", 12, None, None, "s1")]
    many = [("consult", 1, f"r-{i}", None, f"m{i}") for i in range(EXACT_LIMIT + 40)]
    merged = _merged(pack_folds([(0, _fold(whole)), (WINDOW_MS, _fold(many))]))
    assert merged[0] == _fold(whole).to_activity("acct-1", 0, WINDOW_MS, False)
    assert merged[WINDOW_MS] == _fold(many).to_activity("acct-1", WINDOW_MS, 2 * WINDOW_MS, False)


def test_a_window_split_between_ranges_counts_a_redelivered_event_once():
    first = [("consult", 1, "rec-1", None, "e1"), ("export", 40, None, None, "e2")]
    second = [("export", 40, None, None, "e2"), ("consult", 1, "rec-2", None, "e3")]  # e2 delivered twice
    merged = _merged(pack_folds([(0, _fold(first))]), pack_folds([(0, _fold(second))]))
    activity = merged[0]
    assert (activity.events, activity.records_touched, activity.exports, activity.duplicates) == (3, 42, 1, 1)
    assert activity.distinct_records == 2 and activity.largest_bulk == 40


def test_event_ids_cross_the_shuffle_packed_and_read_back_as_they_were():
    consults = _fold([("consult", 1, f"rec-{i}", None, f"e{i}") for i in range(5)])
    mixed = _fold([("consult", 1, "rec-1", None, "e1"), ("search", 12, None, None, "e2"),
                   ("account_create", 1, None, "acct-new", "e3"), ("account_create", 1, None, None, "e4")])
    odd = _fold([("consult", 1, "rec-1", None, "line\nbreak"), ("consult", 1, "rec-2", None, "évé\u2028nt"),
                 ("export", 70_000, None, None, "")])
    windows = [consults, ActivityFold(), mixed, odd]
    column = _EventIdsColumn(pickle.dumps(event_ids_of_windows([fold.by_id for fold in windows])))
    for index, fold in enumerate(windows):
        back = column[index]
        assert back == fold.by_id and list(back) == list(fold.by_id)
    # Contributions naming no account are the shared tuples, as a fold made them: no copy per event.
    assert all(back is original for back, original in zip(column[0].values(), consults.by_id.values()))
