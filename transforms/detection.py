"""Events in, alerts out: the detection graph without its I/O."""

from __future__ import annotations

import apache_beam as beam

from transforms.account_detector import DetectPerAccount
from transforms.account_windows import SummariseAccountWindows
from transforms.detection_config import DetectionConfig


class DetectAnomalies(beam.PTransform):
    """Timestamped AccessEvents -> Alert records."""

    def __init__(self, config: DetectionConfig):
        super().__init__()
        self._config = config

    def expand(self, events):
        return (
            events
            | "SummariseWindows"
            >> SummariseAccountWindows(self._config.window_minutes, self._config.allowed_lateness_minutes)
            | "DetectPerAccount" >> DetectPerAccount(self._config)
        )
