"""A short, fixed-width table of alerts for a terminal (used by the demo)."""

from __future__ import annotations

from typing import Iterable, List

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


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
        lines.append(
            f"{alert['detected_at']:20}  {alert['severity']:8}  {alert['rule'][:20]:20}  {alert['actor'][:14]:14}  "
            f"{alert['observed']:>9,}  {expected.get('threshold', 0):>9,.0f}  {','.join(alert.get('related_accounts') or [])}"
        )
    if len(incidents) > limit:
        lines.append(f"... {len(incidents) - limit} more")
    return "\n".join(lines)
