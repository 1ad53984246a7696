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


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp; ValueError if it is not one.

    An explicit offset is required: a local time without one would be placed
    in the wrong window by however many hours the producer is away from UTC.
    """
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
