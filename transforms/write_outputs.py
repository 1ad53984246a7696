"""Where alerts and dead letters leave: JSON Lines files."""

from __future__ import annotations

import os

import apache_beam as beam
import orjson

from schemas.alert import SEVERITIES, Alert, alert_to_json
from schemas.dead_letter import dead_letter_to_json


def _json_line(record: dict) -> bytes:
    return orjson.dumps(record)


class WriteJsonLines(beam.PTransform):
    """Records -> `<output_dir>/<name>.jsonl` (one file: alerts are few, and analysts open one file)."""

    def __init__(self, output_dir: str, name: str, to_json):
        super().__init__()
        self._prefix = os.path.join(output_dir, name)
        self._to_json = to_json

    def expand(self, records):
        return (
            records
            | "ToJson" >> beam.Map(lambda record, to_json=self._to_json: _json_line(to_json(record)))
            | "Write"
            >> beam.io.WriteToText(
                self._prefix,
                file_name_suffix=".jsonl",
                num_shards=1,
                shard_name_template="",
                coder=beam.coders.BytesCoder(),
            )
        )


def _chronological(alert: Alert):
    return alert.detected_at_ms, alert.alert_id, SEVERITIES.index(alert.severity), alert.status


class WriteAlerts(WriteJsonLines):
    """Alerts in the order they were raised, whatever the order the workers scored organisations in.

    They are few (a handful per thousand accounts and day), so ordering them all in one place is cheap.
    """

    def __init__(self, output_dir: str):
        super().__init__(output_dir, "alerts", alert_to_json)

    def expand(self, alerts):
        if not alerts.is_bounded:
            return super().expand(alerts)  # a stream's alerts leave as they come
        ordered = (
            alerts
            | "Gather" >> beam.combiners.ToList()
            | "InOrder" >> beam.FlatMap(lambda batch: sorted(batch, key=_chronological)).with_output_types(Alert)
        )
        return super().expand(ordered)


class WriteDeadLetters(WriteJsonLines):
    def __init__(self, output_dir: str, name: str = "deadletter"):
        super().__init__(output_dir, name, dead_letter_to_json)
