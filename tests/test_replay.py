"""The replay producer's record times: the pipeline's watermark follows them (deploy/kafka-read/)."""

from __future__ import annotations

from pipelines.replay import timestamped
from tests.event_factory import MONDAY_MS, MS_PER_MINUTE, event, to_lines

BAD = [b"{not json", b'{"ts": "2026-03-02T10:00:00Z", "action": "consult"}']  # no time / not an event


def _times(lines):
    return [ts for _, ts in timestamped(lines)]


def test_lines_that_are_not_events_take_an_event_time_never_the_clock():
    first, second = (list(to_lines([event(MONDAY_MS + i * MS_PER_MINUTE, "acct-1")])) for i in (3, 5))
    # Leading: the first event's time; later: the time of the event before them.
    assert _times(BAD + first + BAD + second) == [MONDAY_MS + 3 * MS_PER_MINUTE] * 5 + [MONDAY_MS + 5 * MS_PER_MINUTE]
    lines = BAD + first
    assert [line for line, _ in timestamped(lines)] == lines  # order and content untouched


def test_an_earlier_event_keeps_its_own_time_and_a_bad_line_after_it_the_newest():
    late = list(to_lines([event(MONDAY_MS + 9 * MS_PER_MINUTE, "acct-1"), event(MONDAY_MS, "acct-2")]))
    assert _times(late + BAD[:1]) == [MONDAY_MS + 9 * MS_PER_MINUTE, MONDAY_MS, MONDAY_MS + 9 * MS_PER_MINUTE]


def test_without_any_event_the_broker_decides():
    assert _times(BAD) == [None, None]
