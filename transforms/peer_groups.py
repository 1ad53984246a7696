"""What an account's organisation tells about it: its peers' usual levels, their hours,
and whether the whole organisation is busier right now.

Peers are the accounts of the same organisation and role that have history of
their own. They stand in for a new account's missing history, and a day on
which most of an organisation works harder (a campaign, a deadline, the start
of a month) raises everybody's thresholds instead of alerting on everybody.
"""

from __future__ import annotations

import statistics
from typing import Dict, Optional, Set, Tuple

from schemas.baseline import VOLUME_PEAKS
from schemas.timestamps import MS_PER_DAY, MS_PER_HOUR
from transforms.account_model import RECORDS, AccountModel
from transforms.baselines import OWN_HISTORY, PEER_GROUP, ROLE_PRIOR, hour_slot
from transforms.detection_config import VOLUME_SCALES, DetectionConfig

_VOLUME_SLOTS = tuple(VOLUME_PEAKS[scale] for scale, _ in VOLUME_SCALES)
# Weekdays 06:00-19:59 UTC: the working week assumed for an account nobody can vouch for.
DEFAULT_WORKING_HOURS = sum(1 << hour for hour in range(6, 20))


def _neighbourhood(slot: int) -> int:
    day_class, hour = divmod(slot, 24)
    return sum(1 << (day_class * 24 + neighbour) for neighbour in (hour - 1, hour, hour + 1) if 0 <= neighbour < 24)


# Per slot of the week, the bits of that hour and the hours either side of it on the same kind of day.
_NEIGHBOURHOODS = tuple(_neighbourhood(slot) for slot in range(48))


def is_off_hours(hours_seen: int, slot: int) -> bool:
    """True when neither this slot nor the hours either side of it were ever worked.

    The neighbours absorb daylight-saving shifts and the odd early start.
    """
    return not hours_seen & _NEIGHBOURHOODS[slot]


class PeerGroup:
    """The accounts of one organisation, with per-day and per-window caches of what they say."""

    def __init__(self, accounts: Dict[str, AccountModel], config: DetectionConfig):
        self.accounts = accounts
        self.config = config
        # Accounts that may have worked within the last hour: the organisation's lift is asked at
        # every new window end, and walking every account each time grows with accounts squared.
        # One is dropped only once no window still to come (a late one included) can see it active.
        self._recent: Dict[str, AccountModel] = dict(accounts)
        self._newest_end_ms = 0
        self._forget_after_ms = MS_PER_HOUR + config.allowed_lateness_minutes * 60_000
        self._day = -1
        self._peaks: Dict[Tuple[Optional[str], int], Optional[float]] = {}
        self._asked_today: Set[Optional[str]] = set()  # roles whose every volume peak is in _peaks
        self._hours: Dict[Optional[str], int] = {}
        self._hours_source: Dict[Optional[str], str] = {}
        self._lift_at: Tuple[int, float] = (-1, 1.0)
        self._day_lift_at: Tuple[int, float] = (-1, 1.0)
        self._hourly_floors: Dict[Optional[str], float] = {}
        # The window end whose lift was asked (`asked_by`) but not yet worked out, and what the accounts
        # changed since held at that ask: actor -> [last point's start, history_days, typical_1h, actor_type,
        # records added to its hour since] (`changing`, `added`).
        self.deferred_end = -1
        self._as_asked: Dict[str, list] = {}

    def _new_day(self, window_end_ms: int) -> None:
        day = (window_end_ms - 1) // MS_PER_DAY
        if day != self._day:
            self._day = day
            self._peaks.clear()
            self._asked_today.clear()
            self._hours.clear()
            self._hours_source.clear()

    def _trusted(self, actor_type: Optional[str]):
        trust_days = self.config.volume.trust_days
        return [m for m in self.accounts.values() if m.actor_type == actor_type and m.history_days >= trust_days]

    def peer_peak(self, model: AccountModel, slot: int, window_end_ms: int) -> Optional[float]:
        """Its peers' usual maximum for one measure (their upper quartile), or None with too few peers.

        The upper quartile, not the median: a new account is one more colleague, as likely to be
        among the busy ones as the quiet ones, and judging it on the median peer alerts on every
        heavy newcomer the day its peers become known.
        """
        self._new_day(window_end_ms)
        key = (model.actor_type, slot)
        if key not in self._peaks:
            peaks = [m.peaks[slot] for m in self._trusted(model.actor_type)]
            self._peaks[key] = statistics.quantiles(peaks, n=4)[2] if len(peaks) >= self.config.volume.min_peers else None
        return self._peaks[key]

    def working_hours(self, model: AccountModel, window_end_ms: int) -> int:
        """The hours this account is known to work: its own once trusted, else its peers' or a default."""
        if model.history_days >= self.config.volume.trust_days:
            return model.hours_seen
        self._new_day(window_end_ms)
        if model.actor_type not in self._hours:
            peers = self._trusted(model.actor_type)
            mask = 0
            for peer in peers:
                mask |= peer.hours_seen
            enough = len(peers) >= self.config.volume.min_peers
            self._hours[model.actor_type] = mask if enough else DEFAULT_WORKING_HOURS
            self._hours_source[model.actor_type] = PEER_GROUP if enough else ROLE_PRIOR
        return self._hours[model.actor_type] | model.hours_seen

    def working_hours_source(self, model: AccountModel, window_end_ms: int) -> str:
        """Where `working_hours` took this account's hours from: its own history, its peers', or the default week."""
        if model.history_days >= self.config.volume.trust_days:
            return OWN_HISTORY
        self.working_hours(model, window_end_ms)
        return self._hours_source[model.actor_type]

    def off_hours(self, model: AccountModel, window_start_ms: int, window_end_ms: int) -> bool:
        # Asked of nearly every window: a trusted account's own hours are read without a call.
        hours = (model.hours_seen if model.history_days >= self.config.volume.trust_days
                 else self.working_hours(model, window_end_ms))
        return not hours & _NEIGHBOURHOODS[hour_slot(window_start_ms)]  # is_off_hours, without a call

    def asked_by(self, model: AccountModel, window_end_ms: int) -> None:
        """What scoring this window would ask of the organisation, asked for a window that needs no threshold.

        The per-day caches and the hour's lift are filled by the first window that asks, and later
        windows read them: a window left unscored must still ask, or the windows after it would be
        judged on figures taken at another moment. (The order is ScoringContext's, then the screen's;
        the caller has asked `off_hours` first, as ScoringContext does.)
        """
        if self._lift_at[0] != window_end_ms and self.deferred_end != window_end_ms:
            self._defer_lift(window_end_ms)
        if (window_end_ms - 1) // MS_PER_DAY != self._day:  # asked of every quiet window: the call only when due
            self._new_day(window_end_ms)
        actor_type = model.actor_type
        if actor_type in self._asked_today:  # peer_peak would only read them back
            return
        peaks = self._peaks
        for slot in _VOLUME_SLOTS:
            if (actor_type, slot) not in peaks:
                self.peer_peak(model, slot, window_end_ms)
        self._asked_today.add(actor_type)

    def worked(self, model: AccountModel) -> None:
        """`model` just added a window: it counts for the organisation's lift for the next hour."""
        self._recent[model.actor] = model

    def _defer_lift(self, window_end_ms: int) -> None:
        """The lift at this end is asked now, by a window that needs no threshold: it is worked out only if a
        later window of the same end needs it, as it stood now (`changing`, `added`).

        Nearly every window end has no window that needs a threshold, and walking the organisation's
        active accounts at each was a sixth of a replay's scoring.
        """
        if window_end_ms > self._newest_end_ms:
            self._newest_end_ms = window_end_ms
        self.deferred_end = window_end_ms
        self._as_asked.clear()

    def changing(self, actor: str, model: Optional[AccountModel]) -> None:
        """Called, while a lift is deferred, before a window of its end changes what the lift reads of an account
        (`model`, None for one not seen yet)."""
        if actor not in self._as_asked:
            recent = model.recent if model is not None else None
            self._as_asked[actor] = ([None, 0, 0.0, None, 0] if not recent else  # not active when asked
                                     [recent[-1].start_ms, model.history_days, model.typical_1h, model.actor_type, 0])

    def added(self, model: AccountModel, records: int) -> None:
        """Called, while a lift is deferred, after a window of its end added `records` to `model`'s hour."""
        self._as_asked[model.actor][4] += records

    def org_lift(self, window_end_ms: int) -> float:
        """How much busier than usual most of the organisation is over the last hour (>= 1)."""
        if self._lift_at[0] == window_end_ms:
            return self._lift_at[1]
        as_asked = self._as_asked if self.deferred_end == window_end_ms else {}
        self.deferred_end = -1
        volume = self.config.volume
        idle = []
        if window_end_ms > self._newest_end_ms:
            self._newest_end_ms = window_end_ms
        forget_before = self._newest_end_ms - self._forget_after_ms
        hour_ago = window_end_ms - MS_PER_HOUR
        trust_days = volume.trust_days
        counted = []
        for actor, model in self._recent.items():
            recent = model.recent
            last = recent[-1].start_ms if recent else None
            held = as_asked.get(actor)
            if held is None:
                history, typical, role, since = model.history_days, model.typical_1h, model.actor_type, 0
                asked_last = last
            else:
                asked_last, history, typical, role, since = held
            if asked_last is None or asked_last < hour_ago:  # not active within the hour
                if last is None or last < forget_before:
                    idle.append(actor)  # back in when it next works
                continue
            if history >= trust_days:
                counted.append((model, typical, role, since))
        # One account's surge must not lift its own threshold: it takes most of the organisation,
        # well beyond an ordinary hour's swing, to be a collectively busy day. (Too few colleagues
        # at work, as in more than half the hours, and their hours need not be summed at all.)
        lift = 1.0
        if len(counted) >= max(4, volume.min_peers):
            ratios = []
            floors = self._hourly_floors
            for model, typical, role, since in counted:
                floor = floors.get(role)
                if floor is None:
                    floor = self._hourly_floor(role)
                records = model.hour_sums(window_end_ms)[RECORDS] - since
                ratios.append(records / (typical if typical >= floor else floor))
            lift = min(volume.max_org_lift, max(1.0, statistics.median(ratios) / volume.org_busy_ratio))
        for actor in idle:
            del self._recent[actor]
        self._lift_at = (window_end_ms, lift)
        return lift

    def _hourly_floor(self, actor_type: Optional[str]) -> float:
        """The least ordinary hour the lift assumes of a role: a tenth of its prior's hour."""
        floor = self._hourly_floors.get(actor_type)
        if floor is None:
            floor = self._hourly_floors[actor_type] = self.config.role_prior(actor_type).records_1h / 10
        return floor

    def org_day_lift(self, window_end_ms: int) -> float:
        """How much faster than its ordinary pace most of the organisation has worked today (>= 1).

        A busy day is not busy every hour: colleagues pause, meet, go home, and the hourly lift falls
        back to 1 within minutes while the day's surplus work is still being done. Their average pace
        since the day began holds for the whole day.
        """
        if self._day_lift_at[0] == window_end_ms:
            return self._day_lift_at[1]
        volume = self.config.volume
        today = (window_end_ms - 1) // MS_PER_DAY
        ratios = []
        for model in self.accounts.values():
            # Today's pace once it rests on half an hour of work; an account not seen today still holds yesterday's.
            total, windows = model.pace_today
            if model.current_day != today or windows < 6 or model.history_days < volume.trust_days:
                continue
            # A day's average is steadier than an hour's: a quieter floor than the hourly lift's keeps small accounts in.
            ordinary = max(model.typical_1h, self.config.role_prior(model.actor_type).records_1h / 20)
            ratios.append(total / windows / ordinary)
        lift = 1.0
        if len(ratios) >= max(4, volume.min_peers):
            lift = min(volume.max_org_lift, max(1.0, statistics.median(ratios) / volume.org_busy_day_ratio))
        self._day_lift_at = (window_end_ms, lift)
        return lift
