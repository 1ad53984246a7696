"""Legitimate look-alikes: busy days that are not attacks, planned up front and reported in labels.

A detector that only learns "more than usual is suspicious" drowns analysts on the days every
real system has: a whole organisation running a campaign, the first working days of a month,
the day after a bank holiday, an advisor's first day back from leave, a training organisation's
end-of-month attendance deadline, a manager onboarding a whole new team. The simulator produces
them in ordinary traffic and lists them in `labels.json` under `lookalikes`, so an evaluation can
tell which false alarms fell on which kind of legitimate peak. None of them is ever an incident.

Entries (one JSON object each): `kind`, `day` (UTC date), `scope` (`all`, `role:<role>`,
`org` or `account`), `org`, `accounts` (for org and account scopes: the accounts concerned that
actually worked that day), `factor` (multiplier on the day's work, when there is one) and, for
some kinds, `count` (records exported, accounts created).

Planned here (from the simulation's own look-alike random stream, after incidents are placed so
that no look-alike lands on an incident's account): organisation busy days and team onboardings.
Calendar kinds come from `traffic.make_days`; per-account kinds (returns from absence, heavy days,
portfolio reviews and exports, onboardings) are recorded by `traffic.Traffic` as they happen.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import lru_cache

from .population import ACCOUNT_MANAGER, Population

# Kinds, as they appear in labels.
ORG_BUSY_DAY = "org_busy_day"  # whole organisation 2-3x busier (campaign, deadline)
MONTH_START = "month_start"  # first three working days of a month, everyone busier
MONTH_END_DEADLINE = "month_end_deadline"  # training organisations' monthly attendance certificates
BANK_HOLIDAY = "bank_holiday"  # almost nobody works
AFTER_BANK_HOLIDAY = "after_bank_holiday"  # first working day after one: backlog for everyone
DST_CHANGE = "dst_change"  # first working day after Paris clocks moved: usual hours one hour off in UTC
ABSENCE_RETURN = "absence_return"  # first day back after leave: backlog
HEAVY_DAY = "heavy_day"  # one account alone 2-4x busier
PORTFOLIO_REVIEW = "portfolio_review"  # one account reads much of its own portfolio (audit, committee)
PORTFOLIO_EXPORT = "portfolio_export"  # one export of the account's whole portfolio
TEAM_ONBOARDING = "team_onboarding"  # a manager creates 6-10 accounts within an hour or two

ORG_BUSY_FACTOR = (2.0, 3.0)
ONBOARDING_SIZE = (6, 10)


@lru_cache(maxsize=32)
def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 (the algorithm's own name)
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@lru_cache(maxsize=32)
def french_bank_holidays(year: int) -> frozenset[dt.date]:
    easter = _easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    movable = [easter + dt.timedelta(days=1), easter + dt.timedelta(days=39), easter + dt.timedelta(days=50)]
    return frozenset([dt.date(year, m, d) for m, d in fixed] + movable)


def is_bank_holiday(day: dt.date) -> bool:
    return day in french_bank_holidays(day.year)


def plan_lookalikes(rng: random.Random, population: Population, calendar: list, taken: set[str],
                    history_days: int, quiet: frozenset[tuple[str, int]] = frozenset()) -> None:
    """Organisation busy days and a team onboarding, decided once for the whole period.

    `calendar` is the list of `traffic.Day`; `taken` holds the accounts incidents already use and
    `quiet` their (account id, day index) pairs: no organisation busy day falls on those.
    """
    days = len(calendar)
    working = [d.index for d in calendar if d.weekday < 5 and not d.holiday and d.index >= 1]
    if not working:
        return
    # About one campaign or deadline day per organisation per two months of working days.
    chance = min(0.7, 0.025 * len(working))
    busy_orgs = []
    members: dict[int, set[str]] = {}
    for account in population.accounts:
        members.setdefault(id(account.org), set()).add(account.id)
    blocked: dict[int, set[int]] = {}
    for account_id, day in quiet:
        blocked.setdefault(day, set()).add(account_id)

    def free_days(org) -> list[int]:
        return [d for d in working if not blocked.get(d, set()) & members.get(id(org), set())] or working

    for org in population.orgs:
        if rng.random() < chance:
            org.busy_days[rng.choice(free_days(org))] = round(rng.uniform(*ORG_BUSY_FACTOR), 2)
            busy_orgs.append(org)
    if not busy_orgs and days >= 5:
        # Always at least one, on the largest organisation, so every run of a week or more has one.
        sizes: dict[int, int] = {}
        for account in population.accounts:
            sizes[id(account.org)] = sizes.get(id(account.org), 0) + 1
        org = max(population.orgs, key=lambda o: (sizes.get(id(o), 0), o.id))
        org.busy_days[rng.choice(free_days(org))] = round(rng.uniform(*ORG_BUSY_FACTOR), 2)

    # One team onboarding per period of a week or more, by a manager no incident uses.
    later = [i for i in working if i >= min(history_days, days - 1)]
    managers = [a for a in population.accounts
                if a.role == ACCOUNT_MANAGER and a.active_from_ms is None and a.id not in taken
                and a.attendance > 0.5]
    if days >= 7 and later and managers:
        manager = rng.choice(managers)
        day = rng.choice([i for i in later if calendar[i].weekday != manager.off_weekday] or later)
        manager.onboarding_days[day] = rng.randint(*ONBOARDING_SIZE)
        manager.absent_days = manager.absent_days - {day}
        manager.present_days = manager.present_days | {day}
