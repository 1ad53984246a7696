"""Event-time conversions shared by events, alerts and baselines.

The pipeline keeps time as integer epoch milliseconds UTC; only the edges
(parsing input, writing alerts) see RFC 3339 text.
"""

from __future__ import annotations

from datetime import datetime, timezone

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

# Plausible event times: anything outside is a corrupt clock, not an access.
MIN_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EVENT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


_HOUR_STARTS: dict = {}  # "2026-03-02T09" -> epoch ms: logs hold few distinct hours, and many lines each
_HOUR_CACHE_LIMIT = 1 << 16


def _hour_start_ms(prefix: str) -> int:
    start = _HOUR_STARTS.get(prefix)
    if start is None:
        start = _parse_with_datetime(prefix + ":00:00+00:00")
        if len(_HOUR_STARTS) >= _HOUR_CACHE_LIMIT:
            _HOUR_STARTS.clear()
        _HOUR_STARTS[prefix] = start
    return start


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp; ValueError if it is not one.

    An explicit offset is required: a local time without one would be placed
    in the wrong window by however many hours the producer is away from UTC.
    """
    # The shape nearly every log line has, `2026-03-02T09:15:02.123Z`, without building a datetime:
    # the hour is validated (and cached) by datetime, minutes, seconds and millis checked here.
    if len(text) == 24 and text[13] == ":" and text[16] == ":" and text[19] == "." and text[23] == "Z" \
            and text[10] == "T":
        tail = text[14:16] + text[17:19] + text[20:23]
        if tail.isascii() and tail.isdigit():
            minutes, seconds = int(tail[:2]), int(tail[2:4])
            if minutes < 60 and seconds < 60:
                return _hour_start_ms(text[:13]) + minutes * 60_000 + seconds * 1000 + int(tail[4:])
    return _parse_with_datetime(text)


def _parse_with_datetime(text: str) -> int:
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError("not an RFC 3339 date-time")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    seconds = parsed.timestamp()
    return int(seconds) * 1000 + parsed.microsecond // 1000


def format_rfc3339_ms(ms: int) -> str:
    """`2026-03-02T09:15:02.123Z` for epoch milliseconds."""
    seconds, millis = divmod(int(ms), 1000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def format_rfc3339(ms: int) -> str:
    """`2026-03-02T09:15:00Z` for epoch milliseconds on a whole second."""
    seconds = int(ms) // 1000
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
