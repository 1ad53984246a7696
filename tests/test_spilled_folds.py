"""A local replay's folds spilled to files between the fold and the scoring (transforms/spilled_folds.py)."""

import os

from schemas.activity import AccountActivity
from transforms.batch_ingest import _FoldRange, split_file
from transforms.batch_windows import merge_account_windows
from transforms.event_parsing import DEFAULT_MAPPING
from transforms.spilled_folds import SLICE_MS, SpilledFolds, remove_spilled, scratch_directory, spill

WINDOW_MS = 5 * 60_000
START = AccountActivity._fields.index("window_start_ms")


def test_each_account_gets_back_its_packs_of_every_file_and_slice_in_order_and_only_once(tmp_path):
    directory = str(tmp_path / "scratch")
    first = spill(directory, [("ana", 0, b"a1"), ("bob", 0, b"b1" * 50), ("ana", 0, b"a2"), ("ana", 7, b"a7")])
    second = spill(directory, iter([("bob", 0, b""), ("cyd", 0, b"c1"), ("ana", 0, b"a3")]))
    assert first != second and os.path.dirname(first) == os.path.dirname(second) == directory
    with SpilledFolds([first, second], lambda actor: actor != "cyd") as folds:
        assert folds.slices() == [0, 7] and len(folds) == 3
        assert folds.pop("ana", 0) == [b"a1", b"a2", b"a3"]
        assert folds.pop("ana", 0) is None
        assert folds.pop("cyd", 0) is None  # not kept
        assert folds.pop("bob", 7) is None
        assert len(folds) == 2
        assert folds.pop("bob", 0) == [b"b1" * 50, b""]
        assert folds.pop("ana", 7) == [b"a7"]
        assert len(folds) == 0


def test_nothing_to_spill_writes_nothing(tmp_path):
    directory = tmp_path / "scratch"
    assert spill(str(directory), iter([])) is None
    assert not directory.exists()


def test_the_scratch_directories_of_the_files_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    one, other = scratch_directory(), scratch_directory()
    assert one != other and os.path.dirname(one) == str(tmp_path)
    paths = [spill(one, [("ana", 0, b"x")]), spill(one, [("bob", 0, b"y")]), spill(other, [("cyd", 0, b"z")])]
    remove_spilled(paths)
    assert os.listdir(tmp_path) == []


def test_a_range_spilled_gives_the_windows_it_would_have_sent_a_slice_apart(tmp_path):
    path = tmp_path / "events.jsonl"
    # Three weeks: every account's windows fall in several slices.
    lines = [b'{"ts": "2026-03-%02dT08:%02d:00Z", "actor": "u%d", "action": "consult", "record": "r%d", '
             b'"org": "o%d", "event_id": "e%d"}' % (1 + n % 21, n % 60, n % 7, n, n % 3, n) for n in range(600)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    file_range = split_file(str(path), path.stat().st_size)[0]

    def folded(spill_to):
        fold = _FoldRange(WINDOW_MS, DEFAULT_MAPPING, spill_to=spill_to)
        fold.setup()
        return [out for out in fold.process(file_range) if getattr(out, "tag", None) is None]

    sent = dict(pair for batch in folded(None) for pair in batch)
    spilled = folded(str(tmp_path / "scratch"))
    assert len(sent) == 7 and all(isinstance(path, str) for path in spilled)
    with SpilledFolds(spilled, lambda actor: True) as folds:
        slices = folds.slices()
        assert len(slices) >= 3 and all(start % SLICE_MS == 0 for start in slices)
        for actor, packed in sent.items():
            whole = merge_account_windows(actor, [packed], WINDOW_MS)
            pieces = {}
            for start in slices:
                for group, windows in merge_account_windows(actor, folds.pop(actor, start) or [], WINDOW_MS).items():
                    assert all(start <= window[START] < start + SLICE_MS for window in windows)
                    pieces.setdefault(group, []).extend(windows)
            assert pieces == whole
        assert len(folds) == 0
