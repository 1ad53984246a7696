"""Validate one input line against CONTRACT §1, turning it into an AccessEvent.

Pure functions, no Beam: the DoFn in `read_events.py` calls them, and tests
call them directly. Every way a line can be wrong maps to one reason code of
`schemas.dead_letter`, so a rejected line is never a crash and never silent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import orjson

from schemas import dead_letter as dl
from schemas.event import AccessEvent
from schemas.timestamps import MAX_EVENT_MS, MIN_EVENT_MS, parse_rfc3339_ms

MAX_LINE_BYTES = 1 << 20  # a log line over 1 MiB is a broken producer, not an access
MAX_ACTOR_CHARS = 256
MAX_COUNT = 100_000_000  # more records than the whole service holds
MAX_TEXT_CHARS = 4096  # optional text fields beyond this are truncated, not rejected
# Files saved by Windows tools start with a UTF-8 byte order mark; Beam's text reader keeps it
# on the first line, where it would make that file's first event invalid JSON (RFC 8259 §8.1
# lets a parser ignore it). The dead letter of a rejected line still keeps its exact bytes.
UTF8_BOM = b"\xef\xbb\xbf"

OPTIONAL_TEXT_FIELDS = ("record", "target", "org", "actor_type", "app", "ip", "ua", "session", "event_id")
assert OPTIONAL_TEXT_FIELDS == AccessEvent._fields[4:], "events are built positionally"
# Ids are often numeric in source systems; accepting integers here loses no meaning.
ID_FIELDS = frozenset({"record", "target", "session", "event_id", "org"})


class Rejected(Exception):
    """A line that breaks the contract; `reason` is a schemas.dead_letter code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FieldMapping:
    """Where each contract field is found in an ECS-shaped object.

    Each contract field maps to candidate paths, tried in order; a path is
    dotted (`user.name`) and matches either nested objects or a flattened key.
    """

    paths: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: {
            "ts": ("@timestamp",),
            "actor": ("user.name", "user.id"),
            "action": ("event.action",),
            "count": ("guetteur.count", "labels.count"),
            "record": ("guetteur.record", "labels.record"),
            "target": ("user.target.name", "user.target.id"),
            "org": ("organization.id", "organization.name"),
            "actor_type": ("guetteur.actor_type", "labels.actor_type", "user.roles"),
            "app": ("service.name", "event.dataset"),
            "ip": ("source.ip", "client.ip"),
            "ua": ("user_agent.original",),
            "session": ("session.id", "labels.session"),
            "event_id": ("event.id",),
        }
    )

    # An object is read as ECS when it has this key and no flat `ts`.
    marker: str = "@timestamp"

    @classmethod
    def from_json_file(cls, path: str) -> "FieldMapping":
        """A mapping file: {"ts": ["@timestamp"], "actor": ["user.name", ...], ...}.

        Fields it does not name keep their default paths.
        """
        with open(path, "rb") as handle:
            overrides = json.load(handle)
        if not isinstance(overrides, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) for p in v)
            for k, v in overrides.items()
        ):
            raise ValueError(f"{path}: expected an object of field name -> list of paths")
        unknown = set(overrides) - set(cls().paths)
        if unknown:
            raise ValueError(f"{path}: unknown contract fields {sorted(unknown)}")
        paths = dict(cls().paths)
        paths.update({k: tuple(v) for k, v in overrides.items()})
        return cls(paths=paths)


DEFAULT_MAPPING = FieldMapping()


def _lookup(obj: Mapping[str, Any], path: str) -> Any:
    if path in obj:
        return obj[path]
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flatten_ecs(obj: Mapping[str, Any], mapping: FieldMapping) -> dict:
    flat = {}
    for name, paths in mapping.paths.items():
        for path in paths:
            value = _lookup(obj, path)
            if value is not None:
                # ECS allows arrays for some keyword fields (user.roles); take the first.
                if isinstance(value, list) and value and name != "ts":
                    value = value[0]
                flat[name] = value
                break
    return flat


def _parse_ts(value: Any) -> int:
    if isinstance(value, bool):
        raise Rejected(dl.WRONG_TYPE, "field 'ts' must be an RFC 3339 string or epoch milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            ms = parse_rfc3339_ms(value)
        except (ValueError, OverflowError) as err:
            raise Rejected(dl.BAD_TIMESTAMP, f"field 'ts' {value[:64]!r}: {err}") from None
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise Rejected(dl.BAD_TIMESTAMP, "field 'ts' must be whole epoch milliseconds")
        ms = int(value)
    else:
        raise Rejected(dl.WRONG_TYPE, "field 'ts' must be an RFC 3339 string or epoch milliseconds")
    if not MIN_EVENT_MS <= ms < MAX_EVENT_MS:
        raise Rejected(dl.OUT_OF_RANGE, "field 'ts' is outside 2000-01-01 .. 2100-01-01")
    return ms


def _parse_count(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            value = int(value)
        else:
            raise Rejected(dl.WRONG_TYPE, "field 'count' must be an integer")
    if not 1 <= value <= MAX_COUNT:
        raise Rejected(dl.OUT_OF_RANGE, f"field 'count' must be between 1 and {MAX_COUNT}")
    return value


def _parse_text(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS] if value else None
    if name in ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Rejected(dl.WRONG_TYPE, f"field {name!r} must be a string")


def _optional_text(name: str, value: Any) -> Optional[str]:
    # The common case inline: _parse_text for everything else.
    if value is None:
        return None
    if type(value) is str:
        if len(value) > MAX_TEXT_CHARS:
            return value[:MAX_TEXT_CHARS]
        return value or None
    return _parse_text(name, value)


def event_from_object(obj: Any, mapping: FieldMapping = DEFAULT_MAPPING) -> AccessEvent:
    """The AccessEvent for a decoded JSON value, or Rejected."""
    if not isinstance(obj, dict):
        raise Rejected(dl.NOT_AN_OBJECT, f"a JSON {type(obj).__name__} is not an event object")
    if "ts" not in obj and mapping.marker in obj:
        obj = _flatten_ecs(obj, mapping)
    get = obj.get

    for required in ("ts", "actor", "action"):
        if get(required) is None:
            raise Rejected(dl.MISSING_FIELD, f"field {required!r} is required")

    actor = obj["actor"]
    if type(actor) is not str:
        if isinstance(actor, int) and not isinstance(actor, bool):
            actor = str(actor)
        if not isinstance(actor, str):
            raise Rejected(dl.WRONG_TYPE, "field 'actor' must be a string")
    if not actor.strip():
        raise Rejected(dl.OUT_OF_RANGE, "field 'actor' is empty")
    if len(actor) > MAX_ACTOR_CHARS:
        raise Rejected(dl.OUT_OF_RANGE, f"field 'actor' is longer than {MAX_ACTOR_CHARS} characters")

    action = obj["action"]
    if not isinstance(action, str):
        raise Rejected(dl.WRONG_TYPE, "field 'action' must be a string")
    if not action:
        raise Rejected(dl.OUT_OF_RANGE, "field 'action' is empty")

    ts_ms = _parse_ts(obj["ts"])
    count = get("count")
    count = 1 if count is None else _parse_count(count)
    # Positional, in AccessEvent's field order (OPTIONAL_TEXT_FIELDS follows it): this runs per line.
    return AccessEvent._make((
        ts_ms, actor, action[:64], count,
        *[_optional_text(name, get(name)) for name in OPTIONAL_TEXT_FIELDS],
    ))


def parse_event_line(line: bytes, mapping: FieldMapping = DEFAULT_MAPPING) -> AccessEvent:
    """The AccessEvent for one raw JSON line, or Rejected with the reason."""
    if len(line) > MAX_LINE_BYTES:
        raise Rejected(dl.LINE_TOO_LONG, f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    if line.startswith(UTF8_BOM):
        line = line[len(UTF8_BOM):]
    if not line.strip():
        raise Rejected(dl.EMPTY_LINE, "empty line")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as utf_err:
            raise Rejected(dl.INVALID_UTF8, f"byte {utf_err.start} is not valid UTF-8") from None
        raise Rejected(dl.INVALID_JSON, str(err)[:200]) from None
    return event_from_object(obj, mapping)

