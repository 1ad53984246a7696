"""The streaming demo's driver (make demo-flink): submit, stream in, watch alerts come out, measure.

1. submits the detection pipeline in streaming mode to a Flink cluster (through a job server),
   reading `kafka://BOOTSTRAP/PREFIX.events` and writing `PREFIX.alerts` / `PREFIX.deadletter`;
2. replays JSON Lines events into the events topic at a steady rate, each record's CreateTime set
   to the event's `ts`; a last event a day later lets the final windows close;
3. prints every alert as it arrives on the alerts topic, with its latency: from the moment the
   event that let its window close was produced to the alert record on the topic;
4. prints a JSON summary (rates, latency p50/p99, Beam counters read from Flink's Prometheus
   reporter) and cancels the job.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import urllib.request
from typing import Dict, List, Optional

from pipelines.replay import ReplayLog, consume, latency_of, percentile, read_lines, replay
from pipelines.runners import add_stream_service_arguments


def _prometheus_counters(ports: List[int], names=("lines_read", "events_accepted", "dead_lettered", "windows_scored",
                                                     "late_windows")
                         ) -> Dict[str, float]:
    """Beam counters as Flink's Prometheus reporter exposes them (summed over operators)."""
    totals: Dict[str, float] = {}
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            for name in names:
                if re.match(rf"flink_taskmanager_job_task_operator_\w*{name}(\{{|\s)", line):
                    totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def run_demo(args) -> dict:
    import apache_beam as beam
    import orjson

    from pipelines.detect import build_pipeline
    from pipelines.options import GuetteurOptions
    from pipelines.runners import flink_args
    from schemas.timestamps import format_rfc3339_ms

    options = GuetteurOptions(
        flink_args(job_endpoint=args.job_endpoint, flink_master=args.flink_master, streaming=True,
                   checkpointing_interval_ms=args.checkpoint_ms, parallelism=args.parallelism,
                   finish_bundle_before_checkpointing=not args.bundles_across_checkpoints)
        + [f"--input=kafka://{args.bootstrap}/{args.prefix}.events", f"--output=kafka://{args.bootstrap}/{args.prefix}",
           f"--expansion_service={args.expansion_service}", f"--kafka_group_id={args.prefix}-detect"]
    )
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    submitted = time.time()
    result = pipeline.run()
    print(f"demo: detection submitted to Flink {args.flink_master} ({result.state})", file=sys.stderr, flush=True)

    lines = list(read_lines(args.input))
    if args.limit:
        lines = lines[: args.limit]
    last_ts = max((t for t in (_ts(line) for line in lines) if t is not None), default=0)
    closer = orjson.dumps({"ts": format_rfc3339_ms(last_ts + 86_400_000), "actor": "zz-clock", "action": "login"})
    log = ReplayLog()
    produced: Dict[str, float] = {}
    alerts: List[tuple] = []
    alert_times: List[tuple] = []
    alerts_while_producing: List[dict] = []
    producing = threading.Event()
    producing.set()
    stop = threading.Event()

    def produce():
        produced.update(replay(args.bootstrap, f"{args.prefix}.events", lines + [closer], rate=args.rate, log=log,
                               report_every_s=10.0))

    def on_alerts(records):
        while len(alerts) < len(records):
            alert, kafka_ms, received = records[len(alerts)]
            latency = latency_of(alert, kafka_ms, log)
            alerts.append((alert, latency))
            alert_times.append((alert, kafka_ms, received))
            if producing.is_set():
                alerts_while_producing.append(alert)
            shown = f"{latency:6.1f} s" if latency is not None else "     ?"
            print(f"ALERT {alert['detected_at']}  {alert['severity']:8}  {alert['rule']:26}  {alert['actor']:14}  "
                  f"observed={alert['observed']:<7} latency={shown}", flush=True)
        return stop.is_set()

    producer = threading.Thread(target=produce, name="replay")
    producer.start()
    watcher = threading.Thread(target=lambda: consume(args.bootstrap, f"{args.prefix}.alerts", on_alerts,
                                                      timeout_s=args.max_seconds), name="alerts")
    watcher.start()
    producer.join()
    producing.clear()
    produced_at = time.time()
    # Let the pipeline drain: every line read (Beam counter), then until neither the windows scored nor
    # the alerts have moved for `settle_seconds` once some have (the last windows close as the watermark
    # passes them), or `drain_seconds` at most.
    deadline = time.time() + args.drain_seconds
    through_done: Optional[float] = None
    last_change, last_seen = time.time(), None
    while time.time() < deadline:
        counters = _prometheus_counters(args.prometheus_ports, names=("lines_read", "windows_scored"))
        if through_done is None and counters.get("lines_read", 0) >= len(lines) + 1:
            through_done = time.time()
        seen = (counters.get("windows_scored"), len(alerts))
        if seen != last_seen:
            last_change, last_seen = time.time(), seen
        elif (through_done is not None and (seen[0] or seen[1])
              and time.time() - last_change >= args.settle_seconds):
            break
        time.sleep(1.0)
    stop.set()
    watcher.join()
    counters = _prometheus_counters(args.prometheus_ports)
    state = str(result.state)
    result.cancel()

    latencies = [lat for _, lat in alerts if lat is not None]
    first_sent = log.sent_at[0] if log.sent_at else submitted
    return {
        "events_in": produced.get("sent"),
        "events_per_second_into_kafka": produced.get("events_per_second"),
        "events_per_second_through_pipeline": (
            round((len(lines) + 1) / (through_done - first_sent), 1) if through_done else None),
        "job_state_before_cancel": state,
        "alerts": len(alerts),
        "alerts_while_events_were_still_streaming_in": len(alerts_while_producing),
        "alert_latency_seconds": {"p50": _round(percentile(latencies, 50)), "p99": _round(percentile(latencies, 99)),
                                  "max": _round(max(latencies) if latencies else None), "measured": len(latencies)},
        "beam_counters_from_prometheus": counters,
        "seconds_from_first_event_to_last_alert": (
            round(max(r for _, _, r in alert_times) - first_sent, 1) if alert_times else None),
        "seconds_producing": round(produced_at - first_sent, 1),
    }


def _ts(line: bytes) -> Optional[int]:
    from pipelines.replay import event_time_ms

    return event_time_ms(line)


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.stream_demo")
    add_stream_service_arguments(parser)
    parser.add_argument("--prefix", default="guetteur")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second into Kafka")
    parser.add_argument("--limit", type=int, default=0, help="replay only the first N events")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--checkpoint-ms", type=int, default=10_000)
    parser.add_argument("--bundles-across-checkpoints", action="store_true",
                        help="Flink's default: a bundle open at a checkpoint is finished within it (its outputs "
                             "then fall behind the watermark: late panes); for measuring, not for use")
    parser.add_argument("--prometheus-ports", type=lambda s: [int(p) for p in s.split(",")], default=[9249, 9250])
    parser.add_argument("--drain-seconds", type=float, default=300.0)
    parser.add_argument("--settle-seconds", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    summary = run_demo(args)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if summary["alerts"] else 1


if __name__ == "__main__":
    sys.exit(main())
