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

Harder scenarios (present by default when days >= 14; modelled on how these attacks really
go once the obvious bursts are caught):
- `low_and_slow`: a compromised account reads one record at a time, day and night, 2-6
  records per 5 minutes on average for 24-60 hours, outside its portfolio, from two or three
  rotating addresses: under any per-5-minute or per-hour threshold for its role.
- `heavy_user_compromised`: one of the heaviest accounts; during its own working day the
  attacker adds 2-4x the account's usual hourly maximum (not 50x) for 3-6 hours, mostly
  files outside its portfolio, pausing at lunch like a human would. "Usual maximum" is the
  95th percentile of the account's active hours on the days before, as its own history shows
  it: these events are drawn only when the writer reaches the attack day (`Incident.deferred`).
- `many_small_created_accounts`: an account manager creates 6-12 accounts within one to two
  hours; each reads 2.5-6 records per 5 minutes for 1.5-3.5 hours (under a new account's
  prior on its own, at most ~220 a day), together several hundred per hour.
- `search_exfiltration`: an account that searches a lot with small results (an agent when
  there is one) runs 3-8 searches returning 1,000-5,000 records each within an hour or so,
  between small ordinary-looking searches; sometimes one bulk export as well.
- `dormant_wakes_at_night`: an account active in the first days of the period then silent for
  a week or more (or idle for the whole period) wakes between 00:30 and 04:00 and reads
  15-40 records a minute for 1-3 hours.

Each scenario declares its `Placement` (hours, weekday, earliest day, days needed after its
start, shortest simulation); `plan_incidents` places it and `default_scenarios(days)` gives the
default set. To add one, write a function decorated with `@scenario("name", Placement(...))`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from .clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, format_ts
from .events import TS, RawEvent, record_id, records_touched
from .population import (ACCOUNT_MANAGER, ADVISOR, AGENT, APP_ACCOUNTS, APP_KAIROS, APP_LOGIN, CAP_EMPLOI,
                         FT_AGENCY, MISSION_LOCALE, TRAINING, TRAINING_ORG, YOUTH_ADVISOR, YOUTH_RECORDS, Account,
                         AccountFactory, IdAllocator, IpPool, Population)
from .traffic import ROLE_MIX, Day

SEED_SCENARIOS = ("bulk_search", "training_org_scrape", "account_creation_chain")
HARDER_SCENARIOS = ("low_and_slow", "heavy_user_compromised", "many_small_created_accounts",
                    "search_exfiltration", "dormant_wakes_at_night")
HARDER_MIN_DAYS = 14  # the harder scenarios join the default set from this many days
ALL_RECORDS = (0, 10_000_000)
STAFF_ROLES = (ADVISOR, AGENT, TRAINING, YOUTH_ADVISOR)

# Start windows in Paris local time (minutes after midnight): varied, not only office hours.
HOUR_MODES = {"working": (9 * 60, 15 * 60), "evening": (18 * 60 + 30, 22 * 60 + 30), "night": (60, 4 * 60 + 30)}
# Further windows for the harder scenarios (kept apart: the seed trio rotates through HOUR_MODES).
EXTRA_HOUR_MODES = {"morning": (9 * 60, 11 * 60), "late_night": (30, 4 * 60), "any": (0, 24 * 60)}
HISTORY_DAYS = 3  # seed scenarios start after this much legitimate history


def default_scenarios(days: int) -> tuple[str, ...]:
    """The scenarios a simulation of `days` days holds when none are named."""
    return SEED_SCENARIOS + (HARDER_SCENARIOS if days >= HARDER_MIN_DAYS else ())


@dataclass(frozen=True)
class Placement:
    """Where a scenario may start. `hours` None: the seed trio's rotation through HOUR_MODES."""

    hours: tuple[str, ...] | None = None  # names in HOUR_MODES / EXTRA_HOUR_MODES, one drawn
    weekday: bool = False  # a Monday-Friday that is not a bank holiday
    min_day: int = HISTORY_DAYS  # earliest start day (index)
    tail_days: int = 0  # whole days the scenario may run after its start day
    min_days: int = 2  # shortest simulation it fits in
    min_day_fraction: float = 0.0  # and not before this fraction of the period


@dataclass
class Incident:
    scenario: str
    title: str
    accounts: list[Account]  # every account whose activity here is malicious
    creator: Account | None
    ips: list[str]
    events: list[RawEvent]
    number: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # how it was drawn (rates, durations), for reports
    # Events drawn only when the writer reaches this day, from the account's own history by then:
    # (day index, account, fn(records per active hour of that account before the day) -> events).
    deferred: "tuple[int, Account, Callable[[list[int]], list[RawEvent]]] | None" = None

    def realize(self, hourly: list[int]) -> None:
        assert self.deferred is not None
        self.events = self.deferred[2](hourly)
        self.deferred = None

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
            "params": self.params,
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
    calendar: list[Day] = field(default_factory=list)
    end_ms: int = 0  # end of the simulated period (exclusive)
    day_index: int = 0  # the day `t0` falls on

    def pick(self, role: str, kind: str | None) -> Account:
        candidates = [a for a in self.population.of_role(role, kind) if a.id not in self.taken]
        if not candidates:
            raise ValueError(f"population has no free {role} at a {kind or 'any organisation'}")
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
        return self.ips.reserve(self.ips.any_ip(exclude=used if len(used) < self.ips.size - 16 else victim.ips))

    def free(self, roles: tuple[str, ...], kinds: tuple[str, ...] | None = None) -> list[Account]:
        """Accounts of these roles (and organisation kinds) with a real history, not used by another incident."""
        return [a for a in self.population.accounts
                if a.role in roles and (kinds is None or a.org.kind in kinds) and a.active_from_ms is None
                and a.id not in self.taken and a.attendance > 0.5]

    def claim(self, account: Account) -> Account:
        self.taken.add(account.id)
        return account

    @property
    def days(self) -> int:
        return len(self.calendar)


Scenario = Callable[[ScenarioContext], Incident]
SCENARIOS: dict[str, Scenario] = {}
PLACEMENTS: dict[str, Placement] = {}


def scenario(name: str, placement: Placement = Placement()) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        PLACEMENTS[name] = placement
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


class NoVictim(ValueError):
    """The population has no account a scenario can use (simulate more actors)."""


def _reader(ctx: "ScenarioContext | _Realizer", account: Account, t: int, end: int, per_minute: float, ips: list[str],
            app: str, span: tuple[int, int], *, relogin_ms: int, jitter: float = 0.2, search_share: float = 0.0,
            search_counts: tuple[int, int] = (10, 30), rotate_ms: float | None = None,
            pauses: tuple[tuple[int, int], ...] = ()) -> list[RawEvent]:
    """Records read at a steady `per_minute` (a search counts its results), far from the account's own files.

    Logs in again every `relogin_ms` (token lifetime) and, with `rotate_ms`, moves to the next of
    `ips` now and then (a residential proxy pool); `pauses` are spans with no activity (lunch).
    """
    rng = ctx.rng
    ip_index = 0
    session = ctx.ids.session_id()
    events: list[RawEvent] = [(t, account, "login", APP_LOGIN, ips[0], session, None)]
    last_login = last_move = t
    t += rng.randint(5, 60) * SECOND_MS
    gap = MINUTE_MS / per_minute
    while t < end:
        for pause_start, pause_end in pauses:
            if pause_start <= t < pause_end:
                t = pause_end + rng.randint(0, 120) * SECOND_MS
        if t >= end:
            break
        if rotate_ms and len(ips) > 1 and t - last_move > rotate_ms:
            ip_index = (ip_index + 1) % len(ips)
            last_move = t
            last_login = -relogin_ms  # a new address means a new session
        if t - last_login > relogin_ms:
            session = ctx.ids.session_id()
            events.append((t, account, "login", APP_LOGIN, ips[ip_index], session, None))
            last_login = t
            t += rng.randint(2, 10) * SECOND_MS
        if search_share and rng.random() < search_share:
            touched = rng.randint(*search_counts)
            events.append((t, account, "search", app, ips[ip_index], session, ("count", touched)))
        else:
            touched = 1
            events.append((t, account, "consult", app, ips[ip_index], session,
                           ("record", _far_record(rng, account, span))))
        t += max(200, int(rng.gauss(gap * touched, gap * touched * jitter)))
    return events


def _records_per_task(role: str) -> float:
    """Mean records one task touches for a role (see traffic.ROLE_MIX): exports ~22, searches ~4.5."""
    p_export, p_search, p_search_only, extra_consults, _ = ROLE_MIX[role]
    return p_export * 22.5 + p_search * 4.5 + (1.0 - p_export - p_search * p_search_only) * (1.0 + extra_consults)


def usual_max_per_hour(account: Account) -> float:
    """Rough usual hourly maximum of an account: a quarter of its typical day.

    Measured on simulated traffic: the 95th percentile of a heavy account's active hours is
    0.2-0.35 of its median day (0.29 typically), its busiest hour about 0.47.
    """
    return account.tasks_per_day * _records_per_task(account.role) / 4.0


def _youth_or_all(account: Account) -> tuple[int, int]:
    return YOUTH_RECORDS if account.org.kind == MISSION_LOCALE else ALL_RECORDS


def _choose(ctx: ScenarioContext, pool: list[Account], what: str) -> Account:
    if not pool:
        raise NoVictim(f"population has no free {what}; simulate more actors")
    return ctx.claim(ctx.rng.choice(pool))


@scenario("low_and_slow", Placement(hours=("any",), tail_days=2, min_days=6))
def low_and_slow(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    victim = _choose(ctx, ctx.free((ADVISOR, YOUTH_ADVISOR, TRAINING)) or ctx.free(STAFF_ROLES), "staff account")
    per_5min = rng.uniform(2.0, 6.0)
    hours = min(rng.uniform(24.0, 60.0), (ctx.end_ms - ctx.t0) / HOUR_MS - 1.0)
    ips = [ctx.attacker_ip(victim) for _ in range(rng.randint(2, 3))]
    events = _reader(ctx, victim, ctx.t0, ctx.t0 + int(hours * HOUR_MS), per_5min / 5.0, ips, victim.org.app,
                     _youth_or_all(victim), relogin_ms=HOUR_MS, jitter=0.25,
                     rotate_ms=rng.uniform(6.0, 12.0) * HOUR_MS)
    return Incident("low_and_slow",
                    "A compromised account reads one file at a time, day and night, a few per five minutes "
                    "for a day or more, far outside its portfolio, from rotating unknown addresses.",
                    [victim], None, ips, events,
                    params={"records_per_5min": round(per_5min, 2), "hours": round(hours, 1)})


@dataclass
class _Realizer:
    """What `_reader` needs when an incident's events are drawn later, from its own random stream."""

    rng: random.Random
    ids: IdAllocator


@scenario("heavy_user_compromised", Placement(hours=("morning",), weekday=True, min_day=5, min_days=8))
def heavy_user_compromised(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    day = ctx.calendar[ctx.day_index]
    # Heavy in practice, not only on paper: a full-time, regular account, seldom away in the period.
    pool = [a for a in ctx.free(STAFF_ROLES)
            if a.off_weekday is None and a.attendance >= 0.85 and len(a.absent_days) <= ctx.days // 5]
    pool.sort(key=lambda a: (-usual_max_per_hour(a), a.id))
    victim = _choose(ctx, pool[:3], "staff account")  # one of the three heaviest
    # The real user works that day: the attack rides on top of its normal work.
    victim.absent_days = victim.absent_days - {ctx.day_index}
    victim.present_days = victim.present_days | {ctx.day_index}
    factor = rng.uniform(2.0, 4.0)
    hours = rng.uniform(3.0, 6.0)
    lunch_start = day.local_midnight_ms + (12 * 60 + rng.randint(0, 30)) * MINUTE_MS
    lunch = (lunch_start, lunch_start + rng.randint(45, 75) * MINUTE_MS)
    ip = ctx.attacker_ip(victim)
    t0, later = ctx.t0, _Realizer(random.Random(rng.getrandbits(64)), ctx.ids)
    incident = Incident("heavy_user_compromised",
                        "One of the busiest accounts is compromised: during its own working day the attacker "
                        "reads two to four times the account's usual hourly maximum on top of its real work.",
                        [victim], None, [ip], [],
                        params={"factor": round(factor, 2), "hours": round(hours, 1)})

    def realize(hourly: list[int]) -> list[RawEvent]:
        # The account's usual maximum as its own history shows it: the 95th percentile of its active
        # hours so far (before the attack day). Estimated from its habits if it has too little history.
        ordered = sorted(hourly)
        usual = ordered[int(0.95 * len(ordered))] if len(ordered) >= 10 else usual_max_per_hour(victim)
        per_hour = factor * usual
        incident.params.update(usual_max_per_hour=usual, attack_records_per_hour=round(per_hour, 1))
        return _reader(later, victim, t0, t0 + int(hours * HOUR_MS), per_hour / 60.0, [ip], victim.org.app,
                       _youth_or_all(victim), relogin_ms=2 * HOUR_MS, jitter=0.5, search_share=0.06,
                       search_counts=(10, 30), pauses=(lunch,))

    incident.deferred = (ctx.day_index, victim, realize)
    return incident


@scenario("many_small_created_accounts", Placement(hours=("working", "evening")))
def many_small_created_accounts(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    creator = _choose(ctx, ctx.free((ACCOUNT_MANAGER,), (MISSION_LOCALE,)) or ctx.free((ACCOUNT_MANAGER,)),
                      "account manager")
    ips = [ctx.attacker_ip(creator) for _ in range(rng.randint(1, 2))]
    session = ctx.ids.session_id()
    events: list[RawEvent] = [(ctx.t0, creator, "login", APP_LOGIN, ips[0], session, None)]
    t = ctx.t0 + rng.randint(60, 240) * SECOND_MS
    count = rng.randint(6, 12)
    spread = rng.uniform(1.0, 2.0) * HOUR_MS
    created: list[Account] = []
    for _ in range(count):
        account = ctx.factory.account(creator.org, creator.org.staff_role, active_from_ms=t, created_by=creator.id)
        created.append(account)
        events.append((t, creator, "account_create", APP_ACCOUNTS, ips[0], session, ("target", account.id)))
        t += int(spread / count * rng.uniform(0.6, 1.4))
    rates = []
    for account in created:
        begin = (account.active_from_ms or t) + rng.randint(10, 60) * MINUTE_MS
        per_5min = rng.uniform(2.5, 6.0)
        hours = min(rng.uniform(1.5, 3.5), 220.0 / (per_5min * 12.0))  # under a new account's daily prior
        run = _reader(ctx, account, begin, begin + int(hours * HOUR_MS), per_5min / 5.0, [rng.choice(ips)],
                      creator.org.app, _youth_or_all(creator), relogin_ms=2 * HOUR_MS, jitter=0.25)
        account.active_from_ms = run[0][TS]
        rates.append(round(per_5min, 2))
        events.extend(run)
    return Incident("many_small_created_accounts",
                    "An account manager creates many accounts within an hour or two; each reads modestly, "
                    "under what a new account may read, but together they read several hundred files an hour.",
                    [creator, *created], creator, ips, events,
                    params={"created": count, "spread_hours": round(spread / HOUR_MS, 2),
                            "records_per_5min_each": rates})


@scenario("search_exfiltration", Placement(hours=("working", "evening", "night")))
def search_exfiltration(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    pool = ctx.free((AGENT,))
    if not pool:  # no agent: an advisor among the heaviest searchers
        pool = sorted(ctx.free((ADVISOR,), (FT_AGENCY, CAP_EMPLOI)), key=lambda a: (-a.tasks_per_day, a.id))[:5]
    victim = _choose(ctx, pool, "agent or advisor")
    ip = ctx.attacker_ip(victim)
    session = ctx.ids.session_id()
    app = victim.org.app
    events: list[RawEvent] = [(ctx.t0, victim, "login", APP_LOGIN, ip, session, None)]
    t = ctx.t0 + rng.randint(30, 120) * SECOND_MS
    big = []
    for _ in range(rng.randint(3, 8)):
        for _ in range(rng.randint(0, 3)):  # narrowing the query, like anyone would
            events.append((t, victim, "search", app, ip, session, ("count", rng.randint(3, 30))))
            t += rng.randint(5, 40) * SECOND_MS
        count = rng.randint(1_000, 5_000)
        big.append(count)
        events.append((t, victim, "search", app, ip, session, ("count", count)))
        t += rng.randint(2 * 60, 12 * 60) * SECOND_MS  # paging the result out takes minutes
    exported = None
    if rng.random() < 0.3:
        exported = rng.randint(1_000, 5_000)
        events.append((t, victim, "export", app, ip, session, ("count", exported)))
    return Incident("search_exfiltration",
                    "An account that usually runs many small searches runs a few searches returning "
                    "thousands of job seekers each, between ordinary-looking small ones.",
                    [victim], None, [ip], events,
                    params={"big_searches": big, "export": exported})


MIN_SILENCE_DAYS = 7


@scenario("dormant_wakes_at_night",
          Placement(hours=("late_night",), min_day=MIN_SILENCE_DAYS + 3, min_day_fraction=0.6, min_days=12))
def dormant_wakes_at_night(ctx: ScenarioContext) -> Incident:
    rng = ctx.rng
    wake = ctx.day_index
    victim = _choose(ctx, ctx.free((ADVISOR, YOUTH_ADVISOR, TRAINING)), "staff account")
    idle = rng.random() < 0.25
    if idle:  # an account that exists but was never used in the period
        last = None
        victim.absent_days = frozenset(range(ctx.days))
        victim.present_days = frozenset()
    else:  # worked the first days, then left (moved, retired): the account stayed open
        last = rng.randint(2, max(2, min(6, wake - MIN_SILENCE_DAYS - 1)))
        early = {d.index for d in ctx.calendar[: last + 1] if d.weekday < 5 and not d.holiday}
        victim.absent_days = (victim.absent_days - early) | frozenset(range(last + 1, ctx.days))
        victim.present_days = victim.present_days | early
    ip = ctx.attacker_ip(victim)
    per_minute = rng.uniform(15.0, 40.0)
    hours = rng.uniform(1.0, 3.0)
    events = _consult_run(ctx, victim, ctx.t0, int(hours * HOUR_MS), per_minute, ip, victim.org.app,
                          _youth_or_all(victim), relogin_ms=HOUR_MS)
    return Incident("dormant_wakes_at_night",
                    "An account silent for a week or more (or never used) wakes in the middle of the night "
                    "and opens tens of files a minute.",
                    [victim], None, [ip], events,
                    params={"idle_whole_period": idle,
                            "last_active_day": ctx.calendar[last].date.isoformat() if last is not None else None,
                            "silent_days": wake - last - 1 if last is not None else wake,
                            "records_per_minute": round(per_minute, 1), "hours": round(hours, 1)})


def check_scenarios(names: tuple[str, ...] | list[str], days: int | None = None) -> None:
    """ValueError naming the problem if a name is unknown or a scenario cannot fit in `days`."""
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(map(repr, unknown))} (known: {', '.join(sorted(SCENARIOS))})")
    if days is not None and days >= 2:
        for name in names:
            need = PLACEMENTS[name].min_days
            if days < need:
                raise ValueError(f"scenario {name!r} needs at least {need} simulated days, got {days}")


def plan_incidents(ctx: ScenarioContext, calendar: list[Day], start_ms: int, end_ms: int,
                   names: tuple[str, ...] = SEED_SCENARIOS, strict: bool = True) -> list[Incident]:
    """Place each named scenario on a day after the history period, at the hours it favours.

    Incidents are numbered in `names` order. The seed trio rotates through HOUR_MODES exactly as it
    always has; other scenarios follow their `Placement`, on days not yet used when possible.
    With `strict` False (the default set), a scenario the population cannot host is left out.
    """
    names = tuple(names)
    check_scenarios(names)
    days = len(calendar)
    if days < 2 or not names:
        return []
    check_scenarios(names, days)
    ctx.calendar, ctx.end_ms = calendar, end_ms
    rng = ctx.rng
    first = min(HISTORY_DAYS, days - 1)
    earliest = start_ms + first * DAY_MS
    numbered = list(enumerate(names, start=1))
    rotating = [(number, name) for number, name in numbered if PLACEMENTS[name].hours is None]
    placed = [(number, name) for number, name in numbered if PLACEMENTS[name].hours is not None]

    candidates = list(range(first, days))
    chosen = rng.sample(candidates, min(len(rotating), len(candidates)))
    chosen += [rng.choice(candidates) for _ in range(len(rotating) - len(chosen))]
    # One start per mode for the seed trio, so they are never all in office hours.
    modes = list(HOUR_MODES)
    rng.shuffle(modes)
    incidents: list[Incident] = []
    for index, ((number, name), day_index) in enumerate(zip(rotating, chosen)):
        lo, hi = HOUR_MODES[modes[index % len(modes)]]
        local_ms = rng.randint(lo * MINUTE_MS, hi * MINUTE_MS)
        ctx.t0 = max(earliest, calendar[day_index].local_midnight_ms + local_ms)
        ctx.day_index = day_index
        incidents.append(_run(ctx, name, number, start_ms, end_ms))

    used = set(chosen)
    windows = {**HOUR_MODES, **EXTRA_HOUR_MODES}
    for number, name in placed:
        placement = PLACEMENTS[name]
        lo = max(first, placement.min_day, int(days * placement.min_day_fraction))
        hi = days - 1 - placement.tail_days
        fitting = [d for d in range(min(lo, hi), hi + 1)
                   if not placement.weekday or (calendar[d].weekday < 5 and not calendar[d].holiday)]
        if not fitting:
            raise ValueError(f"scenario {name!r} does not fit in {days} simulated days")
        day_index = rng.choice([d for d in fitting if d not in used] or fitting)
        used.add(day_index)
        lo_min, hi_min = windows[rng.choice(placement.hours)]
        local_ms = rng.randrange(lo_min * MINUTE_MS, hi_min * MINUTE_MS)
        ctx.t0 = max(earliest, calendar[day_index].local_midnight_ms + local_ms)
        ctx.day_index = day_index
        try:
            incidents.append(_run(ctx, name, number, start_ms, end_ms))
        except NoVictim:
            if strict:
                raise
    return sorted(incidents, key=lambda incident: incident.number)


def _run(ctx: ScenarioContext, name: str, number: int, start_ms: int, end_ms: int) -> Incident:
    incident = SCENARIOS[name](ctx)
    incident.number = number
    if incident.deferred is None:  # a deferred one is placed to fit (working hours of a day in the period)
        _fit(incident, start_ms, end_ms)
    return incident


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
