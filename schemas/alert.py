"""The alert record of CONTRACT §2.

An alert is about one incident: the first record of an incident has
`status = "new"`; when the incident grows into a higher severity, a record
with the same `alert_id` and `detected_at` and `status = "escalated"` follows.
Alerts carry account ids, record counts and times — never the personal data of
the people whose files were read.
"""

from typing import NamedTuple, Optional, Sequence

import apache_beam as beam
import pyarrow as pa

from schemas.timestamps import format_rfc3339

SEVERITIES = ("low", "medium", "high", "critical")

NEW = "new"
ESCALATED = "escalated"


class Expectation(NamedTuple):
    """The baseline an observation was compared with, and where it came from."""

    value: float  # the expected usual maximum, in `unit`
    unit: str  # e.g. "records per 1 h"
    source: str  # own_history | peer_group | role_prior, or a blend such as own_history+peer_group
    own: Optional[float]  # the account's own learned usual maximum, if any
    peers: Optional[float]  # its peers' usual maximum (upper quartile, same organisation and role)
    role: Optional[float]  # the prior for its role
    history_days: int  # active days the own baseline was learned from
    threshold: float  # what the observation had to exceed to alert
    adjustments: Sequence[str]  # why the threshold moved: "off_hours", "org_busy_x2.1"


class Alert(NamedTuple):
    alert_id: str
    rule: str
    status: str
    actor: str
    org: Optional[str]
    actor_type: Optional[str]
    window_start_ms: int
    window_end_ms: int
    detected_at_ms: int
    observed: int  # records (accounts, for account_creation_rate) over [window_start, window_end]
    peak: int  # highest single-window value inside the span
    expected: Expectation
    score: float
    severity: str
    related_accounts: Sequence[str]
    explanation: str


beam.coders.registry.register_coder(Expectation, beam.coders.RowCoder)
beam.coders.registry.register_coder(Alert, beam.coders.RowCoder)


def alert_to_json(alert: Alert) -> dict:
    """The JSON object written for an alert, with RFC 3339 UTC times."""
    expected = alert.expected
    return {
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "status": alert.status,
        "actor": alert.actor,
        "org": alert.org,
        "actor_type": alert.actor_type,
        "window_start": format_rfc3339(alert.window_start_ms),
        "window_end": format_rfc3339(alert.window_end_ms),
        "detected_at": format_rfc3339(alert.detected_at_ms),
        "observed": alert.observed,
        "peak": alert.peak,
        "expected": {
            "value": expected.value,
            "unit": expected.unit,
            "source": expected.source,
            "own": expected.own,
            "peers": expected.peers,
            "role": expected.role,
            "history_days": expected.history_days,
            "threshold": expected.threshold,
            "adjustments": list(expected.adjustments),
        },
        "score": alert.score,
        "severity": alert.severity,
        "related_accounts": list(alert.related_accounts),
        "explanation": alert.explanation,
    }


_EXPECTATION_ARROW = pa.struct(
    [
        pa.field("value", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("source", pa.string()),
        pa.field("own", pa.float64()),
        pa.field("peers", pa.float64()),
        pa.field("role", pa.float64()),
        pa.field("history_days", pa.int32()),
        pa.field("threshold", pa.float64()),
        pa.field("adjustments", pa.list_(pa.string())),
    ]
)

ALERT_ARROW_SCHEMA = pa.schema(
    [
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("org", pa.string()),
        pa.field("actor_type", pa.string()),
        pa.field("window_start", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("window_end", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("detected_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("observed", pa.int64(), nullable=False),
        pa.field("peak", pa.int64(), nullable=False),
        pa.field("expected", _EXPECTATION_ARROW, nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("related_accounts", pa.list_(pa.string()), nullable=False),
        pa.field("explanation", pa.string(), nullable=False),
    ]
)
