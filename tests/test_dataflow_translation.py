"""The pipeline translates for Dataflow, offline: DataflowRunner's dry run builds the job request.

What this proves: DataflowRunner accepts the graph (its overrides, the Runner API proto with Docker
environments on the Beam 2.77 Python 3.11 SDK image, the v1b3 Job with project and region) and
every top-level step is there. What it cannot prove without a cloud: that the service accepts the job,
that the workers start, or the gs:// paths exist. Runs in a separate venv that has the Dataflow client
libraries (deploy/dataflow/requirements-translation.txt); the project's venv does not carry them.
"""

import json
import os
import subprocess

import pytest

from tests.runner_services import REPO_ROOT, LOCAL

ARGS = [
    "--project=guetteur-test", "--region=europe-west1", "--temp_location=gs://guetteur-test/tmp",
    "--sdk_container_image=apache/beam_python3.11_sdk:2.77.0",
    "--input=gs://guetteur-test/events/*.jsonl.gz", "--output=gs://guetteur-test/out",
]


@pytest.fixture(scope="module")
def dataflow_python():
    done = subprocess.run([os.path.join(LOCAL, "fetch.sh"), "dataflow-venv"], capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return os.path.join(done.stdout.strip().splitlines()[-1], "bin", "python")


def translate(python, *extra):
    done = subprocess.run([python, "-m", "pipelines.dataflow_check", *ARGS, *extra], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": REPO_ROOT})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_detection_pipeline_translates_to_a_dataflow_job(dataflow_python):
    job = translate(dataflow_python)
    assert job["job_type"] == "JOB_TYPE_BATCH"
    assert (job["project"], job["region"]) == ("guetteur-test", "europe-west1")
    assert {"Detect", "WriteAlerts", "WriteDeadLetters"} <= set(job["top_level_transforms"])
    images = {env["image"] for env in job["environments"].values()}
    assert images == {"apache/beam_python3.11_sdk:2.77.0"}
    assert all(env["urn"] == "beam:env:docker:v1" for env in job["environments"].values())


def test_a_bad_detector_setting_fails_before_anything_is_submitted(dataflow_python, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[volume]\nmultiplier = 'three'\n")
    done = subprocess.run([dataflow_python, "-m", "pipelines.dataflow_check", *ARGS, f"--detection_config={bad}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "multiplier" in done.stderr, done.stderr[-2000:]
