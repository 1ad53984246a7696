"""Events in, alerts out: the detection graph without its I/O."""

from __future__ import annotations

import apache_beam as beam

from transforms.account_windows import KeyByActor, SummariseAccountWindows
from transforms.batch_windows import MergeRangeFolds
from transforms.detect_per_group import DetectPerGroup
from transforms.detection_config import DetectionConfig


class DetectAnomalies(beam.PTransform):
    """Timestamped AccessEvents -> Alert records (and final baselines, with emit_baselines).

    With `folded=True` the input is instead the per-range folds of a batch
    replay (transforms/batch_ingest.py). `initial_baselines`: a
    PCollection of AccountBaseline learned by `guetteur train`.
    """

    def __init__(self, config: DetectionConfig, initial_baselines=None, emit_baselines: bool = False,
                 folded: bool = False):
        super().__init__()
        self._config = config
        self._initial = initial_baselines
        self._emit_baselines = emit_baselines
        self._folded = folded

    def expand(self, events):
        if self._folded:
            return (
                events
                | "MergeRangeFolds" >> MergeRangeFolds(self._config.window_minutes)
                | "DetectPerGroup" >> DetectPerGroup(self._config, self._initial, self._emit_baselines, batched=True)
            )
        keyed = events | "KeyByActor" >> KeyByActor()
        return (
            keyed
            | "SummariseWindows"
            >> SummariseAccountWindows(self._config.window_minutes, self._config.allowed_lateness_minutes)
            | "DetectPerGroup" >> DetectPerGroup(self._config, self._initial, self._emit_baselines)
        )
