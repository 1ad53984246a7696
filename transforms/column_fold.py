"""A file range's accepted events folded per account and window, column by column.

A replay has about three events per account and window, so folding event by
event (`ActivityFold.add`) costs several Python calls per event: more than
parsing the line. Here a range's rows are gathered as pyarrow columns — the
rows the block parser took, with the few lines the per-line parser read put
back in their place — then sorted by account, window and line, and summed per
window with numpy. Python works once per window, to build the fold's fields.

What comes out is exactly what `ActivityFold.add` gives line after line:
duplicates of an event_id inside a window are counted as such and add
nothing else (the first in line order counts), `by_id`, `created` and the
exact record set are filled in line order, the organisation and role are
the smallest values seen, and a window past `EXACT_LIMIT` distinct records
goes through `DistinctRecords` record by record, in line order.
`tests/test_block_parsing.py` holds the two to the same folds.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.event import AccessEvent
from transforms.account_windows import kind_flags
from transforms.batch_windows import EventIds, contribution_kind, pack_columns, small_ints
from transforms.block_parsing import ColumnBlock
from transforms.group_model import group_of
from transforms.record_sketches import EXACT_LIMIT, DistinctRecords

_TEXT = ("actor", "action", "record", "target", "org", "actor_type", "event_id")
_SCHEMA = pa.schema([(name, pa.string()) for name in _TEXT]
                    + [("window_start", pa.int64()), ("count", pa.int64()), ("line", pa.int64())])
_NO_RANK = np.iinfo(np.int64).max


class RangeRows:
    """A range's accepted rows, in any order, each with its line number; folded when asked."""

    def __init__(self):
        self._tables: List[pa.Table] = []
        self._events: List[Tuple[int, int, AccessEvent]] = []  # (line, window start, event)
        self._next_line = 0
        self.size = 0
        # (group, actor) -> windows folded so far, a window split by an early fold counted once per part: which
        # organisations an account's windows may end in, and what each will cost to score
        # (transforms/scoring_slots.py), not a count to report.
        self.windows_per_group: Counter = Counter()

    def add_block(self, block: ColumnBlock) -> int:
        """The rows the block parser took; returns the line number of the block's first row."""
        first = self._next_line
        self._next_line += len(block.fallback)
        taken = block.taken
        if block.table is not None and taken.any():
            rows = np.flatnonzero(taken)
            table = block.table.select(list(_TEXT)).filter(pa.array(taken))
            table = table.append_column("window_start", pa.array(block.window_start[rows]))
            table = table.append_column("count", pa.array(block.count[rows]))
            self._tables.append(table.append_column("line", pa.array(rows + first)))
            self.size += len(rows)
        return first

    def add_event(self, line: int, window_start: int, event: AccessEvent) -> None:
        """A row the per-line parser read, at its line."""
        self._events.append((line, window_start, event))
        self.size += 1

    def fold(self, slice_ms: Optional[int] = None, compressed: bool = True) -> Iterator[Tuple[str, int, bytes]]:
        """(actor, slice, `batch_windows.pack_columns` of its windows) per account, or with `slice_ms` per account
        and slice of that many ms since the epoch (the slice's start; 0 without); the rows are then forgotten."""
        tables = self._tables
        if self._events:
            tables.append(_events_table(self._events))
        self._tables, self._events, self.size = [], [], 0
        if tables:
            yield from _fold(pa.concat_tables(tables).combine_chunks(), self.windows_per_group, slice_ms, compressed)


def _events_table(events) -> pa.Table:
    columns = {name: [getattr(event, name) for _, _, event in events] for name in _TEXT}
    columns["window_start"] = [start for _, start, _ in events]
    columns["count"] = [event.count for _, _, event in events]
    columns["line"] = [line for line, _, _ in events]
    return pa.table(columns, schema=_SCHEMA)


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _none_if_empty(column) -> pa.Array:
    # As the per-line parser reads them: an empty text value is no value.
    column = _array(column)
    empty = pc.equal(pc.binary_length(column), 0)
    if pc.any(empty).as_py():
        column = pc.if_else(empty, pa.scalar(None, pa.string()), column)
    return column


def _codes(column) -> Tuple[np.ndarray, list]:
    """(per-row index into the distinct values, -1 for null; the distinct values)."""
    encoded = _array(column).dictionary_encode()
    return (pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64),
            encoded.dictionary.to_pylist())


def _valid(column: pa.Array) -> np.ndarray:
    return column.is_valid().to_numpy(zero_copy_only=False)


def _not_repeated(actor_codes, window, event_id, has_id, line) -> np.ndarray:
    """False for a row whose event_id came on an earlier line of the same account and window: a duplicate."""
    keep = np.ones(len(window), dtype=bool)
    if not has_id.any():
        return keep
    # Only a row whose id comes more than once in the range can repeat one: nearly always none, and
    # counting ids costs a fraction of grouping every row by account, window and id.
    counted = pc.value_counts(event_id)
    repeated = pc.filter(counted.field("values"), pc.greater(counted.field("counts"), 1))
    maybe = has_id & pc.fill_null(pc.is_in(event_id, value_set=repeated), False).to_numpy(zero_copy_only=False)
    if not maybe.any():
        return keep
    ids = pa.table({"a": actor_codes, "w": window, "e": event_id, "l": line}).filter(pa.array(maybe))
    firsts = ids.group_by(["a", "w", "e"], use_threads=False).aggregate([("l", "min")]).column("l_min")
    return ~maybe | np.isin(_array(line).to_numpy(), firsts.to_numpy())


def _smallest_per_window(codes: np.ndarray, values: list, counted: np.ndarray, starts: np.ndarray) -> list:
    """Per window, the smallest value among its counted rows (None if none): what `_first` keeps."""
    order = sorted(range(len(values)), key=values.__getitem__)
    rank = np.empty(len(values) + 1, dtype=np.int64)
    rank[order] = np.arange(len(values))
    rank[-1] = _NO_RANK  # code -1: null
    ranks = np.where(counted, rank[codes], _NO_RANK)
    in_order = [values[i] for i in order]
    return [None if r == _NO_RANK else in_order[r] for r in np.minimum.reduceat(ranks, starts).tolist()]


def _fold(table: pa.Table, windows_per_group: Counter, slice_ms: Optional[int],
          compressed: bool) -> Iterator[Tuple[str, int, bytes]]:
    actor_codes, actors = _codes(table.column("actor"))
    window = table.column("window_start").to_numpy()
    line = table.column("line").to_numpy()
    order = np.lexsort((line, window, actor_codes))
    table = table.take(pa.array(order))
    actor_codes, window = actor_codes[order], window[order]
    count = table.column("count").to_numpy()

    action_codes, actions = _codes(table.column("action"))
    kinds = np.array([kind_flags(action) for action in actions], dtype=np.int64).reshape(-1, 4)
    consult, search, export, create = kinds[action_codes].T
    bulk_kind = (search | export).astype(bool)
    touched = np.where(consult == 1, 1, np.where(bulk_kind, count, 0))

    event_id = _none_if_empty(table.column("event_id"))
    has_id = _valid(event_id)
    keep = _not_repeated(actor_codes, window, event_id, has_id, table.column("line"))

    n = len(window)
    change = np.ones(n, dtype=bool)
    change[1:] = (actor_codes[1:] != actor_codes[:-1]) | (window[1:] != window[:-1])
    starts = np.flatnonzero(change)
    kept = keep.astype(np.int64)
    sums = np.column_stack([
        np.add.reduceat(kept, starts), np.add.reduceat(touched * kept, starts),
        np.add.reduceat(consult * kept, starts), np.add.reduceat(search * kept, starts),
        np.add.reduceat(export * kept, starts), np.add.reduceat(create * kept, starts),
        np.add.reduceat(1 - kept, starts), np.maximum.reduceat(np.where(keep & bulk_kind, touched, 0), starts),
    ]).tolist()
    orgs = _smallest_per_window(*_codes(_none_if_empty(table.column("org"))), keep, starts)
    roles = _smallest_per_window(*_codes(_none_if_empty(table.column("actor_type"))), keep, starts)

    target = _none_if_empty(table.column("target"))
    has_target = _valid(target) & (create == 1)
    id_rows = np.flatnonzero(keep & has_id)
    ids = _RangeEventIds(event_id, id_rows, starts, touched, consult, search, export, create, has_target, target)
    record = _none_if_empty(table.column("record"))
    records = _per_window(record, np.flatnonzero(keep & (consult == 1) & _valid(record)), starts)
    created = _per_window(target, np.flatnonzero(keep & has_target), starts)

    window_starts = window[starts]
    window_actors = actor_codes[starts]
    # Each account's windows are in time order: a piece is one account's windows of one slice.
    piece = window_actors[1:] != window_actors[:-1]
    slices = window_starts - window_starts % slice_ms if slice_ms else np.zeros(len(starts), dtype=np.int64)
    piece |= slices[1:] != slices[:-1]
    piece_starts = np.flatnonzero(np.r_[True, piece]).tolist() + [len(starts)]
    slices = slices.tolist()
    window_starts = window_starts.tolist()
    record_values, record_bounds = records
    target_values, target_bounds = created
    for first, last in zip(piece_starts[:-1], piece_starts[1:]):
        actor = actors[window_actors[first]]
        for org, windows in Counter(orgs[first:last]).items():  # an account has one organisation, or a few
            windows_per_group[group_of(org, actor), actor] += windows
        column_created, column_records = [], []
        for w in range(first, last):
            a, b = target_bounds[w], target_bounds[w + 1]
            column_created.append(set(target_values[a:b]) if b > a else set())
            a, b = record_bounds[w], record_bounds[w + 1]
            column_records.append(_records_state(record_values[a:b]))
        yield actor, slices[first], pack_columns(
            window_starts[first:last], sums[first:last], ids.of_windows(first, last), column_created,
            column_records, orgs[first:last], roles[first:last], compressed)


class _RangeEventIds:
    """The kept rows' event ids, cut into each account's `EventIds` straight from pyarrow's buffers."""

    def __init__(self, event_id: pa.Array, rows: np.ndarray, starts: np.ndarray, touched, consult, search, export,
                 create, has_target, target):
        taken = event_id.take(pa.array(rows)) if len(rows) else pa.array([], pa.string())
        offsets = np.frombuffer(taken.buffers()[1], dtype=np.int32)[taken.offset:taken.offset + len(taken) + 1]
        self._offsets = offsets.astype(np.int64)
        self._data = taken.buffers()[2] if len(taken) else None
        self._bounds = np.searchsorted(rows, starts).tolist() + [len(rows)]
        self._kinds = contribution_kind(touched[rows], consult[rows], search[rows], export[rows], create[rows])
        named = np.flatnonzero(has_target[rows])
        self._named = named
        self._names = target.take(pa.array(rows[named])).to_pylist() if len(named) else []

    def of_windows(self, first: int, last: int) -> EventIds:
        """Windows first..last-1 (one account's, consecutive)."""
        bounds = self._bounds
        a, b = bounds[first], bounds[last]
        offsets = self._offsets
        text = self._data[int(offsets[a]):int(offsets[b])].to_pybytes() if b > a else b""
        targets = {}
        if len(self._named):
            lo, hi = np.searchsorted(self._named, (a, b)).tolist()
            targets = {int(i) - a: name for i, name in zip(self._named[lo:hi], self._names[lo:hi])}
        window_ends = [bound - a for bound in bounds[first + 1:last + 1]]
        return EventIds(text, small_ints(np.diff(offsets[a:b + 1])), window_ends, small_ints(self._kinds[a:b]), targets)


def _per_window(column: pa.Array, rows: np.ndarray, starts: np.ndarray) -> Tuple[list, list]:
    """(the column's values at `rows`, in order; per window w, its values are [bounds[w]:bounds[w + 1]])."""
    values = column.take(pa.array(rows)).to_pylist() if len(rows) else []
    bounds = np.searchsorted(rows, starts).tolist() + [len(rows)]
    return values, bounds


def _records_state(records: list) -> tuple:
    """`DistinctRecords.__getstate__` after adding `records` in order."""
    exact = set(records)
    if len(exact) <= EXACT_LIMIT:
        return exact, None, {}
    sketch = DistinctRecords()
    for record in records:
        sketch.add(record)
    return sketch.__getstate__()
