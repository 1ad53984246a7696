"""The detection pipeline: read events, detect, write alerts and dead letters.

`build_pipeline()` is what the CLI runs and what tests call: it returns the
PCollections so a test can assert on them without touching files.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.pvalue import PCollection

from pipelines.local_workers import scoring_slots
from pipelines.options import GuetteurOptions
from pipelines.stable_ids import use_label_transform_ids
from schemas.baseline import BASELINE_ARROW_SCHEMA, AccountBaseline, baseline_from_record, baseline_to_record
from transforms.batch_ingest import ReadAndFoldFiles
from transforms.detection import DetectAnomalies
from transforms.detection_config import DetectionConfig, load_detection_config
from transforms.event_parsing import DEFAULT_MAPPING, FieldMapping
from schemas.alert import alert_to_json
from schemas.dead_letter import DeadLetter, dead_letter_to_json
from transforms.kafka_io import ReadEventsFromKafka, WriteJsonToKafka, is_kafka_url, parse_kafka_url
from transforms.read_events import ParseEvents, ReadEvents
from transforms.spilled_folds import scratch_directory
from transforms.write_outputs import WriteAlerts, WriteDeadLetters


class DetectionOutputs(NamedTuple):
    events: Optional[PCollection]  # None for files: their lines are folded as they are read
    dead_letters: PCollection
    alerts: PCollection
    baselines: Optional[PCollection]  # the learned state at the end, when asked for (guetteur train)


def read_baselines(pipeline: beam.Pipeline, path: str) -> PCollection:
    """AccountBaselines saved by `guetteur train` (Parquet)."""
    return (
        pipeline
        | "ReadBaselines" >> beam.io.ReadFromParquet(path)
        | "ToBaselines" >> beam.Map(baseline_from_record).with_output_types(AccountBaseline)
    )


def build_detection(
    pipeline: beam.Pipeline,
    input_pattern: str,
    config: DetectionConfig,
    mapping: FieldMapping = DEFAULT_MAPPING,
    baselines_path: Optional[str] = None,
    emit_baselines: bool = False,
    kafka: Optional[KafkaSettings] = None,
    scoring_slots: Optional[int] = None,
) -> DetectionOutputs:
    initial = read_baselines(pipeline, baselines_path) if baselines_path else None
    if is_kafka_url(input_pattern):
        events, dead_letters = _read_events(pipeline, input_pattern, mapping, kafka)
        *detected, too_late = events | "Detect" >> DetectAnomalies(config, initial, emit_baselines, dead_letters=True)
        detected = tuple(detected) if emit_baselines else detected[0]
        # Events that came after their window closed (plus the allowed lateness) join the bad lines.
        dead_letters = (dead_letters, too_late) | "AllDeadLetters" >> beam.Flatten().with_output_types(DeadLetter)
    else:
        # A batch replay: lines are folded per account and window as they are read. The local runner's workers
        # share a disk, and the folds wait there for the scoring instead of in the runner's memory.
        events = None
        spill_to = scratch_directory() if scoring_slots else None
        folds, dead_letters, windows = pipeline | "ReadFiles" >> ReadAndFoldFiles(
            input_pattern, config.window_minutes, mapping, spill_to=spill_to)
        detected = folds | "Detect" >> DetectAnomalies(config, initial, emit_baselines, folded=True,
                                                       scoring_slots=scoring_slots, windows_per_group=windows)
    alerts, learned = detected if emit_baselines else (detected, None)
    return DetectionOutputs(events, dead_letters, alerts, learned)


class KafkaSettings(NamedTuple):
    """How to reach Kafka when --input or --output is a kafka:// URL (transforms/kafka_io.py)."""

    expansion_service: Optional[str]
    group_id: Optional[str] = None
    max_records: Optional[int] = None

    @classmethod
    def from_options(cls, options: GuetteurOptions) -> "KafkaSettings":
        return cls(options.expansion_service, options.kafka_group_id, options.kafka_max_records)


def _read_events(pipeline, input_location: str, mapping: FieldMapping, kafka: Optional[KafkaSettings]):
    if not is_kafka_url(input_location):
        return pipeline | "ReadEvents" >> ReadEvents(input_location, mapping)
    if kafka is None or not kafka.expansion_service:
        raise ValueError("reading from Kafka needs --expansion_service HOST:PORT")
    bootstrap, topic = parse_kafka_url(input_location)
    return (
        pipeline
        | "ReadKafkaEvents" >> ReadEventsFromKafka(bootstrap, topic, kafka.expansion_service, group_id=kafka.group_id,
                                                    max_num_records=kafka.max_records)
        | "ParseKafkaEvents" >> ParseEvents(mapping)
    )


def _write_to_kafka(outputs: DetectionOutputs, output_url: str, kafka: KafkaSettings) -> None:
    """Alerts to PREFIX.alerts (keyed by actor), dead letters to PREFIX.deadletter (keyed by source)."""
    if not kafka.expansion_service:
        raise ValueError("writing to Kafka needs --expansion_service HOST:PORT")
    bootstrap, prefix = parse_kafka_url(output_url)
    outputs.alerts | "WriteAlertsToKafka" >> WriteJsonToKafka(
        bootstrap, f"{prefix}.alerts", kafka.expansion_service, alert_to_json, lambda alert: alert.actor)
    outputs.dead_letters | "WriteDeadLettersToKafka" >> WriteJsonToKafka(
        bootstrap, f"{prefix}.deadletter", kafka.expansion_service, dead_letter_to_json, lambda letter: letter.source)


def _settings(options: GuetteurOptions):
    config = load_detection_config(options.detection_config)
    mapping = FieldMapping.from_json_file(options.field_mapping) if options.field_mapping else DEFAULT_MAPPING
    return config, mapping


def build_pipeline(pipeline: beam.Pipeline, options: GuetteurOptions) -> DetectionOutputs:
    # Ids a savepoint of this job can be restored into after an upgrade (pipelines/stable_ids.py).
    use_label_transform_ids(pipeline)
    config, mapping = _settings(options)
    kafka = KafkaSettings.from_options(options)
    outputs = build_detection(pipeline, options.input, config, mapping, baselines_path=options.baselines, kafka=kafka,
                              scoring_slots=scoring_slots(options))
    if is_kafka_url(options.output):
        _write_to_kafka(outputs, options.output, kafka)
        return outputs
    outputs.alerts | "WriteAlerts" >> WriteAlerts(options.output)
    outputs.dead_letters | "WriteDeadLetters" >> WriteDeadLetters(options.output)
    return outputs


def build_training_pipeline(pipeline: beam.Pipeline, options: GuetteurOptions) -> DetectionOutputs:
    """Learn baselines from history in batch: `options.output` is the Parquet file to write.

    The same detector runs, so what it learns is what detection would have
    learned — alerting windows teach nothing here either. Dead letters go to
    `<output>.deadletter.jsonl`.
    """
    config, mapping = _settings(options)
    outputs = build_detection(pipeline, options.input, config, mapping, baselines_path=options.baselines,
                              emit_baselines=True, scoring_slots=scoring_slots(options))
    (
        outputs.baselines
        # One row per account: ordered in one place, the file is the same whatever the number of workers.
        | "Gather" >> beam.combiners.ToList()
        | "InOrder" >> beam.FlatMap(lambda rows: sorted(rows, key=lambda b: (b.group, b.actor)))
        | "ToRecords" >> beam.Map(baseline_to_record)
        | "WriteBaselines"
        >> beam.io.WriteToParquet(options.output, BASELINE_ARROW_SCHEMA, num_shards=1, shard_name_template="")
    )
    directory, name = os.path.split(options.output)
    outputs.dead_letters | "WriteDeadLetters" >> WriteDeadLetters(directory or ".", f"{name}.deadletter")
    return outputs
