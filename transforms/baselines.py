"""Where baselines are learned: each account's usual maximum, from its own windows.

The learned quantity is a decaying maximum of records touched per active
window ("its usual maximum"): analysts reason in those terms, and a maximum is
what a legitimate heavy day has to stay under. Until an account has
`trust_days` active days of its own, its expectation leans on its role prior,
so a brand-new account is scored from its very first window.
"""

from __future__ import annotations

from schemas.activity import AccountActivity
from schemas.alert import Expectation
from schemas.baseline import AccountBaseline
from schemas.timestamps import MS_PER_DAY
from transforms.detection_config import DetectionConfig

OWN_HISTORY = "own_history"
ROLE_PRIOR = "role_prior"
BLENDED = "own_history+role_prior"


def expectation(baseline: AccountBaseline, actor_type: str | None, config: DetectionConfig) -> Expectation:
    """What this account is expected to touch at most in one window, and the alert threshold."""
    volume = config.volume
    role = config.role_prior(actor_type)
    # The day being scored is not history yet: trust grows with completed active days.
    history_days = max(0, baseline.active_days - 1)
    trust = min(1.0, history_days / volume.trust_days) if volume.trust_days > 0 else 1.0
    own = baseline.peak if baseline.active_windows else None
    value = trust * baseline.peak + (1.0 - trust) * role
    if trust >= 1.0:
        source = OWN_HISTORY
    elif trust <= 0.0:
        source = ROLE_PRIOR
    else:
        source = BLENDED
    threshold = max(volume.floor, volume.multiplier * value)
    return Expectation(
        value=round(value, 2),
        unit=f"records per {config.window_minutes} min",
        source=source,
        own=None if own is None else round(own, 2),
        role=role,
        history_days=history_days,
        threshold=round(threshold, 2),
    )


def age_to(baseline: AccountBaseline, window_end_ms: int, config: DetectionConfig) -> AccountBaseline:
    """The baseline as it stands on the day of a window: decayed for the days that passed."""
    day = (window_end_ms - 1) // MS_PER_DAY
    if day <= baseline.current_day:
        return baseline
    days_passed = day - baseline.current_day if baseline.current_day >= 0 else 0
    peak = baseline.peak * (config.volume.daily_decay**days_passed)
    return baseline._replace(
        current_day=day, peak=peak, day_start_peak=peak, active_days=baseline.active_days + 1
    )


def learn(
    baseline: AccountBaseline, activity: AccountActivity, alerted: bool, config: DetectionConfig
) -> AccountBaseline:
    """The baseline after one scored window (already aged to the window's day).

    A window that alerted teaches nothing, and the usual maximum can only grow
    by `daily_growth` per day: neither an attack nor a slow ramp becomes normal.
    """
    learned = baseline._replace(
        last_window_end_ms=max(baseline.last_window_end_ms, activity.window_end_ms),
        active_windows=baseline.active_windows + 1,
    )
    if alerted:
        return learned
    observed = float(activity.records_touched)
    if observed <= learned.peak:
        return learned
    ceiling = max(learned.day_start_peak, config.role_prior(activity.actor_type)) * config.volume.daily_growth
    return learned._replace(peak=min(observed, max(ceiling, learned.peak)))
