"""One account's activity in one event-time window: what the detectors score.

Events are folded into these summaries before any per-account state is
touched, so state work grows with windows, not with events.
"""

import pickle
from typing import List, NamedTuple, Optional, Sequence

import apache_beam as beam

from schemas.shuffle_bytes import compress, decompress


class AccountActivity(NamedTuple):
    actor: str
    org: Optional[str]
    actor_type: Optional[str]
    window_start_ms: int
    window_end_ms: int
    events: int
    records_touched: int  # consult = 1, search/export = count
    consults: int
    searches: int
    exports: int
    largest_bulk: int  # the largest `count` of a single search or export in the window
    creations: int  # account_create events
    created: Sequence[str]  # accounts created in the window, sorted
    distinct_records: int  # distinct record ids consulted (estimated beyond a few hundred)
    record_sample: Sequence[str]  # a bottom-k sample of those ids, independent of arrival order
    duplicates: int  # events dropped because their event_id was already counted
    late: bool  # a late pane: these events arrived after the window had been scored


beam.coders.registry.register_coder(AccountActivity, beam.coders.RowCoder)


def pack_activities(activities: Sequence[AccountActivity]) -> bytes:
    """Many windows as one element: a batch replay moves an organisation's windows in one piece.

    One pickle per batch rather than a coder call per window: Beam's cost is per element. Compressed
    (schemas/shuffle_bytes.py) to about a quarter of its bytes: on the local runner, moving them through
    the runner cost more than compressing them.
    """
    return pack_activity_fields([tuple(activity) for activity in activities])


def pack_activity_fields(rows: Sequence[tuple]) -> bytes:
    """`pack_activities` of activities given as plain tuples of their fields, in AccountActivity's order."""
    return compress(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))


def unpack_activities(packed: bytes) -> List[AccountActivity]:
    return [AccountActivity._make(fields) for fields in unpack_activity_fields(packed)]


def unpack_activity_fields(packed: bytes) -> List[tuple]:
    """`pack_activities`'s windows as the plain tuples of their fields, in AccountActivity's order."""
    return pickle.loads(decompress(packed))
