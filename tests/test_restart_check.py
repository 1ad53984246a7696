"""make restart-flink's verdict: alerts lost, added or changed after a restart; identical records are redeliveries."""

from pipelines import restart_check
from pipelines.restart_check import _compare, _ok


def alert(alert_id, severity, observed):
    return {"alert_id": alert_id, "severity": severity, "status": "new", "observed": observed}


REFERENCE = [alert("a", "medium", 120), alert("a", "high", 400), alert("b", "medium", 150)]


def test_a_record_published_twice_is_a_redelivery_not_an_alert():
    got = REFERENCE + [alert("a", "high", 400)]
    verdict = _compare(REFERENCE, got)
    assert (verdict["alerts"], verdict["alert_records"], verdict["redelivered_records"]) == (3, 4, 1)
    assert _ok(verdict)


def test_an_escalation_missing_after_a_restart_is_lost():
    verdict = _compare(REFERENCE, [alert("a", "medium", 120), alert("b", "medium", 150)])
    assert verdict["lost"] == [("a", "high")] and not _ok(verdict)


def test_a_known_alert_with_other_counts_is_changed_not_redelivered():
    # The same (alert_id, severity) published again with a doubled count: state counted twice.
    verdict = _compare(REFERENCE, REFERENCE + [alert("b", "medium", 300)])
    assert verdict["changed"] == [("b", "medium")] and verdict["redelivered_records"] == 0
    assert not _ok(verdict)


def test_an_alert_the_reference_never_raised_is_added():
    verdict = _compare(REFERENCE, REFERENCE + [alert("c", "low", 90)])
    assert verdict["added"] == [("c", "low")] and not _ok(verdict)


def test_a_mismatch_shows_both_versions_of_the_differing_alert_side_by_side():
    run = [alert("a", "medium", 120), alert("b", "medium", 150)]
    verdict = _compare(REFERENCE, run)
    side = verdict["differing"]["a"]
    assert [v["observed"] for v in side["reference"]] == [120, 400] and [v["observed"] for v in side["run"]] == [120]
    assert "differing" not in _compare(REFERENCE, REFERENCE)


def test_the_savepoint_is_taken_without_stopping_the_source_then_the_job_is_cancelled(monkeypatch):
    # Flink's stop-with-savepoint stops the Kafka source first, whose final +inf watermark drains every
    # window and timer and clears the state before the savepoint is taken (restart_check.savepoint_then_cancel).
    calls = []

    def rest(master, path, body=None):
        calls.append(("POST" if body is not None else "GET", path, body))
        if body is not None:
            return {"request-id": "t1"}
        return {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-1"}}

    monkeypatch.setattr(restart_check, "_rest", rest)
    monkeypatch.setattr(restart_check, "_cancel", lambda master, job: calls.append(("CANCEL", job, None)))
    location = restart_check.savepoint_then_cancel("m:1", "j1", "/sp")
    assert location == "file:/sp/savepoint-1"
    assert calls[0] == ("POST", "/jobs/j1/savepoints", {"target-directory": "file:///sp", "cancel-job": False})
    assert calls[-1] == ("CANCEL", "j1", None) and not any(path.endswith("/stop") for _, path, _ in calls)


def test_the_upgraded_settings_add_a_role_the_simulation_never_gives(tmp_path):
    # The savepoint run's new settings file must change no alert, or its verdict would judge the settings.
    from pipelines.simulation import population
    from transforms.detection_config import DetectionConfig, load_detection_config

    upgraded = load_detection_config(restart_check._upgraded_settings(str(tmp_path)))
    roles = {value for name, value in vars(population).items() if name.isupper() and isinstance(value, str)}
    new_roles = set(upgraded.role_priors) - set(DetectionConfig().role_priors)
    assert new_roles and not new_roles & roles
    assert upgraded == DetectionConfig(role_priors={**DetectionConfig().role_priors,
                                                    **{r: upgraded.role_priors[r] for r in new_roles}})


def test_an_unknown_upgrade_is_refused():
    import argparse

    import pytest

    assert restart_check._upgrades("settings,steps") == ("settings", "steps")
    assert restart_check._upgrades("none") == ()
    with pytest.raises(argparse.ArgumentTypeError):
        restart_check._upgrades("settings,schema")
