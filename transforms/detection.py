"""Events in, alerts out: the detection graph without its I/O."""

from __future__ import annotations

from typing import Optional

import apache_beam as beam

from schemas.dead_letter import DeadLetter
from transforms.account_windows import KeyByActor, SummariseAccountWindows
from transforms.batch_windows import MergeRangeFolds
from transforms.detect_in_slots import DetectInSlots
from transforms.detect_per_group import DetectPerGroup
from transforms.detection_config import DetectionConfig
from transforms.stream_fold import FoldAccountStream


class DetectAnomalies(beam.PTransform):
    """Timestamped AccessEvents -> Alert records (and final baselines, with emit_baselines).

    With `folded=True` the input is instead the per-range folds of a batch
    replay (transforms/batch_ingest.py); with `scoring_slots` (the local
    runner's workers) and the windows folded per organisation and account
    too, the folds are the paths of the files they were spilled to,
    organisations are dealt to the workers by their work, and each worker
    merges and scores its own (transforms/detect_in_slots.py).
    `initial_baselines`: a PCollection of AccountBaseline learned by `guetteur train`.

    With `dead_letters=True` the result ends with one more PCollection: the
    DeadLetters of events that came too late to be counted (only a stream has
    any; `transforms/stream_fold.py`).
    """

    def __init__(self, config: DetectionConfig, initial_baselines=None, emit_baselines: bool = False,
                 folded: bool = False, dead_letters: bool = False, scoring_slots: Optional[int] = None,
                 windows_per_group=None):
        super().__init__()
        self._slots = scoring_slots if windows_per_group is not None and scoring_slots else None
        self._windows_per_group = windows_per_group
        self._config = config
        self._initial = initial_baselines
        self._emit_baselines = emit_baselines
        self._folded = folded
        self._dead_letters = dead_letters

    def expand(self, events):
        config = self._config
        too_late = None
        if self._folded:
            if self._slots:
                detected = events | "DetectInSlots" >> DetectInSlots(config, self._slots, self._windows_per_group,
                                                                     self._initial, self._emit_baselines)
            else:
                activities = events | "MergeRangeFolds" >> MergeRangeFolds(config.window_minutes)
                detected = activities | "DetectPerGroup" >> DetectPerGroup(config, self._initial, self._emit_baselines,
                                                                           batched=True)
        else:
            keyed = events | "KeyByActor" >> KeyByActor()
            if keyed.is_bounded:
                activities = keyed | "SummariseWindows" >> SummariseAccountWindows(config.window_minutes)
            else:
                activities, too_late = keyed | "FoldStream" >> FoldAccountStream(
                    config.window_minutes, config.allowed_lateness_minutes)
            detected = activities | "DetectPerGroup" >> DetectPerGroup(config, self._initial, self._emit_baselines)
        if not self._dead_letters:
            return detected
        if too_late is None:
            too_late = events.pipeline | "NoLateEvents" >> beam.Create([]).with_output_types(DeadLetter)
        return (*detected, too_late) if self._emit_baselines else (detected, too_late)
