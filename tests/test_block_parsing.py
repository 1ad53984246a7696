"""Block parsing (pyarrow) against the per-line parser: the same folds, dead letters and counters, always.

`transforms/event_parsing.py` is the definition of a valid line; the block path in
`transforms/block_parsing.py` may only take rows it reads exactly as that parser would. Checked two ways:

- whole chaos corpora (every kind of bad line, rewritten events, CRLF, BOM, gzip, duplicates, a cut .gz)
  folded by the batch reader at several range and block sizes, against a line-by-line fold written here
  the way the reader worked before blocks: same folds (sketch contents included), dead letters, counters;
- hypothesis-mutated lines, row by row: every row the block path takes is one `parse_event_line` accepts,
  with the same values.
"""

import os
import pickle
from collections import Counter
from pathlib import Path

import orjson
import pytest
from apache_beam import pvalue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import chaos
from schemas.dead_letter import UNREADABLE_FILE, DeadLetter
from transforms import batch_ingest
from transforms.account_windows import ActivityFold
from transforms.batch_ingest import FileRange, Unreadable, _FoldRange, _lines, split_file
from transforms.batch_windows import unpack_folds
from transforms.group_model import group_of
from transforms.block_parsing import parse_block
from transforms.event_parsing import DEFAULT_MAPPING, Rejected, parse_event_line

WINDOW_MS = 5 * 60_000


class _Counter:
    def __init__(self):
        self.value = 0

    def inc(self, n=1):
        self.value += n

    def set(self, value):
        self.value = value


def _canonical(fold: ActivityFold):
    records = fold.records
    return (list(fold.sums), list(fold.by_id.items()), sorted(fold.created),
            None if records.exact is None else sorted(records.exact),
            None if records.hll is None else records.hll.serialize_compact(),
            sorted(records.sample.items()), fold.org, fold.actor_type)


def _per_line(file_range: FileRange, max_open: int):
    """The reader as it was before blocks: one line at a time, parse_event_line, ActivityFold.add_event."""
    folds, emitted, dead = {}, [], []
    counts = Counter()

    def emit():
        # Through pickle, as folds leave a range (batch_windows.pack_folds): a set rebuilt from its items.
        emitted.extend((key, pickle.loads(pickle.dumps(fold))) for key, fold in folds.items())
        folds.clear()

    for line in _lines(file_range):
        counts["lines"] += 1
        if isinstance(line, Unreadable):
            dead.append(DeadLetter(UNREADABLE_FILE, line.detail, file_range.path, b""))
            continue
        try:
            event = parse_event_line(line, DEFAULT_MAPPING)
        except Rejected as rejection:
            dead.append(DeadLetter(rejection.reason, rejection.detail, file_range.path, line))
            continue
        counts["accepted"] += 1
        counts["newest"] = max(counts["newest"], event.ts_ms)
        key = (event.actor, event.ts_ms - event.ts_ms % WINDOW_MS)
        if key not in folds:
            if len(folds) >= max_open:
                emit()
            folds[key] = ActivityFold()
        folds[key].add_event(event)
    emit()
    return emitted, dead, counts


def _blockwise(file_range: FileRange, block_bytes: int, block_lines: int):
    fn = _FoldRange(WINDOW_MS, DEFAULT_MAPPING, block_bytes=block_bytes, block_lines=block_lines)
    fn.setup()
    fn._lines, fn._accepted, fn._position = _Counter(), _Counter(), _Counter()
    emitted, dead, windows = [], [], Counter()
    for out in fn.process(file_range):
        if isinstance(out, pvalue.TaggedOutput):
            if out.tag == batch_ingest.WINDOWS_TAG:
                group_and_actor, count = out.value
                windows[group_and_actor] += count
            else:
                dead.append(out.value)
            continue
        for actor, packed in out:  # one element per fold of the range
            emitted.extend(((actor, start), fold) for start, fold in unpack_folds(packed))
    counts = Counter(lines=fn._lines.value, accepted=fn._accepted.value, newest=fn._position.value, windows=windows)
    return emitted, dead, counts


def _merged(emitted):
    """Per account and window, its folds merged in the order they left the range, as the merge after the
    shuffle would: the reference flushes every `max_open` open folds, the reader every MAX_FOLD_ROWS rows,
    so one window may leave in different pieces; merged, each must hold the same."""
    merged = {}
    for key, fold in emitted:
        if key in merged:
            merged[key].merge(fold)
        else:
            merged[key] = fold
    return sorted((key, _canonical(fold)) for key, fold in merged.items())


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    from pipelines.simulation import write_simulation

    workdir = tmp_path_factory.mktemp("blocks")
    write_simulation(str(workdir / "sim"), seed=5, days=2, actors=12, bad_line_rate=0.0)
    reference = chaos.Reference(chaos.split_lines((workdir / "sim" / "events.jsonl").read_bytes()), 5)
    paths = []
    for name in ("corrupt", "duplicated", "corrupt_gz"):
        corpus = chaos.build_corpus(name, reference, workdir / name)
        corpus.write(workdir / name)
        paths += sorted((workdir / name).iterdir())
    return paths


@pytest.mark.parametrize("range_bytes, block_bytes, block_lines, max_open", [
    (32 << 20, 4 << 20, 16_384, 200_000),  # the defaults: whole files, few blocks
    (300_000, 40_000, 97, 50),  # many ranges, blocks and flushes, lines cut at every boundary
])
def test_block_and_per_line_folds_dead_letters_and_counters_are_identical(corpora, monkeypatch, range_bytes,
                                                                          block_bytes, block_lines, max_open):
    monkeypatch.setattr(batch_ingest, "MAX_FOLD_ROWS", max_open)
    taken, total = Counter(), Counter()
    for path in corpora:
        size = os.path.getsize(path)
        ranges = split_file(str(path), size, range_bytes)
        for file_range in ranges:
            want_folds, want_dead, want_counts = _per_line(file_range, max_open)
            got_folds, got_dead, got_counts = _blockwise(file_range, block_bytes, block_lines)
            assert got_dead == want_dead, file_range
            assert _merged(got_folds) == _merged(want_folds), file_range
            assert got_counts["lines"] == want_counts["lines"] and got_counts["accepted"] == want_counts["accepted"]
            assert got_counts["newest"] == want_counts["newest"]
            # What scoring deals organisations by: every window part the range emitted, by group and account.
            assert got_counts["windows"] == Counter((group_of(fold.org, actor), actor) for (actor, _), fold in got_folds)
            for item in batch_ingest._blocks(file_range, block_bytes, block_lines):
                if not isinstance(item, Unreadable):
                    block = parse_block(item[0], WINDOW_MS, item[1])
                    taken[path.parent.name] += sum(raw is None for raw in block.fallback)
                    total[path.parent.name] += len(block.fallback)
    # Not a vacuous comparison: the block path took nearly all of the events re-sent as they were, and part
    # of the corrupt corpus (where one line in 30 is rewritten in a form pyarrow refuses, it gives up early).
    assert total["duplicated"] > 10_000 and taken["duplicated"] > 0.9 * total["duplicated"]
    assert taken["corrupt"] > 0.2 * total["corrupt"]


# -- row by row, on mutated lines

TEMPLATES = [
    {"ts": "2026-03-24T09:15:02.123Z", "event_id": "evt-1", "actor": "acct-000001", "action": "consult",
     "org": "ft-agence-0001", "actor_type": "advisor", "app": "portail", "ip": "192.0.2.1", "session": "s-1",
     "record": "rec-0000001"},
    {"ts": "2026-03-25T23:59:59.999Z", "event_id": "evt-2", "actor": "acct-000002", "action": "search", "count": 40,
     "org": "ml-0002", "actor_type": "youth_advisor", "ua": "Mozilla/5.0"},
    {"ts": "2026-03-26T00:00:00.000Z", "actor": "acct-000003", "action": "account_create", "target": "acct-000009"},
]
FIELDS = ["ts", "actor", "action", "count", "record", "target", "org", "actor_type", "ua", "event_id", "extra"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2, max_value=1 << 70), st.floats(allow_nan=True),
    st.text(max_size=10), st.sampled_from(["", " ", "2026-03-24T09:15:02.123Z", "2026-13-24T09:15:02.123Z",
                                           "2026-03-24T09:60:02.123Z", "2026-03-24T24:00:00.000Z",
                                           "1999-12-31T23:59:59.999Z", "2026-03-24T09:15:02.123+00:00",
                                           "consult", "search", "export", "x" * 300, "a" * 5000]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
EDITS = st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=3),
                           st.sampled_from(list(b'{}[]",:\\ \t\r0123456789-.eENaIfy\x00\xc3\xa9\xff'))), max_size=3)


def _mutate(template, changes, edits) -> bytes:
    obj = dict(template)
    for name, value in changes:
        obj[name] = value
    try:
        line = orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        line = orjson.dumps(template)
    line = bytearray(line)
    for at, cut, byte in edits:  # raw byte edits: broken syntax, escapes, control bytes, bad UTF-8
        at = min(at, len(line))
        line[at:at + cut] = bytes([byte])
    return bytes(line).replace(b"\n", b"").rstrip(b"\r")  # a CR before the newline would be its line ending


LINES = st.lists(st.builds(_mutate, st.sampled_from(TEMPLATES), st.lists(st.tuples(st.sampled_from(FIELDS), VALUES),
                                                                         max_size=3), EDITS), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(LINES, st.booleans())
def test_every_row_the_block_path_takes_reads_as_the_per_line_parser_reads_it(lines, crlf):
    data = (b"\r\n" if crlf else b"\n").join(lines) + b"\n"
    block = parse_block(data, WINDOW_MS)
    assert len(block.fallback) == len(lines)
    newest = 0
    for i, line in enumerate(lines):
        if block.fallback[i] is not None:
            assert block.fallback[i] == line  # handed back exactly as the per-line reader yields it
            continue
        event = parse_event_line(line)  # raises if the block path took a line the parser refuses
        newest = max(newest, event.ts_ms)
        assert block.window_start[i] == event.ts_ms - event.ts_ms % WINDOW_MS
        assert (block.actor[i], block.action[i][:64], block.count[i]) == (event.actor, event.action, event.count)
        assert (block.record[i], block.target[i], block.org[i], block.actor_type[i], block.event_id[i]) == (
            event.record, event.target, event.org, event.actor_type, event.event_id)
    assert block.newest_ms == newest


def test_clean_lines_are_all_taken_by_the_block_path():
    lines = [orjson.dumps(t) for t in TEMPLATES] * 50
    block = parse_block(b"\n".join(lines) + b"\n", WINDOW_MS)
    assert block.fallback == [None] * len(lines)
    assert block.actor[:3] == ["acct-000001", "acct-000002", "acct-000003"] and block.count[:3] == [1, 40, 1]


@pytest.mark.parametrize("range_bytes, block_bytes", [(1, 1), (2, 3), (3, 2), (7, 5), (64, 16), (1 << 20, 1 << 20)])
def test_blocks_hold_exactly_the_lines_of_the_per_line_reader_whatever_the_sizes(tmp_path, range_bytes, block_bytes):
    from tests.test_chaos import _small_corpus
    from transforms.block_parsing import line_bounds

    corpus, _, _ = _small_corpus(tmp_path)
    for spec in corpus.files:
        path, size = str(tmp_path / spec.name), (tmp_path / spec.name).stat().st_size
        ranges = split_file(path, size, range_bytes)
        for file_range in ranges:
            got = []
            for item in batch_ingest._blocks(file_range, block_bytes, block_lines=2):
                if isinstance(item, Unreadable):
                    got.append(item)
                    continue
                data, lines = item
                _, starts, ends = line_bounds(data)
                got += lines if lines is not None else [data[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
            assert got == list(_lines(file_range)), file_range


def test_a_window_past_the_exact_record_limit_folds_as_line_by_line(tmp_path):
    # The bulk reader's window: its distinct records go past EXACT_LIMIT, so the fold holds a sketch and a
    # sample; the column fold must give the very sketch the per-line fold builds (and a quiet account beside).
    from transforms.record_sketches import EXACT_LIMIT

    lines = []
    for i in range(3 * EXACT_LIMIT):
        lines.append({"ts": f"2026-03-24T09:0{i % 5}:{i % 60:02d}.{i % 1000:03d}Z", "event_id": f"evt-{i}",
                      "actor": "acct-bulk", "action": "consult", "record": f"rec-{(i * 7919) % (2 * EXACT_LIMIT)}",
                      "org": "ft-agence-0001" if i % 2 else "ft-agence-0000", "actor_type": "advisor"})
        if i % 50 == 0:
            lines.append(lines[-1])  # redelivered
            lines.append({"ts": "2026-03-24T09:02:00.000Z", "actor": "acct-quiet", "action": "consult",
                          "record": f"rec-{i}", "event_id": f"q-{i}"})
    path = tmp_path / "bulk.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    file_range = FileRange(str(path), 0, 1 << 20)
    want_folds, _, _ = _per_line(file_range, 200_000)
    got_folds, _, _ = _blockwise(file_range, 1 << 20, 4096)
    assert _merged(got_folds) == _merged(want_folds)
    (bulk,) = [fold for (actor, _), fold in got_folds if actor == "acct-bulk"]
    assert bulk.records.exact is None and bulk.duplicates == 3 * EXACT_LIMIT // 50 + 1
    assert bulk.org == "ft-agence-0000"
