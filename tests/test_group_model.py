"""The detector's state machine for one organisation: learning, cold start, peers, hours,
poisoning, creation chains, incidents, order."""

import dataclasses
import random

from schemas.activity import AccountActivity
from schemas.alert import ESCALATED, NEW, Expectation
from schemas.baseline import PEAK_1D, PEAK_5M
from transforms.account_creation import CREATED_ACCOUNT_ACTIVITY, CREATION_RATE
from transforms.baselines import OWN_HISTORY, PEER_GROUP, ROLE_PRIOR
from transforms.consultation_volume import Finding
from transforms.detection_config import DetectionConfig
from transforms.group_model import GroupModel
from transforms.incidents import Subject, track_incident

from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE

CONFIG = DetectionConfig()
WINDOW = CONFIG.window_ms


def window(actor, start_ms, records, actor_type="advisor", created=(), records_ids=None, org="org-a"):
    ids = records_ids if records_ids is not None else [f"{actor}-rec-{i % 40}" for i in range(records)]
    distinct = sorted(set(ids))
    return AccountActivity(
        actor=actor, org=org, actor_type=actor_type, window_start_ms=start_ms, window_end_ms=start_ms + WINDOW,
        events=records + len(created), records_touched=records, consults=records, searches=0, exports=0,
        largest_bulk=0, creations=len(created), created=list(created), distinct_records=len(distinct),
        record_sample=distinct[:64], duplicates=0, late=False,
    )


def working_days(actor, days, per_window, seed=1, actor_type="advisor", first_day=0):
    """Ten active windows a weekday-like day between 09:00 and 12:00 UTC, on its own portfolio of 40 records."""
    rnd = random.Random(f"{actor}-{seed}")
    out = []
    for day in range(first_day, first_day + days):
        for slot in sorted(rnd.sample(range(36), 10)):
            out.append(window(actor, MONDAY_MS + day * MS_PER_DAY + 9 * MS_PER_HOUR + slot * WINDOW,
                              rnd.randint(1, per_window), actor_type=actor_type))
    return out


def run(windows, model=None):
    model = model or GroupModel("org-a", CONFIG)
    return model, model.run(windows)


def day(n, hour=10):
    return MONDAY_MS + n * MS_PER_DAY + hour * MS_PER_HOUR


def test_an_account_learns_its_usual_maxima_from_its_own_history():
    model, alerts = run(working_days("acct-1", days=8, per_window=12))
    assert alerts == []
    account = model.accounts["acct-1"]
    assert 8 <= account.peaks[PEAK_5M] <= 12
    assert account.peaks[PEAK_1D] > account.peaks[PEAK_5M]
    assert account.active_days == 8


def test_a_burst_far_above_the_learned_maximum_alerts_against_own_history():
    burst = window("acct-1", day(8, 3), records=400)
    _, alerts = run(working_days("acct-1", days=8, per_window=12) + [burst])
    assert [a.status for a in alerts] == [NEW]
    alert = alerts[0]
    assert (alert.actor, alert.observed, alert.detected_at_ms) == ("acct-1", 400, burst.window_end_ms)
    assert alert.expected.source == OWN_HISTORY
    assert "400" in alert.explanation


def test_learning_is_real_a_heavy_account_is_not_held_to_a_light_accounts_threshold():
    at = day(8)
    _, heavy = run(working_days("acct-h", days=8, per_window=60) + [window("acct-h", at, 150)])
    _, light = run(working_days("acct-l", days=8, per_window=5) + [window("acct-l", at, 150)])
    assert [a for a in heavy if a.detected_at_ms > at] == []
    assert len(light) == 1


def test_a_brand_new_account_is_scored_from_its_first_window_by_its_role_prior():
    _, alerts = run([window("acct-new", day(0), 300, actor_type="youth_advisor")])
    assert len(alerts) == 1
    assert alerts[0].expected.source == ROLE_PRIOR and alerts[0].expected.own is None


def test_a_new_account_leans_on_its_peers_once_they_have_history():
    peers = []
    for name in ("p1", "p2", "p3", "p4"):
        peers += working_days(name, days=8, per_window=4)
    newcomer = window("acct-new", day(8), 80)
    _, alerts = run(peers + [newcomer])
    # 80 in 5 min is under a new advisor's role prior threshold, but far above what its peers do.
    assert [a.actor for a in alerts] == ["acct-new"]
    assert alerts[0].expected.source == PEER_GROUP


def test_a_modest_first_day_does_not_alert_a_new_account():
    _, alerts = run([window("acct-new", day(0, 9) + i * WINDOW, 8) for i in range(20)])
    assert alerts == []


def test_reading_at_an_hour_it_never_works_weighs_more():
    history = working_days("acct-1", days=8, per_window=12)
    daytime, night = day(8, 10), day(8, 2)
    # Its own files (records it never opened would alert in the day too): 70 weigh as 35.
    own_files = [f"acct-1-rec-{i % 12}" for i in range(70)]
    _, by_day = run(history + [window("acct-1", daytime, 70, records_ids=own_files)])
    _, by_night = run(history + [window("acct-1", night, 70, records_ids=own_files)])
    assert by_day == []
    assert len(by_night) == 1 and "off_hours" in by_night[0].expected.adjustments


def test_reading_records_it_never_opened_before_alerts_once_its_portfolio_is_known():
    history = working_days("acct-1", days=8, per_window=10)
    strangers = [window("acct-1", day(8, 9) + i * WINDOW, 10, records_ids=[f"stranger-{i}-{j}" for j in range(10)])
                 for i in range(12)]
    familiar = [window("acct-1", day(8, 9) + i * WINDOW, 10) for i in range(12)]
    _, on_strangers = run(history + strangers)
    _, on_familiar = run(history + familiar)
    assert on_familiar == []
    assert on_strangers and "never opened before" in on_strangers[0].explanation


def test_an_organisation_busier_as_a_whole_does_not_alert_on_everybody():
    names = [f"m{i}" for i in range(6)]
    history = [w for name in names for w in working_days(name, days=8, per_window=6)]
    # Day 9: everyone works through its own files all morning at several times its usual pace (a deadline).
    busy = [window(name, day(8, 9) + i * WINDOW, 40, records_ids=[f"{name}-rec-{r % 6}" for r in range(40)])
            for name in names for i in range(36)]
    _, quiet_org = run(history + busy)
    _, alone = run(history + [w for w in busy if w.actor == "m0"])
    assert quiet_org == []
    assert alone and {a.actor for a in alone} == {"m0"}


def test_a_busy_day_keeps_its_lift_through_the_lulls_of_the_organisation():
    names = [f"m{i}" for i in range(6)]
    history = [w for name in names for w in working_days(name, days=8, per_window=6)]
    own_files = {name: [f"{name}-rec-{r % 6}" for r in range(40)] for name in names}
    # Day 9: everyone at several times its usual pace from 08:00; at 11:00 the others stop while m0
    # goes on at the same pace, within its working hours, for two more: no colleague works that hour.
    busy = [window(name, day(8, 8) + i * WINDOW, 40, records_ids=own_files[name]) for name in names for i in range(36)]
    m0_goes_on = [window("m0", day(8, 11) + i * WINDOW, 40, records_ids=own_files["m0"]) for i in range(24)]
    _, with_day_lift = run(history + busy + m0_goes_on)
    hourly_only = dataclasses.replace(CONFIG, volume=dataclasses.replace(CONFIG.volume, org_busy_day_ratio=1e9))
    _, hourly_lift_only = run(history + busy + m0_goes_on, GroupModel("org-a", hourly_only))
    assert with_day_lift == []
    assert hourly_lift_only and {a.actor for a in hourly_lift_only} == {"m0"}
    assert all(a.detected_at_ms > day(8, 11) for a in hourly_lift_only)


def test_a_newcomer_reading_a_few_files_an_hour_through_the_night_alerts_before_dawn():
    peers = [w for name in ("p1", "p2", "p3", "p4") for w in working_days(name, days=8, per_window=6)]
    # 5 records every 5 minutes (60 an hour) for 10 hours: under every hourly bar of a new advisor.
    def trickle(first_hour):
        return [window("acct-new", day(8, first_hour) + i * WINDOW, 5, records_ids=[f"stranger-{i}-{r}" for r in range(5)])
                for i in range(120)]
    _, by_night = run(peers + trickle(19))
    _, by_day = run(peers + trickle(7))
    assert by_day == []
    assert by_night and by_night[0].actor == "acct-new"
    assert "at night" in by_night[0].explanation
    assert day(8, 21) < by_night[0].detected_at_ms <= day(9, 0)
    assert by_night[0].expected.source == PEER_GROUP  # the hours it never works are its peers'
    _, nobody_to_vouch = run(trickle(19))
    assert nobody_to_vouch and nobody_to_vouch[0].expected.source == ROLE_PRIOR  # the default working week


def test_windows_that_alert_do_not_teach_the_baseline():
    model, _ = run(working_days("acct-1", days=8, per_window=12))
    before = list(model.accounts["acct-1"].peaks)
    _, alerts = run([window("acct-1", day(8, 2) + i * WINDOW, 500) for i in range(24)], model)
    assert alerts
    assert all(after <= b for after, b in zip(model.accounts["acct-1"].peaks, before))


def test_the_usual_maximum_grows_at_most_daily_growth_per_day():
    model, _ = run(working_days("acct-1", days=8, per_window=12))
    account = model.accounts["acct-1"]
    start_peak = account.peaks[PEAK_5M] * CONFIG.volume.daily_decay
    # Under every threshold, hour after hour: never alerts, but must not teach 3x the maximum in one day.
    _, alerts = run([window("acct-1", day(8, 9) + i * 3 * WINDOW, 20) for i in range(12)], model)
    assert alerts == []
    assert account.peaks[PEAK_5M] <= start_peak * CONFIG.volume.daily_growth + 1.0 + 1e-9


def test_consecutive_crossings_are_one_incident_that_escalates_with_the_same_id():
    attack = [window("acct-x", day(0, 2) + i * WINDOW, 400) for i in range(30)]
    _, alerts = run(attack)
    assert len({a.alert_id for a in alerts}) == 1
    assert alerts[0].status == NEW and all(a.status == ESCALATED for a in alerts[1:])
    severities = [a.severity for a in alerts]
    assert severities[-1] == "critical" and len(severities) == len(set(severities))
    assert {a.detected_at_ms for a in alerts} == {attack[0].window_end_ms}


def test_a_quiet_gap_longer_than_quiet_minutes_starts_a_new_incident():
    gap = (CONFIG.incident.quiet_minutes + 5) * MS_PER_MINUTE
    start = day(0, 2)
    _, alerts = run([window("acct-x", start, 400), window("acct-x", start + 24 * MS_PER_HOUR + gap, 400)])
    assert len({a.alert_id for a in alerts}) == 2


def test_the_day_after_an_attack_its_rolling_day_does_not_open_a_second_incident():
    history = working_days("acct-1", days=8, per_window=12)
    attack = [window("acct-1", day(8, 1) + i * WINDOW, 500) for i in range(12)]
    next_morning = [window("acct-1", day(8, 9) + i * WINDOW, 5) for i in range(6)]
    _, alerts = run(history + attack + next_morning)
    assert len({a.alert_id for a in alerts}) == 1


def test_the_creator_is_alerted_when_the_accounts_it_created_read_at_volume():
    manager = working_days("mgr", days=8, per_window=3, actor_type="account_manager")
    t = day(8, 1)
    creation = window("mgr", t, 0, actor_type="account_manager", created=["new-1", "new-2"])
    reading = [window(child, t + (2 + i) * WINDOW, 30, actor_type="youth_advisor",
                      records_ids=[f"{child}-{i}-{j}" for j in range(30)])
               for i in range(12) for child in ("new-1", "new-2")]
    _, alerts = run(manager + [creation] + reading)
    on_creator = [a for a in alerts if a.rule == CREATED_ACCOUNT_ACTIVITY]
    assert on_creator and on_creator[0].actor == "mgr"
    assert set(on_creator[-1].related_accounts) == {"new-1", "new-2"}
    assert all("mgr" in a.related_accounts for a in alerts if a.actor in ("new-1", "new-2"))


def test_creating_accounts_far_faster_than_usual_alerts():
    manager = working_days("mgr", days=8, per_window=3, actor_type="account_manager")
    spree = [window("mgr", day(8, 10) + i * WINDOW, 0, actor_type="account_manager", created=[f"n{i}a", f"n{i}b"])
             for i in range(6)]
    _, alerts = run(manager + spree)
    assert [a.rule for a in alerts if a.status == NEW] == [CREATION_RATE]


def test_the_same_windows_in_any_order_give_the_same_alerts():
    windows = working_days("acct-1", days=6, per_window=12) + working_days("acct-2", days=6, per_window=20)
    windows += [window("acct-1", day(6, 10) + i * WINDOW, 300) for i in range(6)]
    shuffled = list(windows)
    random.Random(3).shuffle(shuffled)
    assert run(windows)[1] == run(shuffled)[1]
    assert run(windows)[1]


def test_state_round_trips_through_its_row_form():
    model, _ = run(working_days("acct-1", days=6, per_window=12))
    restored = GroupModel("org-a", CONFIG, model.state())
    tail = [window("acct-1", day(6, 10) + i * WINDOW, 300) for i in range(6)]
    assert restored.run(tail) == model.run(tail)


def test_a_window_in_which_the_account_did_nothing_opens_no_incident():
    # A day-long sum that crosses only because the bar moved (a new day, an organisation no longer
    # busy) is not something the account did: the same crossing opens a story once it adds records.
    crossing = Finding("consultation_volume", "records_1d", 1440, 1400, 1.4,
                       Expectation(230.0, "records per 24 h", OWN_HISTORY, 230.0, None, 600.0, 1, 1000.0, []))
    subject = Subject("acct-1", "org-a", "advisor")
    at = (day(1, 7), day(1, 7) + WINDOW)
    assert track_incident(None, "consultation_volume", subject, at, 0, crossing, [], CONFIG.incident) == (None, None)
    opened, alert = track_incident(None, "consultation_volume", subject, at, 2, crossing, [], CONFIG.incident)
    assert opened is not None and alert.status == NEW


def test_a_newcomer_is_expected_to_work_like_its_busier_peers_not_the_median_one():
    peers = []
    for name, pace in (("p1", 3), ("p2", 3), ("p3", 3), ("p4", 20), ("p5", 20)):
        peers += working_days(name, days=8, per_window=pace)
    model, _ = run(peers)
    levels = sorted(m.peaks[PEAK_5M] for m in model.accounts.values())
    newcomer = window("acct-new", day(8), 1)
    model.step(newcomer)
    expected = model.peers.peer_peak(model.accounts["acct-new"], PEAK_5M, newcomer.window_end_ms)
    assert levels[2] < expected <= levels[-1]


def test_a_young_account_reading_a_few_strangers_files_an_hour_for_hours_alerts():
    # Three days of its own files, then about 45 records it never opened an hour: under the hour's
    # and the quarter's bars, and teaching itself nothing within the day, so the 3-hour sum decides.
    history = working_days("acct-1", days=3, per_window=6)
    strangers = [window("acct-1", day(3, 8) + i * WINDOW, 4, records_ids=[f"stranger-{i}-{j}" for j in range(4)])
                 for i in range(48)]
    _, alerts = run(history + strangers)
    assert alerts and alerts[0].expected.unit == "records never opened before, per 1 h"
    assert alerts[0].expected.history_days == 3


def _mixed_windows():
    """Trusted accounts at four paces, two late starters leaning on their peers, random bursts, a trickle."""
    rnd = random.Random(7)
    windows = []
    for n, pace in enumerate((3, 6, 12, 25)):
        windows += working_days(f"acct-{n}", days=9, per_window=pace, seed=n)
    for late_starter in ("acct-new", "acct-young"):
        windows += working_days(late_starter, days=3, per_window=8, first_day=6)
    for _ in range(300):
        actor = rnd.choice(["acct-0", "acct-1", "acct-2", "acct-3", "acct-new"])
        at = day(rnd.randint(6, 9), rnd.randint(0, 23)) + rnd.randrange(12) * WINDOW
        strangers = [f"x-{rnd.randrange(10 ** 6)}" for _ in range(rnd.randint(0, 60))]
        windows.append(window(actor, at, len(strangers) or rnd.randint(1, 90), records_ids=strangers or None))
    for i in range(48):  # a trickle of strangers' files, which only the 3-hour novelty sum catches
        windows.append(window("acct-young", day(9, 8) + i * WINDOW, 4, records_ids=[f"y-{i}-{j}" for j in range(4)]))
    return windows


def test_the_screen_of_consultation_volume_lets_through_every_window_the_full_assessment_finds(monkeypatch):
    # The screen repeats the full assessment's arithmetic for speed: the two must never disagree.
    from transforms import consultation_volume, group_model

    compared = []

    def both(context, volumes, novel_1h):
        screened = consultation_volume.assess_consultation(context, volumes, novel_1h)
        full = consultation_volume._assess(context, volumes, novel_1h)
        compared.append((screened, full))
        return full

    monkeypatch.setattr(group_model, "assess_consultation", both)
    monkeypatch.setattr(consultation_volume.QuietBounds, "hold", lambda self, *measures: False)
    run(_mixed_windows())
    assert sum(1 for _, full in compared if full is not None) > 20
    assert [s for s, f in compared if s != f] == []


def test_the_quiet_bounds_sit_under_the_lowest_threshold_any_context_gives():
    # The most lenient contexts there are: a trusted account that learned nothing (every level 0), in an
    # organisation that is not busier, at an hour it never works (floors halved) or at one it does.
    # However a total is spread over its day, a window the bounds call quiet must cross nothing — and
    # each measure, just past its bound, must cross (so a bound set too high shows here).
    from schemas.baseline import WindowPoint
    from transforms.account_model import NOVEL, RECORDS, AccountModel
    from transforms.consultation_volume import QuietBounds, assess_consultation
    from transforms.group_model import ScoringContext
    from transforms.peer_groups import PeerGroup

    bounds = QuietBounds(CONFIG)
    scored_at = day(8, hour=3)
    first_crossing = {}
    # (windows the total is spread over, windows between them and the one scored), all within its day
    for spread, gap in ((1, 0), (3, 0), (12, 0), (24, 12), (72, 0), (287, 0)):
        for night in (True, False):
            for novel_share in (0.0, 1.0):
                for total in range(1, 1500, 3):
                    model = AccountModel("acct-q", "org-q", "advisor")
                    model.active_days = 10
                    model.hours_seen = 0 if night else (1 << 48) - 1
                    for i in range(spread):
                        records = total // spread + (1 if i < total % spread else 0)
                        start = scored_at - (gap + spread - i) * WINDOW
                        model.add_point(WindowPoint(start, records, round(records * novel_share), 0, 0), scored_at)
                    model.add_point(WindowPoint(scored_at, 0, 0, 0, 0), scored_at + WINDOW)  # the window scored
                    if spread == 1 and gap == 0:  # ... or the whole total in it
                        model.recent.clear()
                        model.day_sums = [0, 0, 0, 0]
                        model.add_point(WindowPoint(scored_at, total, round(total * novel_share), 0, 0),
                                        scored_at + WINDOW)
                    peers = PeerGroup({"acct-q": model}, CONFIG)
                    context = ScoringContext(CONFIG, model, peers, scored_at, scored_at + WINDOW)
                    assert context.adjustments == (["off_hours"] if night else [])
                    hour = model.hour_sums(scored_at + WINDOW)
                    volumes = {"5m": model.recent[-1].records, "1h": hour[RECORDS], "1d": model.day_sum(RECORDS)}
                    finding = assess_consultation(context, volumes, hour[NOVEL])
                    quiet = bounds.hold(volumes, hour[NOVEL], model.day_sums[NOVEL], night)
                    assert not (quiet and finding), (spread, gap, night, novel_share, total, finding)
                    if finding is not None:
                        first_crossing.setdefault((spread, gap, night, novel_share), (total, finding.measure))
                        break
    # Each measure crosses first in some spread, not far past the lowest threshold it can have.
    lowest = {"records_5m": 30, "records_1h": 90, "records_1d": 900, "off_hours_records_6h": 150,
              "novel_records_15m": 10, "novel_records_1h": 20, "novel_records_3h": 45}
    seen = {}
    for (spread, gap, night, share), (total, measure) in first_crossing.items():
        seen.setdefault(measure, []).append(total)
    assert set(seen) == set(lowest)
    for measure, totals in seen.items():
        assert min(totals) < 1.5 * lowest[measure], (measure, totals)


def test_windows_left_unscored_leave_every_later_window_judged_the_same(monkeypatch):
    # A quiet window skips the thresholds but must still ask the organisation what scoring asks
    # (its per-day caches and the hour's lift are filled by the first window that asks): every window
    # scored must see the same context, and give the same alerts and learned state, as when all are.
    from transforms import consultation_volume, group_model

    names = [f"m{i}" for i in range(6)]
    busy_day = [w for name in names for w in working_days(name, days=8, per_window=6, seed=3, first_day=10)]
    # Day 18: a deadline for most, while "a-calm" (scored first at each window end) keeps its own pace,
    # and a newcomer starts, leaning on its peers.
    busy_day += [window(name, day(18, 9) + i * WINDOW, 40, records_ids=[f"{name}-rec-{r % 6}" for r in range(40)])
                 for name in names for i in range(24)]
    busy_day += working_days("a-calm", days=9, per_window=3, seed=4, first_day=10)
    busy_day += working_days("n-new", days=1, per_window=30, seed=5, first_day=18)
    windows = _mixed_windows() + [w._replace(org="org-a") for w in busy_day]
    seen = {}
    real_context = group_model.ScoringContext

    def noting(config, model, peers, start, end):
        context = real_context(config, model, peers, start, end)
        seen[(model.actor, start)] = (context.factor, context.floor_factor, tuple(context.adjustments),
                                      tuple(context.peer_peak(slot) for slot in range(3)))
        return context

    monkeypatch.setattr(group_model, "ScoringContext", noting)
    quiet_model, quiet_alerts = run(windows)
    quiet_seen, seen = seen, {}
    monkeypatch.setattr(consultation_volume.QuietBounds, "hold", lambda self, *measures: False)
    scored_model, scored_alerts = run(windows)
    assert len(quiet_seen) < len(seen) / 2  # most windows were left unscored...
    assert {key: seen[key] for key in quiet_seen} == quiet_seen  # ...and the others saw the same context
    assert any("org_busy" in " ".join(adjustments) for _, _, adjustments, _ in quiet_seen.values())
    assert len(scored_alerts) > 10
    assert quiet_alerts == scored_alerts
    assert quiet_model.state() == scored_model.state()


def test_a_window_left_unscored_asks_the_organisation_what_a_scored_one_asks():
    # What PeerGroup remembers after a window (its per-day caches) is the same whether the window was scored
    # in full or left quiet, and so is the hour's lift that a later window of the same end reads.
    from transforms.consultation_volume import assess_consultation
    from transforms.group_model import ScoringContext

    history = [w for n in range(5) for w in working_days(f"m{n}", days=8, per_window=6, seed=n)]
    history += working_days("young", days=1, per_window=4, first_day=7)
    at = day(8, 10)
    memories = []
    for scored in (True, False):
        model, _ = run(history)
        peers, young = model.peers, model.accounts["young"]
        young.add_point(young.recent[-1]._replace(start_ms=at), at + WINDOW)
        if scored:
            context = ScoringContext(CONFIG, young, peers, at, at + WINDOW)
            assert assess_consultation(context, {"5m": 1, "1h": 1, "1d": 1}, None) is None
        else:
            peers.off_hours(young, at, at + WINDOW)
            peers.asked_by(young, at + WINDOW)
        memories.append((dict(peers._peaks), dict(peers._hours), peers.org_lift(at + WINDOW), sorted(peers._recent)))
    assert memories[0][0] and peers._lift_at[0] == at + WINDOW  # something was asked and remembered
    assert memories[1] == memories[0]


def test_a_deferred_lift_is_the_lift_as_it_stood_when_first_asked():
    """The hour's lift at a window end is worked out only when a window of that end needs a threshold, after
    the windows before it in the replay changed what it reads: it must be the lift the first window asked."""
    rnd = random.Random(20261123)
    history = [w for n in range(8) for w in working_days(f"m{n}", days=8, per_window=8, seed=n)]
    history += working_days("a0", days=8, per_window=2, seed=9) + working_days("z9", days=8, per_window=8, seed=10)
    busy = []
    for start in range(day(8, 9), day(8, 11), WINDOW):
        # First at each end a light account, left quiet; then colleagues at two to three times their pace;
        # then, now and then, one reading far past its level, which needs the lift of that end.
        busy.append(window("a0", start, 1))
        busy += [window(f"m{n}", start, rnd.randint(3, 5)) for n in range(8) if rnd.random() < 0.9]
        if rnd.random() < 0.4:
            busy.append(window("z9", start, rnd.randint(100, 300)))
    busy += [w._replace(late=True, records_touched=w.records_touched + 3) for w in busy[5::13]]
    windows = history + busy

    def replay(eager: bool):
        model = GroupModel("org-a", CONFIG)
        lifts, asked = {}, model.peers.org_lift
        if eager:  # every lift worked out the moment it is first asked, as before deferral
            model.peers._defer_lift = lambda end: model.peers.org_lift(end)

        def org_lift(end):
            lifts.setdefault(end, asked(end))
            return lifts[end]

        model.peers.org_lift = org_lift
        return model.run(windows), lifts, model

    eager_alerts, eager_lifts, _ = replay(eager=True)
    alerts, lifts, _ = replay(eager=False)
    assert alerts == eager_alerts and alerts
    worked_out = {end: lift for end, lift in lifts.items() if end > day(8, 9)}
    assert worked_out and all(eager_lifts[end] == lift for end, lift in worked_out.items())
    assert sum(lift > 1.05 for lift in worked_out.values()) >= 5  # the busy hour was read as busy
    assert len(lifts) < len(eager_lifts) / 10  # and most ends were never worked out at all


def test_hour_sums_kept_as_the_hour_moves_equal_a_sum_over_the_days_points():
    """The hour's sums are kept and moved forward; late points, ends asked out of order and ends before
    points already kept must still give the sums of the day's points in [end - 1 h, end)."""
    from schemas.baseline import WindowPoint
    from transforms.account_model import AccountModel

    def summed(model, since, end):
        return [sum(p[1 + m] for p in model.recent if since <= p.start_ms < end) for m in range(4)]

    rng = random.Random(20261123)
    for _ in range(40):
        model = AccountModel("acct-h", "org-h", "advisor")
        start = MONDAY_MS
        for _ in range(300):
            start += rng.choice([WINDOW, WINDOW, WINDOW, 2 * WINDOW, 7 * WINDOW, 300 * WINDOW])
            late = rng.random() < 0.1
            at = start - rng.randrange(1, 30) * WINDOW if late else start
            point = WindowPoint(at, rng.randrange(50), rng.randrange(5), rng.randrange(2), rng.randrange(9))
            model.add_point(point, start + WINDOW)
            # The end its window starts at (it must not count yet), its own end, any end within 100 minutes.
            for end in (start, start + WINDOW, start + WINDOW + rng.randrange(-20, 20) * WINDOW):
                assert model.hour_sums(end) == summed(model, end - MS_PER_HOUR, end)
                measure = rng.randrange(4)
                assert model.hour_sum(measure, end) == summed(model, end - MS_PER_HOUR, end)[measure]
                assert model.hour_sum(measure, end, 3 * MS_PER_HOUR) == summed(model, end - 3 * MS_PER_HOUR, end)[measure]


def test_off_hours_means_no_worked_hour_at_or_beside_the_slot_on_the_same_kind_of_day():
    from transforms.peer_groups import is_off_hours

    rng = random.Random(5)
    masks = [0, (1 << 48) - 1, 1 << 23, 1 << 24, 1 << 47] + [rng.getrandbits(48) & rng.getrandbits(48) for _ in range(300)]
    for mask in masks:
        worked = {(slot // 24, slot % 24) for slot in range(48) if mask >> slot & 1}
        for slot in range(48):
            day_class, hour = divmod(slot, 24)
            beside = {(day_class, h) for h in (hour - 1, hour, hour + 1)}
            assert is_off_hours(mask, slot) == (not worked & beside), (bin(mask), slot)
    # 23:00 on a weekday does not reach into the weekend's midnight slot, nor the reverse.
    assert is_off_hours(1 << 24, 23) and is_off_hours(1 << 23, 24)
