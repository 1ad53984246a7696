"""The streaming rows of make bench (pipelines/bench_flink.py): stream_demo's summary read back, kept-up judged."""

import json

import pytest

from pipelines import bench_flink

SUMMARY = {
    "alert_latency_seconds": {"max": 32.09, "measured": 20, "p50": 23.7, "p99": 32.09},
    "alerts": 20, "alerts_while_events_were_still_streaming_in": 20,
    "events_in": 60001, "events_per_second_into_kafka": 999.8, "events_per_second_through_pipeline": 981.6,
    "job_state_before_cancel": "RUNNING",
}


def _demo_output(summary) -> str:
    alerts = "ALERT 2026-03-24T09:15:00.000Z  high      consultation_volume  acct-000001  observed=900  latency= 3.1 s"
    return "\n".join([alerts, alerts, json.dumps(summary, indent=2)]) + "\n"


def test_the_summary_is_read_after_the_alert_lines():
    assert bench_flink.summary_of(_demo_output(SUMMARY)) == SUMMARY
    with pytest.raises(ValueError):
        bench_flink.summary_of("ALERT only\n")


def test_a_rate_is_kept_up_with_only_when_throughput_holds_and_alerts_leave_while_streaming():
    row = bench_flink.streaming_row(1000, SUMMARY)
    assert row["kept_up"] and (row["latency_p50_s"], row["latency_p99_s"]) == (23.7, 32.09)
    slow = dict(SUMMARY, events_per_second_through_pipeline=1164.2)
    assert not bench_flink.streaming_row(2000, slow)["kept_up"]  # 58 % of what was offered
    late = dict(SUMMARY, alerts_while_events_were_still_streaming_in=0)
    assert not bench_flink.streaming_row(1000, late)["kept_up"]  # throughput held, but alerts came after
    table = bench_flink.format_table([row, bench_flink.streaming_row(2000, slow),
                                      {"offered_events_per_s": 500, "error": "demo-flink.sh exited 1"}])
    assert "981.6" in table and "1,164.2" in table and "demo-flink.sh exited 1" in table
