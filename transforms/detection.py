"""Events in, alerts out: the detection graph without its I/O."""

from __future__ import annotations

import apache_beam as beam

from schemas.dead_letter import DeadLetter
from transforms.account_windows import KeyByActor, SummariseAccountWindows
from transforms.batch_windows import MergeRangeFolds
from transforms.detect_per_group import DetectPerGroup
from transforms.detection_config import DetectionConfig
from transforms.stream_fold import FoldAccountStream


class DetectAnomalies(beam.PTransform):
    """Timestamped AccessEvents -> Alert records (and final baselines, with emit_baselines).

    With `folded=True` the input is instead the per-range folds of a batch
    replay (transforms/batch_ingest.py). `initial_baselines`: a
    PCollection of AccountBaseline learned by `guetteur train`.

    With `dead_letters=True` the result ends with one more PCollection: the
    DeadLetters of events that came too late to be counted (only a stream has
    any; `transforms/stream_fold.py`).
    """

    def __init__(self, config: DetectionConfig, initial_baselines=None, emit_baselines: bool = False,
                 folded: bool = False, dead_letters: bool = False):
        super().__init__()
        self._config = config
        self._initial = initial_baselines
        self._emit_baselines = emit_baselines
        self._folded = folded
        self._dead_letters = dead_letters

    def expand(self, events):
        config = self._config
        too_late = None
        if self._folded:
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
