"""Organisations dealt to the local runner's worker processes by the work they bring.

A batch replay scores each organisation in one piece, and the organisations
are few and uneven: at x1 of the bench, 86 of them, the largest holding 5 %
of all windows. Beam's local runner deals grouped keys to its workers
round-robin in the order it first saw them, so one worker could get a
second's more scoring than the other while its core sat idle.

Here the organisations are dealt by the windows each holds, counted as the
file ranges are folded: the largest first, each to the slot with the least
work so far (longest-processing-time first, within a few percent of the best
split). Each slot is one grouped key, so each worker gets one slot.

The slot also merges its accounts' folds (transforms/detect_in_slots.py), so
an account goes to the slot of its organisation before its windows are
merged, that is before the organisation of each window is final. It is known
to lie among those the ranges saw for it, each range's counts name them, and
an account that worked for several organisations binds them together: they
are dealt as one. Flink and Dataflow hash keys to workers and keep
organisations as keys.
"""

from __future__ import annotations

import heapq
from typing import Dict, List, Mapping, Tuple


def slots_by_work(work: Mapping[str, int], slots: int) -> Dict[str, int]:
    """name -> its slot, 0..slots-1. The same on every worker: ties are broken by name, then slot number."""
    loads = [(0, slot) for slot in range(slots)]
    assigned: Dict[str, int] = {}
    for name, windows in sorted(work.items(), key=lambda item: (-item[1], item[0])):
        load, slot = heapq.heappop(loads)
        assigned[name] = slot
        heapq.heappush(loads, (load + windows, slot))
    return assigned


class ScoringPlan:
    """Which slot merges and scores each account, and the organisations each slot scores with their accounts, in
    units that accounts bind together.

    Built on every worker from the same counts, ((group, actor), windows) summed over the ranges; the
    same counts give the same plan.
    """

    def __init__(self, windows: Mapping[Tuple[str, str], int], slots: int):
        parent: Dict[str, str] = {}

        def unit(group: str) -> str:
            # Union-find, each group's unit named by its smallest group, whatever the order of the counts.
            root = group
            while parent.get(root, root) != root:
                root = parent[root]
            while group != root:
                parent[group], group = root, parent[group]
            return root

        first_group: Dict[str, str] = {}
        for group, actor in sorted(windows):
            parent.setdefault(group, group)
            seen = first_group.setdefault(actor, group)
            a, b = unit(seen), unit(group)
            if a != b:
                parent[max(a, b)] = min(a, b)
        work: Dict[str, int] = {}
        for (group, _), count in windows.items():
            root = unit(group)
            work[root] = work.get(root, 0) + count
        slot_of_unit = slots_by_work(work, slots)
        self._slot_of_actor = {actor: str(slot_of_unit[unit(group)]) for actor, group in first_group.items()}
        by_unit: Dict[str, Dict[str, List[str]]] = {}
        for group, actor in sorted(windows):
            by_unit.setdefault(unit(group), {}).setdefault(group, []).append(actor)
        self._units: Dict[str, List[List[Tuple[str, List[str]]]]] = {}
        for root in sorted(by_unit):
            self._units.setdefault(str(slot_of_unit[root]), []).append(sorted(by_unit[root].items()))

    def slot_of(self, actor: str) -> str:
        """The key an account's folds are merged and scored under. (Every account with folds was counted by the
        ranges that folded them: one that was not goes to slot 0, which stops rather than score it wrongly.)"""
        return self._slot_of_actor.get(actor, "0")

    def units_in(self, slot: str) -> List[List[Tuple[str, List[str]]]]:
        """The units of groups dealt to `slot`: per unit, (group, the accounts that may have windows in it) by group
        name. A unit is the groups that accounts bind together: those an account's windows may end in."""
        return self._units.get(slot, [])
