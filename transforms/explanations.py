"""The one sentence an analyst reads first: what happened, against what normal, and who else is involved."""

from __future__ import annotations

from schemas.alert import Alert
from schemas.timestamps import format_rfc3339

_SOURCES = {
    "own_history": "its own history",
    "peer_group": "its peers (no history of its own yet)",
    "role_prior": "the prior for its role (no history of its own yet)",
    "own_history+peer_group": "its short history blended with its peers'",
    "own_history+role_prior": "its short history blended with its role prior",
}

_MEASURES = {
    "records_5m": "{observed:,} records in 5 min",
    "records_1h": "{observed:,} records within an hour",
    "records_1d": "{observed:,} records within 24 h",
    "off_hours_records_6h": "{observed:,} records at night, at hours it never works, within 6 h",
    "novel_records_15m": "{observed:,} records it had never opened before within 15 min",
    "novel_records_1h": "{observed:,} records it had never opened before within an hour",
    "novel_records_3h": "{observed:,} records it had never opened before within 3 h",
    "accounts_created_1h": "{observed:,} accounts created within an hour",
    "accounts_created_1d": "{observed:,} accounts created within 24 h",
    "child_records_1h": "{observed:,} records read within an hour by accounts it created",
}


def _who(alert: Alert) -> str:
    details = ", ".join(part for part in (alert.actor_type, alert.org and f"org {alert.org}") if part)
    return f"{alert.actor} ({details})" if details else alert.actor


def _adjustments(adjustments) -> str:
    words = []
    for adjustment in adjustments:
        if adjustment == "off_hours":
            words.append("lowered because it never works at this hour")
        elif adjustment.startswith("org_busy_x"):
            words.append(f"raised x{adjustment[len('org_busy_x'):]} because its whole organisation is busier")
    return f" ({'; '.join(words)})" if words else ""


def explain(alert: Alert, finding) -> str:
    expected = alert.expected
    measure = _MEASURES.get(finding.measure, "{observed:,} " + finding.measure).format(observed=finding.observed)
    comparison = f"usual maximum {expected.value:,.0f} {expected.unit.replace('records ', '')} from "
    comparison += _SOURCES.get(expected.source, expected.source)
    if expected.peers is not None and expected.source == "own_history":
        comparison += f", its peers' {expected.peers:,.0f}"
    if finding.measure == "child_records_1h":
        comparison = f"new accounts active this hour may read about {expected.value:,.0f} together"
    sentence = (
        f"{_who(alert)}: {measure}; {comparison}; threshold {expected.threshold:,.0f}{_adjustments(expected.adjustments)}. "
        f"Since {format_rfc3339(alert.window_start_ms)}: {alert.observed:,} "
        f"{'accounts created' if alert.rule == 'account_creation_rate' else 'records'}, up to {alert.peak:,} in one window."
    )
    if alert.related_accounts:
        sentence += f" Related accounts: {', '.join(alert.related_accounts[:10])}"
        sentence += f" and {len(alert.related_accounts) - 10} more." if len(alert.related_accounts) > 10 else "."
    return sentence
