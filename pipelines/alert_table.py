"""A short, fixed-width table of alerts for a terminal (used by the demo)."""

from __future__ import annotations

import unicodedata
from typing import Iterable, List

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def terminal_safe(text: str) -> str:
    """Account ids come from untrusted logs: control, format (bidi override) and other
    invisible characters are shown escaped, so a hostile id cannot rewrite the analyst's terminal."""
    return "".join(
        ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in str(text)
    )


def latest_per_incident(alerts: Iterable[dict]) -> List[dict]:
    """The last record of each alert_id: escalations replace what they escalate."""
    latest = {}
    for alert in alerts:
        current = latest.get(alert["alert_id"])
        if current is None or alert["window_end"] >= current["window_end"]:
            latest[alert["alert_id"]] = alert
    return sorted(latest.values(), key=lambda a: (a["detected_at"], a["actor"]))


def format_alert_table(alerts: Iterable[dict], limit: int = 20) -> str:
    incidents = latest_per_incident(alerts)
    header = f"{'detected_at':20}  {'severity':8}  {'rule':20}  {'actor':14}  {'records':>9}  {'threshold':>9}  related"
    lines = [f"{len(incidents)} incident(s)", header, "-" * len(header)]
    for alert in incidents[:limit]:
        expected = alert.get("expected") or {}
        related = ",".join(terminal_safe(r) for r in alert.get("related_accounts") or [])
        lines.append(
            f"{terminal_safe(alert['detected_at']):20}  {terminal_safe(alert['severity']):8}  "
            f"{terminal_safe(alert['rule'])[:20]:20}  {terminal_safe(alert['actor'])[:14]:14}  "
            f"{alert['observed']:>9,}  {expected.get('threshold', 0):>9,.0f}  {related}"
        )
    if len(incidents) > limit:
        lines.append(f"... {len(incidents) - limit} more")
    return "\n".join(lines)
