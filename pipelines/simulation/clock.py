"""Time helpers for the simulator: epoch milliseconds, RFC 3339 formatting, Paris local time.

The simulator works in integer epoch milliseconds (UTC) throughout and only formats
timestamps when a line is written. Paris time is derived from the EU summer-time rule
rather than from a tz database so that output never depends on the host's tzdata.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

_EPOCH = dt.date(1970, 1, 1)


def date_to_ms(day: dt.date) -> int:
    """Epoch milliseconds of 00:00 UTC on `day`."""
    return (day - _EPOCH).days * DAY_MS


def _last_sunday(year: int, month: int) -> dt.date:
    # The last day of the month, then back to its Sunday (weekday 6).
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    last = next_month - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 6) % 7)


@lru_cache(maxsize=64)
def _summer_time_span_ms(year: int) -> tuple[int, int]:
    # EU rule: summer time from 01:00 UTC on the last Sunday of March
    # to 01:00 UTC on the last Sunday of October.
    begin = date_to_ms(_last_sunday(year, 3)) + HOUR_MS
    end = date_to_ms(_last_sunday(year, 10)) + HOUR_MS
    return begin, end


def paris_offset_ms(utc_ms: int) -> int:
    """Offset of Europe/Paris from UTC at the instant `utc_ms` (+1 h winter, +2 h summer)."""
    year = (_EPOCH + dt.timedelta(days=utc_ms // DAY_MS)).year
    begin, end = _summer_time_span_ms(year)
    return 2 * HOUR_MS if begin <= utc_ms < end else HOUR_MS


def paris_day_offset_ms(day: dt.date) -> int:
    """Paris offset valid for the working part of `day`.

    Clocks change at 02:00/03:00 local on a Sunday, so every hour anyone works on that
    date already has the new offset: sampling at noon is exact for working hours.
    """
    return paris_offset_ms(date_to_ms(day) + 12 * HOUR_MS)


@lru_cache(maxsize=4096)
def _day_prefix(day_index: int) -> str:
    return (_EPOCH + dt.timedelta(days=day_index)).isoformat() + "T"


# Lookup tables for "HH:MM:" and "SS.mmm": string formatting per event dominated generation time.
_MINUTE_OF_DAY = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]
_MILLI_OF_MINUTE = [f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(MINUTE_MS)]


def format_ts(utc_ms: int) -> str:
    """RFC 3339 UTC with milliseconds and `Z`, e.g. 2026-03-02T09:15:02.123Z."""
    day_index, rem = divmod(utc_ms, DAY_MS)
    minute, millis = divmod(rem, MINUTE_MS)
    return _day_prefix(day_index) + _MINUTE_OF_DAY[minute] + _MILLI_OF_MINUTE[millis]
