"""Where crossing windows become incidents, and incidents become alerts.

An analyst wants one alert per story, not one per five minutes: crossings
closer than `quiet_minutes` extend the open incident, and a new alert record
(same `alert_id`) is emitted only when the incident reaches a higher severity.
"""

from __future__ import annotations

import hashlib
from typing import List, Optional, Tuple

from schemas.activity import AccountActivity
from schemas.alert import ESCALATED, NEW, SEVERITIES, Alert
from schemas.baseline import OpenIncident
from transforms.consultation_volume import Finding
from transforms.detection_config import IncidentConfig
from transforms.explanations import explain


def incident_id(rule: str, actor: str, start_ms: int) -> str:
    """Stable across replays: the same first crossing window gives the same id."""
    digest = hashlib.sha256(f"{rule}|{actor}|{start_ms}".encode("utf-8")).hexdigest()
    return f"{rule[:4]}-{digest[:16]}"


def severity_of(records: int, score: float, config: IncidentConfig) -> str:
    if records >= config.critical_records or score >= config.critical_score:
        return "critical"
    if records >= config.high_records or score >= config.high_score:
        return "high"
    if records >= config.medium_records or score >= config.medium_score:
        return "medium"
    return "low"


def _alert(incident: OpenIncident, activity: AccountActivity, finding: Finding, status: str, window_minutes: int) -> Alert:
    alert = Alert(
        alert_id=incident.alert_id,
        rule=incident.rule,
        status=status,
        actor=activity.actor,
        org=activity.org,
        actor_type=activity.actor_type,
        window_start_ms=incident.start_ms,
        window_end_ms=activity.window_end_ms,
        detected_at_ms=incident.detected_at_ms,
        observed=incident.observed,
        peak=incident.peak,
        expected=finding.expected,
        score=incident.max_score,
        severity=incident.severity,
        related_accounts=list(incident.related_accounts),
        explanation="",
    )
    return alert._replace(explanation=explain(alert, window_minutes))


def track_incident(
    incident: Optional[OpenIncident],
    activity: AccountActivity,
    finding: Optional[Finding],
    config: IncidentConfig,
    window_minutes: int,
) -> Tuple[Optional[OpenIncident], List[Alert]]:
    """The open incident after one window of this account, and the alerts to emit."""
    records = activity.records_touched
    if incident is not None and activity.window_start_ms - incident.last_crossing_end_ms > config.quiet_minutes * 60_000:
        incident = None

    if finding is None:
        if incident is not None:
            # The story goes on between crossings: those records were read too.
            incident = incident._replace(observed=incident.observed + records, last_window_end_ms=activity.window_end_ms)
        return incident, []

    if incident is None:
        opened = OpenIncident(
            alert_id=incident_id(finding.rule, activity.actor, activity.window_start_ms),
            rule=finding.rule,
            start_ms=activity.window_start_ms,
            detected_at_ms=activity.window_end_ms,
            last_crossing_end_ms=activity.window_end_ms,
            last_window_end_ms=activity.window_end_ms,
            observed=records,
            peak=records,
            max_score=finding.score,
            severity=severity_of(records, finding.score, config),
            related_accounts=sorted(activity.created),
        )
        return opened, [_alert(opened, activity, finding, NEW, window_minutes)]

    observed = incident.observed + records
    max_score = max(incident.max_score, finding.score)
    severity = max(incident.severity, severity_of(observed, max_score, config), key=SEVERITIES.index)
    grown = incident._replace(
        last_crossing_end_ms=activity.window_end_ms,
        last_window_end_ms=activity.window_end_ms,
        observed=observed,
        peak=max(incident.peak, records),
        max_score=max_score,
        severity=severity,
        related_accounts=sorted(set(incident.related_accounts) | set(activity.created)),
    )
    if severity == incident.severity:
        return grown, []
    return grown, [_alert(grown, activity, finding, ESCALATED, window_minutes)]
