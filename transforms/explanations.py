"""The one sentence an analyst reads first: what happened, against what normal."""

from __future__ import annotations

from schemas.alert import Alert
from schemas.timestamps import format_rfc3339

_SOURCES = {
    "own_history": "its own history",
    "role_prior": "the prior for its role (no history of its own yet)",
    "own_history+role_prior": "its short history blended with its role prior",
}


def _who(alert: Alert) -> str:
    details = ", ".join(part for part in (alert.actor_type, alert.org and f"org {alert.org}") if part)
    return f"{alert.actor} ({details})" if details else alert.actor


def explain(alert: Alert, window_minutes: int) -> str:
    expected = alert.expected
    span = f"between {format_rfc3339(alert.window_start_ms)} and {format_rfc3339(alert.window_end_ms)}"
    usual = f"{expected.value:,.0f} per {window_minutes} min from {_SOURCES.get(expected.source, expected.source)}"
    sentence = (
        f"{_who(alert)} touched {alert.observed:,} job-seeker records {span}, "
        f"up to {alert.peak:,} in {window_minutes} min; its expected maximum is {usual}, "
        f"alert threshold {expected.threshold:,.0f}."
    )
    if alert.related_accounts:
        sentence += f" It created {', '.join(alert.related_accounts)} in the same period."
    return sentence
