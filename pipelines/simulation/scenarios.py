"""Attack scenarios, modelled on the incidents in INCIDENTS.md, and where they are placed.

A scenario is a function `ScenarioContext -> Incident` registered in `SCENARIOS` under
its name. It picks its victim account(s) from the population, starts at `ctx.t0` and
returns every malicious event it produced; the planner then places it in time and the
writer merges its events into the legitimate traffic. Durations stay bounded (hours,
at most about a day) so malicious events remain a minority of the file.

Seed scenarios (always present when days >= 5):
- `bulk_search`: a Cap emploi advisor's identity is usurped; searches and exports with
  large result counts at a steady pace, from an address the account never used.
- `training_org_scrape`: a training organisation's stolen credentials; `consult` of
  records one by one through Kairos, tens per minute, far outside its trainees.
- `account_creation_chain`: a Mission Locale account manager creates two accounts within
  minutes; both, with no history at all, then open young people's files at volume.

To add a scenario (low-and-slow, dormant account waking at night, ...), write a function
decorated with `@scenario("name")`; it becomes available to `plan_incidents(names=...)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from .clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, format_ts
from .events import TS, RawEvent, record_id, records_touched
from .population import (ACCOUNT_MANAGER, ADVISOR, APP_ACCOUNTS, APP_KAIROS, APP_LOGIN, CAP_EMPLOI,
                         MISSION_LOCALE, TRAINING, TRAINING_ORG, YOUTH_ADVISOR, YOUTH_RECORDS, Account,
                         AccountFactory, IdAllocator, IpPool, Population)
from .traffic import Day

SEED_SCENARIOS = ("bulk_search", "training_org_scrape", "account_creation_chain")
ALL_RECORDS = (0, 10_000_000)

# Start windows in Paris local time (minutes after midnight): varied, not only office hours.
HOUR_MODES = {"working": (9 * 60, 15 * 60), "evening": (18 * 60 + 30, 22 * 60 + 30), "night": (60, 4 * 60 + 30)}
HISTORY_DAYS = 3  # seed scenarios start after this much legitimate history


@dataclass
class Incident:
    scenario: str
    title: str
    accounts: list[Account]  # every account whose activity here is malicious
    creator: Account | None
    ips: list[str]
    events: list[RawEvent]
    number: int = 0

    @property
    def id(self) -> str:
        return f"inc-{self.number}-{self.scenario}"

    def shift(self, delta_ms: int) -> None:
        self.events = [(ev[0] + delta_ms, *ev[1:]) for ev in self.events]  # type: ignore[misc]

    def label(self) -> dict[str, Any]:
        events = sorted(self.events, key=lambda ev: ev[TS])
        progress: list[list[int]] = []
        total = 0
        for event in events:
            touched = records_touched(event)
            if not touched:
                continue
            total += touched
            # At most one point per clock minute: the minute's last one, so the final value is exact.
            if progress and progress[-1][0] // MINUTE_MS == event[TS] // MINUTE_MS:
                progress[-1] = [event[TS], total]
            else:
                progress.append([event[TS], total])
        return {
            "id": self.id,
            "scenario": self.scenario,
            "title": self.title,
            "accounts": [account.id for account in self.accounts],
            "creator": self.creator.id if self.creator else None,
            "start": format_ts(events[0][TS]),
            "end": format_ts(events[-1][TS]),
            "records": total,
            "ips": sorted(self.ips),
            "progress": progress,
        }


@dataclass
class ScenarioContext:
    rng: random.Random
    population: Population
    factory: AccountFactory
    ids: IdAllocator
    ips: IpPool
    t0: int  # planned start (UTC ms)
    taken: set[str] = field(default_factory=set)  # accounts already used by another incident

    def pick(self, role: str, kind: str) -> Account:
        candidates = [a for a in self.population.of_role(role, kind) if a.id not in self.taken]
        if not candidates:
            raise ValueError(f"population has no free {role} at a {kind}")
        # Prefer accounts with a real history, so the incident is a break from a baseline.
        regular = [a for a in candidates if a.attendance > 0.5] or candidates
        victim = self.rng.choice(regular)
        self.taken.add(victim.id)
        return victim

    def attacker_ip(self, victim: Account) -> str:
        """An address no account of the population uses (the victim's own ones at the very least)."""
        used: set[str] = set(victim.ips)
        for account in self.population.accounts:
            used |= account.ips
        return self.ips.any_ip(exclude=used if len(used) < self.ips.size - 16 else victim.ips)


Scenario = Callable[[ScenarioContext], Incident]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn
    return register


def _far_record(rng: random.Random, account: Account, span: tuple[int, int]) -> str:
    """A record outside the account's own portfolio and its organisation's job seekers."""
    org = account.org
    while True:
        number = rng.randrange(*span)
        if not org.pool_start <= number < org.pool_start + org.pool_size:
            return record_id(number)


def _consult_run(ctx: ScenarioContext, account: Account, t: int, duration_ms: int, per_minute: float,
                 ip: str, app: str, span: tuple[int, int], relogin_ms: int) -> list[RawEvent]:
    """Scripted one-by-one consultation at a steady rate, with short pauses and token refreshes."""
    rng = ctx.rng
    session = ctx.ids.session_id()
    events: list[RawEvent] = [(t, account, "login", APP_LOGIN, ip, session, None)]
    end = t + duration_ms
    t += rng.randint(5, 60) * SECOND_MS
    last_login = t
    mean_gap = MINUTE_MS / per_minute
    while t < end:
        if t - last_login > relogin_ms:
            session = ctx.ids.session_id()
            events.append((t, account, "login", APP_LOGIN, ip, session, None))
            last_login = t
            t += rng.randint(2, 10) * SECOND_MS
        events.append((t, account, "consult", app, ip, session, ("record", _far_record(rng, account, span))))
        t += max(200, int(rng.gauss(mean_gap, mean_gap * 0.2)))
        if rng.random() < 0.002:
            t += rng.randint(1, 3) * MINUTE_MS  # the script stalls now and then
    return events


@scenario("bulk_search")
def bulk_search(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    victim = ctx.pick(ADVISOR, CAP_EMPLOI)
    ip = ctx.attacker_ip(victim)
    session = ctx.ids.session_id()
    period_ms = rng.uniform(20, 60) * SECOND_MS
    end = ctx.t0 + int(rng.uniform(3, 8) * HOUR_MS)
    events: list[RawEvent] = [(ctx.t0, victim, "login", APP_LOGIN, ip, session, None)]
    t = ctx.t0 + rng.randint(20, 90) * SECOND_MS
    while t < end:
        action = "export" if rng.random() < 0.1 else "search"
        events.append((t, victim, action, victim.org.app, ip, session, ("count", rng.randint(50, 500))))
        t += int(period_ms * rng.uniform(0.85, 1.15))
    return Incident("bulk_search",
                    "A Cap emploi advisor account, used from an unknown address, runs bulk searches "
                    "and exports returning hundreds of job seekers each.",
                    [victim], None, [ip], events)


@scenario("training_org_scrape")
def training_org_scrape(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    victim = ctx.pick(TRAINING, TRAINING_ORG)
    ip = ctx.attacker_ip(victim)
    events = _consult_run(ctx, victim, ctx.t0, int(rng.uniform(1.5, 4) * HOUR_MS), rng.uniform(20, 50),
                          ip, APP_KAIROS, ALL_RECORDS, relogin_ms=HOUR_MS)
    return Incident("training_org_scrape",
                    "A training organisation account with stolen credentials opens job seekers' files "
                    "one by one through Kairos, tens per minute, far outside its trainees.",
                    [victim], None, [ip], events)


@scenario("account_creation_chain")
def account_creation_chain(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    creator = ctx.pick(ACCOUNT_MANAGER, MISSION_LOCALE)
    ip = ctx.attacker_ip(creator)
    session = ctx.ids.session_id()
    events: list[RawEvent] = [(ctx.t0, creator, "login", APP_LOGIN, ip, session, None)]
    t = ctx.t0 + rng.randint(60, 240) * SECOND_MS
    created: list[Account] = []
    ips = {ip}
    for _ in range(2):
        account = ctx.factory.account(creator.org, YOUTH_ADVISOR, active_from_ms=t, created_by=creator.id)
        created.append(account)
        events.append((t, creator, "account_create", APP_ACCOUNTS, ip, session, ("target", account.id)))
        t += rng.randint(120, 480) * SECOND_MS
    for account in created:
        start = account.active_from_ms or t
        start += rng.randint(15, 90) * MINUTE_MS
        own_ip = ip if rng.random() < 0.6 else ctx.attacker_ip(creator)
        ips.add(own_ip)
        run = _consult_run(ctx, account, start, int(rng.uniform(1.5, 4) * HOUR_MS), rng.uniform(8, 25),
                           own_ip, creator.org.app, YOUTH_RECORDS, relogin_ms=2 * HOUR_MS)
        account.active_from_ms = run[0][TS]
        events.extend(run)
    return Incident("account_creation_chain",
                    "A Mission Locale account manager creates two accounts within minutes; both new "
                    "accounts, with no history, immediately open young people's files at volume.",
                    [creator, *created], creator, sorted(ips), events)


def plan_incidents(ctx: ScenarioContext, calendar: list[Day], start_ms: int, end_ms: int,
                   names: tuple[str, ...] = SEED_SCENARIOS) -> list[Incident]:
    """Place each named scenario on a day after the history period, at varied local hours."""
    days = len(calendar)
    if days < 2 or not names:
        return []
    rng = ctx.rng
    first = min(HISTORY_DAYS, days - 1)
    earliest = start_ms + first * DAY_MS
    candidates = list(range(first, days))
    chosen = rng.sample(candidates, min(len(names), len(candidates)))
    chosen += [rng.choice(candidates) for _ in range(len(names) - len(chosen))]
    # One start per mode for the seed trio, so they are never all in office hours.
    modes = list(HOUR_MODES)
    rng.shuffle(modes)
    incidents: list[Incident] = []
    for number, (name, day_index) in enumerate(zip(names, chosen), start=1):
        lo, hi = HOUR_MODES[modes[(number - 1) % len(modes)]]
        local_ms = rng.randint(lo * MINUTE_MS, hi * MINUTE_MS)
        ctx.t0 = max(earliest, calendar[day_index].local_midnight_ms + local_ms)
        incident = SCENARIOS[name](ctx)
        incident.number = number
        _fit(incident, start_ms, end_ms)
        incidents.append(incident)
    return incidents


def _fit(incident: Incident, start_ms: int, end_ms: int) -> None:
    """Move an incident earlier if it would run past the end of the simulated period."""
    overflow = max(ev[TS] for ev in incident.events) - (end_ms - MINUTE_MS)
    if overflow > 0:
        incident.shift(-overflow)
    if min(ev[TS] for ev in incident.events) < start_ms:
        raise ValueError(f"{incident.scenario} does not fit in the simulated period; simulate more days")
    for account in incident.accounts:
        if account is not incident.creator and account.created_by is not None:
            account.active_from_ms = min(ev[TS] for ev in incident.events if ev[1] is account)
