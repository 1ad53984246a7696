"""Legitimate behaviour: what partner accounts do on an ordinary (or busy) working day.

Shape, per account and day:
- working hours in Paris time (about 08:30-18:00 with a lunch dip), weekdays only except
  for the few Saturday workers and very rare Sunday catch-ups; part-time days off,
  holidays and sick leave come from the account's habits (population.py);
- intensity = the account's own level x day-to-day noise x ramp-up for freshly created accounts
  x the legitimate peaks of `lookalikes.py`: first working days of a month (1.6/1.4/1.25x),
  training organisations' end-of-month deadline (1.8x), the day after a bank holiday (1.4x),
  the organisation's campaign day (2-3x, whole org), a return from leave (1.25x per working
  day missed, up to 2.5x), an occasional heavy day (2-4x) or portfolio review (3-5x, own files);
- bank holidays are worked as rarely as Sundays; Paris summer time moves every working hour
  by one hour in UTC on the last Sunday of March;
- work comes in tasks: an appointment opens one job seeker's file (several `consult`
  events on it, mostly from the account's portfolio), sometimes after a `search` returning
  1-30 results; exports are rare and small; each working block starts with a `login`,
  occasionally preceded by a `login_failed`;
- account managers create a few accounts a week (sometimes two in a row, rarely an
  onboarding burst of 3-5, very rarely a whole team of 6-10 within an hour or two, and once per
  period a planned team onboarding); the new accounts start later and light;
- now and then an advisor exports its whole portfolio (50-400 records in one export).

Every look-alike that happens is recorded in `Traffic.lookalikes` (see `lookalikes.py`).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from .clock import DAY_MS, HOUR_MS, MINUTE_MS, date_to_ms, paris_day_offset_ms
from .events import RawEvent, record_id
from .lookalikes import (ABSENCE_RETURN, AFTER_BANK_HOLIDAY, BANK_HOLIDAY, DST_CHANGE, HEAVY_DAY,
                         MONTH_END_DEADLINE, MONTH_START, ORG_BUSY_DAY, PORTFOLIO_EXPORT, PORTFOLIO_REVIEW,
                         TEAM_ONBOARDING, ONBOARDING_SIZE, is_bank_holiday)
from .population import (ACCOUNT_MANAGER, ADVISOR, AGENT, APP_ACCOUNTS, APP_LOGIN, GENERAL_RECORDS,
                         MISSION_LOCALE, TRAINING, YOUTH_ADVISOR, YOUTH_RECORDS, Account, AccountFactory,
                         IdAllocator, Population)

# Per role: (p_export, p_search, p_search_without_consult, mean extra consults per file, p_switch_file)
ROLE_MIX: dict[str, tuple[float, float, float, float, float]] = {
    ADVISOR: (0.006, 0.22, 0.25, 2.0, 0.25),
    AGENT: (0.0, 0.55, 0.45, 0.8, 0.2),
    TRAINING: (0.002, 0.05, 0.2, 1.5, 0.2),
    YOUTH_ADVISOR: (0.003, 0.18, 0.25, 2.0, 0.25),
    ACCOUNT_MANAGER: (0.0, 0.3, 0.4, 1.0, 0.3),
}

EARLIEST_MIN = 6 * 60  # nobody's legitimate day starts before 06:00 or ends after 21:30 local,
LATEST_MIN = 21 * 60 + 30  # which also keeps every legitimate event inside its UTC day


@dataclass(slots=True, frozen=True)
class Day:
    index: int
    date: dt.date
    weekday: int
    local_midnight_ms: int  # UTC instant of 00:00 Paris time
    month_start: bool  # one of the first three working days of its month
    month_start_rank: int = 0  # 1, 2, 3 on those days (the first is the busiest), else 0
    month_end: bool = False  # one of the last two working days of its month
    holiday: bool = False  # French bank holiday
    after_holiday: bool = False  # first working day after a bank holiday
    dst_change: bool = False  # Paris clocks change on this date


def _is_working(day: dt.date) -> bool:
    return day.weekday() < 5 and not is_bank_holiday(day)


def _month_start_rank(day: dt.date) -> int:
    if not _is_working(day):
        return 0
    rank = sum(1 for d in range(1, day.day + 1) if _is_working(dt.date(day.year, day.month, d)))
    return rank if rank <= 3 else 0


def _is_month_end(day: dt.date) -> bool:
    if not _is_working(day):
        return False
    following = day + dt.timedelta(days=1)
    later = 0
    while following.month == day.month:
        later += _is_working(following)
        following += dt.timedelta(days=1)
    return later <= 1


def _is_after_holiday(day: dt.date) -> bool:
    if not _is_working(day):
        return False
    before = day - dt.timedelta(days=1)
    while before.weekday() >= 5 and not is_bank_holiday(before):
        before -= dt.timedelta(days=1)
    return is_bank_holiday(before)


def make_days(start: dt.date, days: int) -> list[Day]:
    out = []
    for index in range(days):
        date = start + dt.timedelta(days=index)
        rank = _month_start_rank(date)
        out.append(Day(index=index, date=date, weekday=date.weekday(),
                       local_midnight_ms=date_to_ms(date) - paris_day_offset_ms(date),
                       month_start=rank > 0, month_start_rank=rank, month_end=_is_month_end(date),
                       holiday=is_bank_holiday(date), after_holiday=_is_after_holiday(date),
                       dst_change=paris_day_offset_ms(date) != paris_day_offset_ms(date - dt.timedelta(days=1))))
    return out


MONTH_START_FACTOR = {1: 1.6, 2: 1.4, 3: 1.25}
MONTH_END_TRAINING_FACTOR = 1.8
AFTER_HOLIDAY_FACTOR = 1.4


def calendar_lookalikes(calendar: list[Day]) -> list[dict]:
    """The look-alikes every account shares, straight from the calendar."""
    out: list[dict] = []
    clocks_moved = False
    for day in calendar:
        date = day.date.isoformat()
        clocks_moved = clocks_moved or day.dst_change
        if day.month_start:
            out.append({"kind": MONTH_START, "day": date, "scope": "all",
                        "factor": MONTH_START_FACTOR[day.month_start_rank]})
        if day.month_end:
            out.append({"kind": MONTH_END_DEADLINE, "day": date, "scope": f"role:{TRAINING}",
                        "factor": MONTH_END_TRAINING_FACTOR})
        if day.holiday:
            out.append({"kind": BANK_HOLIDAY, "day": date, "scope": "all"})
        if day.after_holiday:
            out.append({"kind": AFTER_BANK_HOLIDAY, "day": date, "scope": "all", "factor": AFTER_HOLIDAY_FACTOR})
        if clocks_moved and day.weekday < 5 and not day.holiday:
            # The first working day on the new time: everyone's usual hours are one hour off in UTC.
            out.append({"kind": DST_CHANGE, "day": date, "scope": "all"})
            clocks_moved = False
    return out


class Traffic:
    def __init__(self, rng: random.Random, population: Population, factory: AccountFactory,
                 ids: IdAllocator, holidays: frozenset[int] = frozenset(),
                 quiet: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.rng = rng
        self.holidays = holidays  # day indexes of bank holidays
        # (account id, day index) of incidents: no per-account look-alike there, so labels stay clean.
        self.quiet = quiet
        self.population = population
        self.factory = factory
        self.ids = ids
        self.p_portfolio = 0.88  # share of consultations in the account's own portfolio (today)
        self.lookalikes: list[dict] = []  # per-account look-alikes, as they happen
        self._org_busy: dict[tuple[str, int], dict] = {}  # (org id, day) -> its look-alike entry

    def org_busy_lookalikes(self) -> list[dict]:
        return list(self._org_busy.values())

    def _note(self, kind: str, account: Account, day: Day, **extra) -> None:
        entry = {"kind": kind, "day": day.date.isoformat(), "scope": "account", "org": account.org.id,
                 "accounts": [account.id]}
        entry.update(extra)
        self.lookalikes.append(entry)

    def day_events(self, day: Day) -> list[RawEvent]:
        out: list[RawEvent] = []
        accounts = self.population.accounts
        index = 0
        # Index loop on purpose: managers append the accounts they create, which may start today.
        while index < len(accounts):
            self._account_day(accounts[index], day, out)
            index += 1
        return out

    # --- one account, one day -------------------------------------------------------------

    def _schedule(self, account: Account, day: Day) -> tuple[float, list[tuple[int, int]], tuple[int, int]] | None:
        """Scale of the day, working blocks and lunch window (minutes, local), or None if off."""
        rng = self.rng
        if day.index in account.absent_days:
            return None
        if day.weekday == 6 or (day.holiday and day.weekday < 5):
            if rng.random() >= 0.003:
                return None
            begin = rng.randint(10 * 60, 18 * 60)
            return 0.15, [(begin, begin + rng.randint(20, 70))], (0, 0)
        if day.weekday == 5:
            if not account.saturday or rng.random() >= 0.5:
                return None
            return 0.5, [(9 * 60 + rng.randint(-20, 20), 12 * 60 + rng.randint(0, 40))], (0, 0)
        if day.weekday == account.off_weekday or (rng.random() >= account.attendance
                                                   and day.index not in account.present_days):
            return None
        start = account.start_min + int(rng.gauss(0, 12))
        end = account.end_min + int(rng.gauss(0, 20))
        if rng.random() < 0.05:
            end += rng.randint(45, 120)  # staying late to catch up
        lunch_start = 12 * 60 + rng.randint(-15, 60)
        lunch_end = lunch_start + rng.randint(40, 90)
        blocks = [(start, lunch_start), (lunch_end, end)]
        scale = 1.0
        if rng.random() < 0.08:  # half day: training, meetings, appointments outside
            blocks = [blocks[rng.randrange(2)]]
            scale = 0.5
        return scale, blocks, (lunch_start, lunch_end)

    def _days_missed(self, account: Account, day: Day) -> int:
        """Working days the account was absent just before `day` (0 if it worked the last one)."""
        missed = 0
        index, weekday = day.index - 1, (day.weekday - 1) % 7
        while index >= 0 and missed < 30:
            if weekday < 5 and weekday != account.off_weekday and index not in self.holidays:
                if index not in account.absent_days:
                    break
                missed += 1
            index, weekday = index - 1, (weekday - 1) % 7
        return missed

    def _intensity(self, account: Account, day: Day, scale: float, first_ms: int) -> float:
        rng = self.rng
        level = account.tasks_per_day * scale * rng.lognormvariate(0.0, 0.25)
        if day.month_start:
            level *= MONTH_START_FACTOR[day.month_start_rank]
        if day.month_end and account.role == TRAINING:
            level *= MONTH_END_TRAINING_FACTOR  # monthly attendance certificates: every trainee's file
        if day.after_holiday:
            level *= AFTER_HOLIDAY_FACTOR
        org_factor = account.org.busy_days.get(day.index)
        if org_factor:
            level *= org_factor  # the whole organisation's campaign or deadline day
            key = (account.org.id, day.index)
            entry = self._org_busy.get(key)
            if entry is None:
                entry = self._org_busy[key] = {"kind": ORG_BUSY_DAY, "day": day.date.isoformat(), "scope": "org",
                                               "org": account.org.id, "accounts": [], "factor": org_factor}
            entry["accounts"].append(account.id)
        quiet = (account.id, day.index) in self.quiet
        if day.weekday < 5 and account.active_from_ms is None and not quiet:
            missed = self._days_missed(account, day)
            if missed:
                factor = min(2.5, 1.0 + 0.25 * missed)  # the backlog of a return from leave
                level *= factor
                self._note(ABSENCE_RETURN, account, day, factor=factor, days_missed=missed)
        self.p_portfolio = 0.88
        u = 1.0 if quiet else rng.random()
        if u < 0.03:
            factor = rng.uniform(2.0, 4.0)  # a legitimate busy day for this account alone
            level *= factor
            self._note(HEAVY_DAY, account, day, factor=round(factor, 2))
        elif u < 0.036 and account.role != ACCOUNT_MANAGER and account.portfolio:
            factor = rng.uniform(3.0, 5.0)  # reviewing its own files (audit, committee, file transfer)
            level *= factor
            self.p_portfolio = 0.98
            self._note(PORTFOLIO_REVIEW, account, day, factor=round(factor, 2))
        if account.active_from_ms is not None:
            days_active = max(0, (first_ms - account.active_from_ms) // DAY_MS)
            level *= min(1.0, 0.2 + 0.2 * days_active)  # new accounts start light
        return level

    def _account_day(self, account: Account, day: Day, out: list[RawEvent]) -> None:
        rng = self.rng
        midnight = day.local_midnight_ms
        if account.active_from_ms is not None and account.active_from_ms >= midnight + LATEST_MIN * MINUTE_MS:
            return
        schedule = self._schedule(account, day)
        if schedule is None:
            return
        scale, raw_blocks, lunch = schedule
        floor_min = EARLIEST_MIN
        if account.active_from_ms is not None and account.active_from_ms > midnight:
            floor_min = max(floor_min, -(-(account.active_from_ms - midnight) // MINUTE_MS))
        blocks = [(max(b, floor_min), min(e, LATEST_MIN)) for b, e in raw_blocks]
        blocks = [(b, e) for b, e in blocks if e - b >= 10]
        if not blocks:
            return

        org = account.org
        telework = account.home_ip is not None and day.weekday < 5 and rng.random() < 0.35
        ip = account.home_ip if telework and account.home_ip else rng.choice(org.ips)
        block_ms = [(midnight + b * MINUTE_MS, midnight + e * MINUTE_MS) for b, e in blocks]
        sessions = [self._login(account, begin, ip, out) for begin, _ in block_ms]

        level = self._intensity(account, day, scale, block_ms[0][0])
        tasks = int(level + rng.random())
        spans = [end - begin - MINUTE_MS for begin, end in block_ms]
        total = sum(spans)
        lunch_ok = lunch[1] > lunch[0] and len(block_ms) == 2
        for _ in range(tasks):
            if lunch_ok and rng.random() < 0.04:
                t = midnight + lunch[0] * MINUTE_MS + rng.randrange((lunch[1] - lunch[0]) * MINUTE_MS)
                self._task(account, t, org.app, ip, sessions[0], out)
                continue
            x = int(rng.random() * total)
            block = 0
            while x >= spans[block]:
                x -= spans[block]
                block += 1
            self._task(account, block_ms[block][0] + MINUTE_MS + x, org.app, ip, sessions[block], out)

        if (account.role in (ADVISOR, YOUTH_ADVISOR, TRAINING) and rng.random() < 0.004
                and len(account.portfolio) >= 50 and (account.id, day.index) not in self.quiet):
            # The whole portfolio exported at once (a spreadsheet for a committee or a mailing).
            block = rng.randrange(len(block_ms))
            begin, end = block_ms[block]
            t = begin + rng.randrange(max(1, end - begin))
            count = len(account.portfolio)
            out.append((t, account, "export", org.app, ip, sessions[block], ("count", count)))
            self._note(PORTFOLIO_EXPORT, account, day, count=count)

        if account.role == ACCOUNT_MANAGER and day.weekday < 5:
            self._create_accounts(account, day, block_ms, ip, sessions, out)

    def _login(self, account: Account, t: int, ip: str, out: list[RawEvent]) -> str:
        rng = self.rng
        session = self.ids.session_id()
        t += rng.randrange(0, 40_000)
        if rng.random() < 0.04:  # mistyped password, retried a few seconds later
            out.append((t - rng.randint(5_000, 40_000), account, "login_failed", APP_LOGIN, ip,
                        self.ids.session_id(), None))
        out.append((t, account, "login", APP_LOGIN, ip, session, None))
        return session

    # The two methods below run once per task / per consulted file, i.e. hundreds of thousands of
    # times: they use rng.random() arithmetic because randint/choice cost several times more.

    def _pick_record(self, account: Account) -> str:
        rand = self.rng.random
        u = rand()
        portfolio = account.portfolio
        if u < self.p_portfolio and portfolio:
            return record_id(portfolio[int(rand() * len(portfolio))])
        org = account.org
        if u < 0.97:  # a colleague's job seeker, same agency
            return record_id(org.pool_start + int(rand() * org.pool_size))
        lo, hi = YOUTH_RECORDS if org.kind == MISSION_LOCALE else GENERAL_RECORDS
        return record_id(lo + int(rand() * (hi - lo)))  # someone who moved in from elsewhere

    def _task(self, account: Account, t: int, app: str, ip: str, session: str, out: list[RawEvent]) -> None:
        rand = self.rng.random
        p_export, p_search, p_search_only, extra_consults, p_switch = ROLE_MIX[account.role]
        u = rand()
        if u < p_export:
            out.append((t, account, "export", app, ip, session, ("count", 5 + int(rand() * 36))))
            return
        if u < p_export + p_search:
            hits = min(30, 1 + int(self.rng.expovariate(0.25)))
            out.append((t, account, "search", app, ip, session, ("count", hits)))
            if rand() < p_search_only:
                return
            t += 4_000 + int(rand() * 36_000)
        record = self._pick_record(account)
        for _ in range(1 + int(self.rng.expovariate(1.0 / extra_consults))):
            out.append((t, account, "consult", app, ip, session, ("record", record)))
            t += 4_000 + int(rand() * 116_000)
            if rand() < p_switch:
                record = self._pick_record(account)

    def _create_accounts(self, manager: Account, day: Day, block_ms: list[tuple[int, int]], ip: str,
                         sessions: list[str], out: list[RawEvent]) -> None:
        rng = self.rng
        u = rng.random()
        team = manager.onboarding_days.get(day.index, 0)
        if team:
            count = team  # the planned team onboarding
        elif u < 0.003:
            count = rng.randint(*ONBOARDING_SIZE)  # a new antenna opens: a whole team at once
        elif u < 0.02:
            count = rng.randint(3, 5)  # onboarding a new team
        elif u < 0.15:
            count = 2 if rng.random() < 0.25 else 1
        else:
            return
        block = rng.randrange(len(block_ms))
        begin, end = block_ms[block]
        t = begin + rng.randrange(max(1, end - begin - HOUR_MS))
        # A big onboarding is spread over an hour or two, like an attacker's would be.
        gap_max = max(10, 100 // count) if count >= 6 else 10
        created_ids = []
        for _ in range(count):
            created = self.factory.created_account(manager.org, manager, t)
            self.population.accounts.append(created)
            created_ids.append(created.id)
            out.append((t, manager, "account_create", APP_ACCOUNTS, ip, sessions[block], ("target", created.id)))
            t += rng.randint(1, gap_max) * MINUTE_MS + rng.randrange(MINUTE_MS)
        if count >= ONBOARDING_SIZE[0]:
            self._note(TEAM_ONBOARDING, manager, day, count=count, created=created_ids)
