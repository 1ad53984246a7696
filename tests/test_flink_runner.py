"""The same pipeline on a real Flink (Beam's Flink runner, embedded mini-cluster) and on the local runner.

One fixed input, two runners, the same alerts (alert_id, actor, severity, detected_at, status,
observed). The Flink job server is a real JVM started by deploy/local/beam-services.sh.
"""

import os

import apache_beam as beam
import orjson
import pytest

from pipelines.detect import build_pipeline
from pipelines.options import LOCAL_RUNNER, GuetteurOptions
from pipelines.runners import flink_args

from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, burst, office_days, write_jsonl
from tests.runner_services import beam_services

ATTACK_START = MONDAY_MS + 6 * MS_PER_DAY + 2 * MS_PER_HOUR


def fixed_input():
    """About 2,300 events: four advisors for six days, then one scrapes 1,200 records."""
    events = []
    for actor in ("acct-1", "acct-2", "acct-3", "acct-4"):
        events += office_days(actor, days=6, per_day=45, seed=3)
    events += burst("acct-2", ATTACK_START, records=1200, every_ms=2000)
    return sorted(events, key=lambda e: e["ts"])


def alert_facts(output_dir):
    with open(os.path.join(output_dir, "alerts.jsonl"), "rb") as handle:
        alerts = [orjson.loads(line) for line in handle]
    return sorted((a["alert_id"], a["actor"], a["severity"], a["detected_at"], a["status"], a["observed"]) for a in alerts)


def run(pattern, output_dir, runner_args):
    options = GuetteurOptions([*runner_args, f"--input={pattern}", f"--output={output_dir}"])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, options)
    return alert_facts(output_dir)


@pytest.fixture(scope="module")
def flink_job_server(tmp_path_factory):
    with beam_services(str(tmp_path_factory.mktemp("flink-services"))) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def input_path(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("input") / "events.jsonl", fixed_input())


def test_flink_and_local_runner_give_the_same_alerts(flink_job_server, input_path, tmp_path):
    local = run(input_path, str(tmp_path / "local"), [f"--runner={LOCAL_RUNNER}"])
    on_flink = run(input_path, str(tmp_path / "flink"), flink_args(job_endpoint=flink_job_server["JOB_ENDPOINT"]))
    assert {actor for _, actor, *_ in local} == {"acct-2"}, "the fixture must make the scraper alert"
    assert on_flink == local
