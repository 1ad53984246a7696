"""Where a consultation-volume alert is decided for one window.

The rule: records touched in the window (consult = 1, search/export = count)
against the account's expected usual maximum. Scores are the ratio to the
alert threshold, so 1.0 is the edge and 10 means ten times past it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from schemas.activity import AccountActivity
from schemas.alert import Expectation

RULE = "consultation_volume"


class Finding(NamedTuple):
    """One window that crossed its threshold."""

    rule: str
    observed: int
    score: float
    expected: Expectation


def assess_volume(activity: AccountActivity, expected: Expectation) -> Optional[Finding]:
    observed = activity.records_touched
    if observed <= expected.threshold:
        return None
    return Finding(RULE, observed, round(observed / expected.threshold, 2), expected)
