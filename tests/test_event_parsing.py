"""Validation of input lines against CONTRACT §1: every rejection reason, and what is accepted."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import dead_letter as dl
from schemas.event import OTHER, AccessEvent, action_kind
from transforms.event_parsing import (
    MAX_LINE_BYTES,
    FieldMapping,
    Rejected,
    event_from_object,
    parse_event_line,
)

GOOD = {"ts": "2026-03-02T09:15:02.123Z", "actor": "acct-1", "action": "consult", "record": "rec-1"}


def line(**changes) -> bytes:
    obj = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(Rejected) as caught:
        parse_event_line(raw)
    return caught.value.reason


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", dl.EMPTY_LINE),
        (b"   \t", dl.EMPTY_LINE),
        (b"x" * (MAX_LINE_BYTES + 1), dl.LINE_TOO_LONG),
        (b'{"ts": "2026-03-02T09:15:02Z", "actor": "\xff\xfe", "action": "consult"}', dl.INVALID_UTF8),
        (b"not json at all", dl.INVALID_JSON),
        (b'{"ts": "2026-03-02T09:15:02Z", "actor": "a", "action": "consult"', dl.INVALID_JSON),
        (b'{"ts": 1, "count": NaN}', dl.INVALID_JSON),
        (b"[" * 5000 + b"]" * 5000, dl.INVALID_JSON),
        (b"[1, 2, 3]", dl.NOT_AN_OBJECT),
        (b'"a string"', dl.NOT_AN_OBJECT),
        (b"42", dl.NOT_AN_OBJECT),
        (line(actor=...), dl.MISSING_FIELD),
        (line(ts=...), dl.MISSING_FIELD),
        (line(action=...), dl.MISSING_FIELD),
        (line(actor=None), dl.MISSING_FIELD),
        (line(actor=["a"]), dl.WRONG_TYPE),
        (line(action=7), dl.WRONG_TYPE),
        (line(count="12"), dl.WRONG_TYPE),
        (line(count=True), dl.WRONG_TYPE),
        (line(count=2.5), dl.WRONG_TYPE),
        (line(ts=True), dl.WRONG_TYPE),
        (line(ts={"when": 1}), dl.WRONG_TYPE),
        (line(org={"id": 1}), dl.WRONG_TYPE),
        (line(count=0), dl.OUT_OF_RANGE),
        (line(count=-5), dl.OUT_OF_RANGE),
        (line(count=10**12), dl.OUT_OF_RANGE),
        (line(actor=""), dl.OUT_OF_RANGE),
        (line(actor="   "), dl.OUT_OF_RANGE),
        (line(actor="a" * 257), dl.OUT_OF_RANGE),
        (line(action=""), dl.OUT_OF_RANGE),
        (line(ts=12), dl.OUT_OF_RANGE),
        (line(ts="1999-12-31T23:59:59Z"), dl.OUT_OF_RANGE),
        (line(ts="yesterday"), dl.BAD_TIMESTAMP),
        (line(ts="2026-03-02T09:15:02"), dl.BAD_TIMESTAMP),
        (line(ts="2026-03-02"), dl.BAD_TIMESTAMP),
        (line(ts="2026-13-45T09:15:02Z"), dl.BAD_TIMESTAMP),
        (line(ts=1.5e12 + 0.5), dl.BAD_TIMESTAMP),
    ],
)
def test_each_rejection_has_its_reason(raw, reason):
    assert reason_of(raw) == reason


def test_rejections_say_what_was_wrong():
    with pytest.raises(Rejected) as caught:
        parse_event_line(line(count=-5))
    assert "count" in caught.value.detail


def test_a_valid_line_becomes_an_event_in_epoch_milliseconds():
    event = parse_event_line(line())
    assert event == AccessEvent(ts_ms=1_772_442_902_123, actor="acct-1", action="consult", count=1, record="rec-1")
    assert event.records_touched == 1


def test_offsets_and_epoch_milliseconds_give_the_same_instant():
    paris = parse_event_line(line(ts="2026-03-02T10:15:02.123+01:00"))
    epoch = parse_event_line(line(ts=1_772_442_902_123))
    assert paris.ts_ms == epoch.ts_ms == 1_772_442_902_123


def test_search_and_export_touch_count_records_and_logins_none():
    assert parse_event_line(line(action="search", count=40)).records_touched == 40
    assert parse_event_line(line(action="export", count=900)).records_touched == 900
    assert parse_event_line(line(action="login")).records_touched == 0


def test_unknown_fields_are_ignored_and_unknown_actions_kept_as_other():
    event = parse_event_line(line(action="print_letter", colour="blue", nested={"a": [1, 2]}))
    assert event.action == "print_letter"
    assert action_kind(event.action) == OTHER
    assert event.records_touched == 0


def test_numeric_ids_are_accepted_as_text():
    event = parse_event_line(line(record=123456, event_id=99, actor=4217))
    assert (event.record, event.event_id, event.actor) == ("123456", "99", "4217")


def test_ecs_objects_are_read_through_the_default_mapping():
    ecs = {
        "@timestamp": "2026-03-02T09:15:02.123Z",
        "user": {"name": "acct-1", "target": {"name": "acct-9"}},
        "event": {"action": "account_create", "id": "ev-1"},
        "organization": {"id": "ml-38"},
        "source": {"ip": "192.0.2.4"},
    }
    event = event_from_object(ecs)
    assert (event.actor, event.action, event.target, event.org, event.ip, event.event_id) == (
        "acct-1", "account_create", "acct-9", "ml-38", "192.0.2.4", "ev-1")


def test_ecs_flattened_keys_and_a_custom_mapping(tmp_path):
    mapping_file = tmp_path / "mapping.json"
    mapping_file.write_text(json.dumps({"actor": ["user.email_hash"], "record": ["file.id"]}))
    mapping = FieldMapping.from_json_file(str(mapping_file))
    flat = {"@timestamp": 1_772_442_902_123, "user.email_hash": "h-1", "event.action": "consult", "file.id": "rec-7"}
    event = event_from_object(flat, mapping)
    assert (event.actor, event.record) == ("h-1", "rec-7")


def test_a_mapping_naming_unknown_fields_is_refused(tmp_path):
    mapping_file = tmp_path / "mapping.json"
    mapping_file.write_text(json.dumps({"actorr": ["user.name"]}))
    with pytest.raises(ValueError, match="actorr"):
        FieldMapping.from_json_file(str(mapping_file))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_anything_but_a_rejection(raw):
    try:
        parse_event_line(raw)
    except Rejected as rejection:
        assert rejection.reason in dl.LINE_REASONS


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["ts", "actor", "action", "count", "record", "org", "event_id"]), JSON_VALUES))
def test_arbitrary_objects_are_accepted_or_rejected_with_a_known_reason(obj):
    try:
        event = parse_event_line(json.dumps(obj).encode())
    except Rejected as rejection:
        assert rejection.reason in dl.LINE_REASONS
    else:
        assert event.count >= 1 and event.actor.strip()


_TIMESTAMP_TEXT = st.builds(
    lambda ms, edits: _edit(_format_ms(ms), edits),
    st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999),
    st.lists(st.tuples(st.integers(0, 23), st.sampled_from("0123456789:.TZtz -+_\u0665")), max_size=2),
)


def _format_ms(ms: int) -> str:
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _edit(text: str, edits) -> str:
    for position, char in edits:
        text = text[:position] + char + text[position + 1:]
    return text


@settings(max_examples=3000, deadline=None)
@given(_TIMESTAMP_TEXT)
def test_the_fast_timestamp_path_agrees_with_datetime(text):
    """The common `YYYY-MM-DDTHH:MM:SS.mmmZ` shape is parsed without datetime: same instant, same refusals.

    (Before 1970 the two may round differently; such times are refused as out of range anyway.)
    """
    from schemas.timestamps import MAX_EVENT_MS, MIN_EVENT_MS, _parse_with_datetime, parse_rfc3339_ms

    def outcome(parse):
        try:
            ms = parse(text)
        except (ValueError, OverflowError):
            return "refused"
        return ms if MIN_EVENT_MS <= ms < MAX_EVENT_MS else "out of range"

    assert outcome(parse_rfc3339_ms) == outcome(_parse_with_datetime)
