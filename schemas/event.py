"""The access event of CONTRACT §1, as the pipeline carries it once validated.

Raw lines become `AccessEvent`s in `transforms/event_parsing.py`; everything
downstream relies on the invariants checked there (non-empty actor, count >= 1,
timestamp in epoch milliseconds UTC).
"""

from typing import NamedTuple, Optional

import apache_beam as beam
import pyarrow as pa

# Actions the detectors understand; any other string is kept in `action` and
# classified as OTHER, so new log producers never break the job.
CONSULT = "consult"
SEARCH = "search"
EXPORT = "export"
ACCOUNT_CREATE = "account_create"
LOGIN = "login"
LOGIN_FAILED = "login_failed"
OTHER = "other"

KNOWN_ACTIONS = frozenset({CONSULT, SEARCH, EXPORT, ACCOUNT_CREATE, LOGIN, LOGIN_FAILED})

# Actions whose `count` is the number of job-seeker records they expose.
RECORD_ACTIONS = frozenset({CONSULT, SEARCH, EXPORT})


def action_kind(action: str) -> str:
    """The detector-facing class of a raw action string."""
    return action if action in KNOWN_ACTIONS else OTHER


class AccessEvent(NamedTuple):
    ts_ms: int  # event time, epoch milliseconds UTC
    actor: str
    action: str  # as received; see action_kind()
    count: int  # records touched, >= 1
    record: Optional[str] = None
    target: Optional[str] = None
    org: Optional[str] = None
    actor_type: Optional[str] = None
    app: Optional[str] = None
    ip: Optional[str] = None
    ua: Optional[str] = None
    session: Optional[str] = None
    event_id: Optional[str] = None

    @property
    def records_touched(self) -> int:
        """Records this event exposes: one per consult, `count` for search and export."""
        kind = action_kind(self.action)
        if kind == CONSULT:
            return 1
        if kind in RECORD_ACTIONS:
            return self.count
        return 0


# A Beam schema lets the event cross to Java transforms (KafkaIO, SQL) unchanged.
beam.coders.registry.register_coder(AccessEvent, beam.coders.RowCoder)

EVENT_ARROW_SCHEMA = pa.schema(
    [
        pa.field("ts_ms", pa.int64(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("record", pa.string()),
        pa.field("target", pa.string()),
        pa.field("org", pa.string()),
        pa.field("actor_type", pa.string()),
        pa.field("app", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("ua", pa.string()),
        pa.field("session", pa.string()),
        pa.field("event_id", pa.string()),
    ]
)
