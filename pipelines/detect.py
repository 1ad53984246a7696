"""The detection pipeline: read events, detect, write alerts and dead letters.

`build_pipeline()` is what the CLI runs and what tests call: it returns the
PCollections so a test can assert on them without touching files.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from apache_beam.pvalue import PCollection

from pipelines.options import GuetteurOptions
from transforms.detection import DetectAnomalies
from transforms.detection_config import DetectionConfig, load_detection_config
from transforms.event_parsing import DEFAULT_MAPPING, FieldMapping
from transforms.read_events import ReadEvents
from transforms.write_outputs import WriteAlerts, WriteDeadLetters


class DetectionOutputs(NamedTuple):
    events: PCollection
    dead_letters: PCollection
    alerts: PCollection


def build_detection(
    pipeline: beam.Pipeline,
    input_pattern: str,
    config: DetectionConfig,
    mapping: FieldMapping = DEFAULT_MAPPING,
) -> DetectionOutputs:
    events, dead_letters = pipeline | "ReadEvents" >> ReadEvents(input_pattern, mapping)
    alerts = events | "Detect" >> DetectAnomalies(config)
    return DetectionOutputs(events, dead_letters, alerts)


def build_pipeline(pipeline: beam.Pipeline, options: GuetteurOptions) -> DetectionOutputs:
    config = load_detection_config(options.detection_config)
    mapping = FieldMapping.from_json_file(options.field_mapping) if options.field_mapping else DEFAULT_MAPPING
    outputs = build_detection(pipeline, options.input, config, mapping)
    outputs.alerts | "WriteAlerts" >> WriteAlerts(options.output)
    outputs.dead_letters | "WriteDeadLetters" >> WriteDeadLetters(options.output)
    return outputs
