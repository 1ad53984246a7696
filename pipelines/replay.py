"""Events into Kafka at a steady rate, and alerts out of it as they arrive (the streaming demo's two ends).

`replay()` sends JSON Lines events to a topic, each record keyed by its actor and timestamped
with the event's own `ts` (Kafka CreateTime), so the pipeline's event time and watermark follow
the events even when a past month is replayed. Lines that are not valid events are sent too (with
the time of the event before them, or of the first one after them): the pipeline must dead-letter
them, not the producer.

`watch_alerts()` prints alerts from `PREFIX.alerts` as they arrive and measures, per alert, the
time from the moment the event that closed its window was produced to the moment the alert is on
the topic (Kafka's own timestamp of the alert record, set by the producer in the pipeline).

    python -m pipelines.replay produce --bootstrap 127.0.0.1:9092 --topic events --input events.jsonl --rate 2000
    python -m pipelines.replay watch --bootstrap 127.0.0.1:9092 --topic guetteur.alerts --seconds 60
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import orjson

from schemas.timestamps import format_rfc3339


def event_time_ms(line: bytes) -> Optional[int]:
    """The event's `ts` in epoch ms, or None when the line is not a parsable event."""
    from transforms.event_parsing import DEFAULT_MAPPING, Rejected, parse_event_line

    try:
        return parse_event_line(line, DEFAULT_MAPPING).ts_ms
    except Rejected:
        return None


def _actor(line: bytes) -> bytes:
    try:
        record = orjson.loads(line)
        actor = record.get("actor") if isinstance(record, dict) else None
    except orjson.JSONDecodeError:
        actor = None
    return str(actor).encode("utf-8") if actor is not None else b""


def read_lines(path: str) -> Iterator[bytes]:
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


class ReplayLog:
    """Wall-clock send time of every event time produced: the start of alert latency."""

    def __init__(self):
        self.event_ms: List[int] = []
        self.sent_at: List[float] = []

    def add(self, event_ms: int, sent_at: float) -> None:
        if not self.event_ms or event_ms >= self.event_ms[-1]:
            self.event_ms.append(event_ms)
            self.sent_at.append(sent_at)

    def first_sent_at_or_after(self, event_ms: int) -> Optional[float]:
        """When the first event at or after `event_ms` was produced (what lets a window close)."""
        index = bisect.bisect_left(self.event_ms, event_ms)
        return self.sent_at[index] if index < len(self.sent_at) else None


def timestamped(lines: Iterable[bytes]) -> Iterator[Tuple[bytes, Optional[int]]]:
    """(line, CreateTime ms) in order: an event's own `ts`; a line without one (not an event) takes the
    time of the event before it, or, at the start, of the first event after it.

    Why never the producer's clock: the pipeline's watermark follows the newest CreateTime read
    (deploy/kafka-read/), so one record stamped with today's date in a replay of a past month
    moved event time to today, and every event after it was too late (dead-lettered `too_late`).
    None only when no line at all is an event.
    """
    waiting: List[bytes] = []  # leading lines without a time, until the first event
    last_ts: Optional[int] = None
    for line in lines:
        ts = event_time_ms(line)
        if ts is None and last_ts is None:
            waiting.append(line)
            continue
        if ts is None:
            ts = last_ts
        for early in waiting:
            yield early, ts
        waiting = []
        last_ts = ts if last_ts is None else max(last_ts, ts)
        yield line, ts
    for early in waiting:
        yield early, None


def replay(bootstrap: str, topic: str, lines: Iterable[bytes], rate: float = 0.0,
           log: Optional[ReplayLog] = None, report_every_s: float = 0.0) -> Dict[str, float]:
    """Sends `lines` to `topic` at `rate` records/s (0: as fast as possible). Returns counts and the rate reached."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1, batch_size=256 * 1024)
    started = time.monotonic()
    sent = 0
    last_ts = 0
    last_report = started
    for line, ts in timestamped(lines):
        if ts is not None:
            last_ts = max(last_ts, ts)
        if rate > 0:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send(topic, key=_actor(line), value=line, timestamp_ms=ts)
        sent += 1
        if log is not None and ts is not None:
            log.add(ts, time.time())
        if report_every_s and time.monotonic() - last_report >= report_every_s:
            last_report = time.monotonic()
            print(f"replay: {sent:,} events sent, event time {format_rfc3339(last_ts)}, "
                  f"{sent / (last_report - started):,.0f} events/s", file=sys.stderr, flush=True)
    producer.flush()
    producer.close()
    elapsed = time.monotonic() - started
    return {"sent": sent, "seconds": round(elapsed, 3), "events_per_second": round(sent / elapsed, 1) if elapsed else 0.0,
            "last_event_ms": last_ts}


def consume(bootstrap: str, topic: str, until, timeout_s: float, poll_ms: int = 500
            ) -> List[Tuple[dict, int, float]]:
    """(record, Kafka timestamp ms, wall-clock receipt) of each record on `topic` until `until(records)` or timeout."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=poll_ms)
    records: List[Tuple[dict, int, float]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(records):
            batch = consumer.poll(timeout_ms=poll_ms)
            for messages in batch.values():
                for message in messages:
                    records.append((orjson.loads(message.value), message.timestamp, time.time()))
    finally:
        consumer.close()
    return records


def latency_of(alert: dict, alert_kafka_ms: int, log: ReplayLog) -> Optional[float]:
    """Seconds from the production of the event that let the alert's window close to the alert on the topic."""
    from schemas.timestamps import parse_rfc3339_ms

    window_end_ms = parse_rfc3339_ms(alert["window_end"])
    produced = log.first_sent_at_or_after(window_end_ms)
    if produced is None:
        return None
    return alert_kafka_ms / 1000.0 - produced


def percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.replay")
    commands = parser.add_subparsers(dest="command", required=True)
    produce = commands.add_parser("produce", help="JSON Lines events -> a Kafka topic, CreateTime = event ts")
    produce.add_argument("--bootstrap", required=True)
    produce.add_argument("--topic", required=True)
    produce.add_argument("--input", required=True)
    produce.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    watch = commands.add_parser("watch", help="print alerts from a topic as they arrive")
    watch.add_argument("--bootstrap", required=True)
    watch.add_argument("--topic", required=True)
    watch.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "produce":
        print(json.dumps(replay(args.bootstrap, args.topic, read_lines(args.input), args.rate, report_every_s=5.0)))
        return 0

    def show(records):
        while show.printed < len(records):
            alert = records[show.printed][0]
            print(f"{alert.get('detected_at')}  {alert.get('severity', ''):8}  {alert.get('rule', ''):26}  "
                  f"{alert.get('actor')}  observed={alert.get('observed')}", flush=True)
            show.printed += 1
        return False

    show.printed = 0
    consume(args.bootstrap, args.topic, show, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
