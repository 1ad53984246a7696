"""Nothing lost, nothing counted twice (issue 7): the chaos scenarios of `make chaos`, as tests.

Every scenario runs the real `guetteur detect` on the local runner over files derived from one
simulated reference (seed 11, 6 days, 40 accounts) and is checked by `pipelines.chaos.check`:
every line accepted or dead-lettered exactly once with the reason the generator predicted,
counters that agree with the files written, and the reference's alerts with their alert_ids.
Around them: the generator's promises checked against the parser, the checker shown to fail,
the file readers at every range size, a few fuzzed small inputs end to end, and streaming's
late data (dead-lettered too_late past the allowed lateness) and late redeliveries (counted once).
"""

import gzip
import hashlib
import tempfile
from collections import Counter
from pathlib import Path

import apache_beam as beam
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import chaos
from pipelines.chaos import BAD_LINES, BOM, MUTATIONS, ChaosSuite, FileSpec, Line, split_lines
from schemas import dead_letter as dl
from transforms.event_parsing import Rejected, parse_event_line

from tests.event_factory import MONDAY_MS, MS_PER_MINUTE

TEMPLATES = [
    {"ts": "2026-03-24T09:15:02.123Z", "event_id": "evt-1", "actor": "acct-000001", "action": "consult",
     "org": "ft-agence-0001", "actor_type": "advisor", "app": "portail", "ip": "192.0.2.1", "session": "s-1",
     "record": "rec-0000001"},
    {"ts": "2026-03-25T23:59:59.999Z", "event_id": "evt-2", "actor": "acct-000002", "action": "search", "count": 40,
     "org": "ml-0002", "actor_type": "youth_advisor", "app": "portail", "ip": "192.0.2.2", "session": "s-2"},
    {"ts": "2026-03-26T00:00:00.000Z", "event_id": "evt-3", "actor": "acct-000003", "action": "account_create",
     "target": "acct-000009", "org": "ml-0002", "actor_type": "account_manager", "app": "admin",
     "ip": "192.0.2.3", "session": "s-3"},
]


def outcome_of(parse, raw):
    try:
        return parse(raw)
    except Rejected as rejection:
        return rejection.reason


# -- the generator itself: its promises must be what the parser does, or the pipeline checks mean nothing


@pytest.mark.parametrize("kind, reason, build", BAD_LINES, ids=[kind for kind, _, _ in BAD_LINES])
def test_each_kind_of_bad_line_is_refused_for_the_reason_the_generator_predicts(kind, reason, build):
    for template in TEMPLATES:
        line = chaos.bad_line([k for k, _, _ in BAD_LINES].index(kind), template, serial=1)
        assert outcome_of(parse_event_line, line.raw) == reason


def test_the_bad_lines_exercise_every_line_dead_letter_reason():
    # unreadable_file has its own scenario and test below.
    assert {reason for _, reason, _ in BAD_LINES} == set(dl.LINE_REASONS)


@pytest.mark.parametrize("kind, rewrite", MUTATIONS, ids=[kind for kind, _ in MUTATIONS])
def test_each_rewrite_of_a_valid_line_keeps_its_meaning(kind, rewrite):
    for template in TEMPLATES:
        assert parse_event_line(rewrite(template)) == parse_event_line(orjson.dumps(template))


def test_a_utf8_bom_does_not_cost_the_first_event_of_a_file():
    raw = orjson.dumps(TEMPLATES[0])
    assert parse_event_line(BOM + raw) == parse_event_line(raw)
    assert outcome_of(parse_event_line, BOM) == dl.EMPTY_LINE
    assert outcome_of(parse_event_line, BOM + b"{not json") == dl.INVALID_JSON


@pytest.mark.parametrize(
    "content, lines",
    [
        (b"", []),
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\nb", [b"a", b"b"]),  # a last line without newline is a line
        (b"a\n\n", [b"a", b""]),  # a blank line is a line
        (b"\n", [b""]),
        (b"a\rb\r\n", [b"a\rb"]),  # a lone CR is data
        (b"a\r", [b"a\r"]),  # a CR with no LF after it ends no line
    ],
)
def test_lines_are_counted_as_an_operator_counts_them(content, lines):
    assert split_lines(content) == lines


def test_file_layouts_hold_exactly_the_lines_meant(tmp_path):
    lines = [Line(b"first"), Line(b"", dl.EMPTY_LINE), Line(b"last")]
    for spec in (FileSpec("a.jsonl", lines, ending=b"\r\n", bom=True, final_newline=False),
                 FileSpec("b.jsonl.gz", lines), FileSpec("c.jsonl", [])):
        path = spec.write(tmp_path)
        assert split_lines(chaos.read_content(path)) == [raw for raw, _ in spec.yielded()]
    assert (tmp_path / "a.jsonl").read_bytes() == BOM + b"first\r\n\r\nlast"
    assert gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()) == b"first\n\nlast\n"


SMALL_CORPUS = [
    FileSpec("a.jsonl", [Line(orjson.dumps(TEMPLATES[0])), Line(b"", dl.EMPTY_LINE), Line(b"{bad", dl.INVALID_JSON),
                         Line(orjson.dumps(TEMPLATES[1]))], ending=b"\r\n", bom=True, final_newline=False),
    FileSpec("b.jsonl.gz", [Line(b"[1]", dl.NOT_AN_OBJECT), Line(b"\xff", dl.INVALID_UTF8),
                            Line(orjson.dumps(TEMPLATES[2]))], bom=True),
    FileSpec("c.jsonl", [Line(b"x" * 500 + b"\ry", dl.INVALID_JSON), Line(b" \r ", dl.EMPTY_LINE),
                         Line(orjson.dumps(TEMPLATES[0]))], final_newline=False),
    FileSpec("d.jsonl", []),
]


def _small_corpus(directory):
    corpus = chaos.Corpus("small", "small", SMALL_CORPUS)
    return corpus, corpus.write(directory), corpus.expected()


@pytest.mark.parametrize("range_bytes", [1, 2, 3, 7, 64, 1 << 20])
def test_file_ranges_own_every_line_once_whatever_the_range_size(tmp_path, range_bytes):
    from transforms.batch_ingest import _lines, split_file  # the reader and splitter `guetteur detect` uses

    corpus, _, expected = _small_corpus(tmp_path)
    got = Counter()
    for spec in corpus.files:
        path, size = str(tmp_path / spec.name), (tmp_path / spec.name).stat().st_size
        ranges = split_file(path, size, range_bytes)
        for file_range in ranges:
            got.update(_lines(file_range))
    want = Counter(raw for spec in corpus.files for raw, _ in spec.yielded())
    assert got == want and sum(want.values()) == expected.lines


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 10_000), range_bytes=st.integers(1, 3_000))
def test_a_file_is_cut_into_contiguous_ranges_of_equal_size(size, range_bytes):
    from transforms.batch_ingest import split_file

    ranges = split_file("events.jsonl", size, range_bytes)
    assert ranges[0].start == 0 and ranges[-1].end >= size
    assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
    assert len(ranges) == max(1, -(-size // range_bytes))  # as many as range_bytes asks for
    held = [min(r.end, size) - r.start for r in ranges]
    # None larger than asked; the last one short by less than a byte per range, never by most of a range.
    assert max(held) <= range_bytes and max(held) - min(held) < len(ranges)
    assert split_file("events.jsonl.gz", size, range_bytes) == [("events.jsonl.gz", 0, -1)]


def test_read_events_from_text_accounts_for_every_line(tmp_path):
    """The ReadFromText path (ReadEvents): BOM kept on the first line, CRLF and a missing final newline handled."""
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.options import LOCAL_RUNNER
    from transforms.read_events import ReadEvents

    _, pattern, expected = _small_corpus(tmp_path)
    with beam.Pipeline(runner=LOCAL_RUNNER) as pipeline:
        events, letters = pipeline | ReadEvents(pattern)
        assert_that(events | beam.combiners.Count.Globally(), equal_to([expected.accepted]), label="accepted")
        assert_that(letters | beam.Map(lambda letter: (letter.reason, letter.line)),
                    equal_to(list(expected.dead.elements())), label="dead")


# -- the checker must be able to fail: a run that lost, doubled or changed something is caught


def _fake_run(corpus, alerts, **changes):
    expected = corpus.expected()
    by_reason = Counter()
    for (reason, _), n in expected.dead.items():
        by_reason[reason] += n
    metrics = {"guetteur_lines_read": expected.lines, "guetteur_events_accepted": expected.accepted,
               "guetteur_dead_lettered": sum(by_reason.values()), "guetteur_events_duplicate": expected.duplicates,
               **{f"guetteur_dead_lettered_{r}": n for r, n in by_reason.items()}}
    metrics.update(changes.pop("metrics", {}))
    run = chaos.Run(exit_code=0, seconds=0.0, lines_in=expected.lines, files=len(corpus.files), metrics=metrics,
                    dead_letters=Counter(expected.dead), alerts=list(alerts), stderr="")
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def test_the_checker_catches_a_lost_line_a_doubled_line_a_wrong_reason_and_a_changed_alert():
    corpus = chaos.Corpus("t", "t", [FileSpec("a.jsonl", [Line(b'{"ok":1}'), Line(b"{bad", dl.INVALID_JSON),
                                                          Line(b"", dl.EMPTY_LINE)])])
    alerts = [{"alert_id": "a-1", "actor": "acct-1", "observed": 60}]
    assert chaos.check(corpus, _fake_run(corpus, alerts), alerts).problems == []

    lost = _fake_run(corpus, alerts, dead_letters=Counter({(dl.INVALID_JSON, b"{bad"): 1}))
    outcome = chaos.check(corpus, lost, alerts)
    assert outcome.lost == 1 and any("missing" in p for p in outcome.problems)

    doubled = _fake_run(corpus, alerts, metrics={"guetteur_events_accepted": 2})
    outcome = chaos.check(corpus, doubled, alerts)
    assert outcome.doubled == 1 and any("events_accepted" in p for p in outcome.problems)

    wrong_reason = _fake_run(corpus, alerts, dead_letters=Counter({(dl.INVALID_UTF8, b"{bad"): 1, (dl.EMPTY_LINE, b""): 1}))
    assert len(chaos.check(corpus, wrong_reason, alerts).problems) >= 2

    counted_twice = [{"alert_id": "a-1", "actor": "acct-1", "observed": 120}]
    assert any("missing or changed" in p for p in chaos.check(corpus, _fake_run(corpus, counted_twice), alerts).problems)

    undercounted = _fake_run(corpus, alerts, metrics={"guetteur_dead_lettered_invalid_json": 0})
    assert any("dead_lettered_invalid_json" in p for p in chaos.check(corpus, undercounted, alerts).problems)


def test_the_leak_check_finds_a_value_from_a_forbidden_field():
    corpus = chaos.Corpus("t", "t", [FileSpec("a.jsonl", [Line(orjson.dumps(dict(TEMPLATES[0], ua="Jeanne Dupont")))])])
    forbidden = chaos.forbidden_values(corpus)
    assert "Jeanne Dupont" in forbidden and "acct-000001" not in forbidden
    assert chaos.leaked_values([{"explanation": "read by Jeanne Dupont (advisor)"}], forbidden) == ["Jeanne Dupont"]
    assert chaos.leaked_values([{"explanation": "acct-000001 (advisor)"}], forbidden) == []


# -- the scenarios, through the real pipeline


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return ChaosSuite(tmp_path_factory.mktemp("chaos"))


def _report(outcome):
    return "\n" + chaos.format_table([outcome])


def test_the_reference_run_is_clean_and_raises_alerts(suite):
    outcome = suite.outcome("reference")
    assert outcome.ok, _report(outcome)
    assert outcome.alerts > 0 and sum(outcome.dead_by_reason.values()) == 0


def test_generated_corpora_are_the_same_bytes_for_the_same_seed(suite, tmp_path):
    def digest(directory):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}

    for name in ("corrupt", "duplicated"):
        twice = [chaos.build_corpus(name, suite.reference, tmp_path) for _ in range(2)]
        for i, corpus in enumerate(twice):
            corpus.write(tmp_path / f"{name}-{i}")
        assert digest(tmp_path / f"{name}-0") == digest(tmp_path / f"{name}-1")


@pytest.mark.parametrize("name", [n for n in chaos.SCENARIOS if n != "reference"])
def test_scenario_loses_nothing_doubles_nothing_and_keeps_the_alerts(suite, name):
    outcome = suite.outcome(name)
    assert outcome.ok, _report(outcome)
    assert outcome.lost == outcome.doubled == 0


def test_the_corrupt_corpus_dead_letters_every_reason_and_the_bom_and_crlf_files_lose_no_event(suite):
    outcome = suite.outcome("corrupt")
    assert set(outcome.dead_by_reason) == set(dl.LINE_REASONS)
    assert outcome.accepted == len(suite.reference.lines)  # CRLF, BOM, gzip, no final newline: every event read
    letters = suite.runs["corrupt"].dead_letters
    assert letters[(dl.INVALID_JSON, BOM + b"{not json")] == 1  # the dead letter keeps the BOM bytes
    assert sum(n for (reason, line), n in letters.items() if len(line) > 2_000_000) == 1


def test_a_cut_gzip_and_plain_text_named_gz_become_dead_letters_and_the_job_goes_on(suite):
    outcome = suite.outcome("corrupt_gz")
    assert outcome.ok, _report(outcome)
    # One unreadable_file letter per broken file, its detail saying why; the cut file's last partial line.
    assert outcome.dead_by_reason == Counter({dl.UNREADABLE_FILE: 2, dl.INVALID_JSON: 1})
    # What decoded before the cut was read and counted once: the copies are duplicates, alerts unchanged.
    assert outcome.duplicates_injected > 100 and outcome.duplicates_counted == outcome.duplicates_injected
    assert outcome.accepted == len(suite.reference.lines) + outcome.duplicates_injected
    assert outcome.alerts_vs_reference == "same"
    details = _letter_details(suite.workdir / "corrupt_gz" / "output", dl.UNREADABLE_FILE)
    assert sorted(source.rsplit("/", 1)[-1] for source, _ in details) == ["resent-cut.jsonl.gz",
                                                                          "resent-plain-text.jsonl.gz"]
    assert any("truncated" in detail for _, detail in details)
    assert any("header" in detail for _, detail in details)


def _letter_details(output_dir, reason):
    found = []
    for path in Path(output_dir).glob("deadletter*.jsonl"):
        for raw in path.read_bytes().splitlines():
            letter = orjson.loads(raw)
            if letter["reason"] == reason:
                found.append((letter["source"], letter["detail"]))
    return found


def test_the_per_event_reader_dead_letters_a_broken_gzip_too(tmp_path):
    """ReadEvents (the per-event path) reads the same ranges: a broken .gz does not fail the job either."""
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.options import LOCAL_RUNNER
    from transforms.read_events import ReadEvents

    lines = [orjson.dumps(t) for t in TEMPLATES] * 20
    spec = FileSpec("cut.jsonl.gz", [Line(raw) for raw in lines], damage="cut")
    spec.write(tmp_path)
    FileSpec("fine.jsonl", [Line(raw) for raw in lines]).write(tmp_path)
    yielded = spec.yielded()
    want_dead = sorted((line.reason, raw) for raw, line in yielded if line.reason is not None)
    want_events = len(lines) + sum(1 for _, line in yielded if line.reason is None)
    assert (dl.UNREADABLE_FILE, b"") in want_dead
    with beam.Pipeline(runner=LOCAL_RUNNER) as pipeline:
        events, letters = pipeline | ReadEvents(str(tmp_path / "*"))
        assert_that(events | beam.combiners.Count.Globally(), equal_to([want_events]), label="events")
        assert_that(letters | beam.Map(lambda letter: (letter.reason, letter.line)), equal_to(want_dead), label="dead")


def test_duplicates_are_counted_once(suite):
    outcome = suite.outcome("duplicated")
    assert outcome.duplicates_injected > 1000
    assert outcome.duplicates_counted == outcome.duplicates_injected
    assert outcome.alerts_vs_reference == "same"


def test_hostile_payloads_stay_plain_data_and_personal_data_never_reaches_alerts(suite):
    outcome = suite.outcome("hostile")
    corpus, run = suite.corpus("hostile"), suite.runs["hostile"]
    assert outcome.ok, _report(outcome)
    # Every hostile account alerted, under its exact name and organisation.
    for actor, org in corpus.hostile.actors.items():
        assert any(a["actor"] == actor and a["org"] == org and actor in a["explanation"] for a in run.alerts)
    # Hostile account ids created by a hostile account manager come back verbatim (or not at all).
    assert set(corpus.hostile.targets) <= {a["actor"] for a in run.alerts}
    chain = set(corpus.hostile.targets) | {corpus.hostile.creator}
    for alert in run.alerts:
        if alert["actor"] in chain:
            assert set(alert["related_accounts"]) <= chain
    assert not corpus.hostile.canary.exists()
    assert run.audit_hits == []
    alerts_text = b"".join(path.read_bytes() for path in (suite.workdir / "hostile" / "output").glob("alerts*.jsonl"))
    for name, email, nir, phone in chaos.FAKE_PEOPLE:
        for value in (name, email, nir, phone):
            assert orjson.dumps(value)[1:-1] not in alerts_text
    assert chaos.forbidden_values(corpus) and not chaos.leaked_values(run.alerts, chaos.forbidden_values(corpus))


def test_the_audit_watch_sees_an_operation_that_carries_the_token(tmp_path):
    with chaos.AuditWatch(chaos.TOKEN) as watch:
        open(tmp_path / f"{chaos.TOKEN}.txt", "w").close()
        eval(f"len({chaos.TOKEN!r})")
        sorted([(chaos.TOKEN,)])  # plain data handling is not an audited operation
    assert [event for event, _ in watch.hits] == ["open", "compile", "exec"]


# -- fuzzing the whole pipeline on small files: conservation against the parser, line by line

POOL = [orjson.dumps(t) for t in TEMPLATES] + [chaos.bad_line(i, TEMPLATES[i % 3], i).raw for i in range(len(BAD_LINES))
                                               if BAD_LINES[i][0] not in chaos._HEAVY]
LINE = st.one_of(
    st.sampled_from(POOL),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r")),
    st.builds(lambda t, k, v: orjson.dumps({**t, k: v}), st.sampled_from(TEMPLATES),
              st.sampled_from(["ts", "actor", "action", "count", "record", "org", "event_id"]),
              st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))),
)
FILE = st.tuples(st.lists(LINE, max_size=8), st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.booleans(),
                 st.booleans())


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(FILE, min_size=1, max_size=3))
def test_fuzzed_small_inputs_are_accounted_for_line_by_line(files):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "input"
        directory.mkdir()
        for n, (lines, ending, bom, final_newline, gz) in enumerate(files):
            spec = FileSpec(f"f{n}.jsonl" + (".gz" if gz else ""), [Line(raw) for raw in lines], ending, bom, final_newline)
            content = spec.content()
            path = directory / spec.name
            path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
        expected_lines = [line for path in sorted(directory.iterdir()) for line in split_lines(chaos.read_content(path))]
        run = chaos.run_detect(str(directory / "*"), Path(tmp) / "out")
    assert run.exit_code == 0, run.stderr
    outcomes = [outcome_of(parse_event_line, line) for line in expected_lines]
    accepted = sum(1 for o in outcomes if not isinstance(o, str))
    expected_dead = Counter((o, line) for o, line in zip(outcomes, expected_lines) if isinstance(o, str))
    assert run.metrics.get("guetteur_lines_read", 0) == len(expected_lines)
    assert run.metrics.get("guetteur_events_accepted", 0) == accepted
    assert run.dead_letters == expected_dead


# -- streaming: late and redelivered events (TestStream, kept tiny): transforms/stream_fold.py

_FOLDED = []
_LETTERS = []


class _Collect(beam.DoFn):
    def process(self, element):
        _FOLDED.append(element[1])


class _CollectLetters(beam.DoFn):
    def process(self, letter):
        _LETTERS.append(letter)


def _consults(actor, start_ms, n):
    from apache_beam.transforms.window import TimestampedValue

    from schemas.event import AccessEvent

    return [TimestampedValue(AccessEvent(ts_ms=start_ms + i * 1000, actor=actor, action="consult", count=1,
                                         record=f"rec-{i}", event_id=f"{actor}-{i}"), (start_ms + i * 1000) / 1000)
            for i in range(n)]


def _streaming_options():
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return options


def _fold_stream(stream):
    """The AccountActivity panes and too-late dead letters FoldAccountStream(5 min, 60 min lateness) makes."""
    from schemas.event import AccessEvent
    from transforms.account_windows import KeyByActor
    from transforms.stream_fold import FoldAccountStream

    _FOLDED.clear()
    _LETTERS.clear()
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=_streaming_options()) as pipeline:
        events = pipeline | stream.with_output_types(AccessEvent)
        activities, too_late = events | KeyByActor() | FoldAccountStream(5, 60)
        _ = activities | beam.ParDo(_Collect())
        _ = too_late | beam.ParDo(_CollectLetters())
    return list(_FOLDED), list(_LETTERS)


T_STREAM = MONDAY_MS + 10 * 60 * MS_PER_MINUTE  # Monday 10:00 UTC, a window start


def test_events_beyond_the_allowed_lateness_are_dead_lettered_too_late_never_dropped():
    from apache_beam.testing import test_stream

    on_time, too_late = _consults("acct-1", T_STREAM, 20), _consults("acct-2", T_STREAM, 30)
    # acct-1 again, 30 minutes late for [10:00, 10:05): within the lateness, a late pane.
    late = _consults("acct-1", T_STREAM + 60 * 1000, 5)
    late = [type(tv)(tv.value._replace(event_id=f"late-{i}"), tv.timestamp) for i, tv in enumerate(late)]
    panes, letters = _fold_stream(
        test_stream.TestStream()
        .advance_watermark_to(T_STREAM / 1000)
        .add_elements(on_time)
        .advance_watermark_to((T_STREAM + 35 * MS_PER_MINUTE) / 1000)
        .add_elements(late)
        # Three hours later: window [10:00, 10:05) closed at 10:05 + 60 min of allowed lateness.
        .advance_watermark_to((T_STREAM + 180 * MS_PER_MINUTE) / 1000)
        .add_elements(too_late)
        .advance_watermark_to_infinity()
    )
    by_pane = sorted((a.actor, a.late, a.events, a.duplicates) for a in panes)
    assert by_pane == [("acct-1", False, 20, 0), ("acct-1", True, 5, 0)]
    assert sorted(letter.reason for letter in letters) == ["too_late"] * len(too_late)
    # Each dead letter carries its event back as a contract line.
    lines = sorted(orjson.loads(letter.line)["event_id"] for letter in letters)
    assert lines == sorted(tv.value.event_id for tv in too_late)
    folded = sum(activity.events + activity.duplicates for activity in panes)
    assert folded + len(letters) == len(on_time) + len(late) + len(too_late)


_ALERTS = []


class _CollectAlerts(beam.DoFn):
    def process(self, alert):
        _ALERTS.append((alert.actor, alert.status, alert.observed, alert.severity))


def test_a_burst_redelivered_after_its_window_fired_is_counted_once_and_alerts_do_not_change():
    from apache_beam.testing import test_stream

    from schemas.event import AccessEvent
    from transforms.detection import DetectAnomalies
    from transforms.detection_config import DetectionConfig

    burst = _consults("acct-1", T_STREAM, 300)  # 300 records in one 5-minute window: an alert, under 500 records

    def stream(redelivered):
        stream = test_stream.TestStream().advance_watermark_to(T_STREAM / 1000).add_elements(burst)
        if redelivered:
            # 20 minutes later (within the 60 minutes of lateness) a shipper retries: the same events again.
            stream = stream.advance_watermark_to((T_STREAM + 20 * MS_PER_MINUTE) / 1000).add_elements(burst)
        return stream.advance_watermark_to_infinity()

    alerts = []
    for redelivered in (False, True):
        _ALERTS.clear()
        with beam.Pipeline(runner="BundleBasedDirectRunner", options=_streaming_options()) as pipeline:
            _ = (pipeline | stream(redelivered).with_output_types(AccessEvent)
                 | DetectAnomalies(DetectionConfig()) | beam.ParDo(_CollectAlerts()))
        alerts.append(sorted(_ALERTS))
    assert alerts[0] == alerts[1], alerts
    assert len(alerts[1]) == 1 and alerts[1][0][:3] == ("acct-1", "new", 300), alerts
    # And at the fold: one pane of 300, the 300 copies counted as duplicates only (no pane re-scores the window).
    panes, letters = _fold_stream(stream(redelivered=True))
    assert [(a.events, a.duplicates, a.late) for a in panes] == [(300, 0, False)] and letters == []


def test_events_without_event_id_are_matched_by_content_each_copy_counted():
    from apache_beam.testing import test_stream
    from apache_beam.transforms.window import TimestampedValue

    def anonymous(actor, ts_ms):
        return TimestampedValue(_consults(actor, ts_ms, 1)[0].value._replace(event_id=None), ts_ms / 1000)

    panes, letters = _fold_stream(
        test_stream.TestStream()
        .advance_watermark_to(T_STREAM / 1000)
        # No event_id: nothing tells two copies apart, so both count (as in a batch).
        .add_elements([anonymous("acct-1", T_STREAM), anonymous("acct-1", T_STREAM)])
        .advance_watermark_to((T_STREAM + 180 * MS_PER_MINUTE) / 1000)
        .add_elements([anonymous("acct-1", T_STREAM + 1000)])
        .advance_watermark_to_infinity()
    )
    assert [(a.events, a.duplicates) for a in panes] == [(2, 0)]
    assert [letter.reason for letter in letters] == ["too_late"]


def test_empty_receipt_panes_are_dropped_before_the_fold():
    """On Flink, Java's ReduceFnRunner closes every window with an empty pane (the Python SDK asks for
    EMIT_ALWAYS); Python's runners never make one, so the filter is checked on the DoFn itself."""
    from apache_beam.transforms.window import IntervalWindow
    from apache_beam.utils.windowed_value import PaneInfo, PaneInfoTiming

    from transforms.stream_fold import _RECEIPTS_TAG, _ToReceipt

    window = IntervalWindow(T_STREAM / 1000, (T_STREAM + 5 * MS_PER_MINUTE) / 1000)
    closing = PaneInfo(is_first=False, is_last=True, timing=PaneInfoTiming.LATE, index=1, nonspeculative_index=1)
    on_time = PaneInfo(is_first=True, is_last=False, timing=PaneInfoTiming.ON_TIME, index=0, nonspeculative_index=0)
    receipts = _ToReceipt()
    assert list(receipts.process((3, {}), win=window, pane=closing)) == []
    assert list(receipts.process((3, {}), win=window, pane=on_time)) == []
    ids = {("acct-1", "e-1"): 1}
    assert list(receipts.process((3, ids), win=window, pane=closing)) == [(3, (_RECEIPTS_TAG, (T_STREAM, True, ids)))]


def test_accounts_sharing_a_fold_key_keep_their_own_panes_lateness_and_ids():
    """acct-1 and acct-16 land on one key of the fold (transforms/stream_fold.shard_of): one on time,
    the other only late in the same window, both using the same event_ids."""
    from apache_beam.testing import test_stream

    from transforms.stream_fold import shard_of

    assert shard_of("acct-1") == shard_of("acct-16")
    late = [type(tv)(tv.value._replace(event_id=f"acct-1-{i}"), tv.timestamp)
            for i, tv in enumerate(_consults("acct-16", T_STREAM + 1000, 4))]
    panes, letters = _fold_stream(
        test_stream.TestStream()
        .advance_watermark_to(T_STREAM / 1000)
        .add_elements(_consults("acct-1", T_STREAM, 6))
        .advance_watermark_to((T_STREAM + 20 * MS_PER_MINUTE) / 1000)
        .add_elements(late)
        .advance_watermark_to_infinity()
    )
    assert sorted((a.actor, a.late, a.events, a.duplicates) for a in panes) == [
        ("acct-1", False, 6, 0), ("acct-16", True, 4, 0)]
    assert letters == []
