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

from typing import Dict, List

import apache_beam as beam
from apache_beam import pvalue

from transforms.batch_windows import merge_account_windows
from transforms.detect_per_group import BASELINES_TAG, DetectPerGroupInBatchFn, baselines_by_group, typed_results
from transforms.detection_config import DetectionConfig
from transforms.gc_pause import paused_gc
from transforms.scoring_slots import ScoringPlan
from transforms.spilled_folds import SpilledFolds, remove_spilled

SCORED_TAG = "scored"


class _MergeAndDetectSlotFn(DetectPerGroupInBatchFn):
    """(slot, _) -> the alerts of each organisation dealt to the slot, from the folds of the slot's accounts in the
    files the ranges spilled them to (side input `spilled`: their paths, transforms/spilled_folds.py); and, once
    all are scored, the slot under `SCORED_TAG`.

    Organisations one after the other, in name order: only one organisation's packs are read and its windows
    unpacked at a time. An account whose windows span several organisations is merged for the first of them;
    its windows of the others wait for their turn.
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
        window_ms = self._config.window_ms
        waiting: Dict[str, List[tuple]] = {}
        with SpilledFolds(spilled, lambda actor: plan.slot_of(actor) == slot) as folds, paused_gc():
            for group, actors in plan.groups_in(slot):
                rows = waiting.pop(group, [])
                for actor in actors:
                    packs = folds.pop(actor)
                    if packs is None:
                        continue  # merged for an earlier organisation, or no folds in this slot
                    for merged_group, merged in merge_account_windows(actor, packs, window_ms).items():
                        (rows if merged_group == group else waiting.setdefault(merged_group, [])).extend(merged)
                yield from self.detect_group(group, rows, baselines)
            if folds or waiting:
                # A window's organisation is one a range saw for it, and every range counts what it saw: cannot
                # happen.
                raise RuntimeError(f"slot {slot}: windows of {len(folds)} account(s) and {len(waiting)} "
                                   "organisation(s) were not in the scoring plan")
        yield pvalue.TaggedOutput(SCORED_TAG, slot)


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
