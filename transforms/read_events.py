"""Where events enter: JSON Lines files in, validated events and dead letters out."""

from __future__ import annotations

from typing import Iterable, NamedTuple, Tuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.metrics import Metrics

from schemas.dead_letter import UNREADABLE_FILE, DeadLetter
from schemas.event import AccessEvent
from transforms.event_parsing import DEFAULT_MAPPING, FieldMapping, Rejected, parse_event_line

METRICS_NAMESPACE = "guetteur"
DEAD_LETTER_TAG = "dead_letter"


class Unreadable(NamedTuple):
    """Where a file stopped being readable (a corrupt or truncated .gz): the rest of it becomes one dead letter."""

    detail: str


class ParseEventsFn(beam.DoFn):
    """Raw lines to timestamped AccessEvents; rejected lines to the dead-letter output."""

    def __init__(self, mapping: FieldMapping = DEFAULT_MAPPING):
        self._mapping = mapping
        self._lines = Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self._accepted = Metrics.counter(METRICS_NAMESPACE, "events_accepted")
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        self._by_reason = {}
        # Event-time position: the newest event time read so far (epoch ms), a
        # gauge so that every runner carries it; event-time lag is now minus this.
        self._position = Metrics.gauge(METRICS_NAMESPACE, "event_time_position_ms")
        self._newest_ms = 0

    def start_bundle(self):
        # Touched at 0 so that the series exists before the first bad line on runners whose metrics
        # reporter only shows a counter once it has been reported (Flink): a dead-letter share of 0
        # is a value, a missing series is "no data" on the dashboard and silence in the alert rules.
        self._rejected.inc(0)

    def _count_reason(self, reason: str) -> None:
        counter = self._by_reason.get(reason)
        if counter is None:
            counter = self._by_reason[reason] = Metrics.counter(METRICS_NAMESPACE, f"dead_lettered_{reason}")
        counter.inc()

    def process(self, element: Tuple[str, bytes]) -> Iterable:
        source, line = element
        self._lines.inc()
        try:
            if isinstance(line, Unreadable):
                raise Rejected(UNREADABLE_FILE, line.detail)
            event = parse_event_line(line, self._mapping)
        except Rejected as rejection:
            self._rejected.inc()
            self._count_reason(rejection.reason)
            raw = b"" if isinstance(line, Unreadable) else line
            yield pvalue.TaggedOutput(DEAD_LETTER_TAG, DeadLetter(rejection.reason, rejection.detail, source, raw))
            return
        self._accepted.inc()
        if event.ts_ms > self._newest_ms:
            self._newest_ms = event.ts_ms
            self._position.set(event.ts_ms)
        yield beam.window.TimestampedValue(event, event.ts_ms / 1000.0)


class ParseEvents(beam.PTransform):
    """(source, raw line) pairs -> events (main output) and dead letters."""

    def __init__(self, mapping: FieldMapping = DEFAULT_MAPPING):
        super().__init__()
        self._mapping = mapping

    def expand(self, lines):
        results = lines | "Validate" >> beam.ParDo(ParseEventsFn(self._mapping)).with_outputs(
            DEAD_LETTER_TAG, main="events"
        )
        events, dead_letters = results.events, results[DEAD_LETTER_TAG]
        events.element_type = AccessEvent
        dead_letters.element_type = DeadLetter
        return events, dead_letters


class _ReadRange(beam.DoFn):
    """A file range -> (path, line) for each line it owns, then (path, Unreadable) if the file broke off."""

    def process(self, file_range):
        from transforms.batch_ingest import _lines  # here, not above: batch_ingest builds on this module

        for line in _lines(file_range):
            yield file_range.path, line


class ReadEvents(beam.PTransform):
    """Events from JSON Lines files (a path or a glob; plain or .gz by extension).

    Lines are read as bytes so that invalid UTF-8 becomes a dead letter instead
    of a decode error that would fail the bundle, and files are read in the
    ranges of transforms/batch_ingest.py, so that a corrupt or truncated .gz
    becomes an `unreadable_file` dead letter (its lines before the damage are
    kept) instead of a failed job. Returns (events, dead_letters).
    """

    def __init__(self, file_pattern: str, mapping: FieldMapping = DEFAULT_MAPPING):
        super().__init__()
        self._file_pattern = file_pattern
        self._mapping = mapping

    def expand(self, pbegin):
        from transforms.batch_ingest import RANGE_BYTES, _SplitFiles  # see _ReadRange

        lines = (
            pbegin
            | "MatchFiles" >> fileio.MatchFiles(self._file_pattern)
            | "SplitFiles" >> beam.ParDo(_SplitFiles(RANGE_BYTES))
            | "Spread" >> beam.Reshuffle()
            | "ReadLines" >> beam.ParDo(_ReadRange())
        )
        return lines | "Parse" >> ParseEvents(self._mapping)
