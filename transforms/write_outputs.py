"""Where alerts and dead letters leave: JSON Lines files."""

from __future__ import annotations

import os
import uuid

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems

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

    They are few (a handful per thousand accounts and day), so a replay's are ordered and written in one
    step once all are known: a sink's stages (six on the local runner, each a round trip to the workers)
    cost more than the file. A stream's alerts leave as they come.
    """

    def __init__(self, output_dir: str):
        super().__init__(output_dir, "alerts", alert_to_json)

    def expand(self, alerts):
        if not alerts.is_bounded:
            return super().expand(alerts)
        return (
            alerts.pipeline
            | "Once" >> beam.Impulse()
            | "WriteInOrder" >> beam.Map(_write_in_order, self._prefix + ".jsonl", beam.pvalue.AsList(alerts))
        )


def _write_in_order(_, path: str, alerts) -> str:
    """Every alert, in the order raised, to `path`: written aside, then renamed, so a reader never sees half."""
    lines = b"".join(_json_line(alert_to_json(alert)) + b"\n" for alert in sorted(alerts, key=_chronological))
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    with FileSystems.create(partial) as target:
        target.write(lines)
    FileSystems.rename([partial], [path])
    return path


class WriteDeadLetters(WriteJsonLines):
    def __init__(self, output_dir: str, name: str = "deadletter"):
        super().__init__(output_dir, name, dead_letter_to_json)
