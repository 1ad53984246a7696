"""Where a consultation-volume alert is decided for one account and window.

Measured at three scales at once (the 5-minute window, the rolling hour and
the rolling day); as records read at night, at hours the account never works,
over the last 6 hours; and, once its portfolio is known, as records the
account never opened before in the last 15 minutes, hour and 3 hours. The
worst of these decides; a score is the ratio to its threshold, so 1.0 is the
edge and 10 means ten times past it.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

from schemas.alert import Expectation
from schemas.baseline import PEAK_NOVEL_1H, VOLUME_PEAKS
from schemas.timestamps import MS_PER_HOUR
from transforms.account_model import NOVEL
from transforms.baselines import blended_usual, expectation, hour_slot, threshold_of
from transforms.detection_config import NOVELTY_SPANS, VOLUME_SCALES, DetectionConfig
from transforms.peer_groups import DEFAULT_WORKING_HOURS, is_off_hours

RULE = "consultation_volume"
UNITS = {"5m": "records per 5 min", "1h": "records per 1 h", "1d": "records per 24 h"}
OFF_HOURS_SPAN_MS = 6 * MS_PER_HOUR


class Finding(NamedTuple):
    """One measure that crossed its threshold in a window."""

    rule: str
    measure: str  # records_5m, records_1h, records_1d, novel_records_1h, accounts_created_1h, ...
    span_minutes: int  # how far back the measure reaches
    observed: int
    score: float
    expected: Expectation


def worst(findings: List[Finding]) -> Optional[Finding]:
    crossing = [f for f in findings if f.score > 1.0]
    return max(crossing, key=lambda f: (f.score, f.measure)) if crossing else None


def assess_consultation(context, volumes: dict, novel_1h: Optional[int]) -> Optional[Finding]:
    """The worst crossing among the volume scales and novelty, or None.

    Nearly every window crosses nothing, so each measure is first screened against its bare
    threshold — the very arithmetic of `_assess`, with the settings read once — and only a window
    where one crosses is assessed in full. (The peers' levels are asked exactly as `_assess` asks them:
    the first asker of the day fills their cache.)
    """
    config: DetectionConfig = context.config
    volume = config.volume
    model = context.model
    trust_days = volume.trust_days
    trust = 1.0 if trust_days <= 0 else min(1.0, model.history_days / trust_days)
    prior = config.role_prior(model.actor_type)
    factor, floor_factor = context.factor, context.floor_factor
    off_hours = "off_hours" in context.adjustments
    peaks = model.peaks
    for scale, minutes, slot, floor, multiplier, prior_records in _volume_settings(volume, prior):
        peers = context.peer_peak(slot)
        usual = trust * peaks[slot] + (1.0 - trust) * (peers if peers is not None else prior_records)
        if minutes >= 1440 and off_hours:
            bare = max(floor * (floor_factor * volume.off_hours_floor_divisor),
                       multiplier * usual * (factor * volume.off_hours_divisor))
        else:
            bare = max(floor * floor_factor, multiplier * usual * factor)
        if _crosses(volumes[scale], bare):
            return _assess(context, volumes, novel_1h)
    if off_hours and _crosses(off_hours_records(context), volume.off_hours_floor_6h):
        return _assess(context, volumes, novel_1h)
    if novel_1h is not None:
        novelty = config.novelty
        novelty_prior = novelty.floor_1h / novelty.multiplier
        for span, minutes in NOVELTY_SPANS:
            day_start = _novelty_as_of_day_start(trust, minutes)
            learned = model.day_start_peaks[PEAK_NOVEL_1H] if day_start else peaks[PEAK_NOVEL_1H]
            usual = trust * learned + (1.0 - trust) * novelty_prior
            floor = novelty.floor(span) * (2.0 - trust)
            bare = max(floor * floor_factor, novelty.multiplier_for(span) * usual * factor)
            # Novel counts are never negative, so the last 15 minutes hold at most the hour's, and the last
            # 3 hours at most the day's: when that bound is far below the bar, the sum need not be walked.
            bound = novel_1h if minutes <= 60 else model.day_sums[NOVEL]
            if bound * 10 <= bare * 9 and bare >= 1.0:
                continue
            observed = novel_1h if minutes == 60 else model.hour_sum(NOVEL, context.window_end_ms, minutes * 60_000)
            if _crosses(observed, bare):
                return _assess(context, volumes, novel_1h)
    return None


class QuietBounds:
    """Levels under which no context can make a consultation measure cross, whatever the account learned.

    A threshold is the larger of a floor and a learned level, both scaled by the context: the
    organisation's lift only raises them, and at an hour the account never works its floors bend
    down to floor / off_hours_floor_divisor at most (a day-long floor bends back up). So below 9/10
    of the lowest floor — the margin `_crosses` skips its rounding on — a measure cannot cross, and a
    window whose every measure is that low needs no threshold at all: nearly every window of a replay.
    A level under 1 bounds nothing.

    Asked of every window, so each level is kept as the bar it sets on ten times the measure: 9 times the
    level, the product `_crosses` would take, or -inf for a level that bounds nothing.
    """

    __slots__ = ("_by_day", "_at_night", "_night_6h")

    def __init__(self, config: DetectionConfig):
        volume = config.volume
        self._by_day = self._levels(config, 1.0)
        self._at_night = self._levels(config, min(1.0, 1.0 / volume.off_hours_floor_divisor))
        self._night_6h = _ninefold(volume.off_hours_floor_6h)

    @staticmethod
    def _levels(config: DetectionConfig, bend: float):
        volume, novelty = config.volume, config.novelty
        # A young account's novelty floor is raised ((2 - trust) >= 1), never lowered.
        return (_ninefold(volume.floor("5m") * bend), _ninefold(volume.floor("1h") * bend),
                _ninefold(volume.floor("1d")), _ninefold(novelty.floor("15m") * bend),
                _ninefold(novelty.floor("1h") * bend), _ninefold(novelty.floor("3h") * bend))

    def hold(self, volumes: dict, novel_1h: Optional[int], novel_1d: int, off_hours: bool) -> bool:
        """True when no measure of this window can cross in any context (`assess_consultation` returns None).

        `off_hours`: the window is at an hour the account never works (PeerGroup.off_hours).
        """
        records_5m, records_1h, records_1d, novel_15m, novel_hour, novel_3h = (
            self._at_night if off_hours else self._by_day)
        day = volumes["1d"] * 10
        if volumes["5m"] * 10 > records_5m or volumes["1h"] * 10 > records_1h or day > records_1d:
            return False
        # The records read at night over 6 hours are part of the day's, which bounds them.
        if off_hours and day > self._night_6h:
            return False
        if novel_1h is None:
            return True
        # The last 15 minutes hold at most the hour's novel records, the last 3 hours at most the day's.
        novel = novel_1h * 10
        return novel <= novel_15m and novel <= novel_hour and novel_1d * 10 <= novel_3h


def _ninefold(level: float) -> float:
    """The bar a level sets on ten times a measure (`_crosses`'s skip); -inf, under which nothing is, below 1."""
    return level * 9 if level >= 1.0 else -math.inf


def _novelty_as_of_day_start(trust: float, span_minutes: int) -> bool:
    """Whether a novelty sum is judged on the account's level as its day began, not as it stands now.

    Strangers' files are the attacker's signature: an attacker reading a few more of them each hour
    must not teach the account, within the day, that this is its normal. A young account still learns
    its own files within the day, except for the 3-hour sum, which exists for that attacker.
    """
    return trust >= 1.0 or span_minutes > 60


def _crosses(observed, bare: float) -> bool:
    """`round(observed / threshold_of(...), 2) > 1.0` for the unrounded threshold `bare`, as `_assess` decides it.

    Most windows are far below: at no more than 9/10 of a bar of at least 1 the ratio stays under 0.91
    whatever the rounding, and the two roundings are skipped.
    """
    if observed * 10 <= bare * 9 and bare >= 1.0:
        return False
    return round(observed / round(bare, 2), 2) > 1.0


def off_hours_records(context) -> int:
    """Records read over the last 6 hours in windows at night, at hours the account never works (its peers', while new).

    Night is outside the default working week's hours, weekends included: a Saturday morning's
    catching up is unusual, but it is not a night of files. Asked only at an hour the account never
    works, which a legitimate account rarely does: the walk stays rare.
    """
    model = context.model
    working_hours = context.peers.working_hours(model, context.window_end_ms)
    since = context.window_end_ms - OFF_HOURS_SPAN_MS
    total = 0
    for point in reversed(model.recent):
        if point.start_ms < since:
            break
        if point.start_ms < context.window_end_ms:
            slot = hour_slot(point.start_ms)
            if is_off_hours(DEFAULT_WORKING_HOURS, slot % 24) and is_off_hours(working_hours, slot):
                total += point.records
    return total


_SETTINGS_CACHE: dict = {}


def _volume_settings(volume, prior):
    """(scale, minutes, peak slot, floor, multiplier, role prior) per volume scale, read once per settings."""
    key = (id(volume), id(prior))
    settings = _SETTINGS_CACHE.get(key)
    if settings is None or settings[0] is not volume or settings[1] is not prior:
        rows = tuple((scale, minutes, VOLUME_PEAKS[scale], volume.floor(scale), volume.multiplier(scale),
                      prior.records(scale)) for scale, minutes in VOLUME_SCALES)
        settings = _SETTINGS_CACHE[key] = (volume, prior, rows)
    return settings[2]


def _assess(context, volumes: dict, novel_1h: Optional[int]) -> Optional[Finding]:
    """The worst crossing among the volume scales and novelty, or None: in full, expectations included.

    `context` is a transforms.group_model.ScoringContext for this account and window.
    Most windows cross nothing: each measure is first scored against its bare
    threshold, and the full expectation an alert explains is built only for
    the measures that cross.
    """
    config: DetectionConfig = context.config
    volume = config.volume
    model = context.model
    prior = config.role_prior(model.actor_type)
    findings = []
    for scale, minutes in VOLUME_SCALES:
        slot = VOLUME_PEAKS[scale]
        observed = volumes[scale]
        # Asked on every window, even when trusted: the peer cache is filled by the first asker of the day.
        peers = context.peer_peak(slot)
        usual = blended_usual(model, slot, prior.records(scale), peers, volume.trust_days)
        limit = threshold_of(usual, volume.floor(scale), volume.multiplier(scale), context.factor_for(minutes),
                             context.floor_factor_for(minutes))
        if round(observed / limit, 2) <= 1.0:
            continue
        expected = expectation(
            model, slot, prior.records(scale), peers,
            unit=UNITS[scale],
            floor=volume.floor(scale), multiplier=volume.multiplier(scale),
            factor=context.factor_for(minutes), adjustments=context.adjustments_for(minutes),
            trust_days=volume.trust_days, floor_factor=context.floor_factor_for(minutes),
        )
        findings.append(
            Finding(RULE, f"records_{scale}", minutes, observed, round(observed / expected.threshold, 2), expected)
        )
    if "off_hours" in context.adjustments:
        observed = off_hours_records(context)
        floor = volume.off_hours_floor_6h
        if round(observed / floor, 2) > 1.0:
            # Nothing is usual at an hour it never works: the floor is the whole threshold. The source says
            # whose hours those are: its own, its peers' while it is new, or the default working week.
            expected = Expectation(
                value=0.0, unit="records at night at hours it never works, per 6 h",
                source=context.peers.working_hours_source(model, context.window_end_ms), own=None, peers=None,
                role=None,
                history_days=model.history_days, threshold=floor, adjustments=["off_hours"],
            )
            findings.append(Finding(RULE, "off_hours_records_6h", 360, observed, round(observed / floor, 2), expected))
    if novel_1h is not None:
        novelty = config.novelty
        novelty_prior = novelty.floor_1h / novelty.multiplier
        trust = model.trust(volume.trust_days)
        for span, minutes in NOVELTY_SPANS:
            observed = novel_1h if minutes == 60 else model.hour_sum(NOVEL, context.window_end_ms, minutes * 60_000)
            # A portfolio learned over few days leaves more of the account's own files looking new.
            floor = novelty.floor(span) * (2.0 - trust)
            day_start = _novelty_as_of_day_start(trust, minutes)
            usual = blended_usual(model, PEAK_NOVEL_1H, novelty_prior, None, volume.trust_days,
                                  as_of_day_start=day_start)
            limit = threshold_of(usual, floor, novelty.multiplier_for(span), context.factor, context.floor_factor)
            if round(observed / limit, 2) <= 1.0:
                continue
            expected = expectation(
                model, PEAK_NOVEL_1H, novelty_prior, None,
                unit="records never opened before, per 1 h",
                floor=floor, multiplier=novelty.multiplier_for(span),
                factor=context.factor, adjustments=context.adjustments, trust_days=volume.trust_days,
                floor_factor=context.floor_factor, as_of_day_start=day_start,
            )
            findings.append(
                Finding(RULE, f"novel_records_{span}", minutes, observed, round(observed / expected.threshold, 2),
                        expected)
            )
    return worst(findings)
