"""Where events enter in a batch replay: files read in large ranges and folded on the spot.

Beam's per-element cost is paid per element, so a replay that makes every
line an element spends most of its time in the runner. Here one element is a
byte range of a file (32 MiB, or a whole compressed file): its lines are read
in blocks of a few MiB, validated a block at a time (pyarrow parses, numpy
checks: transforms/block_parsing.py, which hands every line it cannot prove
clean back to the per-line parser, in its place), and folded per account and
window column by column (transforms/column_fold.py), as `ActivityFold` would
line by line; only the folds — one element per range, holding each account's
windows packed apart — and the dead letters become elements.

Validation, dead-letter reasons and counters are exactly those of
`transforms/read_events.py`; a range owns every line that starts inside it, so
ranges never lose or repeat a line.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas.dead_letter import UNREADABLE_FILE, DeadLetter
from transforms.block_parsing import parse_block_columns
from transforms.column_fold import RangeRows
from transforms.event_parsing import DEFAULT_MAPPING, FieldMapping, Rejected, parse_event_line
from transforms.gc_pause import paused_gc
from transforms.read_events import DEAD_LETTER_TAG, METRICS_NAMESPACE, Unreadable
from transforms.spilled_folds import SLICE_MS, spill

RANGE_BYTES = 32 << 20
# Lines are validated in blocks of about this size (transforms/block_parsing.py).
BLOCK_BYTES = 1 << 20
BLOCK_LINES = 4096  # a compressed file's lines come one by one: blocks of this many
# Fold a range's rows early once it holds this many, to bound memory (a whole .gz file is one range).
MAX_FOLD_ROWS = 1 << 19
# The output of ((group, actor), windows) a range folded, summed into the work per organisation (scoring_slots.py).
WINDOWS_TAG = "windows_per_group"


class FileRange(NamedTuple):
    path: str
    start: int
    end: int  # -1: to the end (compressed files cannot be split)


def split_file(path: str, size: int, range_bytes: int = RANGE_BYTES) -> List[FileRange]:
    """A file's ranges: as many as `range_bytes` asks for, of equal sizes (a compressed file is one range).

    Equal rather than `range_bytes` each and a short last one: the ranges are spread over the
    workers, and a 240 MiB file cut into 7 ranges of 32 MiB and one of 16 kept one worker busy a
    whole range after the other had finished; 8 of 30 MiB split evenly between 2.
    """
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        return [FileRange(path, 0, -1)]
    count = max(1, -(-size // range_bytes))
    step = -(-max(size, 1) // count)
    return [FileRange(path, start, start + step) for start in range(0, max(size, 1), step)]


class _SplitFiles(beam.DoFn):
    def __init__(self, range_bytes: int):
        self._range_bytes = range_bytes

    def process(self, metadata) -> Iterable[FileRange]:
        yield from split_file(metadata.path, metadata.size_in_bytes, self._range_bytes)


def _lines(file_range: FileRange) -> Iterable[bytes]:
    """The lines that start inside the range, without their line ending; `Unreadable` last if reading failed.

    A read error (bad gzip header, corrupt deflate data, an I/O error) ends the
    range, not the job: the lines decoded before it are kept.
    """
    reader = _read_lines(file_range)
    lines = 0
    while True:
        try:
            line = next(reader)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 -- whatever the codec raises, the file is unreadable from here
            yield Unreadable(f"{type(err).__name__}: {str(err)[:200]} (after {lines} lines read from byte "
                             f"{file_range.start})")
            return
        lines += 1
        yield line


def _seek_first_line(handle, start: int) -> int:
    """Moves `handle` to the first line that starts at or after `start`, and returns that offset."""
    if start <= 0:
        return 0
    handle.seek(start - 1)
    # The line at `start` is ours only if the byte before it ends the previous line.
    previous = handle.read(1)
    return start if previous == b"\n" else start + len(handle.readline())


def _read_lines(file_range: FileRange) -> Iterable[bytes]:
    path, start, end = file_range
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        position = _seek_first_line(handle, start)
        while end < 0 or position < end:
            line = handle.readline()
            if not line:
                _check_complete(handle)
                return
            position += len(line)
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            yield line


def _blocks(file_range: FileRange, block_bytes: int = BLOCK_BYTES, block_lines: int = BLOCK_LINES) -> Iterable:
    """The range's lines in blocks: (data, None) for whole lines of an uncompressed file read as they are on
    disk, (data, lines) for lines a compressed file yielded one by one; `Unreadable` last if reading failed.

    The same lines as `_lines`: those that start inside the range.
    """
    if file_range.end >= 0 and CompressionTypes.detect_compression_type(file_range.path) == \
            CompressionTypes.UNCOMPRESSED:
        yield from _plain_blocks(file_range, block_bytes)
        return
    batch: list = []
    for line in _lines(file_range):
        if isinstance(line, Unreadable):
            if batch:
                yield b"\n".join(batch) + b"\n", batch
            yield line
            return
        batch.append(line)
        if len(batch) >= block_lines:
            yield b"\n".join(batch) + b"\n", batch
            batch = []
    if batch:
        yield b"\n".join(batch) + b"\n", batch


def _plain_blocks(file_range: FileRange, block_bytes: int) -> Iterable:
    path, start, end = file_range
    lines = 0
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            position = _seek_first_line(handle, start)  # where `carry` starts in the file
            carry = b""
            while position < end:
                chunk = handle.read(block_bytes)
                if not chunk:
                    if carry:  # a last line without a newline, started inside the range
                        lines += 1
                        yield carry, None
                    return
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                if position + cut > end:
                    # Ours: up to the end of the line holding byte end - 1.
                    cut = data.find(b"\n", end - 1 - position) + 1
                    block, carry = data[:cut], b""
                    position = end
                else:
                    block, carry = data[:cut], data[cut:]
                    position += cut
                lines += block.count(b"\n")
                yield block, None
    except Exception as err:  # noqa: BLE001 -- like _lines: the range ends, not the job
        yield Unreadable(f"{type(err).__name__}: {str(err)[:200]} (after {lines} lines read from byte {start})")


def _check_complete(handle) -> None:
    """Raise if a compressed file ended before its end-of-stream marker: Beam's reader takes a cut-off .gz silently.

    (Beam's CompressedFile keeps its decompressor private; zlib, bz2 and lzma
    decompressors say `eof` once the stream's end marker was read.)
    """
    decompressor = getattr(handle, "_decompressor", None)
    if decompressor is not None and not getattr(decompressor, "eof", True):
        raise EOFError("the compressed stream ends before its end marker: the file is truncated")


class _FoldRange(beam.DoFn):
    """One file range -> [(actor, its windows' folds packed by `batch_windows.pack_columns`), ...], plus dead
    letters and the windows it folded per group and account. With `spill_to`, each such list is written to a
    file of that directory instead, and the element is the file's path (transforms/spilled_folds.py)."""

    def __init__(self, window_ms: int, mapping: FieldMapping, block_bytes: int = BLOCK_BYTES,
                 block_lines: int = BLOCK_LINES, spill_to: Optional[str] = None):
        self._window_ms = window_ms
        self._mapping = mapping
        self._spill_to = spill_to
        self._block_bytes = block_bytes
        self._block_lines = block_lines

    def setup(self):
        self._lines = Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self._accepted = Metrics.counter(METRICS_NAMESPACE, "events_accepted")
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        self._position = Metrics.gauge(METRICS_NAMESPACE, "event_time_position_ms")
        self._by_reason: Dict[str, object] = {}
        self._newest_ms = 0  # across ranges: the position gauge never moves back

    def process(self, file_range: FileRange):
        with paused_gc():
            yield from self._fold(file_range)

    def _fold(self, file_range: FileRange):
        window_ms, mapping = self._window_ms, self._mapping
        rows = RangeRows()
        lines = accepted = 0
        rejected: Dict[str, int] = {}
        newest = self._newest_ms
        for item in _blocks(file_range, self._block_bytes, self._block_lines):
            if isinstance(item, Unreadable):
                lines += 1
                rejected[UNREADABLE_FILE] = rejected.get(UNREADABLE_FILE, 0) + 1
                yield pvalue.TaggedOutput(DEAD_LETTER_TAG, DeadLetter(UNREADABLE_FILE, item.detail, file_range.path, b""))
                continue
            block = parse_block_columns(item[0], window_ms, item[1])
            lines += len(block.fallback)
            newest = max(newest, block.newest_ms)
            first_line = rows.add_block(block)
            accepted += int(block.taken.sum())
            # The lines the block parser left, read one by one; a row keeps its line's place in the fold.
            for at, raw in enumerate(block.fallback):
                if raw is None:
                    continue
                try:
                    event = parse_event_line(raw, mapping)
                except Rejected as rejection:
                    rejected[rejection.reason] = rejected.get(rejection.reason, 0) + 1
                    yield pvalue.TaggedOutput(
                        DEAD_LETTER_TAG, DeadLetter(rejection.reason, rejection.detail, file_range.path, raw)
                    )
                    continue
                accepted += 1
                ts = event.ts_ms
                newest = max(newest, ts)
                rows.add_event(first_line + at, ts - ts % window_ms, event)
            if rows.size >= MAX_FOLD_ROWS:
                yield from self._one_element(rows)
        self._newest_ms = newest
        yield from self._one_element(rows)
        for group_and_actor, windows in rows.windows_per_group.items():
            yield pvalue.TaggedOutput(WINDOWS_TAG, (group_and_actor, windows))
        self._report(lines, accepted, rejected)

    def _one_element(self, rows: RangeRows) -> Iterable:
        """A range's folds as one element: Beam's cost is per element, and a range holds thousands of accounts."""
        if self._spill_to is not None:
            path = spill(self._spill_to, rows.fold(SLICE_MS, compressed=False))
            if path is not None:
                yield path
            return
        batch = [(actor, packed) for actor, _, packed in rows.fold()]
        if batch:
            yield batch

    def _report(self, lines: int, accepted: int, rejected: Dict[str, int]) -> None:
        self._lines.inc(lines)
        self._accepted.inc(accepted)
        self._rejected.inc(sum(rejected.values()))
        for reason, count in rejected.items():
            counter = self._by_reason.get(reason)
            if counter is None:
                counter = self._by_reason[reason] = Metrics.counter(METRICS_NAMESPACE, f"dead_lettered_{reason}")
            counter.inc(count)
        if self._newest_ms:
            self._position.set(self._newest_ms)


class FoldedFiles(NamedTuple):
    # per range, [(actor, its windows of the range, packed), ...], or the path of the file they were spilled to;
    # merged per account later
    folds: beam.PCollection
    dead_letters: beam.PCollection
    windows_per_group: beam.PCollection  # ((group, actor), windows): what each organisation will cost to score


class ReadAndFoldFiles(beam.PTransform):
    """JSON Lines files (path or glob; plain or .gz) -> `FoldedFiles`: per-range folds of each account, dead
    letters, and the windows folded per organisation.

    An account's window may be split across ranges: `batch_windows.merge_account_windows` puts it back together.
    With `spill_to` (a `spilled_folds.scratch_directory()`, for the local runner's workers), the folds are spilled
    there and the paths of their files are the elements.
    """

    def __init__(self, file_pattern: str, window_minutes: int, mapping: FieldMapping = DEFAULT_MAPPING,
                 range_bytes: int = RANGE_BYTES, spill_to: Optional[str] = None):
        super().__init__()
        self._file_pattern = file_pattern
        self._window_ms = window_minutes * 60_000
        self._mapping = mapping
        self._range_bytes = range_bytes
        self._spill_to = spill_to

    def expand(self, pbegin):
        results = (
            pbegin
            | "MatchFiles" >> fileio.MatchFiles(self._file_pattern)
            | "SplitFiles" >> beam.ParDo(_SplitFiles(self._range_bytes))
            # Ranges are few and heavy: spread them over workers before reading.
            | "Spread" >> beam.Reshuffle()
            | "FoldRanges" >> beam.ParDo(
                _FoldRange(self._window_ms, self._mapping, spill_to=self._spill_to)
            ).with_outputs(DEAD_LETTER_TAG, WINDOWS_TAG, main="folds")
        )
        results.folds.element_type = str if self._spill_to else beam.typehints.List[beam.typehints.Tuple[str, bytes]]
        dead_letters = results[DEAD_LETTER_TAG]
        dead_letters.element_type = DeadLetter
        windows = results[WINDOWS_TAG]
        windows.element_type = beam.typehints.KV[beam.typehints.Tuple[str, str], int]
        return FoldedFiles(results.folds, dead_letters, windows)
