"""Detector settings: defaults that work out of the box, overridable from one TOML file.

`deploy/detection.toml` documents every key with its default value; a test
keeps the two identical.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

# The time scales consultation volume is measured at, as (label, length in minutes).
# Minutes catch bursts; an hour and a day catch an attacker who stays under any
# per-window threshold but reads around the clock.
VOLUME_SCALES = (("5m", 5), ("1h", 60), ("1d", 1440))


@dataclass(frozen=True)
class VolumeConfig:
    # A scale alerts when its records exceed max(floor, multiplier x expected usual maximum).
    # Longer spans get more headroom: a legitimate heavy day piles up over hours.
    multiplier_5m: float = 3.0
    multiplier_1h: float = 4.0
    multiplier_1d: float = 4.5
    floor_5m: float = 60.0
    floor_1h: float = 180.0
    floor_1d: float = 900.0
    # Active days of its own before an account's history fully replaces its peers' and role's.
    trust_days: int = 5
    # The learned usual maximum fades by this factor per active day (an old busy spell is forgotten)...
    daily_decay: float = 0.97
    # ...and may grow by at most this factor per day: a slow exfiltration cannot teach itself normal.
    daily_growth: float = 1.3
    # Thresholds are divided by this at hours when the account (or, new, its peers) never works.
    off_hours_divisor: float = 3.0
    off_hours_floor_divisor: float = 2.0
    # ...and multiplied by the organisation's collective lift, up to max_org_lift, when most of its
    # active accounts work at more than org_busy_ratio times their ordinary hourly pace over the
    # last hour, or at more than org_busy_day_ratio times it on average since the day began (a
    # day's average swings less than an hour; it keeps a busy day's thresholds up through its lulls).
    org_busy_ratio: float = 1.5
    org_busy_day_ratio: float = 1.2
    max_org_lift: float = 3.0
    # Records read at night (21:00-04:59 UTC) at hours the account (or, while new, its peers) never
    # works, summed over the last 6 hours, alert above this: nobody's job is a night of files, and
    # an attacker reading a few an hour around the clock stays under every hourly bar.
    off_hours_floor_6h: float = 150.0
    # Peers (same organisation and role, with history) needed before they inform a new account.
    min_peers: int = 3

    # Records exported or found by one search, up to this (or 1.5 x its known portfolio), are
    # taken for the account's own portfolio: a routine export; beyond, they are a leak.
    portfolio_export_max: float = 400.0
    # Consultations of records in the account's own portfolio count for this much in the hour and
    # day sums: a heavy day of one's own files is work; strangers' files count in full.
    familiar_weight: float = 0.5

    def floor(self, scale: str) -> float:
        return getattr(self, f"floor_{scale}")

    def multiplier(self, scale: str) -> float:
        return getattr(self, f"multiplier_{scale}")


# The spans novelty is summed over, as (label, minutes): a quarter of an hour catches an attacker
# riding on a heavy account's own work within minutes; three hours, one reading a few strangers'
# files at a time all day long.
NOVELTY_SPANS = (("15m", 15), ("1h", 60), ("3h", 180))


@dataclass(frozen=True)
class NoveltyConfig:
    # Records the account never consulted before, per rolling hour, against its usual maximum of
    # those per hour: alerts above max(floor_1h, multiplier x that usual maximum).
    multiplier: float = 3.0
    floor_1h: float = 40.0
    # The same over the last 15 minutes and the last 3 hours, against the same hourly usual maximum.
    multiplier_15m: float = 1.5
    floor_15m: float = 20.0
    multiplier_3h: float = 10.0
    floor_3h: float = 90.0
    # Novelty means something only once the account's portfolio has been learned (its floors are
    # raised while the account has fewer than volume.trust_days of history, and the 3-hour sum
    # waits until then).
    min_history_days: int = 2

    def floor(self, span: str) -> float:
        return getattr(self, f"floor_{span}")

    def multiplier_for(self, span: str) -> float:
        return self.multiplier if span == "1h" else getattr(self, f"multiplier_{span}")


@dataclass(frozen=True)
class CreationConfig:
    # Accounts created per hour and per day, against the creator's usual maximum.
    multiplier: float = 3.0
    floor_1h: float = 10.0
    floor_1d: float = 12.0
    # The hourly floor at an hour the creator never works.
    off_hours_floor: float = 1.5
    # Records read per rolling hour by the accounts it created in the last `child_days` count against
    # the creator, above max(child_floor_1h, child_multiplier x what the active ones may each read):
    # young_records_1h in their first young_hours (a new colleague starts light), their role's
    # hourly prior after that. When the creator made burst_creations or more in a day, the
    # threshold is divided by burst_divisor: many new accounts reading at once is the pattern.
    child_floor_1h: float = 100.0
    child_multiplier: float = 2.0
    young_records_1h: float = 15.0
    young_hours: int = 24
    burst_creations: int = 3
    burst_divisor: float = 2.0
    child_days: int = 2


@dataclass(frozen=True)
class IncidentConfig:
    # Crossings closer than this belong to the same incident (one alert_id).
    quiet_minutes: int = 120
    # Severity rises with what the incident touched (records, or accounts created)...
    medium_records: int = 500
    high_records: int = 2_000
    critical_records: int = 10_000
    # ...or with the score (observed / threshold) of its worst window.
    medium_score: float = 3.0
    high_score: float = 8.0
    critical_score: float = 20.0


@dataclass(frozen=True)
class RolePrior:
    """What an account of a role with no history of its own is expected to do at most."""

    records_5m: float = 35.0
    records_1h: float = 120.0
    records_1d: float = 600.0
    creations_1d: float = 0.5

    def records(self, scale: str) -> float:
        return getattr(self, f"records_{scale}")


# Roughly the 90th percentile of what accounts of each role touch at most: a new account
# alerts at `multiplier` times this, so a heavy but ordinary newcomer does not.
DEFAULT_ROLE_PRIORS = {
    "advisor": RolePrior(records_5m=35.0, records_1h=120.0, records_1d=600.0),
    "youth_advisor": RolePrior(records_5m=35.0, records_1h=110.0, records_1d=550.0),
    "agent": RolePrior(records_5m=35.0, records_1h=110.0, records_1d=550.0),
    "training_org": RolePrior(records_5m=30.0, records_1h=60.0, records_1d=250.0),
    "account_manager": RolePrior(records_5m=20.0, records_1h=40.0, records_1d=150.0, creations_1d=3.0),
    "default": RolePrior(),
}


@dataclass(frozen=True)
class DetectionConfig:
    window_minutes: int = 5
    allowed_lateness_minutes: int = 60
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    novelty: NoveltyConfig = field(default_factory=NoveltyConfig)
    creation: CreationConfig = field(default_factory=CreationConfig)
    incident: IncidentConfig = field(default_factory=IncidentConfig)
    role_priors: Mapping[str, RolePrior] = field(default_factory=lambda: dict(DEFAULT_ROLE_PRIORS))

    @property
    def window_ms(self) -> int:
        return self.window_minutes * 60_000

    def role_prior(self, actor_type: str | None) -> RolePrior:
        priors = self.role_priors
        return priors.get(actor_type or "default") or priors.get("default") or RolePrior()


_SECTIONS = {"volume": VolumeConfig, "novelty": NoveltyConfig, "creation": CreationConfig, "incident": IncidentConfig}
_TOP_LEVEL = ("window_minutes", "allowed_lateness_minutes")


def _numbers(cls, values: Mapping, where: str):
    """An instance of dataclass `cls` with `values` over its defaults; positive numbers only."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    default = cls()
    converted = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{where}.{key}: expected a number >= 0")
        converted[key] = type(getattr(default, key))(value)
    return replace(default, **converted)


def load_detection_config(path: str | None) -> DetectionConfig:
    """The defaults, overridden by the TOML file at `path` when given; ValueError if it is wrong."""
    if not path:
        return DetectionConfig()
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    config = DetectionConfig()
    for key, value in data.items():
        if key in _TOP_LEVEL:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{path}: {key} must be a positive whole number")
            config = replace(config, **{key: value})
        elif key in _SECTIONS and isinstance(value, dict):
            config = replace(config, **{key: _numbers(_SECTIONS[key], value, key)})
        elif key == "role_priors" and isinstance(value, dict):
            priors = dict(DEFAULT_ROLE_PRIORS)
            for role, prior in value.items():
                if not isinstance(prior, dict):
                    raise ValueError(f"{path}: role_priors.{role} must be a table")
                priors[role] = _numbers(RolePrior, prior, f"role_priors.{role}")
            config = replace(config, role_priors=priors)
        else:
            raise ValueError(f"{path}: unknown key or section {key!r}")
    if config.window_minutes > 60 or 60 % config.window_minutes:
        raise ValueError(f"{path}: window_minutes must divide an hour")
    return config
