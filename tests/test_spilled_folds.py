"""A local replay's folds spilled to files between the fold and the scoring (transforms/spilled_folds.py)."""

import os

from transforms.batch_ingest import _FoldRange, split_file
from transforms.event_parsing import DEFAULT_MAPPING
from transforms.spilled_folds import SpilledFolds, remove_spilled, scratch_directory, spill

WINDOW_MS = 5 * 60_000


def test_each_account_gets_back_its_packs_of_every_file_in_order_and_only_once(tmp_path):
    directory = str(tmp_path / "scratch")
    first = spill(directory, [("ana", b"a1"), ("bob", b"b1" * 50), ("ana", b"a2")])
    second = spill(directory, iter([("bob", b""), ("cyd", b"c1"), ("ana", b"a3")]))
    assert first != second and os.path.dirname(first) == os.path.dirname(second) == directory
    with SpilledFolds([first, second], lambda actor: actor != "cyd") as folds:
        assert len(folds) == 2
        assert folds.pop("ana") == [b"a1", b"a2", b"a3"]
        assert folds.pop("ana") is None
        assert folds.pop("cyd") is None  # not kept
        assert len(folds) == 1
        assert folds.pop("bob") == [b"b1" * 50, b""]
        assert len(folds) == 0


def test_nothing_to_spill_writes_nothing(tmp_path):
    directory = tmp_path / "scratch"
    assert spill(str(directory), iter([])) is None
    assert not directory.exists()


def test_the_scratch_directories_of_the_files_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    one, other = scratch_directory(), scratch_directory()
    assert one != other and os.path.dirname(one) == str(tmp_path)
    paths = [spill(one, [("ana", b"x")]), spill(one, [("bob", b"y")]), spill(other, [("cyd", b"z")])]
    remove_spilled(paths)
    assert os.listdir(tmp_path) == []


def test_a_range_spilled_gives_the_packs_it_would_have_sent(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [b'{"ts": "2026-03-02T08:%02d:00Z", "actor": "u%d", "action": "consult", "record": "r%d", '
             b'"org": "o%d", "event_id": "e%d"}' % (minute % 60, minute % 7, minute, minute % 3, minute)
             for minute in range(400)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    file_range = split_file(str(path), path.stat().st_size)[0]

    def folded(spill_to):
        fold = _FoldRange(WINDOW_MS, DEFAULT_MAPPING, spill_to=spill_to)
        fold.setup()
        return [out for out in fold.process(file_range) if getattr(out, "tag", None) is None]

    sent = [pair for batch in folded(None) for pair in batch]
    spilled = folded(str(tmp_path / "scratch"))
    assert len(sent) == 7 and all(isinstance(path, str) for path in spilled)
    with SpilledFolds(spilled, lambda actor: True) as folds:
        assert {actor: folds.pop(actor) for actor, _ in sent} == {actor: [packed] for actor, packed in sent}
