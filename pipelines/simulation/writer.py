"""Assemble population, traffic and incidents into `events.jsonl` + `labels.json`.

Events are produced one UTC day at a time (legitimate traffic of that day merged with the
malicious events falling in it, sorted by time), so memory stays bounded by a day of traffic
and the file is globally sorted by `ts`.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Iterator, Sequence

import orjson

from .badlines import BadLines
from .clock import DAY_MS, HOUR_MS, date_to_ms, format_ts
from .events import ACCOUNT, TS, RawEvent, records_touched, to_flat
from .lookalikes import plan_lookalikes
from .population import AccountFactory, IdAllocator, IpPool, Population, build_population
from .scenarios import HISTORY_DAYS, Incident, ScenarioContext, check_scenarios, default_scenarios, plan_incidents
from .traffic import Day, Traffic, calendar_lookalikes, make_days

LABELS_FORMAT = "guetteur-labels/1"
# A Monday chosen so that even the default 14 days hold a summer-time change (29 March), a
# month's last working days and the first working days of the next month after the history
# period; four weeks add Easter Monday (6 April, a bank holiday) and the backlog day after it.
DEFAULT_START = dt.date(2026, 3, 23)
_FLUSH_LINES = 50_000


@dataclass
class Simulation:
    seed: int
    days: int
    actors: int
    start: dt.date
    start_ms: int
    end_ms: int
    calendar: list[Day]
    population: Population
    traffic: Traffic
    incidents: list[Incident]
    bad_lines: BadLines
    scenarios: tuple[str, ...] = ()


@dataclass
class Counters:
    events: int = 0
    active_account_days: int = 0


def build(seed: int, days: int, actors: int, start: dt.date, bad_line_rate: float,
          scenarios: Sequence[str] | None = None) -> Simulation:
    """`scenarios` None: `default_scenarios(days)`; otherwise exactly these (names may repeat)."""
    if days < 1:
        raise ValueError("days must be >= 1")
    if actors < 1:
        raise ValueError("actors must be >= 1")
    strict = scenarios is not None
    names = default_scenarios(days) if scenarios is None else tuple(scenarios)
    check_scenarios(names, days)
    master = random.Random(seed)
    # Independent streams: changing how traffic is drawn must not move the population or attacks.
    pop_rng, traffic_rng, attack_rng, id_rng, ip_rng, bad_rng, look_rng = (random.Random(master.getrandbits(64))
                                                                            for _ in range(7))
    ids, ips = IdAllocator(id_rng), IpPool(ip_rng)
    factory = AccountFactory(pop_rng, ids, ips, days, start.weekday())
    population = build_population(pop_rng, factory, actors)
    calendar = make_days(start, days)
    start_ms = date_to_ms(start)
    end_ms = start_ms + days * DAY_MS
    context = ScenarioContext(rng=attack_rng, population=population, factory=factory, ids=ids, ips=ips, t0=start_ms)
    incidents = plan_incidents(context, calendar, start_ms, end_ms, names if days >= 2 else (), strict=strict)
    # Look-alikes after incidents, so that none lands on an account an incident uses.
    quiet = _incident_days(incidents, start_ms)
    plan_lookalikes(look_rng, population, calendar, context.taken, HISTORY_DAYS, quiet)
    holidays = frozenset(day.index for day in calendar if day.holiday)
    return Simulation(seed=seed, days=days, actors=actors, start=start, start_ms=start_ms, end_ms=end_ms,
                      calendar=calendar, population=population,
                      traffic=Traffic(traffic_rng, population, factory, ids, holidays, quiet),
                      incidents=incidents, bad_lines=BadLines(bad_rng, bad_line_rate, seed),
                      scenarios=names if days >= 2 else ())


def _incident_days(incidents: list[Incident], start_ms: int) -> frozenset[tuple[str, int]]:
    """(account id, UTC day index) for every account of every incident over the incident's span."""
    pairs: set[tuple[str, int]] = set()
    for incident in incidents:
        if incident.deferred is not None:
            first = last = incident.deferred[0]
        else:
            first = (min(ev[TS] for ev in incident.events) - start_ms) // DAY_MS
            last = (max(ev[TS] for ev in incident.events) - start_ms) // DAY_MS
        for account in incident.accounts:
            pairs.update((account.id, day) for day in range(first - 1, last + 2))
    return frozenset(pairs)


def _day_batches(sim: Simulation) -> Iterator[list[RawEvent]]:
    malicious: dict[int, list[RawEvent]] = defaultdict(list)
    deferred: dict[int, list[Incident]] = defaultdict(list)
    watched: dict[int, Counter] = {}  # id(account) -> records per hour of its legitimate work so far
    for incident in sim.incidents:
        if incident.deferred is not None:
            day_index, account, _ = incident.deferred
            deferred[day_index].append(incident)
            watched[id(account)] = Counter()
        for event in incident.events:
            malicious[(event[TS] - sim.start_ms) // DAY_MS].append(event)
    for day in sim.calendar:
        # Legitimate work happens 06:00-22:00 Paris time, always inside UTC day `day.index`.
        batch = sim.traffic.day_events(day)
        for incident in deferred.pop(day.index, ()):
            # Calibrated on the account's own history of the days before, as an analyst would see it.
            incident.realize(list(watched[id(incident.deferred[1])].values()))  # type: ignore[index]
            malicious[day.index].extend(incident.events)
        if watched:
            for event in batch:
                hours = watched.get(id(event[ACCOUNT]))
                if hours is not None:
                    touched = records_touched(event)
                    if touched:
                        hours[event[TS] // HOUR_MS] += touched
        batch.extend(malicious.pop(day.index, ()))
        batch.sort(key=itemgetter(TS))  # stable: ties keep generation order, hence determinism
        yield batch


def lines(sim: Simulation, counters: Counters) -> Iterator[dict[str, Any] | bytes]:
    """File order: event dicts, and malformed lines as raw bytes."""
    bad = sim.bad_lines
    prefix = f"evt-{sim.seed}-"
    number = 0
    for batch in _day_batches(sim):
        active = set()
        for event in batch:
            number += 1
            flat = to_flat(event, f"{prefix}{number:09d}")
            active.add(event[ACCOUNT])
            if bad.due():
                yield bad.make(flat)
            yield flat
        counters.events += len(batch)
        counters.active_account_days += len(active)


def labels(sim: Simulation, counters: Counters) -> dict[str, Any]:
    return {
        "format": LABELS_FORMAT,
        "seed": sim.seed,
        "days": sim.days,
        "actors": sim.actors,
        "start": format_ts(sim.start_ms).replace(".000Z", "Z"),
        "end": format_ts(sim.end_ms).replace(".000Z", "Z"),
        "events": counters.events,
        "bad_lines": sim.bad_lines.count,
        "active_account_days": counters.active_account_days,
        "scenarios": list(sim.scenarios),
        "incidents": [incident.label() for incident in sim.incidents],
        "lookalikes": lookalikes(sim),
    }


def lookalikes(sim: Simulation) -> list[dict[str, Any]]:
    """Every legitimate peak of the period (see lookalikes.py), in day order. Call after traffic."""
    entries = calendar_lookalikes(sim.calendar) + sim.traffic.org_busy_lookalikes() + sim.traffic.lookalikes
    return sorted(entries, key=lambda e: (e["day"], e["kind"], e.get("org") or "", e.get("accounts") or []))


def _labels_bytes(result: dict[str, Any]) -> bytes:
    """One field per line and one incident per line: readable, yet progress stays compact."""
    fields = [b'  "%s": %s' % (key.encode(), orjson.dumps(value))
              for key, value in result.items() if key not in ("incidents", "lookalikes")]
    for key in ("incidents", "lookalikes"):
        items = b",\n".join(b"    " + orjson.dumps(item) for item in result.get(key) or [])
        fields.append(b'  "%s": [\n' % key.encode() + items + b"\n  ]" if items else b'  "%s": []' % key.encode())
    return b"{\n" + b",\n".join(fields) + b"\n}\n"


def simulate(seed: int = 7, days: int = 14, actors: int = 300, start: dt.date = DEFAULT_START,
             bad_line_rate: float = 0.0005,
             scenarios: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All valid events (file order, bad lines left out) and the labels `write_simulation` writes."""
    sim = build(seed, days, actors, start, bad_line_rate, scenarios)
    counters = Counters()
    events = [item for item in lines(sim, counters) if isinstance(item, dict)]
    return events, labels(sim, counters)


def write_simulation(output_dir: str, seed: int = 7, days: int = 14, actors: int = 300,
                     start: dt.date = DEFAULT_START, bad_line_rate: float = 0.0005,
                     scenarios: Sequence[str] | None = None) -> dict[str, Any]:
    """Write `events.jsonl` and `labels.json` into `output_dir`; return a short summary.

    `scenarios`: names from `SCENARIOS` (repeats allowed, [] for none); None = `default_scenarios(days)`.
    Unknown names, or a scenario that needs more days, raise ValueError before anything is written.
    """
    sim = build(seed, days, actors, start, bad_line_rate, scenarios)
    os.makedirs(output_dir, exist_ok=True)
    events_path = os.path.join(output_dir, "events.jsonl")
    labels_path = os.path.join(output_dir, "labels.json")
    counters = Counters()
    dumps = orjson.dumps
    # Write to temporary names and rename, so a reader never sees half a simulation.
    with open(events_path + ".tmp", "wb") as out:
        buffer: list[bytes] = []
        for item in lines(sim, counters):
            buffer.append(item if isinstance(item, bytes) else dumps(item))
            if len(buffer) >= _FLUSH_LINES:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    result = labels(sim, counters)
    with open(labels_path + ".tmp", "wb") as out:
        out.write(_labels_bytes(result))
    os.replace(events_path + ".tmp", events_path)
    os.replace(labels_path + ".tmp", labels_path)
    return {
        "events": result["events"],
        "bad_lines": result["bad_lines"],
        "incidents": len(result["incidents"]),
        "lookalikes": len(result["lookalikes"]),
        "active_account_days": result["active_account_days"],
        "events_path": events_path,
        "labels_path": labels_path,
    }
