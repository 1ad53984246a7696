"""The simulator's internal event tuple and its rendering to a CONTRACT §1 flat event.

Events stay plain tuples until they are written: at a million events, building dicts
(and formatting timestamps) only once, in file order, is most of the speed budget.
"""

from __future__ import annotations

from typing import Any

from .clock import format_ts
from .population import Account

# (ts_ms, account, action, app, ip, session, extra) where extra is None or (field, value):
# ("record", "rec-0123456") for consult, ("count", n) for search/export, ("target", id) for account_create.
RawEvent = tuple[int, Account, str, str, str, str, "tuple[str, Any] | None"]

TS, ACCOUNT, ACTION, APP, IP, SESSION, EXTRA = range(7)

RECORD_ACTIONS = frozenset({"consult", "search", "export"})


def record_id(number: int) -> str:
    return f"rec-{number:07d}"


def records_touched(event: RawEvent) -> int:
    """Records exposed by one event: consult = 1, search/export = count, others 0."""
    action = event[ACTION]
    if action == "consult":
        return 1
    if action in ("search", "export"):
        extra = event[EXTRA]
        return int(extra[1]) if extra else 1
    return 0


def to_flat(event: RawEvent, event_id: str) -> dict[str, Any]:
    account = event[ACCOUNT]
    flat: dict[str, Any] = {
        "ts": format_ts(event[TS]),
        "event_id": event_id,
        "actor": account.id,
        "action": event[ACTION],
        "org": account.org.id,
        "actor_type": account.role,
        "app": event[APP],
        "ip": event[IP],
        "session": event[SESSION],
    }
    extra = event[EXTRA]
    if extra is not None:
        flat[extra[0]] = extra[1]
    return flat
