"""Many lines validated at once: pyarrow parses a block, numpy checks its columns.

`transforms/event_parsing.py` stays the one definition of what a valid line
is. This module only takes the rows it can prove that parser would accept
*and read the same way*, and hands every other line back to it, so a bad
line keeps its exact dead-letter reason and detail, and an unusual but valid
line (an integer timestamp, a float count, an ECS object, a BOM, a CRLF
ending...) is still read by the per-line parser, in its place in the order.

A row is taken here only when all of these hold, which is why each is there:

- the line is printable ASCII, or the whole block is valid UTF-8, and holds no
  control character and no backslash: no escapes, so no lone surrogates, no
  escaped key that pyarrow and orjson would decode differently;
- it starts with `{` and ends with `}`, is at most 2,000 bytes (orjson refuses
  nesting deeper than 1,024, which needs more bytes than that) and has no
  `NaN`/`Infinity` (pyarrow accepts them in fields it ignores, orjson never);
- pyarrow parses the candidate lines into exactly one row each with the
  contract's columns typed as strings (count as an integer): a number where a
  string is expected, a repeated field, two objects on a line... fail the
  parse or the row count, and the lines are then split in halves until the
  offending ones are isolated and read one by one;
- its values pass the same checks as the per-line parser: a timestamp of the
  exact shape `2026-03-02T09:15:02.123Z` (its hour validated by the same
  cached function), a non-blank actor of at most 256 bytes that starts with a
  visible ASCII character, a non-empty action, a count in range, and text
  fields short enough never to be truncated.

Empty text values read as None, as in the per-line parser.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from schemas.timestamps import MAX_EVENT_MS, MIN_EVENT_MS, _hour_start_ms
from transforms.event_parsing import MAX_ACTOR_CHARS, MAX_COUNT, MAX_TEXT_CHARS, OPTIONAL_TEXT_FIELDS

MAX_CANDIDATE_BYTES = 2000  # below 2 x orjson's nesting limit of 1,024: no line this short nests too deep
MIN_SPLIT_ROWS = 16  # a failing group of lines this small is read line by line
MIN_PIECE_ROWS = 256  # after a refused line, the rest is parsed in pieces of at least this many lines
# A refused parse still costs a good part of a successful one: once the lines of refused parses add up to
# this many times the block, what pyarrow has not taken yet is all read line by line.
MAX_WASTED_PARSES = 2

_TEXT = pa.string()
_SCHEMA = pa.schema(
    [("ts", _TEXT), ("actor", _TEXT), ("action", _TEXT), ("count", pa.int64())]
    + [(name, _TEXT) for name in OPTIONAL_TEXT_FIELDS]
)
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
# Fields the fold reads; app, ip, ua and session are parsed only so that their types are checked.
FOLDED_TEXT_FIELDS = ("record", "target", "org", "actor_type", "event_id")

_TEXT_TS = b'{"ts":"'
_NEWLINE, _RETURN, _OPEN, _CLOSE, _BACKSLASH = 10, 13, ord("{"), ord("}"), ord("\\")
# `YYYY-MM-DDTHH:MM:SS.mmmZ`: which byte holds a digit, and the punctuation elsewhere.
_TS_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22])
_TS_PUNCTUATION = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 23: "Z"}


class Block(NamedTuple):
    """The rows of a block, in order. `fallback[i]` is the raw line when row i is left to the per-line parser,
    else None and the columns hold row i's validated values (window start included)."""

    fallback: List[Optional[bytes]]
    window_start: List[int]
    actor: List[str]
    action: List[str]
    count: List[int]
    record: List[Optional[str]]
    target: List[Optional[str]]
    org: List[Optional[str]]
    actor_type: List[Optional[str]]
    event_id: List[Optional[str]]
    newest_ms: int  # the newest timestamp among the rows read here, 0 if none


def line_bounds(data: bytes):
    """(bytes, starts, ends) of the lines in `data`, as the per-line reader yields them: a line ends before its
    `\n`, and before a `\r` right in front of that `\n`; a last line without `\n` keeps all its bytes."""
    array = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(array == _NEWLINE)
    starts = np.empty(len(newlines) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines + 1
    ends = newlines.astype(np.int64)
    if len(newlines):
        crlf = array[np.maximum(newlines - 1, 0)] == _RETURN
        crlf &= newlines > starts[:-1]  # the \r must be inside this line
        ends -= crlf
    if starts[-1] == len(data):  # data ends with a newline: no last unterminated line
        starts = starts[:-1]
    else:
        ends = np.append(ends, len(data))
    return array, starts, ends


def _lines_holding(array: np.ndarray, starts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices of the lines that hold at least one byte where `mask` is set."""
    positions = np.flatnonzero(mask)
    return np.unique(np.searchsorted(starts, positions, side="right") - 1)


def _candidates(data: bytes, array, starts, ends) -> np.ndarray:
    """Which lines may be read as a block (see the module docstring); the others go line by line."""
    n = len(starts)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return ok
    lengths = ends - starts
    nonempty = lengths > 0
    ok[nonempty] = (array[starts[nonempty]] == _OPEN) & (array[ends[nonempty] - 1] == _CLOSE)
    ok &= lengths <= MAX_CANDIDATE_BYTES
    # Control characters (tab, NUL, a CR inside a line...), the line endings aside.
    control = array < 0x20
    control[array == _NEWLINE] = False
    inside = ends[ends < len(array)]
    control[inside[array[inside] == _RETURN]] = False
    if control.any():
        ok[_lines_holding(array, starts, control)] = False
    if b"\\" in data:
        ok[_lines_holding(array, starts, array == _BACKSLASH)] = False
    for word in (b"NaN", b"Infinity"):
        if word in data:
            at = data.find(word)
            while at >= 0:
                ok[np.searchsorted(starts, at, side="right") - 1] = False
                at = data.find(word, at + 1)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            ok[_lines_holding(array, starts, array >= 0x80)] = False
    # A line whose timestamp is not text (epoch milliseconds) or that has none (the ECS form) would only
    # make pyarrow refuse or leave it: found here, cheaply, rather than by a refused parse. Most lines
    # start with it; the others are searched one by one.
    text_ts = ok & (lengths >= len(_TEXT_TS))
    for at, byte in enumerate(_TEXT_TS):
        text_ts[text_ts] &= array[starts[text_ts] + at] == byte
    for i in np.flatnonzero(ok & ~text_ts).tolist():
        ok[i] = data.find(_TEXT_TS[1:], starts[i], ends[i]) >= 0
    return ok


_ROW_OF_ERROR = re.compile(r" in row (\d+)")


def _parse(buffer, rows: int):
    """(table, None) for `rows` lines, one row each; else (None, the row pyarrow names as wrong, if it does)."""
    try:
        table = pj.read_json(
            pa.py_buffer(buffer),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(buffer) + 1),
            parse_options=_PARSE_OPTIONS,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        found = _ROW_OF_ERROR.search(str(err))
        row = int(found.group(1)) if found else None
        return None, row if row is not None and row < rows else None
    return (table, None) if table.num_rows == rows else (None, None)


def _parse_lines(data: bytes, starts: np.ndarray, n: int, refused: list) -> list:
    """Tables for lines 0..n-1 of `data`, in order, one row per line; lines pyarrow refuses get rows of nulls
    and are listed in `refused` (the per-line parser reads them).

    A refused group is cut at the row pyarrow names, or halved when it names none, until its bad lines
    stand alone. Past MAX_WASTED_PARSES blocks' worth of refused parses the trouble is systematic (every
    timestamp an integer, say) or dense, and the lines still unresolved all go to the per-line parser.
    """
    tables: list = []
    wasted = 0
    view = memoryview(data)
    pending = [(0, n, False)]  # (first, last, refuse): line groups still to read, in order (last is next)
    while pending:
        first, last, refuse = pending.pop()
        if first >= last:
            continue
        if refuse or wasted > MAX_WASTED_PARSES * n:
            tables.append(_nulls(last - first))
            refused.extend(range(first, last))
            continue
        end = int(starts[last]) if last < len(starts) else len(data)
        table, bad_row = _parse(view[int(starts[first]):end], last - first)
        if table is not None:
            tables.append(table)
            continue
        wasted += last - first
        if bad_row is not None:
            # The lines before it parse; it goes line by line; the rest is tried again in pieces a few times
            # the distance to this bad line, so that the next one refuses a piece rather than all the rest.
            bad = first + bad_row
            piece = max(MIN_PIECE_ROWS, 4 * (bad_row + 1))
            pending += [(start, min(start + piece, last), False) for start in range(bad + 1, last, piece)][::-1]
            pending += [(bad, bad + 1, True), (first, bad, False)]
        elif last - first <= MIN_SPLIT_ROWS:
            pending.append((first, last, True))
        else:
            middle = (first + last) // 2
            pending += [(middle, last, False), (first, middle, False)]
    return tables


def _nulls(rows: int) -> pa.Table:
    return pa.table({field.name: pa.nulls(rows, field.type) for field in _SCHEMA})


def _timestamps(column: pa.ChunkedArray):
    """(epoch ms, valid) for a string column: valid only for the exact `...T09:15:02.123Z` shape in range."""
    n = len(column)
    ms = np.zeros(n, dtype=np.int64)
    array = column.combine_chunks()
    shaped = pc.fill_null(pc.equal(pc.binary_length(array), 24), False).to_numpy(zero_copy_only=False)
    if not shaped.any():
        return ms, shaped
    fixed = array.filter(pa.array(shaped))
    offsets = np.frombuffer(fixed.buffers()[1], dtype=np.int32)[fixed.offset:fixed.offset + len(fixed) + 1]
    data = np.frombuffer(fixed.buffers()[2], dtype=np.uint8)
    text = data[offsets[0]:offsets[0] + 24 * len(fixed)].reshape(len(fixed), 24)
    digits = text[:, _TS_DIGITS].astype(np.int64) - ord("0")
    good = ((digits >= 0) & (digits <= 9)).all(axis=1)
    for at, char in _TS_PUNCTUATION.items():
        good &= text[:, at] == ord(char)
    minutes = digits[:, 10] * 10 + digits[:, 11]
    seconds = digits[:, 12] * 10 + digits[:, 13]
    millis = digits[:, 14] * 100 + digits[:, 15] * 10 + digits[:, 16]
    good &= (minutes < 60) & (seconds < 60)
    # The hour, `2026-03-02T09`, is checked and converted by the per-line parser's own cached function.
    hour_keys = np.where(good, digits[:, :10] @ (10 ** np.arange(9, -1, -1, dtype=np.int64)), -1)
    unique_keys, firsts, inverse = np.unique(hour_keys, return_index=True, return_inverse=True)
    hour_ms = np.zeros(len(unique_keys), dtype=np.int64)
    hour_ok = np.zeros(len(unique_keys), dtype=bool)
    for index, (key, first) in enumerate(zip(unique_keys.tolist(), firsts.tolist())):
        if key < 0:
            continue
        try:
            hour_ms[index] = _hour_start_ms(bytes(text[first, :13]).decode("ascii"))
            hour_ok[index] = True
        except (ValueError, OverflowError):
            pass
    good &= hour_ok[inverse]
    values = hour_ms[inverse] + minutes * 60_000 + seconds * 1000 + millis
    good &= (values >= MIN_EVENT_MS) & (values < MAX_EVENT_MS)
    where = np.flatnonzero(shaped)
    ms[where] = values
    valid = np.zeros(n, dtype=bool)
    valid[where] = good
    return ms, valid


def _byte_lengths(column) -> np.ndarray:
    return pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)


def _strings(column, few: bool) -> list:
    """A string column as a list, "" and nulls as None; `few` distinct values are shared, not copied per row."""
    array = column.combine_chunks()
    if few:
        encoded = array.dictionary_encode()
        values = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
        values[:-1][values[:-1] == ""] = None
        indices = pc.fill_null(encoded.indices, len(values) - 1).to_numpy(zero_copy_only=False)
        return values[indices].tolist()
    empty = pc.equal(pc.binary_length(array), 0)
    if pc.any(empty).as_py():
        array = pc.if_else(empty, pa.scalar(None, _TEXT), array)
    return array.to_numpy(zero_copy_only=False).tolist()


def _validate(table: pa.Table, window_ms: int):
    """(valid mask, window starts, ms) of the parsed rows."""
    ms, valid = _timestamps(table.column("ts"))
    actor = table.column("actor").combine_chunks()
    actor_bytes = _byte_lengths(actor)
    valid &= (actor_bytes >= 1) & (actor_bytes <= MAX_ACTOR_CHARS)
    if valid.any():
        # A first byte that is visible ASCII: str.strip() cannot empty the actor.
        offsets = np.frombuffer(actor.buffers()[1], dtype=np.int32)[actor.offset:actor.offset + len(actor)]
        data = np.frombuffer(actor.buffers()[2], dtype=np.uint8) if actor.buffers()[2] is not None else None
        first = np.zeros(len(actor), dtype=np.uint8)
        if data is not None and len(data):
            first[actor_bytes > 0] = data[offsets[actor_bytes > 0]]
        valid &= (first > 0x20) & (first < 0x7F)
    valid &= _byte_lengths(table.column("action")) >= 1
    count = table.column("count").combine_chunks()
    counts = pc.fill_null(count, 1).to_numpy(zero_copy_only=False)
    valid &= (counts >= 1) & (counts <= MAX_COUNT)
    for name in OPTIONAL_TEXT_FIELDS:
        # Bytes >= characters: under the limit in bytes, never truncated.
        valid &= _byte_lengths(table.column(name)) <= MAX_TEXT_CHARS
    return valid, ms - ms % window_ms, ms, counts


class ColumnBlock(NamedTuple):
    """A block's rows as columns. Row i was validated here when `taken[i]`; else `fallback[i]` is its raw line,
    for the per-line parser. `table` holds every row (nulls where pyarrow refused one); the numpy columns are
    meaningful where taken."""

    fallback: List[Optional[bytes]]
    taken: np.ndarray
    table: Optional[pa.Table]
    window_start: np.ndarray
    count: np.ndarray
    newest_ms: int


def parse_block_columns(data: bytes, window_ms: int, lines: Optional[List[bytes]] = None) -> ColumnBlock:
    """The rows of `data` (whole lines), each either validated here or left to the per-line parser.

    `lines`, when given, are the lines as a reader already yielded them (line endings gone) and `data`
    is them joined by `\n`: a fallback row is then handed over exactly as that reader gave it.
    """
    array, starts, ends = line_bounds(data)
    n = len(starts)
    candidates = _candidates(data, array, starts, ends)
    if n and not candidates.all():
        # Lines left to the per-line parser become `{}` and blanks: still one row each, a row of nulls.
        padded = bytearray(data)
        for i in reversed(np.flatnonzero(~candidates).tolist()):  # from the end: a short line grows to 2 bytes
            padded[starts[i]:ends[i]] = b"{}".ljust(ends[i] - starts[i], b" ") if ends[i] - starts[i] >= 2 else b"{}"
        data_for_arrow = bytes(padded)
        array, starts_arrow, _ = line_bounds(data_for_arrow)
    else:
        data_for_arrow, starts_arrow = data, starts
    if n and not data_for_arrow.endswith(b"\n"):
        data_for_arrow += b"\n"
    refused: list = []
    if not candidates.any():
        # Nothing for pyarrow (epoch-millisecond timestamps, the ECS form...): all line by line.
        tables = [_nulls(n)] if n else []
    else:
        tables = _parse_lines(data_for_arrow, starts_arrow, n, refused) if n else []

    newest = 0
    taken = np.zeros(n, dtype=bool)
    table = None
    window_starts = counts = np.zeros(n, dtype=np.int64)
    if n:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        valid, window_starts, ms, counts = _validate(table, window_ms)
        valid &= candidates
        taken = valid
        if valid.any():
            newest = int(ms[valid].max())
    fallback: List[Optional[bytes]] = [None] * n
    left = np.flatnonzero(~taken).tolist()
    if lines is not None:
        for i in left:
            fallback[i] = lines[i]
    elif left:
        line_starts, line_ends = starts[left].tolist(), ends[left].tolist()
        for i, start, end in zip(left, line_starts, line_ends):
            fallback[i] = data[start:end]
    return ColumnBlock(fallback, taken, table, window_starts, counts, newest)


def parse_block(data: bytes, window_ms: int, lines: Optional[List[bytes]] = None) -> Block:
    """`parse_block_columns`, its columns as Python lists: the values the per-line parser would read."""
    block = parse_block_columns(data, window_ms, lines)
    if block.table is None:
        columns = {name: [] for name in ("actor", "action") + FOLDED_TEXT_FIELDS}
    else:
        columns = {name: _strings(block.table.column(name), few=True) for name in ("actor", "action", "org",
                                                                                   "actor_type")}
        columns.update({name: _strings(block.table.column(name), few=False) for name in ("record", "target",
                                                                                        "event_id")})
    return Block(block.fallback, block.window_start.tolist(), columns["actor"], columns["action"],
                 block.count.tolist(), columns["record"], columns["target"], columns["org"], columns["actor_type"],
                 columns["event_id"], block.newest_ms)
