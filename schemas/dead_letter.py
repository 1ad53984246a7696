"""The dead-letter record: an input line the pipeline refused, and why.

Nothing is dropped silently: every rejected line is written whole, with a
stable reason code that operators can count and alert on, and a detail that
says what exactly was wrong.
"""

import base64
from typing import NamedTuple, Optional

import apache_beam as beam
import pyarrow as pa

# Reason codes (stable: dashboards and alert rules key on them).
EMPTY_LINE = "empty_line"
LINE_TOO_LONG = "line_too_long"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
BAD_TIMESTAMP = "bad_timestamp"
# Not a line's fault: the rest of a file that could not be read (a corrupt or truncated .gz), or
# a streamed event behind the watermark by more than the allowed lateness (its window was closed).
UNREADABLE_FILE = "unreadable_file"
TOO_LATE = "too_late"

# What a line itself can be refused for (transforms/event_parsing.py).
LINE_REASONS = (
    EMPTY_LINE,
    LINE_TOO_LONG,
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    OUT_OF_RANGE,
    BAD_TIMESTAMP,
)
REASONS = LINE_REASONS + (UNREADABLE_FILE, TOO_LATE)


class DeadLetter(NamedTuple):
    reason: str  # one of REASONS
    detail: str  # e.g. "field 'count' must be an integer >= 1"
    source: Optional[str]  # the file the line came from, when known
    line: bytes  # the original line, unmodified


beam.coders.registry.register_coder(DeadLetter, beam.coders.RowCoder)


def dead_letter_to_json(letter: DeadLetter) -> dict:
    """The JSON object written for a dead letter.

    The line is kept as text when it is valid UTF-8 and as base64 otherwise,
    so the record always round-trips to the exact original bytes.
    """
    record = {"reason": letter.reason, "detail": letter.detail, "source": letter.source}
    try:
        record["line"] = letter.line.decode("utf-8")
    except UnicodeDecodeError:
        record["line"] = base64.b64encode(letter.line).decode("ascii")
        record["line_encoding"] = "base64"
    return record


DEAD_LETTER_ARROW_SCHEMA = pa.schema(
    [
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("line", pa.binary(), nullable=False),
    ]
)
