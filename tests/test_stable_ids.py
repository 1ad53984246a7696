"""Where a savepoint's learned state is found again: what an upgraded job must keep (pipelines/stable_ids.py).

On Beam 2.54's Flink runner a stateful DoFn's fused stage gets the uid "<its main input's PCollection
name>/<environment>", its keyed state is filed by state id, and its timers by transform id. These
tests build the streaming detection graph (a TestStream stands in for Kafka) and read those three
from the proto, as the job server would.
"""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.testing import test_stream

from pipelines.stable_ids import use_label_transform_ids
from schemas.event import AccessEvent
from transforms.detection import DetectAnomalies
from transforms.detection_config import DetectionConfig

# What the running jobs' savepoints hold state under. Renaming a label on the way to these (the
# transforms themselves, "Detect", "FoldStream", "EventsAndReceipts", "DetectPerGroup", "KeyByGroup")
# strands every savepoint taken before: change them only with a job started afresh.
STATEFUL = {
    "Detect/FoldStream/Fold/ParDo(FoldAccountStreamFn)": "35Detect/FoldStream/EventsAndReceipts.None",
    "Detect/DetectPerGroup/ScoreInOrder/ParDo(DetectPerGroupFn)": "32Detect/DetectPerGroup/KeyByGroup.None",
}


def _stateful(upstream=False, downstream=False, stable=True):
    """{stateful transform's label: (its id, its main input's PCollection name, its state ids)}."""
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    if stable:
        use_label_transform_ids(pipeline)
    events = pipeline | "Events" >> test_stream.TestStream().with_output_types(AccessEvent)
    if upstream:
        events = events | "NewParsingStep" >> beam.Map(lambda event: event).with_output_types(AccessEvent)
    alerts, _ = events | "Detect" >> DetectAnomalies(DetectionConfig(), dead_letters=True)
    if downstream:
        # An enrichment, then a second sink; a counter on the side: all stateless, as an upgrade adds them.
        enriched = alerts | "Enrich" >> beam.Map(lambda alert: (alert.actor, alert))
        enriched | "SecondSink" >> beam.Map(print)
        alerts | "Count" >> beam.Map(lambda alert: 1)
    proto = pipeline.to_runner_api()
    found = {}
    for transform_id, transform in proto.components.transforms.items():
        if transform.spec.urn != "beam:transform:pardo:v1":
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        if payload.state_specs or payload.timer_family_specs:
            (main,) = [pc for tag, pc in transform.inputs.items() if tag not in payload.side_inputs]
            found[transform.unique_name] = (transform_id, proto.components.pcollections[main].unique_name,
                                            sorted(payload.state_specs) + sorted(payload.timer_family_specs))
    return found


def test_the_stateful_steps_are_found_under_the_names_savepoints_hold_them_by():
    found = _stateful()
    assert {label: pcollection for label, (_, pcollection, _) in found.items()} == STATEFUL


def test_steps_added_downstream_of_detection_move_no_state():
    assert _stateful(downstream=True) == _stateful()


def test_a_step_added_upstream_keeps_the_ids_timers_are_filed_under():
    assert _stateful(upstream=True) == _stateful()


def test_without_label_ids_a_step_added_upstream_moves_the_timers_ids():
    # Why pipelines/stable_ids.py exists: Beam's own ids count the transforms before.
    before, after = _stateful(stable=False), _stateful(upstream=True, stable=False)
    assert {label: ids[0] for label, ids in before.items()} != {label: ids[0] for label, ids in after.items()}


def test_labels_that_normalise_alike_get_distinct_ids():
    pipeline = beam.Pipeline()
    use_label_transform_ids(pipeline)
    numbers = pipeline | "Numbers" >> beam.Create([1])
    numbers | "A/B" >> beam.Map(str)  # "/" separates composites: here it is a plain label
    numbers | "A-B" >> beam.Map(str)
    numbers | "A B" >> beam.Map(str)
    transforms = pipeline.to_runner_api().components.transforms.values()
    assert len({t.unique_name for t in transforms}) == len(list(transforms))
