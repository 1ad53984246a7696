"""Runner plumbing: the Beam options Guetteur needs on Flink, Prism and Dataflow.

The tools themselves (Flink job server, Kafka, Prism) are fetched into `.cache/` and started by
`deploy/local/*.sh`; this module only turns "run on X at Y" into pipeline options.

Flink: Beam's Flink runner is a Java job server. Python ships the pipeline to it as a portable
proto; the runner decodes, at every shuffle, the elements whose coder it knows — Beam Rows among
them. A NamedTuple whose annotations are strings (a module with `from __future__ import
annotations`) becomes a Row whose fields are all the Python-only logical type
`beam:logical:pythonsdk_any:v1`, which the Java RowCoder misreads ("varint overflow"). For batch
jobs, `GuetteurFlinkRunner` then hands such Row coders to the runner as opaque Python coders (the
JVM moves bytes, Python workers decode). In streaming that trick breaks the runner's timers, so a
streaming job with such Rows is refused up front with the fields to fix, instead of failing later.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from apache_beam.coders import coders as beam_coders
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners import pipeline_context
from apache_beam.runners.portability.flink_runner import FlinkRunner

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.environ.get("GUETTEUR_CACHE", os.path.join(REPO_ROOT, ".cache"))
PRISM_VERSION = "v2.77.0"
# The SDK state cache is off at 0 on portable runners: every state read would be a round trip.
DEFAULT_CACHE_MB = 128
DEFAULT_CHECKPOINT_MS = 10_000
# How long a streaming bundle stays open on Flink (Beam's default: 1,000 ms). A Python stage holds its
# output watermark until its open bundle ends, and a stage with timers fires them in the next bundle,
# so every stage on the way from Kafka to an alert adds up to a bundle or two of latency.
DEFAULT_STREAM_BUNDLE_MS = 250

from pipelines.options import FLINK_RUNNER  # noqa: E402  (the alias `--runner FlinkRunner` resolves to)


PYTHON_ONLY_FIELD = "beam:logical:pythonsdk_any:v1"


def python_only_row_fields(proto: beam_runner_api_pb2.Pipeline) -> List[str]:
    """`coder_id.field` of every Row field a Java runner cannot decode (typed Any on the Python side)."""
    from apache_beam.portability.api import schema_pb2

    found = []
    for coder_id, coder_proto in proto.components.coders.items():
        if coder_proto.spec.urn != common_urns.coders.ROW.urn:
            continue
        schema = schema_pb2.Schema()
        schema.ParseFromString(coder_proto.spec.payload)
        found += [f"{coder_id}.{field.name}" for field in schema.fields
                  if field.type.WhichOneof("type_info") == "logical_type"
                  and field.type.logical_type.urn == PYTHON_ONLY_FIELD]
    return found


def opaque_row_coders(proto: beam_runner_api_pb2.Pipeline) -> beam_runner_api_pb2.Pipeline:
    """A copy of `proto` whose Row coders are pickled Python coders (opaque to a Java runner)."""
    result = beam_runner_api_pb2.Pipeline()
    result.CopyFrom(proto)
    context = pipeline_context.PipelineContext(result.components)
    for coder_id, coder_proto in result.components.coders.items():
        if coder_proto.spec.urn != common_urns.coders.ROW.urn:
            continue
        row_coder = context.coders.get_by_id(coder_id)
        urn, payload, _ = beam_coders.Coder.to_runner_api_parameter(row_coder, context)
        coder_proto.spec.urn = urn
        coder_proto.spec.payload = payload.SerializeToString()
        del coder_proto.component_coder_ids[:]
    return result


class OpaqueStrUtf8Coder(beam_coders.StrUtf8Coder):
    """StrUtf8Coder's bytes, declared to the runner as a Python-only coder (see `opaque_state_keys`)."""

    def to_runner_api_parameter(self, context):
        return beam_coders.Coder.to_runner_api_parameter(self, context)

    def is_deterministic(self):
        return True


def opaque_state_keys(proto: beam_runner_api_pb2.Pipeline) -> beam_runner_api_pb2.Pipeline:
    """A copy of `proto` where stateful ParDos keyed by strings see their keys as opaque bytes.

    Beam 2.54's Flink streaming runner decodes the keys of timers set while it finishes a bundle for a
    checkpoint as raw bytes, then encodes them with the input's StringUtf8Coder: ClassCastException,
    job restart. Keys the runner only knows as bytes take the path that works. Same bytes on the wire.
    """
    result = beam_runner_api_pb2.Pipeline()
    result.CopyFrom(proto)
    components = result.components
    context = pipeline_context.PipelineContext(components)
    opaque_id = None
    for transform in components.transforms.values():
        if transform.spec.urn != common_urns.primitives.PAR_DO.urn:
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        if not payload.state_specs and not payload.timer_family_specs:
            continue
        main_input = next(pc for tag, pc in transform.inputs.items() if tag not in payload.side_inputs)
        pcoll = components.pcollections[main_input]
        kv = components.coders[pcoll.coder_id]
        if kv.spec.urn != common_urns.coders.KV.urn:
            continue
        key_id, value_id = kv.component_coder_ids
        if components.coders[key_id].spec.urn != common_urns.coders.STRING_UTF8.urn:
            continue
        if opaque_id is None:
            opaque_id = context.coders.get_id(OpaqueStrUtf8Coder())
        new_kv = beam_runner_api_pb2.Coder()
        new_kv.CopyFrom(kv)
        new_kv.component_coder_ids[:] = [opaque_id, value_id]
        new_kv_id = f"{pcoll.coder_id}_opaque_key"
        components.coders[new_kv_id].CopyFrom(new_kv)
        pcoll.coder_id = new_kv_id
        for spec in payload.timer_family_specs.values():
            timer_coder = components.coders[spec.timer_family_coder_id]
            new_timer = beam_runner_api_pb2.Coder()
            new_timer.CopyFrom(timer_coder)
            new_timer.component_coder_ids[0] = opaque_id
            new_timer_id = f"{spec.timer_family_coder_id}_opaque_key"
            components.coders[new_timer_id].CopyFrom(new_timer)
            spec.timer_family_coder_id = new_timer_id
        transform.spec.payload = payload.SerializeToString()
    # The opaque key coder was registered through the context: copy it into `components`.
    for coder_id, coder_proto in context.to_runner_api().coders.items():
        if coder_id not in components.coders:
            components.coders[coder_id].CopyFrom(coder_proto)
    return result


class GuetteurFlinkRunner(FlinkRunner):
    """Beam's FlinkRunner, with Guetteur's Rows shipped as opaque bytes (see module docstring)."""

    def run_portable_pipeline(self, pipeline, options):
        from apache_beam.options.pipeline_options import StandardOptions

        untyped = python_only_row_fields(pipeline)
        if untyped:
            if options.view_as(StandardOptions).streaming:
                raise ValueError(
                    f"{len(untyped)} Row fields are typed Any on the Python side (e.g. {', '.join(untyped[:3])}): "
                    "the Flink runner cannot decode them in streaming mode. Give those NamedTuples real "
                    "annotations (no `from __future__ import annotations` in their module).")
            pipeline = opaque_row_coders(pipeline)
        if options.view_as(StandardOptions).streaming:
            pipeline = opaque_state_keys(pipeline)
        return super().run_portable_pipeline(pipeline, options)


def flink_args(
    job_endpoint: Optional[str] = None,
    flink_master: str = "[local]",
    environment_type: str = "LOOPBACK",
    environment_config: Optional[str] = None,
    streaming: bool = False,
    checkpointing_interval_ms: int = DEFAULT_CHECKPOINT_MS,
    parallelism: int = 1,
    cache_mb: int = DEFAULT_CACHE_MB,
    restarts: Optional[int] = None,
    finish_bundle_before_checkpointing: bool = True,
    bundle_ms: int = DEFAULT_STREAM_BUNDLE_MS,
) -> List[str]:
    """Options for the Flink runner.

    `job_endpoint`: a job server started by deploy/local/beam-services.sh (host:port). Without it,
    Beam would download and start its own job-server jar, which this project's Maven mirror lacks.
    `flink_master`: `[local]` (an embedded mini-cluster in the job server) or a session cluster's
    REST address (`127.0.0.1:8081`). `environment_type`: LOOPBACK (workers in this process) or
    EXTERNAL with `environment_config=host:port` of a `worker_pool_main` (the Kubernetes sidecar).
    `restarts`: how many times Flink restarts a failed job (from its last checkpoint) before giving
    up; None keeps Flink's default (unbounded with checkpointing on). Tests use 0: fail, don't loop.

    `finish_bundle_before_checkpointing` (streaming): without it, Beam 2.54's Flink runner finishes a
    Python stage's open bundle inside the checkpoint and holds that bundle's outputs back until after
    the checkpoint, but lets the watermark through at once: those outputs then reach the next shuffle
    behind the watermark, as late data (half of the windows of a replay came out as late panes). With
    it, the bundle is finished before the checkpoint barrier, its outputs ahead of the watermark.
    `bundle_ms` (streaming): how long a bundle stays open at most (DEFAULT_STREAM_BUNDLE_MS says why).
    """
    args = [
        f"--runner={FLINK_RUNNER}",
        f"--flink_master={flink_master}",
        f"--environment_type={environment_type}",
        f"--parallelism={parallelism}",
        f"--max_cache_memory_usage_mb={cache_mb}",
    ]
    if job_endpoint:
        args.append(f"--job_endpoint={job_endpoint}")
    if environment_config:
        args.append(f"--environment_config={environment_config}")
    if streaming:
        args += ["--streaming", f"--checkpointing_interval={checkpointing_interval_ms}"]
        if finish_bundle_before_checkpointing:
            args.append("--finish_bundle_before_checkpointing")
        args.append(f"--max_bundle_time_mills={bundle_ms}")  # Java's FlinkPipelineOptions.maxBundleTimeMills
    if restarts is not None:
        args += [f"--number_of_execution_retries={restarts}", "--execution_retry_delay=1000"]
    return args


def prism_location() -> str:
    """The Prism binary fetched by deploy/local/fetch.sh prism."""
    return os.path.join(CACHE_DIR, "bin", f"prism-{PRISM_VERSION}")


def prism_args(location: Optional[str] = None, cache_mb: int = DEFAULT_CACHE_MB) -> List[str]:
    return [
        "--runner=PrismRunner",
        f"--prism_location={location or prism_location()}",
        "--environment_type=LOOPBACK",
        f"--max_cache_memory_usage_mb={cache_mb}",
    ]


def dataflow_args(project: str, region: str, temp_location: str, streaming: bool = True,
                  extra: Optional[Dict[str, str]] = None) -> List[str]:
    args = [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={temp_location}",
        "--sdk_container_image=apache/beam_python3.11_sdk:2.77.0",
    ]
    if streaming:
        args.append("--streaming")
    for key, value in (extra or {}).items():
        args.append(f"--{key}={value}")
    return args


def add_stream_service_arguments(parser) -> None:
    """The services a streaming script talks to (Kafka, the Beam job server and expansion service, Flink),
    and the events it replays: what deploy/local/*.sh started, passed on by make demo-flink / restart-flink."""
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--job-endpoint", required=True)
    parser.add_argument("--expansion-service", required=True)
    parser.add_argument("--flink-master", required=True)
    parser.add_argument("--input", required=True, help="JSON Lines events (guetteur simulate)")
