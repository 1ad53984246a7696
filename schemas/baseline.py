"""What Guetteur remembers about each account between windows.

Kept small and typed (a Beam Row, not a pickled object): it is read and
written once per active window per account, and it is what `train` saves
and `detect --baselines` restores.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import apache_beam as beam


class AccountBaseline(NamedTuple):
    last_window_end_ms: int  # event time up to which this account has been scored
    active_windows: int
    active_days: int  # distinct UTC days with activity: how far its own history can be trusted
    current_day: int  # epoch day of the latest activity
    peak: float  # learned usual maximum of records touched per window
    day_start_peak: float  # `peak` when the current day began: bounds how fast it may grow


EMPTY_BASELINE = AccountBaseline(
    last_window_end_ms=0, active_windows=0, active_days=0, current_day=-1, peak=0.0, day_start_peak=0.0
)


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
    incident: Optional[OpenIncident]


beam.coders.registry.register_coder(AccountBaseline, beam.coders.RowCoder)
beam.coders.registry.register_coder(OpenIncident, beam.coders.RowCoder)
beam.coders.registry.register_coder(AccountState, beam.coders.RowCoder)
