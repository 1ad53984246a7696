"""Guetteur against its yardsticks, through the same evaluation; and Guetteur over several seeds.

    python -m pipelines.compare --output out/compare [--seed 7 --days 28 --actors 300]
                                [--input SIMDIR] [--detectors guetteur,static,zscore]
    python -m pipelines.compare --output out/seeds --seeds 1,2,3,4,5 [--days 14 --actors 120]
                                [--detectors guetteur]

One seed: simulates (unless `--input` names an existing simulation directory with events.jsonl
and labels.json), runs `guetteur detect` (the real command, so the row is exactly what an
operator would get), the static hourly rule and Beam's ZScore (`reference_detectors.py`), scores
each with `pipelines.evaluation.evaluate`, and prints the rows side by side, then per incident,
then which legitimate look-alikes (`labels.json` → `lookalikes`) the false alarms fell on.

Several seeds: the same per seed (Guetteur only unless `--detectors` says otherwise), then
aggregated per scenario (detected n/N, median time to detect, median records before alert) and
per seed (false alarms per 1,000 account-days: mean, min, max). Tune on that, never on one seed.

Everything lands in `--output`: per seed `sim/`, `<detector>/alerts.jsonl`, `evaluation.json`;
and `summary.json` with what was printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any, Sequence

DETECTORS = ("guetteur", "static", "zscore")
TITLES = {"guetteur": "guetteur", "static": "static >200 rec/h", "zscore": "beam ZScore (1 h)"}
SPECIFICITY = {"account": 0, "org": 1, "role": 2, "all": 3}


# --- running -------------------------------------------------------------------------------------

def run_guetteur(events: str, output_dir: str) -> None:
    """`guetteur detect` as a user runs it; raises RuntimeError with its last stderr line on failure."""
    command = [sys.executable, "-m", "pipelines", "detect", "--input", events, "--output", output_dir]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit code {done.returncode}")


def run_detector(name: str, events: str, output_dir: str) -> dict[str, Any]:
    """Run one detector; {"seconds", "error"} (error None when it ran)."""
    from pipelines.reference_detectors import run_reference

    os.makedirs(output_dir, exist_ok=True)
    for stale in ("alerts.jsonl",):
        path = os.path.join(output_dir, stale)
        if os.path.exists(path):
            os.remove(path)
    started = time.monotonic()
    error = None
    try:
        if name == "guetteur":
            run_guetteur(events, output_dir)
        else:
            run_reference(name, events, output_dir)
    except Exception as err:  # a broken detector is a row that says so, not a crashed comparison
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    return {"seconds": round(time.monotonic() - started, 1), "error": error}


def simulate_into(directory: str, seed: int, days: int, actors: int) -> dict[str, Any]:
    from pipelines.simulation import write_simulation

    started = time.monotonic()
    summary = write_simulation(directory, seed=seed, days=days, actors=actors)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def evaluate_dir(alerts_dir: str, labels: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from pipelines.evaluation import evaluate, load_alerts

    alerts = load_alerts(os.path.join(alerts_dir, "alerts*.jsonl"))
    return evaluate(alerts, labels), alerts


# --- false alarms on look-alikes -----------------------------------------------------------------

def _lookalike_index(labels: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in labels.get("lookalikes") or []:
        by_day[entry["day"]].append(entry)
    return by_day


def explain_false_alarm(alert: dict[str, Any], by_day: dict[str, list[dict[str, Any]]]) -> str:
    """The most specific legitimate look-alike an alert falls on (account > org > role > everyone), or 'none'."""
    days = {str(alert.get(key) or "")[:10] for key in ("window_start", "detected_at")}
    accounts = {alert.get("actor"), *(alert.get("related_accounts") or [])}
    best: tuple[int, str] | None = None
    for day in days:
        for entry in by_day.get(day, ()):
            scope = entry.get("scope", "all")
            if scope == "account" and accounts & set(entry.get("accounts") or []):
                rank = SPECIFICITY["account"]
            elif scope == "org" and (alert.get("org") == entry.get("org")
                                     or accounts & set(entry.get("accounts") or [])):
                rank = SPECIFICITY["org"]
            elif scope.startswith("role:") and alert.get("actor_type") == scope[5:]:
                rank = SPECIFICITY["role"]
            elif scope == "all":
                rank = SPECIFICITY["all"]
            else:
                continue
            if best is None or (rank, entry["kind"]) < best:
                best = (rank, entry["kind"])
    return best[1] if best else "none"


def false_alarm_kinds(evaluation: dict[str, Any], alerts: list[dict[str, Any]], labels: dict[str, Any]) -> Counter:
    false_ids = set(evaluation.get("false_alarm_alert_ids") or [])
    first: dict[str, dict[str, Any]] = {}
    for alert in sorted(alerts, key=lambda a: str(a.get("detected_at"))):
        alert_id = str(alert.get("alert_id"))
        if alert_id in false_ids:
            first.setdefault(alert_id, alert)
    by_day = _lookalike_index(labels)
    return Counter(explain_false_alarm(alert, by_day) for alert in first.values())


# --- one seed ------------------------------------------------------------------------------------

def compare_one(sim_dir: str, out_dir: str, detectors: Sequence[str], quiet: bool = False) -> dict[str, Any]:
    with open(os.path.join(sim_dir, "labels.json"), "rb") as handle:
        labels = json.load(handle)
    events = os.path.join(sim_dir, "events.jsonl")
    rows: dict[str, Any] = {}
    for name in detectors:
        if not quiet:
            print(f"-- running {TITLES.get(name, name)} ...", file=sys.stderr, flush=True)
        run = run_detector(name, events, os.path.join(out_dir, name))
        row: dict[str, Any] = {"seconds": run["seconds"], "error": run["error"]}
        if run["error"] is None:
            evaluation, alerts = evaluate_dir(os.path.join(out_dir, name), labels)
            row["evaluation"] = evaluation
            row["fa_kinds"] = dict(false_alarm_kinds(evaluation, alerts, labels))
        rows[name] = row
        if not quiet:
            print(f"   {run['seconds']} s{'' if run['error'] is None else ' FAILED: ' + run['error']}",
                  file=sys.stderr, flush=True)
    result = {"simulation": {k: labels.get(k) for k in ("seed", "days", "actors", "start", "events",
                                                         "active_account_days")},
              "incidents": [{k: i.get(k) for k in ("id", "scenario", "records", "start", "end", "params")}
                            for i in labels.get("incidents") or []],
              "detectors": rows}
    with open(os.path.join(out_dir, "evaluation.json"), "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    return result


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_comparison(result: dict[str, Any]) -> str:
    sim = result["simulation"]
    lines = [f"seed {sim['seed']}, {sim['actors']} accounts, {sim['days']} days from {sim['start'][:10]}: "
             f"{sim['events']:,} events, {sim['active_account_days']:,} active account-days, "
             f"{len(result['incidents'])} incidents", ""]
    header = (f"{'detector':<20}{'detected':>9}{'FA/1000 acct-days':>19}{'FA':>6}{'TTD median':>12}"
              f"{'TTD max':>9}{'records before alert':>22}{'runtime':>9}")
    lines += [header, "-" * len(header)]
    for name, row in result["detectors"].items():
        title = TITLES.get(name, name)
        if row.get("error"):
            lines.append(f"{title:<20} failed after {row['seconds']} s: {row['error']}")
            continue
        ev = row["evaluation"]
        lines.append(f"{title:<20}{ev['detected']:>5}/{ev['incidents']:<3}"
                     f"{_number(ev['false_alarms_per_1000_account_days'], 2):>19}{ev['false_alarm_incidents']:>6}"
                     f"{_duration(ev['time_to_detect_median_s']):>12}{_duration(ev['time_to_detect_max_s']):>9}"
                     f"{_number(ev['records_before_alert_median']):>22}{row['seconds']:>8.0f}s")
    names = [n for n, row in result["detectors"].items() if not row.get("error")]
    if names:
        lines += ["", "per incident: time to detect / records before alert (of total)"]
        header = f"{'incident':<34}{'records':>9}" + "".join(f"{TITLES.get(n, n):>22}" for n in names)
        lines += [header, "-" * len(header)]
        per = {n: {r["id"]: r for r in result["detectors"][n]["evaluation"]["per_incident"]} for n in names}
        for incident in result["incidents"]:
            cells = []
            for n in names:
                r = per[n].get(incident["id"])
                cells.append(f"{_duration(r['time_to_detect_s'])} / {_number(r['records_before_alert'])}"
                             if r and r["detected"] else "missed")
            lines.append(f"{incident['id']:<34}{incident['records']:>9,}" + "".join(f"{c:>22}" for c in cells))
        lines += ["", "false alarms by the legitimate look-alike they fell on (most specific first)"]
        for n in names:
            kinds = result["detectors"][n].get("fa_kinds") or {}
            text = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
            lines.append(f"  {TITLES.get(n, n):<20} {text}")
    return "\n".join(lines)


# --- several seeds -------------------------------------------------------------------------------

def aggregate(results: list[dict[str, Any]], detectors: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in detectors:
        per_scenario: dict[str, dict[str, list]] = defaultdict(lambda: {"detected": [], "ttd": [], "before": []})
        fa_rates, fa_counts, failures, seconds = [], [], 0, []
        kinds: Counter = Counter()
        for result in results:
            row = result["detectors"].get(name)
            if not row or row.get("error"):
                failures += 1
                continue
            seconds.append(row["seconds"])
            ev = row["evaluation"]
            fa_rates.append(ev["false_alarms_per_1000_account_days"] or 0.0)
            fa_counts.append(ev["false_alarm_incidents"])
            kinds.update(row.get("fa_kinds") or {})
            for r in ev["per_incident"]:
                cell = per_scenario[r["scenario"]]
                cell["detected"].append(bool(r["detected"]))
                if r["detected"]:
                    cell["ttd"].append(r["time_to_detect_s"])
                    cell["before"].append(r["records_before_alert"])
        out[name] = {
            "runs": len(results) - failures, "failed_runs": failures,
            "false_alarms_per_1000_account_days": {
                "mean": statistics.mean(fa_rates) if fa_rates else None,
                "min": min(fa_rates) if fa_rates else None, "max": max(fa_rates) if fa_rates else None,
                "per_seed": fa_rates},
            "false_alarms": sum(fa_counts), "false_alarm_kinds": dict(kinds),
            "seconds_mean": statistics.mean(seconds) if seconds else None,
            "scenarios": {s: {"detected": sum(c["detected"]), "of": len(c["detected"]),
                              "time_to_detect_median_s": statistics.median(c["ttd"]) if c["ttd"] else None,
                              "records_before_alert_median": statistics.median(c["before"]) if c["before"] else None}
                          for s, c in sorted(per_scenario.items())},
        }
    return out


def format_aggregate(agg: dict[str, Any], seeds: Sequence[int], days: int, actors: int) -> str:
    lines = [f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), {actors} accounts, {days} days each", ""]
    for name, a in agg.items():
        fa = a["false_alarms_per_1000_account_days"]
        lines.append(f"{TITLES.get(name, name)}: {a['runs']} run(s)"
                     + (f", {a['failed_runs']} failed" if a["failed_runs"] else "")
                     + (f", {a['seconds_mean']:.0f} s per run" if a["seconds_mean"] else ""))
        if not a["runs"]:
            continue
        lines.append(f"  false alarms per 1,000 account-days: mean {_number(fa['mean'], 2)}, "
                     f"min {_number(fa['min'], 2)}, max {_number(fa['max'], 2)} "
                     f"(per seed: {', '.join(_number(v, 2) for v in fa['per_seed'])}); {a['false_alarms']} in all")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(a["false_alarm_kinds"].items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  false alarms fell on: {kinds or 'nothing'}")
        header = f"  {'scenario':<30}{'detected':>10}{'TTD median':>12}{'records before alert':>22}"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for scenario, s in a["scenarios"].items():
            lines.append(f"  {scenario:<30}{s['detected']:>6}/{s['of']:<3}{_duration(s['time_to_detect_median_s']):>12}"
                         f"{_number(s['records_before_alert_median']):>22}")
        total = sum(s["detected"] for s in a["scenarios"].values())
        of = sum(s["of"] for s in a["scenarios"].values())
        lines += [f"  {'all':<30}{total:>6}/{of:<3}", ""]
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------

def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"detectors are {', '.join(DETECTORS)}; got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="directory for simulations, alerts and summary.json")
    parser.add_argument("--input", help="an existing simulation directory (events.jsonl, labels.json): no simulate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seeds", type=_seeds, help="several seeds, comma-separated: aggregate per scenario")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--actors", type=int, default=300)
    parser.add_argument("--detectors", type=_names, default=None,
                        help="comma-separated among guetteur,static,zscore (default: all three for one seed, "
                             "guetteur for --seeds)")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    started = time.monotonic()

    if args.seeds:
        detectors = args.detectors or ["guetteur"]
        results = []
        for seed in args.seeds:
            seed_dir = os.path.join(args.output, f"seed-{seed}")
            sim = simulate_into(os.path.join(seed_dir, "sim"), seed, args.days, args.actors)
            print(f"== seed {seed}: {sim['events']:,} events, {sim['incidents']} incidents", file=sys.stderr, flush=True)
            results.append(compare_one(os.path.join(seed_dir, "sim"), seed_dir, detectors))
        agg = aggregate(results, detectors)
        text = format_aggregate(agg, args.seeds, args.days, args.actors)
        summary: dict[str, Any] = {"seeds": args.seeds, "days": args.days, "actors": args.actors, "aggregate": agg,
                                   "per_seed": results}
    else:
        detectors = args.detectors or list(DETECTORS)
        sim_dir = args.input
        if not sim_dir:
            sim_dir = os.path.join(args.output, "sim")
            sim = simulate_into(sim_dir, args.seed, args.days, args.actors)
            print(f"== simulated {sim['events']:,} events in {sim['seconds']} s", file=sys.stderr, flush=True)
        result = compare_one(sim_dir, args.output, detectors)
        text = format_comparison(result)
        summary = result
    summary["seconds"] = round(time.monotonic() - started, 1)
    with open(os.path.join(args.output, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1, sort_keys=True)
    print(text)
    print(f"\n(total {summary['seconds']:.0f} s; details in {os.path.join(args.output, 'summary.json')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
