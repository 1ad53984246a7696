"""One account's working memory while its organisation's windows are replayed.

A mutable mirror of `schemas.baseline.AccountState`: the detector loads it once
per flush, updates it window by window, and writes it back as a Row. Rolling
sums over the last hour and day are kept incrementally, so scoring a window
costs the same whether an account was idle or read all day.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Deque, Dict, List, Optional

from schemas.baseline import PEAK_SLOTS, AccountBaseline, AccountState, OpenIncident, WindowPoint
from schemas.timestamps import MS_PER_DAY, MS_PER_HOUR
from transforms.record_sketches import Portfolio

# WindowPoint fields summed over rolling spans.
RECORDS, NOVEL, CREATIONS, CHILD_RECORDS = range(4)


class AccountModel:
    __slots__ = (
        "actor", "group", "actor_type", "_active_days", "history_days", "current_day", "last_window_end_ms", "peaks",
        "day_start_peaks", "typical_1h", "pace_today", "hours_seen", "hours_pending", "hours_today", "portfolio", "created_by", "created_at_ms", "recent", "day_sums",
        "children", "incidents", "_hour", "_hour_sums", "_hour_since",
    )

    def __init__(self, actor: str, group: str, actor_type: Optional[str]):
        self.actor = actor
        self.group = group
        self.actor_type = actor_type
        self.active_days = 0  # sets history_days too
        self.current_day = -1
        self.last_window_end_ms = 0
        self.peaks: List[float] = [0.0] * len(PEAK_SLOTS)
        self.day_start_peaks: List[float] = [0.0] * len(PEAK_SLOTS)
        self.typical_1h = 0.0
        self.pace_today = [0.0, 0.0]
        self.hours_seen = 0
        self.hours_pending = 0
        self.hours_today = 0
        self.portfolio = Portfolio()
        self.created_by: Optional[str] = None
        self.created_at_ms = 0
        self.recent: Deque[WindowPoint] = deque()  # ordered by start_ms, the last day only
        self.day_sums = [0, 0, 0, 0]  # sums of `recent`, per WindowPoint measure
        # The points starting at or after `_hour_since`, and their sums: the last hour as last asked.
        # None until asked, and again after a late point was inserted out of order.
        self._hour: Optional[Deque[WindowPoint]] = None
        self._hour_sums = [0, 0, 0, 0]
        self._hour_since = 0
        self.children: List[str] = []
        self.incidents: Dict[str, OpenIncident] = {}

    # -- Row conversion -------------------------------------------------------------------------

    @classmethod
    def from_baseline(cls, baseline: AccountBaseline) -> "AccountModel":
        model = cls(baseline.actor, baseline.group, baseline.actor_type)
        model.active_days = baseline.active_days
        model.current_day = baseline.current_day
        model.last_window_end_ms = baseline.last_window_end_ms
        model.peaks = list(baseline.peaks)
        model.day_start_peaks = list(baseline.day_start_peaks)
        model.typical_1h = baseline.typical_1h
        model.pace_today = list(baseline.pace_today)
        model.hours_seen = baseline.hours_seen
        model.hours_pending = baseline.hours_pending
        model.hours_today = baseline.hours_today
        model.portfolio = Portfolio(baseline.portfolio)
        model.created_by = baseline.created_by
        model.created_at_ms = baseline.created_at_ms
        return model

    @classmethod
    def from_state(cls, state: AccountState) -> "AccountModel":
        model = cls.from_baseline(state.baseline)
        for point in state.recent:
            model._append(point)
        model.children = list(state.children)
        model.incidents = {incident.rule: incident for incident in state.incidents}
        return model

    def baseline(self) -> AccountBaseline:
        return AccountBaseline(
            actor=self.actor,
            group=self.group,
            actor_type=self.actor_type,
            active_days=self.active_days,
            current_day=self.current_day,
            last_window_end_ms=self.last_window_end_ms,
            peaks=[round(p, 4) for p in self.peaks],
            day_start_peaks=[round(p, 4) for p in self.day_start_peaks],
            typical_1h=round(self.typical_1h, 4),
            pace_today=[round(v, 4) for v in self.pace_today],
            hours_seen=self.hours_seen,
            hours_pending=self.hours_pending,
            hours_today=self.hours_today,
            portfolio=self.portfolio.to_bytes(),
            created_by=self.created_by,
            created_at_ms=self.created_at_ms,
        )

    def to_state(self) -> AccountState:
        return AccountState(
            baseline=self.baseline(),
            recent=list(self.recent),
            children=list(self.children),
            incidents=[self.incidents[rule] for rule in sorted(self.incidents)],
        )

    # -- history --------------------------------------------------------------------------------

    @property
    def active_days(self) -> int:
        return self._active_days

    @active_days.setter
    def active_days(self, days: int) -> None:
        # history_days is read several times per window and scored account: kept, not recomputed.
        self._active_days = days
        self.history_days = max(0, days - 1)  # completed active days: the day being scored is not history yet

    def trust(self, trust_days: int) -> float:
        return 1.0 if trust_days <= 0 else min(1.0, self.history_days / trust_days)

    # -- rolling sums ---------------------------------------------------------------------------

    def _append(self, point: WindowPoint) -> None:
        recent = self.recent
        if recent and point.start_ms < recent[-1].start_ms:
            # A late window: keep the order the rolling sums rely on.
            points = list(recent)
            bisect.insort(points, point, key=lambda p: p.start_ms)
            self.recent = deque(points)
            self._hour = None
        else:
            recent.append(point)
            hour = self._hour
            if hour is not None and point.start_ms >= self._hour_since:
                hour.append(point)
                sums = self._hour_sums
                sums[0] += point[1]
                sums[1] += point[2]
                sums[2] += point[3]
                sums[3] += point[4]
        day = self.day_sums
        day[0] += point[1]
        day[1] += point[2]
        day[2] += point[3]
        day[3] += point[4]

    def add_point(self, point: WindowPoint, window_end_ms: int) -> None:
        """Remember a window, and forget those that started more than a day before its end."""
        self._append(point)
        start_ms = window_end_ms - MS_PER_DAY
        recent = self.recent
        day = self.day_sums
        while recent and recent[0].start_ms < start_ms:
            old = recent.popleft()
            day[0] -= old[1]
            day[1] -= old[2]
            day[2] -= old[3]
            day[3] -= old[4]

    def hour_sum(self, measure: int, window_end_ms: int, span_ms: int = MS_PER_HOUR) -> int:
        """Sum of `measure` over the windows starting in [end - span, end) (span at most a day)."""
        if span_ms == MS_PER_HOUR:
            return self.hour_sums(window_end_ms)[measure]
        return self._scan(window_end_ms - span_ms, window_end_ms)[measure]

    def hour_sums(self, window_end_ms: int) -> List[int]:
        """Every measure summed over the hour ending at `window_end_ms`.

        Asked for every window, and for every active colleague at every new window end (the
        organisation's lift), with ends that only move forward in a replay: the hour's points are
        kept, and the hour moves by dropping the points it leaves. An end further back (a late
        window), or one before points already kept, is summed from the day's points.
        """
        since = window_end_ms - MS_PER_HOUR
        hour = self._hour
        if hour is None or since < self._hour_since:
            if hour is not None:
                return self._scan(since, window_end_ms)
            hour = self._hour = deque(p for p in self.recent if p.start_ms >= since)
            self._hour_sums = [sum(p[1 + measure] for p in hour) for measure in range(4)]
            self._hour_since = since
        elif since > self._hour_since:
            sums = self._hour_sums
            while hour and hour[0].start_ms < since:
                old = hour.popleft()
                sums[0] -= old[1]
                sums[1] -= old[2]
                sums[2] -= old[3]
                sums[3] -= old[4]
            self._hour_since = since
        if hour and hour[-1].start_ms >= window_end_ms:
            return self._scan(since, window_end_ms)
        return list(self._hour_sums)

    def _scan(self, since: int, window_end_ms: int) -> List[int]:
        """Every measure summed over the day's points starting in [since, window_end_ms)."""
        sums = [0, 0, 0, 0]
        for point in reversed(self.recent):
            start = point.start_ms
            if start < since:
                break
            if start < window_end_ms:
                sums[0] += point[1]
                sums[1] += point[2]
                sums[2] += point[3]
                sums[3] += point[4]
        return sums

    def day_sum(self, measure: int) -> int:
        return self.day_sums[measure]

    def active_within(self, window_end_ms: int, span_ms: int) -> bool:
        return bool(self.recent) and self.recent[-1].start_ms >= window_end_ms - span_ms
