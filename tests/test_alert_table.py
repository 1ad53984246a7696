"""The terminal table never lets an untrusted account id drive the analyst's terminal."""

from pipelines.alert_table import format_alert_table, terminal_safe


def alert(actor, related=()):
    return {"alert_id": "a1", "rule": "consultation_volume", "actor": actor, "severity": "high",
            "detected_at": "2026-03-23T10:05:00Z", "window_end": "2026-03-23T10:05:00Z", "observed": 10,
            "expected": {"threshold": 5}, "related_accounts": list(related)}


def test_escape_sequences_and_bidi_overrides_are_shown_escaped():
    hostile = "acct\x1b[2J\u202eevil\x07"
    table = format_alert_table([alert(hostile, related=["x\x1b]0;pwn\x07"])])
    assert "\x1b" not in table and "\u202e" not in table and "\x07" not in table
    assert "\\x1b" in table
    assert terminal_safe(hostile) == "acct\\x1b[2J\\u202eevil\\x07"


def test_ordinary_ids_are_unchanged():
    assert terminal_safe("acct-004217 Mission Locale") == "acct-004217 Mission Locale"
    assert "acct-004217" in format_alert_table([alert("acct-004217")])
