"""Score detector alerts against simulator labels.

    load_alerts(pattern) -> list[dict]        # every alert line of the JSON Lines files matching a glob
    evaluate(alerts, labels) -> dict          # JSON-serialisable detection metrics

Alerts follow CONTRACT §2. An alert id may appear several times (an incident that
escalates): it counts once, at its earliest `detected_at`, with the union of the accounts
named by all its versions.

An alert id belongs to an incident when one of its accounts (actor or related_accounts)
is among the incident's `accounts` or is its `creator`, and its detected_at lies within
[incident start, incident end + 1 h]. An alert id matching no incident is a false-alarm
incident. Metrics:

- per incident: detected, first_alert_id, rule, time_to_detect_s (first detected_at minus
  incident start), records_before_alert (label `progress` read as a step function at
  detected_at: the last point at or before it, 0 before the first), records_total;
- overall: incidents, detected, missed ids, median/max time to detect, median records
  before alert, false_alarm_incidents (and their ids), false alarms per 1000 active
  account-days, alerts (distinct ids). Missing values are null.
"""

from __future__ import annotations

import bisect
import datetime as dt
import glob
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

MATCH_GRACE_MS = 3_600_000  # an alert up to an hour after the last malicious event still counts


def parse_time_ms(value: Any) -> int | None:
    """RFC 3339 string (any offset) or epoch milliseconds -> epoch milliseconds; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)  # the contract's times are UTC
    return int(round(moment.timestamp() * 1000))


def load_alerts(pattern: str) -> list[dict[str, Any]]:
    """Alerts from every JSON Lines file matching `pattern` (a glob, or a directory of *.jsonl).

    No matching file means no alerts (an empty list), so a quiet detector can be scored.
    A line that is not a JSON object raises ValueError naming the file and line.
    """
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*.jsonl")
    alerts: list[dict[str, Any]] = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        if os.path.isdir(path):
            continue
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    alert = orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error})") from None
                if not isinstance(alert, dict):
                    raise ValueError(f"{path}:{number}: not a JSON object")
                alerts.append(alert)
    return alerts


@dataclass
class AlertGroup:
    """All versions of one alert id, reduced to what matching needs."""

    alert_id: str
    detected_ms: int | None = None
    rule: Any = None
    actor: Any = None
    accounts: set[str] = field(default_factory=set)

    def add(self, alert: dict[str, Any]) -> None:
        accounts = [alert.get("actor")] + list(alert.get("related_accounts") or [])
        self.accounts.update(a for a in accounts if isinstance(a, str))
        detected = parse_time_ms(alert.get("detected_at"))
        # Rule and actor come from the earliest version: that is the alert the analyst saw first.
        if detected is not None and (self.detected_ms is None or detected < self.detected_ms):
            self.detected_ms = detected
            self.rule, self.actor = alert.get("rule"), alert.get("actor")
        elif self.rule is None:
            self.rule, self.actor = alert.get("rule"), alert.get("actor")


def group_alerts(alerts: Iterable[dict[str, Any]]) -> list[AlertGroup]:
    groups: dict[str, AlertGroup] = {}
    for index, alert in enumerate(alerts):
        raw_id = alert.get("alert_id")
        # An alert without id cannot be an escalation of another one: it stands alone.
        alert_id = str(raw_id) if raw_id not in (None, "") else f"<no-id-{index}>"
        groups.setdefault(alert_id, AlertGroup(alert_id)).add(alert)
    return sorted(groups.values(), key=lambda g: g.alert_id)


@dataclass
class IncidentWindow:
    label: dict[str, Any]
    start_ms: int
    end_ms: int
    accounts: frozenset[str]
    progress_t: list[int]
    progress_v: list[int]

    @classmethod
    def from_label(cls, label: dict[str, Any]) -> "IncidentWindow":
        start, end = parse_time_ms(label.get("start")), parse_time_ms(label.get("end"))
        if start is None or end is None:
            raise ValueError(f"incident {label.get('id')!r} has no usable start/end")
        accounts = set(label.get("accounts") or [])
        if label.get("creator"):
            accounts.add(label["creator"])
        points = sorted((int(t), int(v)) for t, v in label.get("progress") or [])
        return cls(label, start, end, frozenset(accounts), [t for t, _ in points], [v for _, v in points])

    def matches(self, group: AlertGroup) -> bool:
        return (group.detected_ms is not None
                and self.start_ms <= group.detected_ms <= self.end_ms + MATCH_GRACE_MS
                and not self.accounts.isdisjoint(group.accounts))

    def records_at(self, moment_ms: int) -> int:
        position = bisect.bisect_right(self.progress_t, moment_ms)
        return self.progress_v[position - 1] if position else 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _incident_result(window: IncidentWindow, matched: list[AlertGroup]) -> dict[str, Any]:
    label = window.label
    result: dict[str, Any] = {
        "id": label.get("id"), "scenario": label.get("scenario"), "detected": bool(matched),
        "first_alert_id": None, "rule": None, "time_to_detect_s": None,
        "records_before_alert": None, "records_total": label.get("records"),
    }
    if matched:
        first = min(matched, key=lambda g: (g.detected_ms, g.alert_id))
        assert first.detected_ms is not None  # guaranteed by matches()
        result.update(first_alert_id=first.alert_id, rule=first.rule,
                      time_to_detect_s=(first.detected_ms - window.start_ms) / 1000.0,
                      records_before_alert=window.records_at(first.detected_ms))
    return result


def evaluate(alerts: list[dict[str, Any]], labels: dict[str, Any]) -> dict[str, Any]:
    windows = [IncidentWindow.from_label(label) for label in labels.get("incidents") or []]
    groups = group_alerts(alerts)
    matched_ids: set[str] = set()
    per_incident = []
    for window in windows:
        matched = [group for group in groups if window.matches(group)]
        matched_ids.update(group.alert_id for group in matched)
        per_incident.append(_incident_result(window, matched))

    detected = [r for r in per_incident if r["detected"]]
    delays = [r["time_to_detect_s"] for r in detected]
    false_alarms = [group.alert_id for group in groups if group.alert_id not in matched_ids]
    account_days = labels.get("active_account_days")
    rate = (1000.0 * len(false_alarms) / account_days) if account_days else None
    return {
        "incidents": len(windows),
        "detected": len(detected),
        "missed": [r["id"] for r in per_incident if not r["detected"]],
        "per_incident": per_incident,
        "time_to_detect_median_s": _median(delays),
        "time_to_detect_max_s": max(delays) if delays else None,
        "records_before_alert_median": _median([r["records_before_alert"] for r in detected]),
        "false_alarm_incidents": len(false_alarms),
        "false_alarm_alert_ids": false_alarms,
        "active_account_days": account_days,
        "false_alarms_per_1000_account_days": rate,
        "alerts": len(groups),
    }
