"""Untrusted input at the parser: payloads stay plain data, and no input makes it raise anything but Rejected.

The same payloads go through the whole pipeline in the `hostile` chaos scenario (tests/test_chaos.py),
which also checks that personal data in `ua` and unknown fields never reaches alerts.
"""

from datetime import datetime, timedelta, timezone

import apache_beam as beam
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import chaos
from schemas import dead_letter as dl
from schemas.dead_letter import DeadLetter, dead_letter_to_json
from schemas.event import AccessEvent
from schemas.timestamps import MAX_EVENT_MS, MIN_EVENT_MS, format_rfc3339_ms
from transforms.event_parsing import (
    MAX_ACTOR_CHARS,
    MAX_COUNT,
    MAX_TEXT_CHARS,
    Rejected,
    parse_event_line,
)

BASE = {"ts": "2026-03-24T09:15:02.123Z", "actor": "acct-000001", "action": "consult", "record": "rec-1",
        "org": "ft-agence-0001", "actor_type": "advisor", "event_id": "evt-1"}
TEXT_FIELDS = ("actor", "org", "actor_type", "record", "target", "app", "ip", "ua", "session", "event_id")
EVENT_CODER = beam.coders.registry.get_coder(AccessEvent)
LETTER_CODER = beam.coders.registry.get_coder(DeadLetter)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse(obj) -> AccessEvent:
    return parse_event_line(orjson.dumps(obj))


@pytest.fixture
def payloads(tmp_path):
    return chaos.hostile_strings(tmp_path / f"{chaos.TOKEN}-pwned")


def test_hostile_payloads_in_any_text_field_are_kept_verbatim_and_never_acted_upon(payloads, tmp_path):
    with chaos.AuditWatch(chaos.TOKEN) as watch:
        for payload in payloads:
            for name in TEXT_FIELDS:
                assert getattr(parse(dict(BASE, **{name: payload})), name) == payload
            assert parse(dict(BASE, action=payload)).action == payload[:64]
    assert watch.hits == []
    assert list(tmp_path.iterdir()) == []  # the canary was never created


def test_hostile_keys_are_ignored_like_any_unknown_field(payloads):
    hostile = {"__class__": payloads[0], "__init__": {"__globals__": payloads[1]}, "__proto__": {"x": 1},
               "constructor": payloads[3], "__reduce__": [payloads[4]], "$where": payloads[5], "": payloads[6]}
    assert parse(dict(BASE, **hostile)) == parse(BASE)


def test_an_ecs_object_cannot_reach_outside_its_mapping(payloads):
    ecs = {"@timestamp": BASE["ts"], "user": {"name": payloads[1], "target": {"name": payloads[2]}},
           "event": {"action": "account_create", "id": payloads[3]}, "__class__": {"name": "x"},
           "user.name.__class__": payloads[0]}
    event = parse(ecs)
    assert (event.actor, event.target, event.event_id) == (payloads[1], payloads[2], payloads[3])


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"record": 2**64 - 1}, "18446744073709551615"),  # numeric ids up to 64 bits are kept as text
        ({"record": -(2**63)}, str(-(2**63))),
        ({"count": MAX_COUNT, "action": "export"}, MAX_COUNT),
        ({"count": 2**63, "action": "export"}, dl.OUT_OF_RANGE),
        ({"count": 2**64 - 1, "action": "export"}, dl.OUT_OF_RANGE),
        ({"ts": 2**63}, dl.OUT_OF_RANGE),
        ({"ts": -(2**63)}, dl.OUT_OF_RANGE),
        ({"actor": 2**64 - 1}, "18446744073709551615"),
        ({"actor": "x" * MAX_ACTOR_CHARS}, "x" * MAX_ACTOR_CHARS),
        ({"ua": "y" * (MAX_TEXT_CHARS + 10)}, "y" * MAX_TEXT_CHARS),
    ],
)
def test_huge_numbers_and_long_values_are_kept_exactly_bounded_or_refused(changes, expected):
    try:
        event = parse(dict(BASE, **changes))
    except Rejected as rejection:
        assert rejection.reason == expected
        return
    name = next(iter(k for k in changes if k != "action"))
    assert getattr(event, name) == expected


@pytest.mark.parametrize("raw, reason", [
    (b'{"ts":"2026-03-24T09:15:02Z","actor":"a","action":"export","count":1' + b"0" * 400 + b"}", dl.INVALID_JSON),
    (b'{"ts":"2026-03-24T09:15:02Z","actor":1' + b"0" * 30 + b',"action":"consult"}', dl.WRONG_TYPE),
    (b'{"ts":"2026-03-24T09:15:02Z","actor":"a","action":"consult","record":1e400}', dl.INVALID_JSON),
])
def test_numbers_beyond_64_bits_are_refused_not_rounded_into_ids(raw, reason):
    with pytest.raises(Rejected) as caught:
        parse_event_line(raw)
    assert caught.value.reason == reason


# -- fuzzing the parser


def _assert_well_formed(event: AccessEvent) -> None:
    assert isinstance(event.actor, str) and event.actor.strip() and len(event.actor) <= MAX_ACTOR_CHARS
    assert 1 <= event.count <= MAX_COUNT
    assert MIN_EVENT_MS <= event.ts_ms < MAX_EVENT_MS
    assert isinstance(event.action, str) and 1 <= len(event.action) <= 64
    for name in TEXT_FIELDS[1:]:
        value = getattr(event, name)
        assert value is None or (isinstance(value, str) and 0 < len(value) <= MAX_TEXT_CHARS)
    # It can travel between workers and be written out.
    assert EVENT_CODER.decode(EVENT_CODER.encode(event)) == event
    orjson.dumps(event._asdict())


def parse_or_reason(raw: bytes):
    try:
        event = parse_event_line(raw)
    except Rejected as rejection:
        assert rejection.reason in dl.LINE_REASONS
        assert isinstance(rejection.detail, str) and rejection.detail
        return rejection.reason
    _assert_well_formed(event)
    return event


VALID = orjson.dumps(dict(BASE, ua="Mozilla/5.0 \u00e9\u20ac"))
SPLICES = st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\\ud800", b"\x00", b"\t", b"NaN", b"1e999",
                           b"1" + b"0" * 30, b"[" * 2000, b'"', b"\\", b"{", b"}", b",", b":", b"\xef\xbb\xbf",
                           b"\\u0000", b"{0.__class__}", b"%s%n", b"__import__('os')"])


@st.composite
def mutated_lines(draw):
    """A valid line with a few byte-level edits: what a flaky network or a buggy shipper does."""
    line = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(line)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if edit == "insert":
            line[at:at] = draw(SPLICES | st.binary(min_size=1, max_size=3))
        elif edit == "delete":
            del line[at:at + draw(st.integers(1, 5))]
        elif edit == "replace" and at < len(line):
            line[at] = draw(st.integers(0, 255))
        else:
            del line[at:]
    return bytes(line)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(mutated_lines())
def test_damaged_lines_are_accepted_well_formed_or_refused_with_a_known_reason(raw):
    parse_or_reason(raw)


JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
               | st.sampled_from(chaos.HOSTILE_PAYLOADS))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
FIELDS = ("ts", "actor", "action", "count", *TEXT_FIELDS[1:], "@timestamp", "user", "event")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8), st.booleans())
def test_any_json_object_is_accepted_well_formed_or_refused_with_a_known_reason(changes, on_base):
    parse_or_reason(orjson.dumps(dict(BASE, **changes) if on_base else changes))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.datetimes(min_value=datetime(1999, 12, 30), max_value=datetime(2100, 1, 2)),
       st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59), st.sampled_from(["T", " "]))
def test_rfc3339_in_any_offset_is_the_same_instant_as_epoch_milliseconds(moment, offset_minutes, separator):
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    text = aware.isoformat(sep=separator, timespec="milliseconds")
    expected_ms = (aware - EPOCH) // timedelta(milliseconds=1)
    outcome = parse_or_reason(orjson.dumps(dict(BASE, ts=text)))
    if MIN_EVENT_MS <= expected_ms < MAX_EVENT_MS:
        assert outcome.ts_ms == expected_ms
        assert parse(dict(BASE, ts=expected_ms)).ts_ms == expected_ms
        assert parse(dict(BASE, ts=format_rfc3339_ms(expected_ms))).ts_ms == expected_ms
    else:
        assert outcome == dl.OUT_OF_RANGE


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=300) | mutated_lines(), st.sampled_from(dl.REASONS), st.text(max_size=40))
def test_any_rejected_line_round_trips_through_its_dead_letter_to_the_exact_bytes(raw, reason, source):
    letter = DeadLetter(reason, "detail", source, raw)
    assert LETTER_CODER.decode(LETTER_CODER.encode(letter)) == letter
    written = orjson.loads(orjson.dumps(dead_letter_to_json(letter)))
    assert chaos._line_bytes(written) == raw
    assert written["reason"] == reason
