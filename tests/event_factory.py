"""Deterministic events for tests: fixed dates, seeded randomness, no wall clock."""

from __future__ import annotations

import random
from typing import Iterator, List

import orjson

from schemas.timestamps import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, format_rfc3339_ms

MONDAY_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z


def event(ts_ms: int, actor: str, action: str = "consult", **fields) -> dict:
    record = {"ts": format_rfc3339_ms(ts_ms), "actor": actor, "action": action}
    record.update(fields)
    return record


def office_days(actor: str, days: int, per_day: int, seed: int, actor_type: str = "advisor",
                org: str = "org-a", start_ms: int = MONDAY_MS) -> List[dict]:
    """An advisor consulting `per_day` records from a portfolio, 08:00-17:00 UTC, every day."""
    rnd = random.Random(f"{actor}-{seed}")
    out = []
    for day in range(days):
        for i in range(per_day):
            ts = start_ms + day * MS_PER_DAY + 8 * MS_PER_HOUR + rnd.randrange(9 * MS_PER_HOUR)
            out.append(event(ts, actor, record=f"rec-{rnd.randrange(300):04d}", org=org,
                             actor_type=actor_type, event_id=f"{actor}-{day}-{i}"))
    return out


def burst(actor: str, start_ms: int, records: int, every_ms: int, actor_type: str = "advisor",
          org: str = "org-a", first_record: int = 100_000) -> List[dict]:
    """One consult every `every_ms`: what a scraping script does."""
    return [
        event(start_ms + i * every_ms, actor, record=f"rec-{first_record + i}", org=org,
              actor_type=actor_type, event_id=f"{actor}-burst-{start_ms}-{i}")
        for i in range(records)
    ]


def to_lines(events: List[dict]) -> Iterator[bytes]:
    return (orjson.dumps(e) for e in events)


def write_jsonl(path, events: List[dict]) -> str:
    with open(path, "wb") as handle:
        for line in to_lines(events):
            handle.write(line + b"\n")
    return str(path)


__all__ = ["MONDAY_MS", "MS_PER_MINUTE", "MS_PER_HOUR", "MS_PER_DAY", "event", "office_days", "burst", "write_jsonl"]
