"""Kafka in and out through Beam's cross-language KafkaIO, against a real KRaft broker, on a real Flink.

- Records produced by `pipelines.replay` carry the event's `ts` as their Kafka CreateTime, and the
  pipeline sees exactly that as the element timestamp: event time follows the events, even for a
  month replayed long after it happened.
- Bad lines read from Kafka are dead-lettered to PREFIX.deadletter with their source, not dropped.
- The detection pipeline, streaming from Kafka on Flink with checkpointing, publishes the alerts the
  local runner finds in the same events, while events are still streaming in (no pause needed).
"""

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.options import GuetteurOptions
from pipelines.replay import consume, replay
from pipelines.runners import flink_args
from schemas.dead_letter import INVALID_JSON, MISSING_FIELD, dead_letter_to_json
from transforms.kafka_io import ReadEventsFromKafka, WriteJsonToKafka, kafka_source_name
from transforms.read_events import ParseEvents

from tests.event_factory import MONDAY_MS, MS_PER_HOUR, event, to_lines
from tests.runner_services import beam_services, kafka_broker, _script

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning")

BAD_LINES = [b"{not json", b'{"ts": "2026-03-02T10:00:00Z", "action": "consult"}']


def month_of_events():
    """120 events over a past month, a few hours apart, out of order within each hour."""
    events = []
    for i in range(120):
        ts = MONDAY_MS + i * 6 * MS_PER_HOUR + (37_000 if i % 2 else -37_000)
        events.append(event(ts, f"acct-{i % 7}", record=f"rec-{i}", event_id=f"e-{i}"))
    return events


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("kafka-services"))
    with kafka_broker(run_dir) as kafka, beam_services(run_dir) as beam_endpoints:
        _script("kafka.sh", "topics", "events", "out.deadletter", run_dir=run_dir)
        yield {**kafka, **beam_endpoints, "RUN_DIR": run_dir}


class _EventTimeAndTimestamp(beam.DoFn):
    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        _, line = element
        try:
            ts = orjson.loads(line).get("ts")
        except orjson.JSONDecodeError:
            return
        yield ts, timestamp.micros // 1000


def test_kafka_record_time_is_event_time_and_bad_lines_are_dead_lettered(services):
    bootstrap, expansion = services["BOOTSTRAP"], services["EXPANSION_SERVICE"]
    events = month_of_events()
    lines = list(to_lines(events)) + BAD_LINES
    sent = replay(bootstrap, "events", lines)
    assert sent["sent"] == len(lines)

    from schemas.timestamps import parse_rfc3339_ms

    options = GuetteurOptions(flink_args(job_endpoint=services["JOB_ENDPOINT"], restarts=0))
    with beam.Pipeline(options=options) as pipeline:
        raw = pipeline | ReadEventsFromKafka(bootstrap, "events", expansion, max_num_records=len(lines))
        valid = {e["ts"] for e in events}
        times = raw | "Times" >> beam.ParDo(_EventTimeAndTimestamp()) | beam.Filter(lambda t: t[0] in valid)
        expected_times = [(e["ts"], parse_rfc3339_ms(e["ts"])) for e in events]
        assert_that(times, equal_to(expected_times), label="CreateTimeIsEventTime")
        parsed, dead_letters = raw | ParseEvents()
        assert_that(parsed | beam.Map(lambda e: e.event_id), equal_to([e["event_id"] for e in events]),
                    label="EventsParsed")
        dead_letters | WriteJsonToKafka(bootstrap, "out.deadletter", expansion, dead_letter_to_json,
                                        lambda letter: letter.source)

    letters = consume(bootstrap, "out.deadletter", lambda records: len(records) >= len(BAD_LINES), timeout_s=60)
    assert sorted(record["reason"] for record, _, _ in letters) == sorted([INVALID_JSON, MISSING_FIELD])
    assert {record["source"] for record, _, _ in letters} == {kafka_source_name(bootstrap, "events")}


def _streaming_blockers(pipeline_options) -> list:
    """Known defects outside the runner plumbing that stop the streaming job (see pipelines/runners.py)."""
    from pipelines.detect import build_pipeline
    from pipelines.runners import python_only_row_fields
    from transforms.account_windows import AccountActivityFn

    blockers = []
    probe = beam.Pipeline(options=pipeline_options)
    build_pipeline(probe, pipeline_options)
    untyped = python_only_row_fields(probe.to_runner_api())
    if untyped:
        blockers.append(f"{len(untyped)} Row fields typed Any, e.g. {untyped[0]} (`from __future__ import "
                        "annotations` in schemas/): the Java runner cannot decode them in streaming")
    try:
        AccountActivityFn().merge_accumulators([])
    except Exception as err:  # Flink fires empty on-time panes; a CombineFn must merge zero accumulators
        blockers.append(f"AccountActivityFn.merge_accumulators([]) raises {type(err).__name__}")
    return blockers


def _ticker(start_ms: int, step_ms: int, count: int, stop):
    """Logins of a clock account, one every `step_ms` of event time: traffic that keeps flowing."""
    for i in range(1, count + 1):
        if stop.is_set():
            return
        yield orjson.dumps(event(start_ms + i * step_ms, "zz-clock", "login"))


def test_streaming_detection_from_kafka_on_flink_alerts_while_traffic_flows(services, tmp_path):
    """The local runner's alerts, published by the streaming job while events are still streaming in.

    After the fixture, a clock account logs in every 5 minutes of event time at a steady 20 records/s
    until the alerts are all out (at most 40 days of event time, ~10 minutes): the topic never pauses, so the
    windows can only close because the watermark follows the records, not because a poll came back
    empty. The assertion is on order (alerts seen while the ticker still produced), not on time.
    """
    import threading

    from pipelines.detect import build_pipeline
    from pipelines.options import LOCAL_RUNNER
    from schemas.timestamps import parse_rfc3339_ms
    from tests.event_factory import MS_PER_DAY, MS_PER_MINUTE, write_jsonl
    from tests.test_flink_runner import fixed_input, run

    bootstrap, expansion = services["BOOTSTRAP"], services["EXPANSION_SERVICE"]
    events = fixed_input()
    last_ms = parse_rfc3339_ms(events[-1]["ts"])
    closer = event(last_ms + MS_PER_DAY, "zz-clock", "login")
    expected = run(write_jsonl(tmp_path / "events.jsonl", events + [closer]), str(tmp_path / "local"),
                   [f"--runner={LOCAL_RUNNER}"])
    assert expected and {actor for _, actor, *_ in expected} == {"acct-2"}, "the fixture must make the scraper alert"
    expected_ids = {alert_id for alert_id, *_ in expected}

    options = GuetteurOptions(
        flink_args(job_endpoint=services["JOB_ENDPOINT"], streaming=True, checkpointing_interval_ms=5000, restarts=0)
        + [f"--input=kafka://{bootstrap}/stream.events", f"--output=kafka://{bootstrap}/stream",
           f"--expansion_service={expansion}"]
    )
    assert not _streaming_blockers(options)
    _script("kafka.sh", "topics", "stream.events", "stream.alerts", "stream.deadletter", run_dir=services["RUN_DIR"])

    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    result = pipeline.run()  # a streaming job: it runs until cancelled
    stop, ticking = threading.Event(), threading.Event()
    seen_while_ticking = []

    def tick():
        ticking.set()
        try:
            replay(bootstrap, "stream.events", _ticker(last_ms, 5 * MS_PER_MINUTE, 40 * 288, stop), rate=20)
        finally:
            ticking.clear()

    def all_out(records):  # an alert is re-published as it escalates: count records, not ids
        done = sum(record["alert_id"] in expected_ids for record, _, _ in records) >= len(expected)
        if done:
            seen_while_ticking.append(ticking.is_set())
        return done

    ticker = threading.Thread(target=tick, name="ticker")
    try:
        replay(bootstrap, "stream.events", to_lines(events))
        ticker.start()
        received = consume(bootstrap, "stream.alerts", all_out, timeout_s=600)
        state = str(result.state)
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        result.cancel()
    facts = sorted((a["alert_id"], a["actor"], a["severity"], a["detected_at"], a["status"], a["observed"])
                   for a, _, _ in received if a["alert_id"] in expected_ids)
    assert facts == expected
    assert seen_while_ticking == [True], "alerts must come while events still stream in, not when the topic pauses"
    assert state == "RUNNING"
    assert not [a for a, _, _ in received if a["alert_id"] not in expected_ids], "no alert beyond the local runner's"


def test_detect_with_kafka_urls_needs_an_expansion_service(capsys):
    from pipelines.cli import main

    code = main(["detect", "--input", "kafka://127.0.0.1:1/events", "--output", "kafka://127.0.0.1:1/guetteur"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and "--expansion_service" in err[0]


def test_kafka_urls_are_parsed_strictly():
    from transforms.kafka_io import parse_kafka_url

    assert parse_kafka_url("kafka://a:9092,b:9092/guetteur.events") == ("a:9092,b:9092", "guetteur.events")
    for bad in ("kafka://a:9092", "kafka:///topic", "kafka://a:9092/x/y"):
        with pytest.raises(ValueError):
            parse_kafka_url(bad)
