"""Detector settings: defaults that work out of the box, overridable from one TOML file.

`deploy/detection.toml` documents every key with its default value.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Mapping


@dataclass(frozen=True)
class VolumeConfig:
    # A window alerts when its records exceed max(floor, multiplier x expected usual maximum).
    multiplier: float = 3.0
    floor: float = 50.0
    # Active days of its own before an account's history fully replaces its role prior.
    trust_days: int = 5
    # The learned usual maximum fades by this factor per day, so an old busy spell is forgotten.
    daily_decay: float = 0.97
    # ...and may grow by at most this factor per day: a slow exfiltration cannot teach itself normal.
    daily_growth: float = 1.3


@dataclass(frozen=True)
class IncidentConfig:
    # Crossings closer than this belong to the same incident.
    quiet_minutes: int = 120
    # Severity rises with records touched during the incident, or with the score of its worst window.
    medium_records: int = 500
    high_records: int = 2_000
    critical_records: int = 10_000
    medium_score: float = 3.0
    high_score: float = 8.0
    critical_score: float = 20.0


DEFAULT_ROLE_PRIORS = {
    # Usual maximum of records touched per window for an account of this role with no history.
    "advisor": 20.0,
    "youth_advisor": 20.0,
    "training_org": 20.0,
    "account_manager": 10.0,
    "agent": 20.0,
    "default": 20.0,
}


@dataclass(frozen=True)
class DetectionConfig:
    window_minutes: int = 5
    allowed_lateness_minutes: int = 60
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    incident: IncidentConfig = field(default_factory=IncidentConfig)
    role_priors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ROLE_PRIORS))

    @property
    def window_ms(self) -> int:
        return self.window_minutes * 60_000

    def role_prior(self, actor_type: str | None) -> float:
        priors = self.role_priors
        return float(priors.get(actor_type or "default", priors.get("default", DEFAULT_ROLE_PRIORS["default"])))


def _section(cls, values: Mapping, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    converted = {}
    for key, value in values.items():
        expected_type = type(getattr(cls(), key))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}.{key}: expected a number")
        converted[key] = expected_type(value)
    return replace(cls(), **converted)


def load_detection_config(path: str | None) -> DetectionConfig:
    """The defaults, overridden by the TOML file at `path` when given."""
    if not path:
        return DetectionConfig()
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    config = DetectionConfig()
    for key, value in top.items():
        if key not in ("window_minutes", "allowed_lateness_minutes"):
            raise ValueError(f"{path}: unknown key {key!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{path}: {key} must be a positive integer")
        config = replace(config, **{key: value})
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    unknown = set(sections) - {"volume", "incident", "role_priors"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    if "volume" in sections:
        config = replace(config, volume=_section(VolumeConfig, sections["volume"], "volume"))
    if "incident" in sections:
        config = replace(config, incident=_section(IncidentConfig, sections["incident"], "incident"))
    if "role_priors" in sections:
        priors = dict(DEFAULT_ROLE_PRIORS)
        for role, value in sections["role_priors"].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{path}: role_priors.{role} must be a positive number")
            priors[role] = float(value)
        config = replace(config, role_priors=priors)
    return config
