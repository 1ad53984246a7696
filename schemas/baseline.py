"""What Guetteur remembers about each account, and each organisation, between windows.

Small and typed (Beam Rows, not pickled objects). `AccountBaseline` is the
learned part — what `guetteur train` writes to Parquet and `detect --baselines`
starts from; the rest is the short memory of an ongoing stream: the last day of
windows (for rolling sums) and open incidents.
"""

from typing import NamedTuple, Optional, Sequence

import apache_beam as beam
import pyarrow as pa

# Indexes into AccountBaseline.peaks / day_start_peaks.
PEAK_5M, PEAK_1H, PEAK_1D, PEAK_NOVEL_1H, PEAK_CREATIONS_1D = range(5)
PEAK_SLOTS = ("records_5m", "records_1h", "records_1d", "novel_1h", "creations_1d")
VOLUME_PEAKS = {"5m": PEAK_5M, "1h": PEAK_1H, "1d": PEAK_1D}


class AccountBaseline(NamedTuple):
    actor: str
    group: str  # the organisation it is judged with (its peers), or its own id when it has none
    actor_type: Optional[str]
    active_days: int  # distinct UTC days with activity, the current one included
    current_day: int  # epoch day of the latest activity (-1: none yet)
    last_window_end_ms: int  # event time up to which it has been scored
    peaks: Sequence[float]  # learned usual maxima, indexed by PEAK_*
    day_start_peaks: Sequence[float]  # the same when the current day began: bounds daily growth
    typical_1h: float  # its ordinary pace: rolling-hour records while active, averaged over past days
    pace_today: Sequence[float]  # (sum, count) of today's rolling-hour records, folded in at day end
    hours_seen: int  # bit (weekend * 24 + UTC hour) set for every slot it has worked in on two days or more
    hours_pending: int  # slots worked on one earlier day only: not yet its habit
    hours_today: int  # slots worked on the current day
    portfolio: bytes  # Bloom filter of the records it works on (transforms.record_sketches.Portfolio)
    created_by: Optional[str]  # the account that created it, when seen
    created_at_ms: int  # when (0: unknown)


class WindowPoint(NamedTuple):
    """One scored window, kept for a day to compute rolling sums."""

    start_ms: int
    records: int
    novel: int  # records the account had never consulted before
    creations: int
    child_records: int  # records read by accounts it created


class OpenIncident(NamedTuple):
    """An incident still growing: later crossing windows extend it, not repeat it."""

    alert_id: str
    rule: str
    start_ms: int
    detected_at_ms: int
    last_crossing_end_ms: int
    last_window_end_ms: int
    observed: int
    peak: int
    max_score: float
    severity: str
    related_accounts: Sequence[str]


class AccountState(NamedTuple):
    baseline: AccountBaseline
    recent: Sequence[WindowPoint]
    children: Sequence[str]  # accounts it created, most recent last
    incidents: Sequence[OpenIncident]


class GroupState(NamedTuple):
    """Everything known about one organisation's accounts: the detector's state per key."""

    accounts: Sequence[AccountState]


for _row in (AccountBaseline, WindowPoint, OpenIncident, AccountState, GroupState):
    beam.coders.registry.register_coder(_row, beam.coders.RowCoder)


BASELINE_ARROW_SCHEMA = pa.schema(
    [
        pa.field("actor", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("actor_type", pa.string()),
        pa.field("active_days", pa.int64(), nullable=False),
        pa.field("current_day", pa.int64(), nullable=False),
        pa.field("last_window_end_ms", pa.int64(), nullable=False),
        pa.field("peaks", pa.list_(pa.float64()), nullable=False),
        pa.field("day_start_peaks", pa.list_(pa.float64()), nullable=False),
        pa.field("typical_1h", pa.float64(), nullable=False),
        pa.field("pace_today", pa.list_(pa.float64()), nullable=False),
        pa.field("hours_seen", pa.int64(), nullable=False),
        pa.field("hours_pending", pa.int64(), nullable=False),
        pa.field("hours_today", pa.int64(), nullable=False),
        pa.field("portfolio", pa.binary(), nullable=False),
        pa.field("created_by", pa.string()),
        pa.field("created_at_ms", pa.int64(), nullable=False),
    ]
)


def baseline_to_record(baseline: AccountBaseline) -> dict:
    return {name: (list(value) if isinstance(value, (list, tuple)) else value) for name, value in baseline._asdict().items()}


def baseline_from_record(record: dict) -> AccountBaseline:
    values = {name: record[name] for name in AccountBaseline._fields}
    values["peaks"] = list(values["peaks"])
    values["day_start_peaks"] = list(values["day_start_peaks"])
    values["pace_today"] = list(values["pace_today"])
    values["portfolio"] = bytes(values["portfolio"] or b"")
    return AccountBaseline(**values)
