"""The detector's state machine for one organisation: windows in, in event-time order; alerts out.

An organisation is the unit because that is where the context lives: an
account's peers, whether everyone is busier today, and the accounts its
account managers create. Each window of one of its accounts is
1. placed in the account's rolling memory (and, for a created account, its creator's),
2. scored by every rule against expectations blended from own history, peers and role,
   adjusted for the hour (never worked at) and the organisation (collectively busier),
3. folded into that account's open incidents, which emit an alert when they open or escalate,
4. learned from — unless it alerted.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Dict, Iterable, List, Optional, Sequence

from schemas.activity import AccountActivity
from schemas.alert import Alert
from schemas.baseline import AccountBaseline, GroupState, WindowPoint
from schemas.timestamps import MS_PER_DAY, MS_PER_HOUR
from transforms.account_creation import (
    CREATED_ACCOUNT_ACTIVITY,
    CREATION_RATE,
    assess_created_accounts,
    assess_creation_rate,
)
from transforms.account_model import CHILD_RECORDS, CREATIONS, NOVEL, RECORDS, AccountModel
from transforms.baselines import age_to_day, learn
from transforms.consultation_volume import RULE as CONSULTATION_VOLUME
from transforms.consultation_volume import QuietBounds, assess_consultation
from transforms.detection_config import DetectionConfig
from transforms.incidents import Subject, track_incident
from transforms.peer_groups import PeerGroup

PORTFOLIO_EXPORT_MARGIN = 1.5  # an export up to this many times the known portfolio is explained by it
MAX_CHILDREN = 200  # accounts remembered per creator: enough for any real account manager's month


# The order an organisation's windows are replayed in, of AccountActivities or the plain tuples of their fields.
EVENT_TIME_ORDER = itemgetter(*(AccountActivity._fields.index(field) for field in ("window_start_ms", "late", "actor")))


def group_key(activity: AccountActivity) -> str:
    """Accounts are judged with their organisation; one without is judged alone."""
    return group_of(activity.org, activity.actor)


def group_of(org: Optional[str], actor: str) -> str:
    return org if org else f"~{actor}"


class ScoringContext:
    """One account at one window end: what the rules need to know beyond the numbers."""

    __slots__ = ("config", "model", "peers", "window_end_ms", "factor", "floor_factor", "adjustments", "lift",
                 "_day_lift")

    def __init__(self, config: DetectionConfig, model: AccountModel, peers: PeerGroup,
                 window_start_ms: int, window_end_ms: int):
        self.config = config
        self.model = model
        self.peers = peers
        self.window_end_ms = window_end_ms
        adjustments = []
        factor = floor_factor = 1.0
        if peers.off_hours(model, window_start_ms, window_end_ms):
            # Floors bend less than learned levels: a floor is all that guards a quiet account.
            factor /= config.volume.off_hours_divisor
            floor_factor /= config.volume.off_hours_floor_divisor
            adjustments.append("off_hours")
        lift = peers.org_lift(window_end_ms)
        if lift >= 1.05:
            factor *= lift
            floor_factor *= lift
            adjustments.append(f"org_busy_x{lift:.1f}")
        else:
            lift = 1.0
        self.factor = factor
        self.floor_factor = floor_factor
        self.adjustments = adjustments
        self.lift = lift
        self._day_lift: Optional[float] = None

    def day_lift(self) -> float:
        """The organisation's lift for a volume measure: the higher of the last hour's and the day's.

        Asked only by the full assessment, on the rare window the screen lets through (it can only
        raise the bar), so the walk over the organisation's accounts is paid where it may matter.
        """
        if self._day_lift is None:
            day = self.peers.org_day_lift(self.window_end_ms)
            self._day_lift = day if day >= 1.05 and day > self.lift else self.lift
        return self._day_lift

    def _lifted_for_the_day(self, factor: float) -> float:
        day_lift = self.day_lift()
        return factor if day_lift == self.lift else factor / self.lift * day_lift

    def factor_for(self, span_minutes: int) -> float:
        """The context factor for a volume measure: a day-long sum is not made suspicious by the current hour."""
        factor = self._lifted_for_the_day(self.factor)
        if span_minutes >= 1440 and "off_hours" in self.adjustments:
            factor *= self.config.volume.off_hours_divisor
        return factor

    def floor_factor_for(self, span_minutes: int) -> float:
        factor = self._lifted_for_the_day(self.floor_factor)
        if span_minutes >= 1440 and "off_hours" in self.adjustments:
            factor *= self.config.volume.off_hours_floor_divisor
        return factor

    def adjustments_for(self, span_minutes: int):
        day_lift = self.day_lift()
        kept = [a for a in self.adjustments if not a.startswith("org_busy_x")
                and not (span_minutes >= 1440 and a == "off_hours")]
        return kept + ([f"org_busy_x{day_lift:.1f}"] if day_lift > 1.0 else [])

    def peer_peak(self, slot: int) -> Optional[float]:
        return self.peers.peer_peak(self.model, slot, self.window_end_ms)


class GroupModel:
    def __init__(self, group: str, config: DetectionConfig, state: Optional[GroupState] = None,
                 baselines: Iterable[AccountBaseline] = ()):
        self.group = group
        self.config = config
        self.accounts: Dict[str, AccountModel] = {}
        for baseline in baselines:
            self.accounts[baseline.actor] = AccountModel.from_baseline(baseline)
        if state is not None:
            for account in state.accounts:
                self.accounts[account.baseline.actor] = AccountModel.from_state(account)
        self.peers = PeerGroup(self.accounts, config)
        self._quiet = QuietBounds(config)
        self.latest_end_ms = max((m.last_window_end_ms for m in self.accounts.values()), default=0)

    def _account(self, actor: str, actor_type: Optional[str]) -> AccountModel:
        model = self.accounts.get(actor)
        if model is None:
            model = self.accounts[actor] = AccountModel(actor, self.group, actor_type)
        elif model.actor_type is None and actor_type:
            model.actor_type = actor_type
        return model

    def _track(self, model: AccountModel, rule: str, subject: Subject, window, amount: int, finding,
               related: Sequence[str], alerts: List[Alert]) -> None:
        if finding is None and rule not in model.incidents:
            return  # nothing crossed and no story is open: the common case, decided here
        incident, alert = track_incident(model.incidents.get(rule), rule, subject, window, amount, finding,
                                         related, self.config.incident)
        if incident is None:
            model.incidents.pop(rule, None)
        else:
            model.incidents[rule] = incident
        if alert is not None:
            alerts.append(alert)

    def step(self, activity: AccountActivity) -> List[Alert]:
        """One window's alerts. `activity` may also be the plain tuple of an AccountActivity's fields, as a
        batch replay's merge makes them: no named tuple is built only to be taken apart here."""
        config = self.config
        # Its fields at once: a named field read is a call, and a window reads a dozen.
        (actor, org, actor_type, start, end, _, touched, consults, _, _, largest_bulk, creations, created,
         distinct, sample, _, late_pane) = activity
        peers = self.peers
        deferred = peers.deferred_end == end  # the lift at this end is owed as it stood when first asked
        if deferred:
            peers.changing(actor, self.accounts.get(actor))
        model = self._account(actor, actor_type)
        # A window at or before what was already scored is a late pane: it is
        # scored (a late burst still alerts) but teaches nothing.
        late = late_pane or end <= model.last_window_end_ms
        if not late:
            age_to_day(model, end, config)
        if end > self.latest_end_ms:
            self.latest_end_ms = end

        novelty_applies = model.history_days >= config.novelty.min_history_days
        novel = familiar = 0
        to_learn = sample
        if novelty_applies and distinct:
            # What is not novel is in the portfolio already: learning adds only the rest.
            to_learn = model.portfolio.novel_records(sample)
            novel_share = len(to_learn) / len(sample) if sample else 0.0
            novel = round(novel_share * distinct)
            familiar = round((1.0 - novel_share) * consults)
        scored = touched
        if largest_bulk:
            scored -= self._own_portfolio_export(model, largest_bulk)
        # Every scale weighs familiar files less: a burst of its own files is work, not a leak.
        weighted = scored - round((1.0 - config.volume.familiar_weight) * familiar)
        records = weighted if weighted > 0 else 0
        model.add_point(WindowPoint(start, records, novel, creations, 0), end)
        if deferred:
            peers.added(model, records)
        peers.worked(model)
        for target in created:
            child = self._account(target, None)
            if child.created_by is None:
                child.created_by, child.created_at_ms = actor, start
            if target not in model.children:
                model.children = (model.children + [target])[-MAX_CHILDREN:]

        alerts: List[Alert] = []
        hour = model.hour_sums(end)
        day_sums = model.day_sums
        volumes = {"5m": records, "1h": hour[RECORDS], "1d": day_sums[RECORDS]}
        novel_1h = hour[NOVEL] if novelty_applies else None
        incidents = model.incidents
        consultation = creation = None
        if (not hour[CREATIONS] and not day_sums[CREATIONS] and CONSULTATION_VOLUME not in incidents
                and CREATION_RATE not in incidents
                and self._quiet.hold(volumes, novel_1h, day_sums[NOVEL], self.peers.off_hours(model, start, end))):
            # Nothing can cross and no story is open (nearly every window): no threshold to build.
            self.peers.asked_by(model, end)
        else:
            context = ScoringContext(config, model, self.peers, start, end)
            consultation = assess_consultation(context, volumes, novel_1h)
            # Nothing crossed and no story open: nothing to track, nothing to build for it.
            if consultation is not None or CONSULTATION_VOLUME in incidents:
                creator_link = [model.created_by] if model.created_by else []
                self._track(model, CONSULTATION_VOLUME, Subject(actor, org, model.actor_type),
                            (start, end), touched, consultation, creator_link, alerts)
            creation = assess_creation_rate(context, hour[CREATIONS], model.day_sum(CREATIONS))
            if creation is not None or CREATION_RATE in incidents:
                self._track(model, CREATION_RATE, Subject(actor, org, model.actor_type),
                            (start, end), creations, creation, list(created), alerts)
        if model.created_by:
            self._attribute_to_creator(model, start, end, org, records, alerts)

        if not late:
            model.last_window_end_ms = end
            if consultation is None and creation is None:
                learn(model, start, volumes, novel_1h, day_sums[CREATIONS], to_learn, config)
        return alerts

    def _own_portfolio_export(self, model: AccountModel, bulk: int) -> int:
        """Records of a search or export (`bulk`, the window's largest) no larger than the account's own
        portfolio: its job, not a leak.

        An advisor exporting the files it follows is routine; an export many times
        that size is not.
        """
        if not bulk:
            return 0
        known = PORTFOLIO_EXPORT_MARGIN * model.portfolio.estimated_size()
        return bulk if bulk <= max(known, self.config.volume.portfolio_export_max) else 0

    def _attribute_to_creator(self, model: AccountModel, start: int, end: int, org: Optional[str], records: int,
                              alerts: List[Alert]) -> None:
        """What a created account reads counts against the account that created it.

        `records` is the window as the created account's own hour sums count it: an export of its
        own portfolio is its job, not the creator's story.
        """
        config = self.config
        if not model.created_by or not records:
            return
        if start - model.created_at_ms > config.creation.child_days * MS_PER_DAY:
            return
        creator = self.accounts.get(model.created_by)
        if creator is None:
            return
        if self.peers.deferred_end == end:
            self.peers.changing(creator.actor, creator)
        creator.add_point(WindowPoint(start, 0, 0, 0, records), end)
        self.peers.worked(creator)
        context = ScoringContext(config, creator, self.peers, start, end)
        horizon_ms = config.creation.child_days * MS_PER_DAY
        active_children = [
            child for child in creator.children
            if child in self.accounts and self.accounts[child].active_within(end, MS_PER_HOUR)
            and start - self.accounts[child].created_at_ms <= horizon_ms
        ]
        creation = config.creation
        allowance = 0.0
        for child_id in active_children:
            child = self.accounts[child_id]
            young = start - child.created_at_ms < creation.young_hours * MS_PER_HOUR
            allowance += creation.young_records_1h if young else config.role_prior(child.actor_type).records_1h
        burst = creator.day_sum(CREATIONS) >= creation.burst_creations
        finding = assess_created_accounts(context, creator.hour_sum(CHILD_RECORDS, end), allowance, burst)
        subject = Subject(creator.actor, org, creator.actor_type)
        self._track(creator, CREATED_ACCOUNT_ACTIVITY, subject, (start, end), records, finding,
                    active_children, alerts)

    def run(self, activities: Iterable[AccountActivity]) -> List[Alert]:
        """All alerts for a batch of windows, replayed in event-time order."""
        alerts: List[Alert] = []
        for activity in sorted(activities, key=EVENT_TIME_ORDER):
            alerts.extend(self.step(activity))
        return alerts

    def state(self) -> GroupState:
        """The state to keep, without incidents that can no longer grow (nor be reached by a day-long sum)."""
        quiet_ms = max(self.config.incident.quiet_minutes * 60_000, MS_PER_DAY)
        for model in self.accounts.values():
            for rule in [r for r, i in model.incidents.items() if self.latest_end_ms - i.last_crossing_end_ms > quiet_ms]:
                del model.incidents[rule]
        return GroupState(accounts=[self.accounts[actor].to_state() for actor in sorted(self.accounts)])

    def baselines(self) -> List[AccountBaseline]:
        return [self.accounts[actor].baseline() for actor in sorted(self.accounts)]
