"""The streaming rows of `make bench`: detection on a real Flink session cluster, fed from Kafka.

For each offered rate, `deploy/local/demo-flink.sh` starts Kafka, a Flink session cluster and
Beam's job server on loopback, streams the first `events` simulated events into Kafka at that
rate, and prints a JSON summary (pipelines/stream_demo.py): events/s through the pipeline
(every line read, by Beam's own counter on Flink's Prometheus reporter), alert latency p50/p99
(event that closes the window into Kafka -> alert on the alerts topic), alerts seen while events
were still streaming in. The pipeline keeps up with a rate when its throughput stays at that rate
and its alerts leave while events still stream; above it, the lag and the latency grow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEPS_UP = 0.95  # through / offered at or above this: the pipeline kept up with the offered rate


def summary_of(text: str) -> dict:
    """The JSON summary stream_demo prints after its ALERT lines."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "{"), None)
    if start is None:
        raise ValueError("no JSON summary in the demo's output")
    return json.loads("\n".join(lines[start:]))


def streaming_row(rate: float, summary: dict) -> dict:
    latency = summary.get("alert_latency_seconds") or {}
    through = summary.get("events_per_second_through_pipeline")
    return {
        "offered_events_per_s": rate,
        "events_in": summary.get("events_in"),
        "events_per_second_into_kafka": summary.get("events_per_second_into_kafka"),
        "events_per_second_through_pipeline": through,
        "kept_up": bool(through) and through >= KEEPS_UP * rate
        and summary.get("alerts_while_events_were_still_streaming_in") == summary.get("alerts"),
        "alerts": summary.get("alerts"),
        "alerts_while_streaming": summary.get("alerts_while_events_were_still_streaming_in"),
        "latency_p50_s": latency.get("p50"),
        "latency_p99_s": latency.get("p99"),
        "job_state_before_cancel": summary.get("job_state_before_cancel"),
    }


def measure(rates: Sequence[float], events: int, output: str) -> List[dict]:
    """One demo-flink run per rate; its full output kept in `output`."""
    rows = []
    os.makedirs(output, exist_ok=True)
    for rate in rates:
        env = dict(os.environ, DEMO_RATE=f"{rate:g}", DEMO_LIMIT=str(events))
        done = subprocess.run([os.path.join(REPO, "deploy", "local", "demo-flink.sh")], env=env, cwd=REPO,
                              capture_output=True, text=True)
        log = os.path.join(output, f"flink-{rate:g}.log")
        with open(log, "w") as handle:
            handle.write(done.stdout + done.stderr)
        if done.returncode != 0:
            rows.append({"offered_events_per_s": rate, "error": f"demo-flink.sh exited {done.returncode}: see {log}"})
            continue
        summary_path = os.path.join(REPO, "out", "demo-flink", "summary.txt")
        shutil.copy(summary_path, os.path.join(output, f"flink-{rate:g}-summary.txt"))
        with open(summary_path) as handle:
            rows.append(streaming_row(rate, summary_of(handle.read())))
    return rows


def format_table(rows: List[dict]) -> str:
    header = (f"{'flink, from Kafka':<19}{'offered ev/s':>13}{'through ev/s':>14}{'kept up':>9}{'alerts':>8}"
              f"{'while streaming':>17}{'latency p50 s':>15}{'p99 s':>8}")
    lines = [header, "-" * len(header)]
    for row in rows:
        if "error" in row:
            lines.append(f"{'':<19}{row['offered_events_per_s']:>13,.0f}  {row['error']}")
            continue
        lines.append(
            f"{'':<19}{row['offered_events_per_s']:>13,.0f}{row['events_per_second_through_pipeline'] or 0:>14,.1f}"
            f"{'yes' if row['kept_up'] else 'no':>9}{row['alerts']:>8}{row['alerts_while_streaming']:>17}"
            f"{row['latency_p50_s'] if row['latency_p50_s'] is not None else '-':>15}"
            f"{row['latency_p99_s'] if row['latency_p99_s'] is not None else '-':>8}"
        )
    return "\n".join(lines)
