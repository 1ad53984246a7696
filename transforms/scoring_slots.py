"""Organisations dealt to the local runner's worker processes by the work they bring.

A batch replay scores each organisation in one piece, and the organisations
are few and uneven: at x1 of the bench, 86 of them, the largest holding 5 %
of all windows. Beam's local runner deals grouped keys to its workers
round-robin in the order it first saw them, so one worker could get a
second's more scoring than the other while its core sat idle.

Here the organisations are dealt by the windows each holds, counted as the
file ranges are folded: the largest first, each to the slot with the least
work so far (longest-processing-time first, within a few percent of the best
split). Each slot is one grouped key, so each worker gets one slot. Flink and
Dataflow hash keys to workers and keep organisations as keys.
"""

from __future__ import annotations

import heapq
from typing import Dict, Mapping


def slots_by_work(windows_per_group: Mapping[str, int], slots: int) -> Dict[str, int]:
    """group -> its slot, 0..slots-1. The same on every worker: ties are broken by name, then slot number."""
    loads = [(0, slot) for slot in range(slots)]
    assigned: Dict[str, int] = {}
    for group, windows in sorted(windows_per_group.items(), key=lambda item: (-item[1], item[0])):
        load, slot = heapq.heappop(loads)
        assigned[group] = slot
        heapq.heappush(loads, (load + windows, slot))
    return assigned


def slot_of(assigned: Mapping[str, int], group: str) -> str:
    """The key a group's windows are scored under. (Every merged window's group was counted by a range that
    folded part of it; were one not, it would still be scored, in slot 0.)"""
    return str(assigned.get(group, 0))
