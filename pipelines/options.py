"""Guetteur's pipeline options, and the runner names it understands."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

# The local runner, named explicitly: Beam 2.77's default DirectRunner first
# tries to download Prism and only falls back to this one when that fails.
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
# Flink: Beam's FlinkRunner with Guetteur's Rows shipped opaque to the Java runner (pipelines/runners.py).
FLINK_RUNNER = "pipelines.runners.GuetteurFlinkRunner"
RUNNER_ALIASES = {"local": LOCAL_RUNNER, "flink": FLINK_RUNNER, "flinkrunner": FLINK_RUNNER}


def resolve_runner(name: str | None) -> str:
    if not name:
        return LOCAL_RUNNER
    return RUNNER_ALIASES.get(name.lower(), name)


class GuetteurOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", help="JSON Lines events: a path or a glob (plain or .gz)")
        parser.add_argument("--output", help="directory for alerts.jsonl and deadletter.jsonl")
        parser.add_argument("--detection_config", default=None, help="TOML file of detector settings")
        parser.add_argument("--field_mapping", default=None, help="JSON file mapping ECS paths to contract fields")
        parser.add_argument("--baselines", default=None, help="Parquet baselines from `guetteur train` to start from")
        # Kafka (--input kafka://HOST:PORT/TOPIC, --output kafka://HOST:PORT/PREFIX): see transforms/kafka_io.py.
        parser.add_argument("--expansion_service", default=None,
                            help="host:port of the KafkaIO expansion service (deploy/local/beam-services.sh)")
        parser.add_argument("--kafka_group_id", default=None, help="consumer group: resume from committed offsets")
        parser.add_argument("--kafka_max_records", type=int, default=None,
                            help="stop after this many input records (a bounded read; default: read forever)")
