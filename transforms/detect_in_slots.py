"""A local batch replay's last stage: each worker merges the folds of the accounts dealt to it and scores their
organisations.

Elsewhere a replay groups the ranges' folds by account to merge them, then the
windows by organisation to score them (transforms/batch_windows.py,
transforms/detect_per_group.py): two shuffles, and on the local runner two
stages, each waiting for its slowest worker. Here the organisations are
dealt to slots, one per worker (transforms/scoring_slots.py). The ranges
spilled their folds to files (transforms/spilled_folds.py); each slot reads
the packs of the accounts dealt to it, one organisation at a time, and
merges each account's windows just before it scores the organisation they
belong to. The alerts are the same: each organisation is still scored in
one piece, from the same windows.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import apache_beam as beam
from apache_beam import pvalue

from transforms.batch_windows import merge_account_windows
from transforms.detect_per_group import BASELINES_TAG, DetectPerGroupInBatchFn, baselines_by_group, typed_results
from transforms.detection_config import DetectionConfig
from transforms.gc_pause import paused_gc
from transforms.group_model import GroupModel
from transforms.scoring_slots import ScoringPlan
from transforms.spilled_folds import SpilledFolds, remove_spilled

SCORED_TAG = "scored"


class _MergeAndDetectSlotFn(DetectPerGroupInBatchFn):
    """(slot, _) -> the alerts of each organisation dealt to the slot, from the folds of the slot's accounts in the
    files the ranges spilled them to (side input `spilled`: their paths, transforms/spilled_folds.py); and, once
    all are scored, the slot under `SCORED_TAG`.

    One unit of organisations after the other (those that accounts bind together: transforms/scoring_slots.py),
    each a slice of time after the other, and within a slice the organisations one after the other, in name
    order: only one unit's models and one organisation's windows of one slice are held at a time, and each
    model carries on from one slice to the next. An account whose windows span several organisations is merged
    for the first of them; its windows of the others wait for their turn, in the same slice.
    """

    def __init__(self, config: DetectionConfig, emit_baselines: bool, slots: int):
        super().__init__(config, emit_baselines)
        self._slots = slots
        self._plan = self._counted = None

    def process(self, element, baselines, windows, spilled):
        slot, _ = element
        if self._counted is not windows:  # the same side input for the whole job: planned once per worker
            self._plan, self._counted = ScoringPlan(windows, self._slots), windows
        plan = self._plan
        with SpilledFolds(spilled, lambda actor: plan.slot_of(actor) == slot) as folds, paused_gc():
            slices = folds.slices()
            for unit in plan.units_in(slot):
                yield from self._score_unit(slot, unit, folds, slices, baselines)
            if folds:
                raise _unplanned(slot, f"windows of {len(folds)} account(s) and slice(s)")
        yield pvalue.TaggedOutput(SCORED_TAG, slot)

    def _score_unit(self, slot: str, unit, folds: SpilledFolds, slices: List[int], baselines):
        """The alerts (and baselines) of one unit's organisations, a slice after the other."""
        window_ms = self._config.window_ms
        models: Dict[str, Tuple[GroupModel, int]] = {}  # group -> its model, and the accounts it knew at first
        for slice_start in slices:
            waiting: Dict[str, List[tuple]] = {}  # group -> its windows merged before its turn
            for group, actors in unit:
                rows = waiting.pop(group, [])
                for actor in actors:
                    packs = folds.pop(actor, slice_start)
                    if packs is None:
                        continue  # merged for an earlier organisation, or no folds in this slice
                    for merged_group, merged in merge_account_windows(actor, packs, window_ms).items():
                        (rows if merged_group == group else waiting.setdefault(merged_group, [])).extend(merged)
                if rows:
                    if group not in models:
                        models[group] = self.start_group(group, baselines)
                    yield from self.score_windows(models[group][0], rows)
            if waiting:
                raise _unplanned(slot, f"windows of {len(waiting)} organisation(s)")
        for group, _ in unit:
            if group in models:
                yield from self.end_group(*models.pop(group))


def _unplanned(slot: str, what: str) -> RuntimeError:
    # A window's organisation is one a range saw for it, and every range counts what it saw: cannot happen.
    return RuntimeError(f"slot {slot}: {what} not in the scoring plan")


class DetectInSlots(beam.PTransform):
    """Paths of the files the ranges spilled their folds to -> Alert records (and, with emit_baselines,
    AccountBaselines); the files are removed once every slot has scored.

    `windows`: ((group, actor), windows) as the ranges counted them; `slots`: the local runner's workers.
    """

    def __init__(self, config: DetectionConfig, slots: int, windows, initial_baselines=None,
                 emit_baselines: bool = False):
        super().__init__()
        self._config = config
        self._slots = slots
        self._windows = windows
        self._initial = initial_baselines
        self._emit_baselines = emit_baselines

    def expand(self, spilled):
        pipeline = spilled.pipeline
        counts = beam.pvalue.AsDict(self._windows | "CountWindows" >> beam.CombinePerKey(sum))
        slots = (
            pipeline
            | "Slots" >> beam.Create([(str(slot), None) for slot in range(self._slots)])
            | "OneSlotPerWorker" >> beam.GroupByKey()
        )
        paths = beam.pvalue.AsList(spilled)
        side = baselines_by_group(self._initial)
        results = slots | "ScoreInOrder" >> beam.ParDo(
            _MergeAndDetectSlotFn(self._config, self._emit_baselines, self._slots), side, counts, paths
        ).with_outputs(BASELINES_TAG, SCORED_TAG, main="alerts")
        _ = (
            pipeline
            | "AfterScoring" >> beam.Impulse()
            | "RemoveSpilledFolds" >> beam.Map(lambda _, files, scored: remove_spilled(files), paths,
                                               beam.pvalue.AsList(results[SCORED_TAG]))
        )
        return typed_results(results, self._emit_baselines)
