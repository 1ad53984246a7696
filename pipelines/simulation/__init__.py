"""Guetteur traffic simulator: realistic partner activity with labelled incidents.

    write_simulation(output_dir, seed=7, days=14, actors=300, start=date(2026, 3, 23),
                     bad_line_rate=0.0005, scenarios=None)
        -> {"events", "bad_lines", "incidents", "lookalikes", "active_account_days", "events_path", "labels_path"}
    simulate(...same parameters...) -> (list of event dicts in file order, labels dict)
    default_scenarios(days) -> the scenario names used when `scenarios` is None

Everything derives from `random.Random(seed)` and the fixed `start` date (never the clock):
the same arguments give byte-identical files. `actors` is the number of accounts existing
at `start` (at least 5 are created so that every organisation kind is present); account
managers create a few more along the way, and attacks may create their own.

events.jsonl: CONTRACT §1 flat events, one JSON object per line, sorted by `ts`
(RFC 3339 UTC, milliseconds, `Z`), each with a unique `event_id` and `actor`, `action`,
`org`, `actor_type`, `app`, `ip` (RFC 5737 documentation ranges only), `session`, plus
`record` (consult), `count` (search/export) or `target` (account_create). Ids are neutral
(`acct-004217`, `rec-0123456`); no personal data. With probability `bad_line_rate` per
event a malformed line (not JSON, truncated JSON, no `actor`, unparseable `ts`, negative
`count`) is written before it, in addition to it; these are counted in `bad_lines` only.

labels.json (format "guetteur-labels/1"):

    {"format": "guetteur-labels/1", "seed": 7, "days": 14, "actors": 300,
     "start": "2026-03-23T00:00:00Z", "end": "2026-04-06T00:00:00Z",   # [start, end)
     "events": 123456,              # valid event lines
     "bad_lines": 61,               # malformed lines, part of no incident
     "active_account_days": 2100,   # distinct (actor, UTC day) pairs with >= 1 valid event
     "scenarios": ["bulk_search", ...],   # the scenario names asked for, in incident-number order
     "incidents": [
       {"id": "inc-1-bulk_search", "scenario": "bulk_search", "title": "one sentence",
        "accounts": ["acct-000123"],   # every account acting maliciously (chains: creator + created)
        "creator": null,               # the creating account, for creation chains
        "start": "RFC 3339", "end": "RFC 3339",   # first and last malicious event
        "records": 12345,              # records touched: consult = 1, search/export = count
        "ips": ["203.0.113.7"],        # attacker source addresses (indicators of compromise)
        "params": {...},               # how the scenario was drawn (rates, durations), for reports
        "progress": [[epoch_ms, cumulative_records], ...]}   # at most one point per minute
     ],                                                      # (its last); final value == records
     "lookalikes": [                   # legitimate peaks, never incidents (see lookalikes.py)
       {"kind": "org_busy_day", "day": "2026-04-02", "scope": "org", "org": "...",
        "accounts": [...], "factor": 2.4}, ...]}

Default scenarios (`default_scenarios(days)`): the three seed scenarios (bulk_search,
training_org_scrape, account_creation_chain) whenever days >= 2, after three days of history,
plus the five harder ones (low_and_slow, heavy_user_compromised, many_small_created_accounts,
search_exfiltration, dormant_wakes_at_night) when days >= 14: eight incidents in four weeks.
`scenarios=[...]` asks for exactly those (repeats allowed; [] for a period without attack).
See `scenarios.py` for each one's rates and durations, `lookalikes.py` for the legitimate peaks.
"""

from .scenarios import HARDER_SCENARIOS, SCENARIOS, SEED_SCENARIOS, default_scenarios
from .writer import DEFAULT_START, LABELS_FORMAT, simulate, write_simulation

__all__ = ["DEFAULT_START", "HARDER_SCENARIOS", "LABELS_FORMAT", "SCENARIOS", "SEED_SCENARIOS", "default_scenarios",
           "simulate", "write_simulation"]
