"""Malformed input lines, the kind a real log shipper lets through now and then.

A bad line is written *in addition to* the event that follows it (never instead of it),
so incident labels stay exact whatever the rate. Bad lines carry their own event ids
(`evt-<seed>-bad-NNNNNN`) so a lenient parser cannot mistake one for a real event.
"""

from __future__ import annotations

import math
import random
import sys
from typing import Any

import orjson

KINDS = ("not_json", "truncated_json", "missing_actor", "bad_ts", "negative_count")

_GARBAGE = (
    b"-- log shipper restarted --",
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"action=consult status=200 latency_ms=41",
    b"{not json at all",
    b"null",
)
_BAD_TS = ("2026-02-30T25:61:00Z", "yesterday", "", "03/02/2026 09:15", "2026-03-02T09:15:02.123+25:00")


class BadLines:
    def __init__(self, rng: random.Random, rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("bad_line_rate must be within [0, 1]")
        self._rng = rng
        self._rate = rate
        self._seed = seed
        self.count = 0
        self._countdown = self._gap()

    def _gap(self) -> int:
        # Geometric gap between bad lines: one draw per bad line instead of one per event.
        if self._rate <= 0.0:
            return sys.maxsize
        if self._rate >= 1.0:
            return 0
        return int(math.log(1.0 - self._rng.random()) / math.log1p(-self._rate))

    def due(self) -> bool:
        if self._countdown:
            self._countdown -= 1
            return False
        self._countdown = self._gap()
        return True

    def make(self, template: dict[str, Any]) -> bytes:
        """A malformed line shaped like `template` (the event it precedes)."""
        rng = self._rng
        self.count += 1
        kind = rng.choice(KINDS)
        if kind == "not_json":
            return rng.choice(_GARBAGE)
        bad = dict(template)
        bad["event_id"] = f"evt-{self._seed}-bad-{self.count:06d}"
        if kind == "truncated_json":
            raw = orjson.dumps(bad)
            return raw[: rng.randint(10, len(raw) - 2)]  # no closing brace: never valid JSON
        if kind == "missing_actor":
            del bad["actor"]
        elif kind == "bad_ts":
            bad["ts"] = rng.choice(_BAD_TS)
        else:
            bad.pop("record", None)
            bad.pop("target", None)
            bad["action"] = "search"
            bad["count"] = -rng.randint(1, 50)
        return orjson.dumps(bad)
