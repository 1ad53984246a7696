"""Restarts on a real Flink session cluster: nothing lost, nothing doubled, learned state kept (make restart-flink).

The yardstick is the local runner's batch replay of the same events (`guetteur detect` on the file):
deterministic, it gives the same alerts run after run. Then four streaming runs of the detection job
over the same events (each on its own topics), on one Flink session cluster with checkpointing:

- uninterrupted: the job runs start to end; it must raise exactly the yardstick's alerts, or the
  runs below cannot be judged (this is what "a stable reference" means here);
- crash: the TaskManager is killed (SIGKILL) mid-stream, after a completed checkpoint, and a new one
  started; Flink restarts the job from that checkpoint (Kafka offsets, windows, per-account folds,
  per-organisation models) while the producer keeps going;
- savepoint: a savepoint is taken in the middle of the stream and the job cancelled (not Flink's
  stop-with-savepoint: see `savepoint_then_cancel`), then an upgraded job (`--upgrade`: new settings
  file, new steps downstream of detection; UPGRADE_NOTES) is submitted from that savepoint and fed
  the rest of the events;
- control: the second half alone, on a fresh job, shows what the alerts look like without the
  learned state (if they equal the yardstick's, the checks above prove nothing about state).

An alert is (alert_id, severity): the same incident re-published as it escalates keeps its
alert_id with a higher severity. After a restart the set of (alert_id, severity) must equal the
yardstick's: none lost, none added. The Kafka sink is at-least-once (Beam 2.54's cross-language
KafkaIO write has no exactly-once option): records replayed after a restart can be published again.
A record identical to one already on the topic (same id, same content) is counted as a redelivery,
not as an alert; a record with a known (alert_id, severity) but different content (other counts)
is reported as `changed`: that would be state lost or doubled, not a redelivery.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Dict, List, Optional, Tuple

from pipelines.replay import consume, read_lines, replay
from pipelines.runners import add_stream_service_arguments

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Key = Tuple[str, str]  # (alert_id, severity)
RUNS = ("uninterrupted", "crash", "savepoint", "control")


def _key(alert: dict) -> Key:
    return alert["alert_id"], alert["severity"]


def _content(alert: dict) -> str:
    return json.dumps(alert, sort_keys=True)


def _rest(master: str, path: str, body: Optional[dict] = None) -> dict:
    request = urllib.request.Request(f"http://{master}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _running_job(master: str, timeout_s: float = 120) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        running = [j["jid"] for j in _rest(master, "/jobs/overview")["jobs"] if j["state"] == "RUNNING"]
        if running:
            return running[0]
        time.sleep(1)
    raise RuntimeError("no running Flink job")


def _wait_checkpoint_after(master: str, job: str, after: int, timeout_s: float = 300) -> int:
    """Waits for a completed checkpoint triggered after `after` ms (epoch); returns its id."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        latest = (_rest(master, f"/jobs/{job}/checkpoints").get("latest") or {}).get("completed") or {}
        if latest.get("trigger_timestamp", 0) > after:
            return latest["id"]
        time.sleep(1)
    raise RuntimeError("no checkpoint completed")


def _job_state(master: str, job: str) -> str:
    return _rest(master, f"/jobs/{job}")["state"]


def _cluster(command: str) -> str:
    done = subprocess.run([os.path.join(REPO_ROOT, "deploy", "local", "flink-cluster.sh"), command],
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"flink-cluster.sh {command}: {done.stderr[-2000:]}")
    return done.stdout.strip()


class Run:
    """One streaming job (or two, across a savepoint) on its own topics PREFIX.events/alerts/deadletter."""

    def __init__(self, args, prefix: str):
        self.args, self.prefix = args, prefix
        self.events_topic = f"{prefix}.events"
        _topics(args, self.events_topic, f"{prefix}.alerts", f"{prefix}.deadletter")

    def submit(self, savepoint: Optional[str] = None, upgrade: Tuple[str, ...] = ()) -> str:
        """Submits the detection job (from `savepoint`, when given), changed as `upgrade` says (UPGRADE_NOTES)."""
        import apache_beam as beam

        from pipelines.detect import build_pipeline
        from pipelines.options import GuetteurOptions
        from pipelines.runners import flink_args

        a = self.args
        extra = [f"--savepoint_path={savepoint}"] if savepoint else []
        if "settings" in upgrade:
            extra.append(f"--detection_config={_upgraded_settings(a.savepoint_dir)}")
        options = GuetteurOptions(
            flink_args(job_endpoint=a.job_endpoint, flink_master=a.flink_master, streaming=True,
                       checkpointing_interval_ms=a.checkpoint_ms)
            + [f"--input=kafka://{a.bootstrap}/{self.events_topic}", f"--output=kafka://{a.bootstrap}/{self.prefix}",
               f"--expansion_service={a.expansion_service}", f"--kafka_group_id={self.prefix}-detect", *extra])
        pipeline = beam.Pipeline(options=options)
        outputs = build_pipeline(pipeline, options)
        if "steps" in upgrade:
            _topics(a, f"{self.prefix}.{UPGRADE_SINK}")
            add_upgrade_steps(outputs.alerts, a.bootstrap, f"{self.prefix}.{UPGRADE_SINK}", a.expansion_service)
        self.result = pipeline.run()
        return _running_job(a.flink_master)

    def produce(self, lines: List[bytes]) -> None:
        replay(self.args.bootstrap, self.events_topic, lines, rate=self.args.rate)

    def alerts(self, expected: int, settle_s: float, max_seconds: Optional[float] = None) -> List[dict]:
        """Alerts on PREFIX.alerts once at least `expected` are there (or max_seconds) and none came for settle_s."""
        records: List[dict] = []
        deadline = time.time() + (self.args.max_seconds if max_seconds is None else max_seconds)
        last_change = time.time()
        while time.time() < deadline:
            got = consume(self.args.bootstrap, f"{self.prefix}.alerts", lambda r: False, timeout_s=3)
            if len(got) != len(records):
                records, last_change = [a for a, _, _ in got], time.time()
            elif len(records) >= expected and time.time() - last_change >= settle_s:
                break
        return records


# What the savepoint run's second job changes, as an operator upgrading Guetteur would.
UPGRADE_NOTES = {
    "settings": "a new --detection_config file (a role prior no simulated account has)",
    "steps": "an enrichment, a counter and a second Kafka sink on the alerts, fused into the stateful stage",
}
UPGRADE_SINK = "alerts-upgraded"
# A role no simulated account has: these settings change no alert of the check, but they are a new file,
# and the job's detection DoFns (which carry their settings) are pickled anew.
UPGRADED_SETTINGS = """# restart_check: the upgraded job's settings, a role prior for accounts not onboarded yet
[role_priors.auditor]
records_5m = 25.0
records_1h = 50.0
records_1d = 200.0
"""


def _upgraded_settings(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "upgraded-detection.toml")
    with open(path, "w") as handle:
        handle.write(UPGRADED_SETTINGS)
    return path


def add_upgrade_steps(alerts, bootstrap: str, topic: str, expansion_service: str) -> None:
    """The upgraded job's new steps, downstream of detection: an enrichment, a counter and a second sink.

    They read the alerts where they are produced, inside the stateful per-organisation stage (Flink fuses
    them into it): the case where an upgrade could move that stage's state out of reach.
    """
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    from schemas.alert import alert_to_json
    from transforms.kafka_io import WriteJsonToKafka

    counted = Metrics.counter("guetteur", "alerts_after_upgrade")

    def enrich(alert):
        counted.inc()
        return {**alert_to_json(alert), "upgraded": True}

    (
        alerts
        | "UpgradeEnrich" >> beam.Map(enrich)
        | "UpgradeSink" >> WriteJsonToKafka(bootstrap, topic, expansion_service, lambda record: record,
                                            lambda record: record["actor"])
    )


def _topics(args, *topics: str) -> None:
    subprocess.run([os.path.join(REPO_ROOT, "deploy", "local", "kafka.sh"), "topics", *topics], check=True,
                   capture_output=True, timeout=120)


def _compare(reference: List[dict], got: List[dict]) -> Dict[str, object]:
    """Alerts (alert_id, severity) lost or added against `reference`; identical records are redeliveries."""
    ref = {_key(a) for a in reference}
    contents: Dict[Key, set] = {}
    for alert in got:
        contents.setdefault(_key(alert), set()).add(_content(alert))
    distinct_records = sum(len(c) for c in contents.values())
    lost, added = sorted(ref - set(contents)), sorted(set(contents) - ref)
    changed = sorted(key for key, c in contents.items() if len(c) > 1)
    comparison: Dict[str, object] = {
        "alert_records": len(got),
        "alerts": len(contents),
        "redelivered_records": len(got) - distinct_records,
        "lost": lost,
        "added": added,
        "changed": changed,
    }
    if lost or added or changed:
        comparison["differing"] = _side_by_side(reference, got, lost + added + changed)
    return comparison


def _brief(alert: dict) -> dict:
    """What tells two versions of one alert apart: its span, counts and the bar it crossed."""
    expected = alert.get("expected") or {}
    return {"severity": alert["severity"], "status": alert.get("status"),
            "window": [alert.get("window_start"), alert.get("window_end")], "observed": alert.get("observed"),
            "peak": alert.get("peak"), "score": alert.get("score"),
            **{k: expected.get(k) for k in ("value", "source", "own", "peers", "history_days", "threshold",
                                            "adjustments")}}


def _side_by_side(reference: List[dict], got: List[dict], keys) -> Dict[str, Dict[str, List[dict]]]:
    """For each alert_id with lost, added or changed versions: its records in the reference and in the run."""
    ids = sorted({alert_id for alert_id, _ in keys})
    side: Dict[str, Dict[str, List[dict]]] = {}
    for alert_id in ids:
        pick = lambda alerts: sorted({_content(_brief(a)) for a in alerts if a["alert_id"] == alert_id})
        side[alert_id] = {"reference": [json.loads(c) for c in pick(reference)],
                          "run": [json.loads(c) for c in pick(got)]}
    return side


def _ok(comparison: Dict[str, object]) -> bool:
    return not comparison["lost"] and not comparison["added"] and not comparison["changed"]


def _local_reference(lines: List[bytes], workdir: str) -> List[dict]:
    """The local runner's alerts on the same events: the yardstick (a batch replay is deterministic)."""
    import glob

    events = os.path.join(workdir, "events.jsonl")
    with open(events, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    subprocess.run([sys.executable, "-m", "pipelines", "detect", "--input", events, "--output", workdir],
                   check=True, capture_output=True, timeout=1800)
    alerts = []
    for path in sorted(glob.glob(os.path.join(workdir, "alerts*.jsonl"))):
        with open(path, "rb") as handle:
            alerts += [json.loads(line) for line in handle if line.strip()]
    return alerts


def _cancel(master: str, job: str, timeout_s: float = 120) -> None:
    """Cancels `job` and waits until it is gone and its slots are free again (the next run needs one)."""
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://{master}/jobs/{job}?mode=cancel", method="PATCH"),
                               timeout=10).read()
    except OSError:
        pass
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if (_job_state(master, job) in ("CANCELED", "FINISHED", "FAILED")
                and _rest(master, "/overview").get("slots-available", 0) > 0):
            return
        time.sleep(1)


def run_check(args) -> dict:
    import orjson

    from pipelines.replay import event_time_ms
    from schemas.timestamps import format_rfc3339_ms

    lines = list(read_lines(args.input))
    last_ts = max(t for t in (event_time_ms(line) for line in lines) if t is not None)
    closer = orjson.dumps({"ts": format_rfc3339_ms(last_ts + 86_400_000), "actor": "zz-clock", "action": "login"})
    half = len(lines) // 2
    first, second = lines[:half], lines[half:] + [closer]
    report: Dict[str, object] = {"events": len(lines), "rate": args.rate, "checkpoint_ms": args.checkpoint_ms}

    # The yardstick: the local runner on the same events. Then the same job on Flink, uninterrupted.
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="restart-check-local-") as workdir:
        reference = _local_reference(first + second, workdir)
    report["reference_local_runner"] = {"alerts": len({_key(a) for a in reference}), "alert_records": len(reference),
                                        "seconds": round(time.time() - t0, 1)}
    if "uninterrupted" in args.runs:
        _uninterrupted(args, first + second, reference, report)
    if "crash" in args.runs:
        _crash(args, first, second, reference, report)
    if "savepoint" in args.runs:
        _savepoint(args, first, second, reference, report)
    if "control" in args.runs:
        _control(args, second, reference, report)
    return report


def _uninterrupted(args, lines: List[bytes], reference: List[dict], report: dict) -> None:
    master = args.flink_master
    t0 = time.time()
    ref = Run(args, "ref")
    job = ref.submit()
    ref.produce(lines)
    uninterrupted = ref.alerts(expected=len(reference), settle_s=args.settle_seconds)
    _cancel(master, job)
    report["uninterrupted"] = {**_compare(reference, uninterrupted), "seconds": round(time.time() - t0, 1)}
    print(f"restart-check: uninterrupted run {report['uninterrupted']}", file=sys.stderr, flush=True)


def _crash(args, first: List[bytes], second: List[bytes], reference: List[dict], report: dict) -> None:
    """A checkpoint after the first half, then SIGKILL the TaskManager while the second half streams in."""
    master = args.flink_master
    t0 = time.time()
    crash = Run(args, "crash")
    job = crash.submit()
    crash.produce(first)
    produced_at = int(time.time() * 1000)
    checkpoint = _wait_checkpoint_after(master, job, produced_at)
    producer = threading.Thread(target=crash.produce, args=(second,))
    producer.start()
    time.sleep(min(5.0, len(second) / args.rate / 4))  # mid-stream
    killed = _cluster("kill-taskmanager")
    _cluster("start-taskmanager")
    producer.join()
    got = crash.alerts(expected=len(reference), settle_s=args.settle_seconds)
    restored = _rest(master, f"/jobs/{job}/checkpoints").get("latest", {}).get("restored") or {}
    report["crash"] = {"killed": killed, "checkpoint_before_kill": checkpoint,
                       "restored_from_checkpoint": restored.get("id"), "job_state": _job_state(master, job),
                       **_compare(reference, got), "seconds": round(time.time() - t0, 1)}
    _cancel(master, job)
    print(f"restart-check: crash run {report['crash']}", file=sys.stderr, flush=True)


def savepoint_then_cancel(master: str, job: str, directory: str, timeout_s: float = 300) -> str:
    """Takes a savepoint of the running `job`, then cancels it; returns the savepoint's location.

    Why not Flink's stop-with-savepoint (`POST /jobs/:id/stop`, `flink stop`), even without drain:
    Flink 1.16 stops a legacy source *before* it takes that savepoint (SourceStreamTask stops the
    source, waits for its thread to end, then triggers the checkpoint), and Beam 2.54's
    UnboundedSourceWrapper (the Kafka read) emits a final +inf watermark when its loop ends. That
    watermark reaches every operator ahead of the savepoint barrier: each window still open closes
    on what it has, every flush timer fires, and the global window expires, which clears all user
    state. The savepoint then holds a drained job: restored from it, detection starts with no
    learned baselines and no open incidents (measured: an account with 3 days of history judged
    as new, incidents re-opened under new ids, alerts on half-filled windows published by the
    stopped job). A plain savepoint leaves the source running, so the state it saves is the live
    one. Flink's cancel then closes the source's context right after cancelling it, and the closed
    context refuses (throws on) the wrapper's final watermark. Were it ever to slip out in between, the
    savepoint would already be complete: only stray alerts of the cancelled job could result.
    """
    trigger = _rest(master, f"/jobs/{job}/savepoints",
                    {"target-directory": f"file://{directory}", "cancel-job": False})["request-id"]
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = _rest(master, f"/jobs/{job}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation") or {}
            if "failure-cause" in operation:
                raise RuntimeError(f"savepoint failed: {operation['failure-cause']}")
            _cancel(master, job)
            return operation["location"]
        time.sleep(1)
    raise RuntimeError("savepoint not completed")


def _savepoint(args, first: List[bytes], second: List[bytes], reference: List[dict], report: dict) -> None:
    """A savepoint after the first half, the job cancelled, an upgraded job submitted from it, the second half streamed."""
    master = args.flink_master
    t0 = time.time()
    sp = Run(args, "savepoint")
    job = sp.submit()
    sp.produce(first)
    _wait_checkpoint_after(master, job, int(time.time() * 1000))  # the first half is through the job
    location = savepoint_then_cancel(master, job, args.savepoint_dir)
    before = len(sp.alerts(expected=0, settle_s=3))
    job2 = sp.submit(savepoint=location, upgrade=args.upgrade)
    sp.produce(second)
    got = sp.alerts(expected=len(reference), settle_s=args.settle_seconds)
    report["savepoint"] = {"location": location, "upgraded": {u: UPGRADE_NOTES[u] for u in args.upgrade},
                           "alerts_before_stop": before, "job_state": _job_state(master, job2),
                           **_compare(reference, got), "seconds": round(time.time() - t0, 1)}
    if "steps" in args.upgrade:
        # The new sink sees the alerts the upgraded job raised: those of the second job on the main topic.
        sink = [a for a, _, _ in consume(args.bootstrap, f"{sp.prefix}.{UPGRADE_SINK}", lambda r: False, timeout_s=3)]
        report["savepoint"]["upgrade_sink"] = {
            "records": len(sink), "alerts": len({_key(a) for a in sink}),
            "same_as_main_sink_after_restore": {_key(a) for a in sink} == {_key(a) for a in got[before:]},
        }
    _cancel(master, job2)
    print(f"restart-check: savepoint run {report['savepoint']}", file=sys.stderr, flush=True)


def _control(args, second: List[bytes], reference: List[dict], report: dict) -> None:
    """The second half alone, on a fresh job (no learned state)."""
    master = args.flink_master
    control = Run(args, "control")
    job = control.submit()
    control.produce(second)
    start = _first_detected_after(second)
    reference_later = {_key(a) for a in reference if a["detected_at"] >= start}
    # Without state it may well raise fewer: it is not waited for as long as the runs that must match.
    got = control.alerts(expected=len(reference_later), settle_s=args.settle_seconds,
                         max_seconds=4 * args.settle_seconds)
    control_later = {_key(a) for a in got if a["detected_at"] >= start}
    report["control_without_state"] = {
        "job_state": _job_state(master, job),  # a FAILED control raised nothing: it shows nothing either
        "alerts_in_second_half": len(control_later),
        "reference_alerts_in_second_half": len(reference_later),
        "same_as_reference": control_later == reference_later,
    }
    _cancel(master, job)


def _first_detected_after(lines: List[bytes]) -> str:
    from pipelines.replay import event_time_ms
    from schemas.timestamps import format_rfc3339_ms

    return format_rfc3339_ms(min(t for t in (event_time_ms(line) for line in lines) if t is not None))


def _upgrades(text: str) -> Tuple[str, ...]:
    chosen = tuple(u for u in text.split(",") if u and u != "none")
    unknown = sorted(set(chosen) - set(UPGRADE_NOTES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown upgrades {unknown}: choose among {sorted(UPGRADE_NOTES)} or none")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.restart_check")
    add_stream_service_arguments(parser)
    parser.add_argument("--savepoint-dir", required=True)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--checkpoint-ms", type=int, default=3000)
    parser.add_argument("--settle-seconds", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--upgrade", type=_upgrades,
                        default=tuple(UPGRADE_NOTES),
                        help=f"what the job resubmitted from the savepoint changes: comma-separated, of "
                             f"{','.join(UPGRADE_NOTES)}, or none (default: all)")
    parser.add_argument("--runs", type=lambda s: s.split(","), default=list(RUNS),
                        help=f"comma-separated, of {','.join(RUNS)} (default: all)")
    args = parser.parse_args(argv)
    report = run_check(args)
    print(json.dumps(report, indent=2, sort_keys=True, default=list))
    ok = all(_ok(report[k]) for k in ("uninterrupted", "crash", "savepoint") if k in report)
    # The upgraded job's new sink must have seen what the main sink got from it.
    ok = ok and report.get("savepoint", {}).get("upgrade_sink", {}).get("same_as_main_sink_after_restore", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
