"""make restart-flink's verdict: alerts lost, added or changed after a restart; identical records are redeliveries."""

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
