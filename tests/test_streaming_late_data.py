"""Streaming semantics with a TestStream: windows scored as the watermark passes, late data kept.

Kept small on purpose: TestStream runs on Beam's in-process runner (~1k elements/s).
"""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from schemas.event import AccessEvent
from transforms.detection import DetectAnomalies
from transforms.detection_config import DetectionConfig

from tests.event_factory import MONDAY_MS, MS_PER_MINUTE

CONFIG = DetectionConfig()
T0 = MONDAY_MS + 10 * 60 * MS_PER_MINUTE  # Monday 10:00 UTC, a window boundary


def consults(actor: str, start_ms: int, n: int, spacing_ms: int = 2_000):
    return [
        TimestampedValue(
            AccessEvent(ts_ms=start_ms + i * spacing_ms, actor=actor, action="consult", count=1,
                        record=f"rec-{i}", actor_type="youth_advisor", event_id=f"{actor}-{i}"),
            (start_ms + i * spacing_ms) / 1000,
        )
        for i in range(n)
    ]


def test_on_time_and_late_bursts_both_alert_and_alerts_follow_the_watermark():
    window = CONFIG.window_ms
    stream = (
        test_stream.TestStream()
        .advance_watermark_to(T0 / 1000)
        # acct-1: 140 records in [10:00, 10:05), on time; acct-quiet stays under its prior.
        .add_elements(consults("acct-1", T0, 140, spacing_ms=2_000) + consults("acct-quiet", T0, 20, spacing_ms=10_000))
        .advance_watermark_to((T0 + 4 * window) / 1000)
        # acct-2: 140 records in [10:05, 10:10) arriving after the watermark passed 10:20: late,
        # but within the allowed lateness, so they are scored in a late pane.
        .add_elements(consults("acct-2", T0 + window, 140, spacing_ms=2_000))
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as pipeline:
        alerts = (
            pipeline
            | stream.with_output_types(AccessEvent)
            | DetectAnomalies(CONFIG)
            | beam.Map(lambda a: (a.actor, a.status, a.window_start_ms, a.detected_at_ms, a.observed))
        )
        assert_that(
            alerts,
            equal_to(
                [
                    ("acct-1", "new", T0, T0 + window, 140),
                    ("acct-2", "new", T0 + window, T0 + 2 * window, 140),
                ]
            ),
        )

