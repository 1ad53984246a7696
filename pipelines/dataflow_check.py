"""Translate the detection pipeline for Dataflow without submitting it (DataflowRunner's dry run).

    python -m pipelines.dataflow_check --input gs://b/in/*.jsonl --output gs://b/out [beam options...]

Runs everything DataflowRunner does before it calls the Dataflow service: its pipeline overrides,
the Runner API proto with Docker environments, combiner packing, and the v1b3 Job request with
its worker environment. Nothing is sent: `--dry_run` returns before the API client is created, and
`--no_auth` keeps it from looking for credentials. Needs the Dataflow client libraries
(deploy/dataflow/requirements-translation.txt), which the project's own venv does not carry.
Prints a JSON summary of the job that would have been submitted.
"""

from __future__ import annotations

import json
import sys


def translate(argv) -> dict:
    import apache_beam as beam
    from apache_beam.portability.api import beam_runner_api_pb2

    from pipelines.detect import build_pipeline
    from pipelines.options import GuetteurOptions

    options = GuetteurOptions(["--runner=DataflowRunner", "--dry_run=True", "--no_auth", *argv])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    job = pipeline.run().job
    proto: beam_runner_api_pb2.Pipeline = job.proto_pipeline
    root = proto.components.transforms
    top = [root[t].unique_name for t in proto.root_transform_ids]
    if len(top) == 1:  # the Dataflow-added root wraps the user's transforms
        top = [root[t].unique_name for t in root[proto.root_transform_ids[0]].subtransforms]
    environments = {
        env_id: {"urn": env.urn,
                 "image": beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
                 if env.urn == "beam:env:docker:v1" else None}
        for env_id, env in proto.components.environments.items()
    }
    return {
        "job_name": job.proto.name,
        "job_type": {1: "JOB_TYPE_BATCH", 2: "JOB_TYPE_STREAMING"}.get(int(job.proto.type), str(job.proto.type)),
        "project": job.google_cloud_options.project,
        "region": job.google_cloud_options.region,
        "environments": environments,
        "top_level_transforms": sorted(top),
        "transforms": len(root),
    }


if __name__ == "__main__":
    print(json.dumps(translate(sys.argv[1:]), indent=2, sort_keys=True))
