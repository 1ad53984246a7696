"""Where crossing windows become incidents, and incidents become alerts.

An analyst wants one alert per story, not one per five minutes: for each
account and rule, crossings closer than `quiet_minutes` extend the open
incident, and a new alert record (same `alert_id`, same `detected_at`) is
emitted only when the incident reaches a higher severity.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional, Sequence, Tuple

from schemas.alert import ESCALATED, NEW, SEVERITIES, Alert
from schemas.baseline import OpenIncident
from transforms.account_creation import CREATION_RATE
from transforms.consultation_volume import Finding
from transforms.detection_config import IncidentConfig
from transforms.explanations import explain


class Subject(NamedTuple):
    """Who an incident is about, as the alert names it."""

    actor: str
    org: Optional[str]
    actor_type: Optional[str]


def incident_id(rule: str, actor: str, start_ms: int) -> str:
    """Stable across replays: the same first crossing window gives the same id."""
    digest = hashlib.sha256(f"{rule}|{actor}|{start_ms}".encode("utf-8")).hexdigest()
    return f"{rule[:4]}-{digest[:16]}"


def severity_of(rule: str, observed: int, score: float, config: IncidentConfig) -> str:
    # Accounts created are counted in tens, records in thousands: scale before comparing.
    amount = observed * 100 if rule == CREATION_RATE else observed
    if amount >= config.critical_records or score >= config.critical_score:
        return "critical"
    if amount >= config.high_records or score >= config.high_score:
        return "high"
    if amount >= config.medium_records or score >= config.medium_score:
        return "medium"
    return "low"


def _alert(incident: OpenIncident, subject: Subject, finding: Finding, window_end_ms: int, status: str) -> Alert:
    alert = Alert(
        alert_id=incident.alert_id,
        rule=incident.rule,
        status=status,
        actor=subject.actor,
        org=subject.org,
        actor_type=subject.actor_type,
        window_start_ms=incident.start_ms,
        window_end_ms=window_end_ms,
        detected_at_ms=incident.detected_at_ms,
        observed=incident.observed,
        peak=incident.peak,
        expected=finding.expected,
        score=incident.max_score,
        severity=incident.severity,
        related_accounts=list(incident.related_accounts),
        explanation="",
    )
    return alert._replace(explanation=explain(alert, finding))


def track_incident(
    incident: Optional[OpenIncident],
    rule: str,
    subject: Subject,
    window: Tuple[int, int],
    amount: int,
    finding: Optional[Finding],
    related: Sequence[str],
    config: IncidentConfig,
) -> Tuple[Optional[OpenIncident], Optional[Alert]]:
    """The open incident of `rule` after one window of its subject, and the alert to emit if any.

    `amount` is what the window adds to the incident (records, or accounts created).
    """
    start_ms, end_ms = window
    quiet = incident is not None and start_ms - incident.last_crossing_end_ms > config.quiet_minutes * 60_000

    if finding is None:
        if incident is not None and not quiet:
            # The story goes on between crossings: what was read then was read too.
            incident = incident._replace(observed=incident.observed + amount, last_window_end_ms=end_ms)
        # A quiet incident is kept (not extended) for a crossing that may still reach back into it.
        return incident, None

    ongoing = incident
    if quiet and end_ms - finding.span_minutes * 60_000 >= incident.last_window_end_ms:
        # Over; unless this crossing measures a span reaching back into it: a day-long sum
        # still full of the same attack is the same story.
        incident = None

    if incident is None:
        if amount <= 0:
            # A story opens on a window that adds to it. A rolling sum that crosses in a window where
            # the account did nothing crosses because the bar moved (a new day, an organisation no
            # longer busy), not because of anything the account did.
            return ongoing, None
        opened = OpenIncident(
            alert_id=incident_id(rule, subject.actor, start_ms),
            rule=rule,
            start_ms=start_ms,
            detected_at_ms=end_ms,
            last_crossing_end_ms=end_ms,
            last_window_end_ms=end_ms,
            observed=max(amount, finding.observed if rule == CREATION_RATE else amount),
            peak=amount,
            max_score=finding.score,
            severity=severity_of(rule, max(amount, finding.observed), finding.score, config),
            related_accounts=sorted(set(related)),
        )
        return opened, _alert(opened, subject, finding, end_ms, NEW)

    observed = incident.observed + amount
    max_score = max(incident.max_score, finding.score)
    severity = max(incident.severity, severity_of(rule, observed, max_score, config), key=SEVERITIES.index)
    grown = incident._replace(
        last_crossing_end_ms=end_ms,
        last_window_end_ms=end_ms,
        observed=observed,
        peak=max(incident.peak, amount),
        max_score=max_score,
        severity=severity,
        related_accounts=sorted(set(incident.related_accounts) | set(related)),
    )
    if severity == incident.severity:
        return grown, None
    return grown, _alert(grown, subject, finding, end_ms, ESCALATED)
