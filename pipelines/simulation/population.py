"""Who exists in the simulated world: organisations, roles, accounts and their habits.

Everything here is drawn once, up front, from a dedicated random stream, so the set of
accounts does not move when traffic generation changes. Identifiers are deliberately
neutral (`acct-004217`, `rec-0123456`): nothing in an id hints at a role in an incident,
and no personal data is ever produced.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .clock import MINUTE_MS

# Organisation kinds (French public employment service and its partners).
FT_AGENCY = "ft_agency"  # France Travail agency
CAP_EMPLOI = "cap_emploi"  # Cap emploi structure (disabled job seekers)
TRAINING_ORG = "training_org"  # training organisation following its trainees
MISSION_LOCALE = "mission_locale"  # youth guidance (16-25)

# Roles, as they appear in `actor_type`.
ADVISOR = "advisor"
AGENT = "agent"
TRAINING = "training_org"
YOUTH_ADVISOR = "youth_advisor"
ACCOUNT_MANAGER = "account_manager"

# Applications, as they appear in `app`.
APP_ADVISOR = "portail-conseiller"
APP_KAIROS = "kairos"
APP_YOUTH = "i-milo"
APP_LOGIN = "proconnect"
APP_ACCOUNTS = "gestion-habilitations"

KIND_APP = {FT_AGENCY: APP_ADVISOR, CAP_EMPLOI: APP_ADVISOR, TRAINING_ORG: APP_KAIROS, MISSION_LOCALE: APP_YOUTH}
KIND_STAFF_ROLE = {FT_AGENCY: ADVISOR, CAP_EMPLOI: ADVISOR, TRAINING_ORG: TRAINING, MISSION_LOCALE: YOUTH_ADVISOR}
KIND_PREFIX = {FT_AGENCY: "ft-agence", CAP_EMPLOI: "cap-emploi", TRAINING_ORG: "of", MISSION_LOCALE: "mission-locale"}

# Share of accounts per kind and the size range of one organisation of that kind.
KIND_SHARE = ((FT_AGENCY, 0.45), (CAP_EMPLOI, 0.15), (TRAINING_ORG, 0.15), (MISSION_LOCALE, 0.25))
KIND_SIZE = {FT_AGENCY: (6, 25), CAP_EMPLOI: (3, 8), TRAINING_ORG: (1, 4), MISSION_LOCALE: (4, 12)}

# Record id space: young people's files (Missions Locales) live in their own block,
# so an attack on "young people's records" can draw from it.
GENERAL_RECORDS = (0, 7_000_000)
YOUTH_RECORDS = (7_000_000, 10_000_000)

# Median tasks per working day and portfolio size range, per role.
ROLE_TASKS = {ADVISOR: 36.0, AGENT: 40.0, TRAINING: 20.0, YOUTH_ADVISOR: 30.0, ACCOUNT_MANAGER: 12.0}
ROLE_PORTFOLIO = {ADVISOR: (50, 400), AGENT: (20, 60), TRAINING: (20, 150), YOUTH_ADVISOR: (50, 250),
                  ACCOUNT_MANAGER: (20, 80)}

NEVER_MS = 1 << 62  # active_from for accounts that are created but never used


@dataclass(slots=True, eq=False)
class Org:
    id: str
    kind: str
    pool_start: int  # the org's job seekers are records [pool_start, pool_start + pool_size)
    pool_size: int
    ips: tuple[str, ...]  # egress addresses of the org's network
    # Look-alike: day index -> factor on the day's work for everyone in the org (a campaign, a deadline).
    busy_days: dict[int, float] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return KIND_APP[self.kind]

    @property
    def staff_role(self) -> str:
        return KIND_STAFF_ROLE[self.kind]


@dataclass(slots=True, eq=False)
class Account:
    id: str
    org: Org
    role: str
    portfolio: list[int]
    tasks_per_day: float  # typical number of tasks on a normal working day
    attendance: float  # probability of using the system on a day they work
    start_min: int  # usual start of the working day, minutes after local midnight
    end_min: int
    saturday: bool  # works some Saturdays
    off_weekday: int | None  # part-time day off (0 = Monday), if any
    absent_days: frozenset[int]  # day indexes of holidays and sick leave
    home_ip: str | None  # telework address, if the account teleworks
    active_from_ms: int | None = None  # None: existed before the simulation starts
    created_by: str | None = None
    ips: frozenset[str] = field(default=frozenset())
    # Days the account certainly works (set by scenarios and look-alike planning, never drawn).
    present_days: frozenset[int] = field(default=frozenset())
    # Look-alike: day index -> number of accounts a manager creates at once (a team onboarding).
    onboarding_days: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        own = set(self.org.ips)
        if self.home_ip:
            own.add(self.home_ip)
        self.ips = frozenset(own)


class IdAllocator:
    """Random, unique, neutral numeric ids, so that id order says nothing."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def _draw(self, prefix: str, width: int) -> str:
        while True:
            candidate = f"{prefix}-{self._rng.randrange(1, 10 ** width):0{width}d}"
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate

    def account_id(self) -> str:
        return self._draw("acct", 6)

    def org_id(self, kind: str) -> str:
        return self._draw(KIND_PREFIX[kind], 4)

    def session_id(self) -> str:
        return self._draw("s", 12)


class IpPool:
    """Addresses from the three documentation ranges (RFC 5737) only."""

    RANGES = ("192.0.2", "198.51.100", "203.0.113")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._all = [f"{net}.{host}" for net in self.RANGES for host in range(1, 255)]
        self._org_queue = list(self._all)
        rng.shuffle(self._org_queue)
        self._next = 0
        self._reserved: set[str] = set()  # attacker addresses: never handed to a legitimate account

    def reserve(self, ip: str) -> str:
        self._reserved.add(ip)
        return ip

    @property
    def size(self) -> int:
        return len(self._all)

    def org_ip(self) -> str:
        # Distinct per organisation while the pool lasts, then shared (NAT-like).
        ip = self._org_queue[self._next % len(self._org_queue)]
        self._next += 1
        return ip

    def any_ip(self, exclude: frozenset[str] | set[str] = frozenset()) -> str:
        while True:
            ip = self._rng.choice(self._all)
            if ip not in exclude and ip not in self._reserved:
                return ip


@dataclass
class Population:
    orgs: list[Org]
    accounts: list[Account]  # grows during traffic generation as managers create accounts

    def of_role(self, role: str, kind: str | None = None) -> list[Account]:
        return [a for a in self.accounts
                if a.role == role and (kind is None or a.org.kind == kind) and a.active_from_ms is None]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _absences(rng: random.Random, days: int, start_weekday: int) -> frozenset[int]:
    absent: set[int] = set()
    # About one week in twelve is spent on holiday (five weeks a year plus bank-holiday bridges).
    if days >= 7 and rng.random() < min(0.9, 0.085 * days / 7):
        # One week of holidays, Monday to Friday.
        first_monday = (7 - start_weekday) % 7
        mondays = list(range(first_monday, days, 7))
        if mondays:
            monday = rng.choice(mondays)
            absent.update(range(monday, min(days, monday + 5)))
    # Sick leave: short spells, roughly 2 % of days.
    for _ in range(sum(1 for _ in range(days) if rng.random() < 0.012)):
        first = rng.randrange(days)
        absent.update(range(first, min(days, first + rng.choice((1, 1, 2, 3, 5)))))
    # A few long leaves (illness, parental leave, training course): two to three weeks away,
    # then a backlog day on return (a legitimate look-alike of a dormant account waking up).
    if days >= 14 and rng.random() < 0.04:
        length = rng.randint(10, 20)
        first = rng.randrange(max(1, days - length))
        absent.update(range(first, min(days, first + length)))
    return frozenset(absent)


class AccountFactory:
    """Draws the habits of one account; used up front and when a manager creates an account."""

    def __init__(self, rng: random.Random, ids: IdAllocator, ips: IpPool, days: int, start_weekday: int) -> None:
        self.rng = rng
        self.ids = ids
        self.ips = ips
        self.days = days
        self.start_weekday = start_weekday

    def portfolio(self, org: Org, role: str) -> list[int]:
        lo, hi = ROLE_PORTFOLIO[role]
        size = min(org.pool_size, self.rng.randint(lo, hi))
        return self.rng.sample(range(org.pool_start, org.pool_start + org.pool_size), size)

    def account(self, org: Org, role: str, active_from_ms: int | None = None,
                created_by: str | None = None) -> Account:
        rng = self.rng
        tasks = _lognormal(rng, ROLE_TASKS[role], 0.55)
        # A minority of accounts barely use the system (occasional users).
        attendance = 0.35 if rng.random() < 0.12 else rng.uniform(0.85, 1.0)
        start_min = int(rng.gauss(8 * 60 + 45, 20))
        end_min = int(rng.gauss(17 * 60 + 30, 25))
        return Account(
            id=self.ids.account_id(), org=org, role=role, portfolio=self.portfolio(org, role),
            tasks_per_day=tasks, attendance=attendance,
            start_min=max(7 * 60 + 30, min(start_min, 9 * 60 + 45)),
            end_min=max(16 * 60, min(end_min, 19 * 60)),
            saturday=rng.random() < 0.07,
            off_weekday=rng.choice((2, 2, 4, 0)) if rng.random() < 0.15 else None,
            absent_days=_absences(rng, self.days, self.start_weekday),
            home_ip=self.ips.any_ip() if rng.random() < 0.25 else None,
            active_from_ms=active_from_ms, created_by=created_by,
        )

    def created_account(self, org: Org, creator: Account, create_ms: int) -> Account:
        """An account a manager creates legitimately: it starts later, some never start."""
        rng = self.rng
        if rng.random() < 0.15:
            active_from = NEVER_MS
        elif rng.random() < 0.4:
            active_from = create_ms + rng.randint(30, 150) * MINUTE_MS  # same day
        else:
            active_from = create_ms + rng.randint(14, 40) * 60 * MINUTE_MS  # next days
        return self.account(org, org.staff_role, active_from_ms=active_from, created_by=creator.id)


def _kind_quotas(actors: int) -> list[tuple[str, int]]:
    quotas = [(kind, max(1, round(actors * share))) for kind, share in KIND_SHARE]
    # Missions Locales need a manager and an advisor for the creation scenarios.
    quotas[3] = (MISSION_LOCALE, max(2, quotas[3][1]))
    surplus = sum(q for _, q in quotas) - actors
    kind, quota = quotas[0]
    quotas[0] = (kind, max(1, quota - surplus))
    return quotas


def _org_roles(kind: str, size: int, first_of_kind: bool, rng: random.Random) -> list[str]:
    staff = KIND_STAFF_ROLE[kind]
    roles: list[str] = []
    has_manager = kind != TRAINING_ORG and (size >= 5 or (kind == MISSION_LOCALE and first_of_kind))
    if has_manager:
        roles.append(ACCOUNT_MANAGER)
    while len(roles) < size:
        roles.append(AGENT if kind == FT_AGENCY and rng.random() < 0.1 else staff)
    return roles


def build_population(rng: random.Random, factory: AccountFactory, actors: int) -> Population:
    orgs: list[Org] = []
    accounts: list[Account] = []
    for kind, quota in _kind_quotas(actors):
        lo, hi = KIND_SIZE[kind]
        records = YOUTH_RECORDS if kind == MISSION_LOCALE else GENERAL_RECORDS
        remaining = quota
        while remaining > 0:
            size = min(remaining, rng.randint(lo, hi))
            pool_size = max(400, size * 300)
            org = Org(id=factory.ids.org_id(kind), kind=kind,
                      pool_start=rng.randrange(records[0], records[1] - pool_size), pool_size=pool_size,
                      ips=tuple(factory.ips.org_ip() for _ in range(rng.choice((1, 1, 2)))))
            first_of_kind = remaining == quota
            orgs.append(org)
            for role in _org_roles(kind, size, first_of_kind, rng):
                accounts.append(factory.account(org, role))
            remaining -= size
    return Population(orgs=orgs, accounts=accounts)
