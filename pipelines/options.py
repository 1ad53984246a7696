"""Guetteur's pipeline options, and the runner names it understands."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

# The local runner, named explicitly: Beam 2.77's default DirectRunner first
# tries to download Prism and only falls back to this one when that fails.
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
RUNNER_ALIASES = {"local": LOCAL_RUNNER}


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
