"""Where baselines are learned: each account's usual maxima, from its own windows.

The learned quantities are decaying maxima ("its usual maximum") of records
touched per 5 minutes, per rolling hour and per rolling day, of records it
never opened before per hour, and of accounts created per day — the terms in
which an analyst reasons, and what a legitimate heavy day has to stay under.
Until an account has `trust_days` active days of its own, its expectation
leans on its peers (same organisation and role) and then on its role prior,
so a brand-new account is scored from its very first window.

Poisoning resistance: a window that alerted teaches nothing, and a usual
maximum can grow by at most `daily_growth` per day.
"""

from __future__ import annotations

from typing import Optional, Sequence

from schemas.alert import Expectation
from schemas.baseline import PEAK_CREATIONS_1D, PEAK_NOVEL_1H, VOLUME_PEAKS
from schemas.timestamps import MS_PER_DAY, MS_PER_HOUR
from transforms.account_model import AccountModel
from transforms.detection_config import DetectionConfig

TYPICAL_SMOOTHING = 0.2  # weight of one day in an account's ordinary hourly pace
OWN_HISTORY = "own_history"
PEER_GROUP = "peer_group"
ROLE_PRIOR = "role_prior"


def hour_slot(ms: int) -> int:
    """Weekday or weekend, and UTC hour: the 48 slots of an account's working week."""
    day = ms // MS_PER_DAY
    weekend = (day + 3) % 7 >= 5  # epoch day 0 was a Thursday
    return (24 if weekend else 0) + (ms % MS_PER_DAY) // MS_PER_HOUR


def age_to_day(model: AccountModel, window_end_ms: int, config: DetectionConfig) -> None:
    """Start a new active day: decay the usual maxima once, and remember them as the day's start.

    Decay is per active day, not per calendar day: an account back from three
    weeks of holiday is judged on what it did before, not on a faded memory.
    """
    day = (window_end_ms - 1) // MS_PER_DAY
    if day <= model.current_day:
        return
    if model.current_day >= 0:
        decay = config.volume.daily_decay
        model.peaks = [peak * decay for peak in model.peaks]
    # An hour becomes a working hour once worked on two different days: one evening of
    # undetected reading must not make every following evening normal.
    model.hours_seen |= model.hours_today & model.hours_pending
    model.hours_pending = (model.hours_pending | model.hours_today) & ~model.hours_seen
    model.hours_today = 0
    # The ordinary pace moves once a day, so that a busy day cannot redefine itself as ordinary.
    total, windows = model.pace_today
    if windows:
        day_pace = total / windows
        model.typical_1h = day_pace if model.typical_1h == 0 else (
            model.typical_1h + TYPICAL_SMOOTHING * (day_pace - model.typical_1h))
    model.pace_today = [0.0, 0.0]
    model.day_start_peaks = list(model.peaks)
    model.current_day = day
    model.active_days += 1


def _learned(model: AccountModel, slot: int, as_of_day_start: bool) -> float:
    return model.day_start_peaks[slot] if as_of_day_start else model.peaks[slot]


def blended_usual(model: AccountModel, slot: int, prior: float, peers: Optional[float], trust_days: int,
                  as_of_day_start: bool = False) -> float:
    """The usual maximum to expect: own history, leaning on peers (else the role) while it is short.

    With `as_of_day_start`, the account's own level is the one it had when the day began.
    """
    trust = model.trust(trust_days)
    fallback = peers if peers is not None else prior
    return trust * _learned(model, slot, as_of_day_start) + (1.0 - trust) * fallback


def threshold_of(value: float, floor: float, multiplier: float, factor: float, floor_factor: float) -> float:
    """Where a measure starts to alert: rounded as the alert shows it, so scores agree with the alert."""
    return round(max(floor * floor_factor, multiplier * value * factor), 2)


def expectation(
    model: AccountModel,
    slot: int,
    prior: float,
    peers: Optional[float],
    unit: str,
    floor: float,
    multiplier: float,
    factor: float,
    adjustments: Sequence[str],
    trust_days: int,
    floor_factor: Optional[float] = None,
    as_of_day_start: bool = False,
) -> Expectation:
    """The expected usual maximum for one measure, blended from own history, peers and role.

    `factor` scales the learned threshold for context (off hours, a busy organisation);
    `floor_factor` (default: the same) scales the floor. With `as_of_day_start`, the account is
    judged on what it had learned when the day began: what it did since, under the threshold,
    does not lift today's bar. Callers ask it for trusted accounts; a new account otherwise
    learns within the day, which is how it leaves its prior.
    """
    trust = model.trust(trust_days)
    fallback_source = PEER_GROUP if peers is not None else ROLE_PRIOR
    own = _learned(model, slot, as_of_day_start) if model.history_days else None
    value = blended_usual(model, slot, prior, peers, trust_days, as_of_day_start)
    if trust >= 1.0:
        source = OWN_HISTORY
    elif trust <= 0.0:
        source = fallback_source
    else:
        source = f"{OWN_HISTORY}+{fallback_source}"
    threshold = threshold_of(value, floor, multiplier, factor, factor if floor_factor is None else floor_factor)
    # Floats throughout, as the Row coder carries them: a peak learned from a count may still be an int,
    # and an alert must read the same whether or not it crossed a process boundary on its way out.
    return Expectation(
        value=round(float(value), 2),
        unit=unit,
        source=source,
        own=None if own is None else round(float(own), 2),
        peers=None if peers is None else round(float(peers), 2),
        role=None if prior is None else float(prior),
        history_days=model.history_days,
        threshold=float(threshold),
        adjustments=list(adjustments),
    )


def _raise_peak(model: AccountModel, slot: int, observed: float, prior: float, config: DetectionConfig) -> None:
    if observed <= model.peaks[slot]:
        return
    # A new account may climb to its role's level at once; an established one only by `growth` a day.
    trusted = model.trust(config.volume.trust_days) >= 1.0
    base = model.day_start_peaks[slot] if trusted else max(model.day_start_peaks[slot], prior)
    model.peaks[slot] = min(observed, max(base * config.volume.daily_growth + 1.0, model.peaks[slot]))


def learn(
    model: AccountModel,
    window_start_ms: int,
    volumes: dict,
    novel_1h: Optional[int],
    creations_1d: int,
    sample: Sequence[str],
    config: DetectionConfig,
) -> None:
    """Teach the account's baseline one window that did not alert."""
    peaks = model.peaks
    # Most windows raise no peak: the comparison _raise_peak starts with, made before calling it.
    for scale, observed in volumes.items():
        slot = VOLUME_PEAKS[scale]
        if observed > peaks[slot]:
            _raise_peak(model, slot, observed, config.role_prior(model.actor_type).records(scale), config)
    if novel_1h is not None and novel_1h > peaks[PEAK_NOVEL_1H]:
        novelty_prior = config.novelty.floor_1h / config.novelty.multiplier
        _raise_peak(model, PEAK_NOVEL_1H, novel_1h, novelty_prior, config)
    if creations_1d > peaks[PEAK_CREATIONS_1D]:
        _raise_peak(model, PEAK_CREATIONS_1D, creations_1d, config.role_prior(model.actor_type).creations_1d, config)
    model.hours_today |= 1 << hour_slot(window_start_ms)
    model.pace_today[0] += volumes["1h"]
    model.pace_today[1] += 1
    model.portfolio.add_all(sample)
