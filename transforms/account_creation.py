"""Where account-creation alerts are decided: creating too fast, and what the created accounts do.

In the Missions Locales incident the stolen account's power was to create
accounts: it made two, and those did the reading. So accounts created by X
count against X: when they read at volume, X is alerted, naming them.
"""

from __future__ import annotations

from typing import Optional

from schemas.baseline import PEAK_CREATIONS_1D
from transforms.baselines import expectation
from transforms.consultation_volume import Finding, worst
from transforms.detection_config import DetectionConfig

CREATION_RATE = "account_creation_rate"
CREATED_ACCOUNT_ACTIVITY = "created_account_activity"


def assess_creation_rate(context, created_1h: int, created_1d: int) -> Optional[Finding]:
    """Accounts created in the last hour and day against the creator's usual maximum per day."""
    if not created_1h and not created_1d:
        return None
    config: DetectionConfig = context.config
    creation = config.creation
    prior = config.role_prior(context.model.actor_type).creations_1d
    findings = []
    # Onboarding a team happens in office hours; creating accounts at an hour the creator never
    # works is the Missions Locales pattern itself, so a couple is already too many.
    off_hours = "off_hours" in context.adjustments
    for measure, span, observed, floor in (
        ("accounts_created_1h", 60, created_1h, creation.off_hours_floor if off_hours else creation.floor_1h),
        ("accounts_created_1d", 1440, created_1d, creation.floor_1d),
    ):
        expected = expectation(
            context.model, PEAK_CREATIONS_1D, prior, None, unit="accounts created per 24 h",
            floor=floor, multiplier=creation.multiplier, factor=context.factor,
            adjustments=context.adjustments, trust_days=config.volume.trust_days,
            floor_factor=1.0 if off_hours else context.floor_factor,
        )
        findings.append(Finding(CREATION_RATE, measure, span, observed, round(observed / expected.threshold, 2), expected))
    return worst(findings)


def assess_created_accounts(context, child_records_1h: int, allowance_1h: float, burst: bool) -> Optional[Finding]:
    """Records read in the last hour by the accounts this creator made, against what they may read together.

    Created accounts have little history, so they are held together to what
    the ones active this hour may each read (`allowance_1h`, see CreationConfig),
    relaxed by nobody's history. After a `burst` of creations the bar halves.
    The creator's own working hours say nothing about its new colleagues', so
    only the organisation's collective lift applies.
    """
    config: DetectionConfig = context.config
    creation = config.creation
    together = creation.child_multiplier * allowance_1h
    floor = max(creation.child_floor_1h, together / creation.burst_divisor if burst else together)
    lift = [a for a in context.adjustments if a.startswith("org_busy")]
    factor = context.factor * (config.volume.off_hours_divisor if "off_hours" in context.adjustments else 1.0)
    expected = expectation(
        context.model, PEAK_CREATIONS_1D, 0.0, None, unit="records per 1 h, read by accounts it created",
        floor=floor, multiplier=0.0, factor=factor, adjustments=lift, trust_days=0,
    )
    expected = expected._replace(value=allowance_1h, own=None, role=None, source="new_accounts_allowance")
    return worst([Finding(CREATED_ACCOUNT_ACTIVITY, "child_records_1h", 60, child_records_1h,
                          round(child_records_1h / expected.threshold, 2), expected)])
