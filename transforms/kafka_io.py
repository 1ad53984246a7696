"""Kafka in and out, through Beam's cross-language KafkaIO (Java), as composite transforms.

- `ReadEventsFromKafka`: a topic of JSON Lines events -> `(source, raw bytes)` pairs, the input of
  `ParseEvents`, each timestamped with its Kafka record's CreateTime. The producer
  (`pipelines.replay`) sets that to the event's `ts`, so event time, and the watermark, follow the
  events even when a past month is replayed.

  A stream is read through Guetteur's own cross-language transform (deploy/kafka-read/, Java):
  KafkaIO with a timestamp policy whose watermark is the newest CreateTime read minus
  `max_disorder_ms`. KafkaIO's built-in "CreateTime" policy jumps the watermark to the wall clock
  whenever the reader has caught up with the topic, which under a steady stream of past events
  (a replay, a backlog) makes every following event late. The expansion service runs KafkaIO as a
  native Flink source (`use_deprecated_read`, deploy/local/beam-services.sh): Beam 2.54's splittable
  Kafka read never ends its bundle while records keep coming, so on Flink its watermark only moved
  when the topic paused. A bounded read (`max_num_records`) keeps KafkaIO's built-in transform.
- `WriteJsonToKafka`: records -> JSON values on a topic, keyed (alerts by actor).

The expansion service is a Java process (deploy/local/beam-services.sh) started with
`--defaultEnvironmentType=EMBEDDED`, so KafkaIO runs inside the Flink JVM, not in a container.

The payloads are built here rather than with `apache_beam.io.kafka.ReadFromKafka` because that
class sends configuration fields newer than the Java KafkaIO this project can fetch (Beam Java
2.54, see deploy/local/versions.sh) and the expansion would be refused; the URNs and the fields
sent are the ones both understand.
"""

from __future__ import annotations

import typing
from typing import Mapping, Optional

import apache_beam as beam
import orjson
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder

READ_URN = "beam:transform:org.apache.beam:kafka_read_without_metadata:v1"
EVENT_TIME_READ_URN = "beam:transform:guetteur:kafka_read_event_time:v1"  # deploy/kafka-read/
# Out-of-order tolerance of the watermark: an event up to this much older than the newest one read is
# still on time. Later ones are late (allowed lateness then decides, transforms/account_windows.py).
DEFAULT_MAX_DISORDER_MS = 10_000
WRITE_URN = "beam:transform:org.apache.beam:kafka_write:v1"
BYTES_DESERIALIZER = "org.apache.kafka.common.serialization.ByteArrayDeserializer"
BYTES_SERIALIZER = "org.apache.kafka.common.serialization.ByteArraySerializer"
CREATE_TIME = "CreateTime"

_ReadConfig = typing.NamedTuple(
    "_ReadConfig",
    [
        ("consumer_config", typing.Mapping[str, str]),
        ("topics", typing.List[str]),
        ("key_deserializer", str),
        ("value_deserializer", str),
        ("start_read_time", typing.Optional[int]),
        ("max_num_records", typing.Optional[int]),
        ("max_read_time", typing.Optional[int]),
        ("commit_offset_in_finalize", bool),
        ("timestamp_policy", str),
    ],
)

_EventTimeReadConfig = typing.NamedTuple(
    "_EventTimeReadConfig",
    [
        ("consumer_config", typing.Mapping[str, str]),
        ("topics", typing.List[str]),
        ("max_disorder_ms", int),
        ("idle_advance_ms", int),
        ("start_read_time", typing.Optional[int]),
        ("commit_offset_in_finalize", bool),
    ],
)

_WriteConfig = typing.NamedTuple(
    "_WriteConfig",
    [
        ("producer_config", typing.Mapping[str, str]),
        ("topic", str),
        ("key_serializer", str),
        ("value_serializer", str),
    ],
)


def kafka_source_name(bootstrap: str, topic: str) -> str:
    return f"kafka://{bootstrap}/{topic}"


class ReadEventsFromKafka(beam.PTransform):
    """Raw event lines from a Kafka topic, as `(source, bytes)` pairs timestamped with CreateTime.

    `max_num_records` makes the read bounded (tests, backfills); without it the read never ends.
    `group_id` lets a restarted job resume from committed offsets (committed on checkpoint).
    `max_disorder_ms`: how far behind the newest CreateTime read the watermark stays.
    `idle_advance_ms`: 0 (default) keeps event time still while the topic is idle, right for replays;
    a live topic can set it so that, after that long without records, event time follows the clock.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        expansion_service: str,
        group_id: Optional[str] = None,
        start_read_time_ms: Optional[int] = None,
        max_num_records: Optional[int] = None,
        consumer_config: Optional[Mapping[str, str]] = None,
        max_disorder_ms: int = DEFAULT_MAX_DISORDER_MS,
        idle_advance_ms: int = 0,
    ):
        super().__init__()
        self._max_disorder_ms = max_disorder_ms
        self._idle_advance_ms = idle_advance_ms
        self._bootstrap = bootstrap
        self._topic = topic
        self._expansion_service = expansion_service
        self._group_id = group_id
        self._start_read_time_ms = start_read_time_ms
        self._max_num_records = max_num_records
        self._consumer_config = dict(consumer_config or {})

    def expand(self, pbegin):
        config = {"bootstrap.servers": self._bootstrap, "auto.offset.reset": "earliest", **self._consumer_config}
        if self._group_id:
            config["group.id"] = self._group_id
        if self._max_num_records is None:
            urn, payload = EVENT_TIME_READ_URN, _EventTimeReadConfig(
                consumer_config=config,
                topics=[self._topic],
                max_disorder_ms=self._max_disorder_ms,
                idle_advance_ms=self._idle_advance_ms,
                start_read_time=self._start_read_time_ms,
                commit_offset_in_finalize=bool(self._group_id),
            )
        else:
            urn, payload = READ_URN, _ReadConfig(
                consumer_config=config,
                topics=[self._topic],
                key_deserializer=BYTES_DESERIALIZER,
                value_deserializer=BYTES_DESERIALIZER,
                start_read_time=self._start_read_time_ms,
                max_num_records=self._max_num_records,
                max_read_time=None,
                commit_offset_in_finalize=bool(self._group_id),
                timestamp_policy=CREATE_TIME,
            )
        source = kafka_source_name(self._bootstrap, self._topic)
        return (
            pbegin
            | "KafkaIO" >> ExternalTransform(urn, NamedTupleBasedPayloadBuilder(payload), self._expansion_service)
            | "WithSource" >> beam.Map(lambda kv, source=source: (source, kv[1])).with_output_types(
                typing.Tuple[str, bytes]
            )
        )


class WriteJsonToKafka(beam.PTransform):
    """Records -> JSON values on `topic`; `key_fn(record)` (a str) becomes the Kafka key."""

    def __init__(self, bootstrap: str, topic: str, expansion_service: str, to_json, key_fn,
                 producer_config: Optional[Mapping[str, str]] = None):
        super().__init__()
        self._bootstrap = bootstrap
        self._topic = topic
        self._expansion_service = expansion_service
        self._to_json = to_json
        self._key_fn = key_fn
        self._producer_config = dict(producer_config or {})

    def expand(self, records):
        payload = _WriteConfig(
            producer_config={"bootstrap.servers": self._bootstrap, "linger.ms": "5", **self._producer_config},
            topic=self._topic,
            key_serializer=BYTES_SERIALIZER,
            value_serializer=BYTES_SERIALIZER,
        )
        to_json, key_fn = self._to_json, self._key_fn
        return (
            records
            | "ToKafkaRecord"
            >> beam.Map(lambda r: ((key_fn(r) or "").encode("utf-8"), orjson.dumps(to_json(r)))).with_output_types(
                typing.Tuple[bytes, bytes]
            )
            | "KafkaIO" >> ExternalTransform(WRITE_URN, NamedTupleBasedPayloadBuilder(payload), self._expansion_service)
        )


def is_kafka_url(location: Optional[str]) -> bool:
    return bool(location) and location.startswith("kafka://")


def parse_kafka_url(url: str):
    """`kafka://HOST:PORT[,HOST:PORT...]/NAME` -> (bootstrap servers, NAME)."""
    rest = url[len("kafka://"):]
    bootstrap, _, name = rest.partition("/")
    if not bootstrap or not name or "/" in name:
        raise ValueError(f"expected kafka://HOST:PORT/TOPIC, got {url!r}")
    return bootstrap, name
