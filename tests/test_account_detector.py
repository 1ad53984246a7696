"""The per-account state machine: learning, cold start, poisoning, incidents, order."""

import random

from schemas.activity import AccountActivity
from schemas.alert import ESCALATED, NEW
from transforms.account_detector import INITIAL_STATE, AccountDetector
from transforms.baselines import OWN_HISTORY, ROLE_PRIOR
from transforms.detection_config import DetectionConfig

from tests.event_factory import MONDAY_MS, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE

CONFIG = DetectionConfig()
WINDOW = CONFIG.window_ms


def window(actor: str, start_ms: int, records: int, actor_type: str = "advisor", created=()) -> AccountActivity:
    return AccountActivity(
        actor=actor, org="org-a", actor_type=actor_type, window_start_ms=start_ms, window_end_ms=start_ms + WINDOW,
        events=records, records_touched=records, consults=records, searches=0, exports=0,
        creations=len(created), created=list(created), duplicates=0, late=False,
    )


def working_days(actor: str, days: int, per_window: int, seed: int = 1):
    """Ten active windows a day between 09:00 and 12:00, for `days` days."""
    rnd = random.Random(seed)
    out = []
    for day in range(days):
        for slot in sorted(rnd.sample(range(36), 10)):
            out.append(window(actor, MONDAY_MS + day * MS_PER_DAY + 9 * MS_PER_HOUR + slot * WINDOW,
                              rnd.randint(1, per_window)))
    return out


def test_an_account_learns_its_usual_maximum_from_its_own_history():
    history = working_days("acct-1", days=8, per_window=12)
    state, alerts = AccountDetector(CONFIG).run(history)
    assert alerts == []
    assert 8 <= state.baseline.peak <= 12
    assert state.baseline.active_days == 8


def test_a_burst_far_above_the_learned_maximum_alerts_against_own_history():
    history = working_days("acct-1", days=8, per_window=12)
    burst = window("acct-1", MONDAY_MS + 8 * MS_PER_DAY + 3 * MS_PER_HOUR, records=400)
    _, alerts = AccountDetector(CONFIG).run(history + [burst])
    assert [a.status for a in alerts] == [NEW]
    alert = alerts[0]
    assert alert.actor == "acct-1" and alert.observed == 400
    assert alert.expected.source == OWN_HISTORY
    assert alert.detected_at_ms == burst.window_end_ms
    assert "400" in alert.explanation


def test_learning_is_real_a_heavy_account_is_not_held_to_a_light_accounts_threshold():
    heavy = working_days("acct-h", days=8, per_window=60)
    light = working_days("acct-l", days=8, per_window=5)
    day9 = MONDAY_MS + 8 * MS_PER_DAY + 10 * MS_PER_HOUR
    detector = AccountDetector(CONFIG)
    _, heavy_alerts = detector.run(heavy + [window("acct-h", day9, 150)])
    _, light_alerts = detector.run(light + [window("acct-l", day9, 150)])
    assert heavy_alerts == []
    assert len(light_alerts) == 1


def test_a_brand_new_account_is_scored_from_its_first_window_by_its_role_prior():
    _, alerts = AccountDetector(CONFIG).run([window("acct-new", MONDAY_MS, 300, actor_type="youth_advisor")])
    assert len(alerts) == 1
    assert alerts[0].expected.source == ROLE_PRIOR
    assert alerts[0].expected.own is None


def test_a_modest_first_day_does_not_alert_a_new_account():
    first_day = [window("acct-new", MONDAY_MS + 9 * MS_PER_HOUR + i * WINDOW, 8) for i in range(20)]
    _, alerts = AccountDetector(CONFIG).run(first_day)
    assert alerts == []


def test_windows_that_alert_do_not_teach_the_baseline():
    history = working_days("acct-1", days=8, per_window=12)
    detector = AccountDetector(CONFIG)
    before, _ = detector.run(history)
    attack_start = MONDAY_MS + 8 * MS_PER_DAY + 2 * MS_PER_HOUR
    attack = [window("acct-1", attack_start + i * WINDOW, 500) for i in range(24)]
    after, alerts = detector.run(attack, state=before)
    assert alerts and after.baseline.peak <= before.baseline.peak


def test_the_usual_maximum_grows_at_most_daily_growth_per_day():
    history = working_days("acct-1", days=8, per_window=12)
    detector = AccountDetector(CONFIG)
    before, _ = detector.run(history)
    # Just under the threshold all day: never alerts, but must not teach 3x the maximum in one day.
    creep_start = MONDAY_MS + 8 * MS_PER_DAY + 8 * MS_PER_HOUR
    creep = [window("acct-1", creep_start + i * WINDOW, 49) for i in range(30)]
    after, alerts = detector.run(creep, state=before)
    assert alerts == []
    ceiling = max(before.baseline.peak * CONFIG.volume.daily_decay, CONFIG.role_prior("advisor")) * CONFIG.volume.daily_growth
    assert after.baseline.peak <= ceiling + 1e-9


def test_consecutive_crossings_are_one_incident_that_escalates_with_the_same_id():
    start = MONDAY_MS + 2 * MS_PER_HOUR
    attack = [window("acct-x", start + i * WINDOW, 400) for i in range(30)]
    _, alerts = AccountDetector(CONFIG).run(attack)
    assert len({a.alert_id for a in alerts}) == 1
    assert alerts[0].status == NEW and all(a.status == ESCALATED for a in alerts[1:])
    severities = [a.severity for a in alerts]
    assert severities[-1] == "critical" and len(severities) == len(set(severities))
    assert {a.detected_at_ms for a in alerts} == {attack[0].window_end_ms}
    assert alerts[-1].observed <= 30 * 400


def test_a_quiet_gap_longer_than_quiet_minutes_starts_a_new_incident():
    start = MONDAY_MS + 2 * MS_PER_HOUR
    gap = (CONFIG.incident.quiet_minutes + 5) * MS_PER_MINUTE
    _, alerts = AccountDetector(CONFIG).run([window("acct-x", start, 400), window("acct-x", start + WINDOW + gap, 400)])
    assert len({a.alert_id for a in alerts}) == 2


def test_the_same_windows_in_any_order_give_the_same_alerts():
    history = working_days("acct-1", days=6, per_window=12) + [
        window("acct-1", MONDAY_MS + 6 * MS_PER_DAY + 10 * MS_PER_HOUR + i * WINDOW, 300) for i in range(6)
    ]
    shuffled = list(history)
    random.Random(3).shuffle(shuffled)
    detector = AccountDetector(CONFIG)
    assert detector.run(history)[1] == detector.run(shuffled)[1]
    assert detector.run(history)[1]
