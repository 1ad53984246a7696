"""`make bench`: how fast `guetteur detect` is against plain Python on the same file (issue 6).

One run measures, on reproducible simulated files (reused when their parameters match):

- the limit: plain Python over the file — orjson.loads per line, ts parsed, a dict counting
  events per (actor, 5-minute window) — run before the first detect run and after each, the
  fastest run kept;
- `guetteur detect` on the local runner over the same file, as a subprocess, with the worker
  processes it picks by default (one per core for a large input), BENCH_RUNS times (3), the fastest
  run kept: wall time (Python start-up and pipeline construction included) and its own "in X s"
  figure; peak RSS and PSS of it and its workers, sampled in one more run that is not timed
  (sampling slows what it samples); and the x1 file again in one process (`--workers 1`), beside
  one plain-Python thread;
- the ratio detect / plain, measured on the same file in the same run — speed is only ever stated
  as that ratio, never as an absolute promise;
- state per tracked account: `guetteur train` on the base file, Parquet baselines bytes / rows; and
  the growth of detect's peak RSS per extra account across the accounts rows;
- a scaling table: events x1, x2, x4 (same accounts: the file then copies of it shifted by its span
  in days, event_id suffixed) and accounts x1, x10, x100
  (same events, each actor's events spread over N sub-accounts by a hash of event_id).

Target of issue 6: detect >= 30% of the plain-Python rate; memory growing with accounts, not events.
`BENCH_FLINK_RATES=500,1000,2000` adds the streaming rows: demo-flink's simulation (two weeks of 80
accounts) streamed through Kafka into detection on a Flink session cluster at each rate, with
throughput and alert latency (pipelines/bench_flink.py; about 3 minutes per rate).
`BENCH_SCALE=small` runs the same on ~130k events for a quick look. BENCH_BUDGET (seconds, default
1080) skips a scaling row projected to overrun it, and says so. `--profile`: cProfile of one detect run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

import orjson

from pipelines.local_workers import default_workers

WINDOW_MS = 5 * 60_000
TARGET_RATIO = 0.30
# Memory must grow with accounts, not with events: the largest events row (the same accounts over four times the
# days) may hold at most this much more peak PSS than x1. Held by the data, memory would grow with the span.
EVENTS_MEMORY_TARGET = 1.25

# BENCH_SCALE -> simulation parameters of the x1 file (events x2 / x4 simulate 2x / 4x the days).
SCALES = {
    "full": {"seed": 7, "days": 28, "actors": 600},   # ~1.0M events
    "small": {"seed": 7, "days": 28, "actors": 60},   # ~0.1M events
    "tiny": {"seed": 7, "days": 3, "actors": 12},     # a few thousand: plumbing only
}
EVENT_FACTORS = (1, 2, 4)
ONE_PROCESS_ROW = "x1 one process"
ACCOUNT_FACTORS = (1, 10, 100)


def _ts_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def plain_count(path: str) -> dict:
    """The limit: parse every line with orjson and count per (actor, 5-minute window) in a dict."""
    counts: Dict[tuple, int] = {}
    bad = 0
    started = time.perf_counter()
    with open(path, "rb") as handle:
        for line in handle:
            try:
                event = orjson.loads(line)
                ts = _ts_ms(event["ts"])
                key = (event["actor"], ts - ts % WINDOW_MS)
            except Exception:
                bad += 1
                continue
            counts[key] = counts.get(key, 0) + 1
    seconds = time.perf_counter() - started
    events = sum(counts.values())
    return {
        "seconds": seconds,
        "events": events,
        "bad_lines": bad,
        "accounts": len({actor for actor, _ in counts}),
        "account_windows": len(counts),
        "events_per_s": events / seconds if seconds > 0 else 0.0,
    }


_ACTOR = b'"actor":"'
_EVENT_ID = re.compile(rb'"event_id":"([^"]*)"')


def spread_accounts(source: str, target: str, factor: int) -> None:
    """Same lines, each actor's events spread over `factor` sub-accounts (by crc32 of event_id)."""
    with open(source, "rb") as src, open(target + ".tmp", "wb") as dst:
        for line in src:
            at = line.find(_ACTOR)
            match = _EVENT_ID.search(line)
            if at < 0 or match is None:
                dst.write(line)  # a bad line stays bad
                continue
            start = at + len(_ACTOR)
            end = line.find(b'"', start)
            if end < 0:
                dst.write(line)
                continue
            bucket = zlib.crc32(match.group(1)) % factor
            dst.write(b"%s-b%d%s" % (line[:end], bucket, line[end:]))
    os.replace(target + ".tmp", target)


_TS = re.compile(rb'"ts":"(\d{4}-\d{2}-\d{2})T')


def shifted_copies(source: str, target: str, factor: int, days: int) -> None:
    """The file, then `factor - 1` copies shifted by `days` days each (event_id suffixed): same accounts."""
    from datetime import date, timedelta

    shifted: Dict[tuple, bytes] = {}

    def day(text: bytes, copy: int) -> bytes:
        key = (text, copy)
        if key not in shifted:
            try:
                shifted[key] = (date.fromisoformat(text.decode()) + timedelta(days=days * copy)).isoformat().encode()
            except ValueError:  # a deliberately bad date stays as it is
                shifted[key] = text
        return shifted[key]

    with open(target + ".tmp", "wb") as dst:
        for copy in range(factor):
            with open(source, "rb") as src:
                for line in src:
                    match = _TS.search(line) if copy else None
                    event_id = _EVENT_ID.search(line) if copy else None
                    if match is None or event_id is None:
                        dst.write(line)
                        continue
                    a, b = match.span(1)
                    c = event_id.end(1)
                    if c < a:
                        line = b"%s-c%d%s%s%s" % (line[:c], copy, line[c:a], day(match.group(1), copy), line[b:])
                    else:
                        line = b"%s%s%s-c%d%s" % (line[:a], day(match.group(1), copy), line[b:c], copy, line[c:])
                    dst.write(line)
    os.replace(target + ".tmp", target)


def events_file(workdir: str, base: str, base_key: str, factor: int, days: int) -> str:
    if factor == 1:
        return base
    directory = os.path.join(workdir, "data", f"{base_key}-events-x{factor}")
    path = os.path.join(directory, "events.jsonl")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        shifted_copies(base, path, factor, days)
    return path


def simulate(workdir: str, guetteur: str, seed: int, days: int, actors: int) -> str:
    """events.jsonl for these parameters, simulated once and reused."""
    directory = os.path.join(workdir, "data", f"sim-s{seed}-d{days}-a{actors}")
    path = os.path.join(directory, "events.jsonl")
    if not os.path.exists(os.path.join(directory, ".done")):
        subprocess.run([guetteur, "simulate", "--output", directory, "--seed", str(seed), "--days", str(days),
                        "--actors", str(actors)], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(directory, ".done"), "w").close()
    return path


def accounts_file(workdir: str, base: str, base_key: str, factor: int) -> str:
    if factor == 1:
        return base
    directory = os.path.join(workdir, "data", f"{base_key}-accounts-x{factor}")
    path = os.path.join(directory, "events.jsonl")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        spread_accounts(base, path, factor)
    return path


_REPORTED = re.compile(r"events, .* in ([0-9.]+) s")


def _tree_memory_kb(pid: int) -> Tuple[int, Optional[int]]:
    """(RSS, PSS) of a process and all its descendants (the local runner's worker processes), in kB.

    RSS counts a page shared by several processes once in each, and workers forked from one zygote
    (pipelines/warm_workers.py) share its imported modules: PSS divides each shared page between the
    processes that map it, so the tree's PSS is the memory it really holds. None where the kernel has
    no smaps_rollup (before Linux 4.14).
    """
    rss, pss, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            rss += _status_kb(f"/proc/{current}/status", b"VmRSS:")
            if pss is not None:
                try:
                    pss += _status_kb(f"/proc/{current}/smaps_rollup", b"Pss:")
                except FileNotFoundError:
                    pss = None
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", "rb") as children:
                    todo += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue  # gone meanwhile
    return rss, pss


def _status_kb(path: str, key: bytes) -> int:
    with open(path, "rb") as lines:
        for line in lines:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def run_measured(command: Sequence[str], log_path: str, sample_memory: bool = True) -> dict:
    """Run one command; wall time, and peak RSS and PSS: of the process tree, sampled every 0.2 s where /proc
    exists (worker processes hold memory too), else RSS of that process alone (os.wait4).

    Sampling slows what it samples: the kernel walks each process's page tables for its PSS. Interleaved
    x1 detect runs took 5.8-6.1 s sampled against 5.6 s not. `sample_memory=False` times without it (the
    peak RSS is then the command's own, from os.wait4, and PSS is None)."""
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT)
        peak_kb: List[Optional[int]] = [0, 0]
        done = threading.Event()

        def sample():
            while not done.wait(0.2):
                rss, pss = _tree_memory_kb(process.pid)
                peak_kb[0] = max(peak_kb[0], rss)
                peak_kb[1] = None if pss is None or peak_kb[1] is None else max(peak_kb[1], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        if sample_memory and os.path.isdir(f"/proc/{process.pid}"):
            sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(log_path, "r", errors="replace") as log:
        text = log.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}; see {log_path}:\n{text[-2000:]}")
    reported = _REPORTED.search(text)
    return {
        "seconds": seconds,
        "pipeline_seconds": float(reported.group(1)) if reported else None,
        "peak_rss_mb": max(peak_kb[0], usage.ru_maxrss) / 1024.0,  # kB on Linux
        "peak_pss_mb": peak_kb[1] / 1024.0 if peak_kb[1] else None,
    }


def run_detect(guetteur: str, path: str, output: str, workers: int = 1, sample_memory: bool = True) -> dict:
    os.makedirs(output, exist_ok=True)
    return run_measured([guetteur, "detect", "--input", path, "--output", output, "--no-progress",
                         "--workers", str(workers)],
                        os.path.join(output, "detect.log"), sample_memory)


def measure_row(name: str, path: str, guetteur: str, output: str, workers: int = 1, runs: int = 1) -> dict:
    # This VM's speed drifts by a third within minutes: plain Python runs before and after each timed detect
    # run, and each side is taken at its best (the fastest plain run, the fastest of `runs` detect runs), so
    # that neither a slow moment of plain Python nor one of detect decides the ratio. Memory is sampled in a
    # run of its own, which is not timed against plain Python (run_measured).
    started = time.perf_counter()
    memory = run_detect(guetteur, path, output, workers)
    plains = [plain_count(path)]
    detects = []
    for _ in range(runs):
        detects.append(run_detect(guetteur, path, output, workers, sample_memory=False))
        plains.append(plain_count(path))
    plain = max(plains, key=lambda run: run["events_per_s"])
    detect = min(detects, key=lambda run: run["seconds"])
    rate = plain["events"] / detect["seconds"] if detect["seconds"] > 0 else 0.0
    return {
        "row": name,
        "file": path,
        "file_bytes": os.path.getsize(path),
        "events": plain["events"],
        "accounts": plain["accounts"],
        "account_windows": plain["account_windows"],
        "plain_seconds": plain["seconds"],
        "plain_events_per_s": plain["events_per_s"],
        "plain_runs_events_per_s": [run["events_per_s"] for run in plains],
        "detect_seconds": detect["seconds"],
        "detect_runs_seconds": [run["seconds"] for run in detects],
        "detect_pipeline_seconds": detect["pipeline_seconds"],
        "detect_events_per_s": rate,
        "ratio": rate / plain["events_per_s"] if plain["events_per_s"] else 0.0,
        "memory_run_seconds": memory["seconds"],
        "detect_peak_rss_mb": memory["peak_rss_mb"],
        "detect_peak_pss_mb": memory.get("peak_pss_mb"),
        "workers": workers,
        "seconds_spent": time.perf_counter() - started,
    }


def state_per_account(guetteur: str, path: str, output: str) -> dict:
    """`guetteur train` on the file; Parquet baselines bytes divided by the accounts (rows) in it."""
    import pyarrow.parquet as pq

    os.makedirs(output, exist_ok=True)
    baselines = os.path.join(output, "baselines.parquet")
    run = run_measured([guetteur, "train", "--input", path, "--output", baselines], os.path.join(output, "train.log"))
    size = os.path.getsize(baselines)
    rows = pq.ParquetFile(baselines).metadata.num_rows
    return {
        "what": "bytes of the Parquet baselines written by `guetteur train` on the x1 file / its rows (one per account)",
        "parquet_bytes": size,
        "accounts": rows,
        "bytes_per_account": size / rows if rows else None,
        "train_seconds": run["seconds"],
        "train_peak_rss_mb": run["peak_rss_mb"],
    }


def rss_per_account(rows: List[dict]) -> Optional[dict]:
    """Growth of detect's peak RSS per extra account, between the accounts x1 and the largest accounts row."""
    accounts_rows = [row for row in rows if row["row"].startswith("accounts")]
    if len(accounts_rows) < 2:
        return None
    low, high = accounts_rows[0], accounts_rows[-1]
    extra = high["accounts"] - low["accounts"]
    if extra <= 0:
        return None
    return {
        "what": f"(peak RSS {high['row']} - peak RSS {low['row']}) / extra accounts, same event count",
        "bytes_per_extra_account": (high["detect_peak_rss_mb"] - low["detect_peak_rss_mb"]) * 1024 * 1024 / extra,
    }


def profile_detect(guetteur: str, path: str, output: str, top: int = 15) -> str:
    """cProfile over one `guetteur detect` run (the local runner is in-process): detect.prof + a summary."""
    import io
    import pstats

    os.makedirs(output, exist_ok=True)
    prof = os.path.join(output, "detect.prof")
    run_measured([sys.executable, "-m", "cProfile", "-o", prof, guetteur, "detect", "--input", path,
                  "--output", output, "--no-progress"], os.path.join(output, "detect.log"))
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("cumulative").print_stats(r"transforms/|statecache|objsize", top)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


def format_table(rows: List[dict]) -> str:
    header = (f"{'row':<15}{'events':>11}{'accounts':>10}{'workers':>8}{'plain ev/s':>12}{'detect s':>10}"
              f"{'detect ev/s':>13}{'ratio':>8}{'peak RSS MB':>13}{'peak PSS MB':>13}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['row']:<15}{row['events']:>11,}{row['accounts']:>10,}{row.get('workers', 1):>8}"
            f"{row['plain_events_per_s']:>12,.0f}"
            f"{row['detect_seconds']:>10.1f}{row['detect_events_per_s']:>13,.0f}{row['ratio']:>7.1%} "
            f"{row['detect_peak_rss_mb']:>12,.0f}"
            f"{_megabytes(row.get('detect_peak_pss_mb')):>13}"
        )
    return "\n".join(lines)


def _megabytes(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _over_x1(row: dict, base: dict, measure: str) -> Optional[float]:
    return row[measure] / base[measure] if row.get(measure) and base.get(measure) else None


def verdict(rows: List[dict]) -> dict:
    base = rows[0]
    one_process = [row for row in rows if row["row"] == ONE_PROCESS_ROW]
    events_rows = [row for row in rows if row["row"].startswith("events")]
    accounts_rows = [row for row in rows if row["row"].startswith("accounts")]
    return {
        "target_ratio": TARGET_RATIO,
        "ratio_x1": base["ratio"],
        "workers_x1": base.get("workers", 1),
        "meets_speed_target": base["ratio"] >= TARGET_RATIO,
        "ratio_x1_one_process": one_process[0]["ratio"] if one_process else None,
        "events_max_row": events_rows[-1]["row"] if events_rows else None,
        "rss_events_max_over_x1": (events_rows[-1]["detect_peak_rss_mb"] / base["detect_peak_rss_mb"]) if events_rows else None,
        "accounts_max_row": accounts_rows[-1]["row"] if accounts_rows else None,
        "rss_accounts_max_over_x1": (accounts_rows[-1]["detect_peak_rss_mb"] / base["detect_peak_rss_mb"]) if accounts_rows else None,
        "pss_events_max_over_x1": _over_x1(events_rows[-1], base, "detect_peak_pss_mb") if events_rows else None,
        "pss_accounts_max_over_x1": _over_x1(accounts_rows[-1], base, "detect_peak_pss_mb") if accounts_rows else None,
        "events_memory_target": EVENTS_MEMORY_TARGET,
        "meets_memory_target": _meets_memory_target(base, events_rows),
    }


def _meets_memory_target(base: dict, events_rows: List[dict]) -> Optional[bool]:
    """Peak PSS of the largest events row over x1 within EVENTS_MEMORY_TARGET; None without a larger row or PSS."""
    if not events_rows or events_rows[-1]["events"] <= base["events"]:
        return None
    growth = _over_x1(events_rows[-1], base, "detect_peak_pss_mb")
    return None if growth is None else growth <= EVENTS_MEMORY_TARGET


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="out/bench")
    parser.add_argument("--scale", default=os.environ.get("BENCH_SCALE", "full"), choices=sorted(SCALES))
    parser.add_argument("--guetteur", default=os.path.join(os.path.dirname(sys.executable), "guetteur"))
    parser.add_argument("--events-factors", default=",".join(map(str, EVENT_FACTORS)))
    parser.add_argument("--accounts-factors", default=",".join(map(str, ACCOUNT_FACTORS)))
    parser.add_argument("--no-train", action="store_true", help="skip the state-per-account measure")
    parser.add_argument("--workers", type=int, default=int(os.environ["BENCH_WORKERS"]) if os.environ.get("BENCH_WORKERS") else None,
                        help="local runner worker processes for every row (default: what `guetteur detect` picks "
                             "for that file, one per core for large inputs)")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")),
                        help="detect runs per row, each followed by a plain-Python run; each side's best is kept")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("BENCH_BUDGET", "1080")),
                        help="seconds: skip scaling rows projected to overrun it (0: no limit)")
    parser.add_argument("--flink-rates", default=os.environ.get("BENCH_FLINK_RATES", ""),
                        help="offered events/s, comma-separated: stream demo-flink's simulation through Kafka into "
                             "detection on a Flink session cluster at each (pipelines/bench_flink.py); none by default")
    parser.add_argument("--flink-events", type=int, default=int(os.environ.get("BENCH_FLINK_EVENTS", "60000")),
                        help="events streamed per Flink rate")
    parser.add_argument("--profile", action="store_true",
                        help="only profile `guetteur detect` (cProfile) on the x1 file of this scale; no table")
    args = parser.parse_args(argv)
    params = SCALES[args.scale]
    started = time.perf_counter()
    work = args.output
    os.makedirs(work, exist_ok=True)
    runs = os.path.join(work, "runs")
    if args.profile:
        base = simulate(work, args.guetteur, params["seed"], params["days"], params["actors"])
        print(profile_detect(args.guetteur, base, os.path.join(runs, f"profile-{args.scale}")))
        return 0

    plan = []  # (row name, path)
    base = simulate(work, args.guetteur, params["seed"], params["days"], params["actors"])
    base_key = f"sim-s{params['seed']}-d{params['days']}-a{params['actors']}"
    for factor in (int(f) for f in args.events_factors.split(",")):
        plan.append((f"events x{factor}", events_file(work, base, base_key, factor, params["days"])))
    for factor in (int(f) for f in args.accounts_factors.split(",")):
        plan.append((f"accounts x{factor}", accounts_file(work, base, base_key, factor)))
    prepared = time.perf_counter() - started

    rows, measured, skipped = [], {}, []
    # Smallest files first, so a budget cut drops the largest rows, not a whole dimension.
    for name, path in sorted(plan, key=lambda item: os.path.getsize(item[1])):
        if path not in measured and measured and args.budget:
            # Projected from the slowest row so far (its runs, s per byte): skip a row that would overrun the budget.
            per_byte = max(r["seconds_spent"] / r["file_bytes"] for r in measured.values())
            projected = per_byte * os.path.getsize(path) * 1.15
            left = args.budget - (time.perf_counter() - started)
            if projected > left:
                print(f"bench: {name}: skipped, projected {projected:.0f} s > {left:.0f} s left of "
                      f"BENCH_BUDGET={args.budget:.0f}", file=sys.stderr, flush=True)
                skipped.append({"row": name, "file": path, "projected_seconds": projected, "seconds_left": left})
                continue
        if path in measured:  # events x1 and accounts x1 are the same file: one measurement, two rows
            rows.append(dict(measured[path], row=name))
        else:
            print(f"bench: {name}: {path}", file=sys.stderr, flush=True)
            workers = args.workers if args.workers else default_workers(path)
            measured[path] = measure_row(name, path, args.guetteur, os.path.join(runs, name.replace(" ", "-")), workers,
                                         args.runs)
            rows.append(measured[path])
        print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)

    order = [name for name, _ in plan]
    rows.sort(key=lambda row: order.index(row["row"]))
    if rows and rows[0].get("workers", 1) > 1:
        # The plain-Python limit is one thread: the same file in one process, shown apart.
        print(f"bench: {ONE_PROCESS_ROW}: {base}", file=sys.stderr, flush=True)
        rows.append(measure_row(ONE_PROCESS_ROW, base, args.guetteur, os.path.join(runs, "x1-one-process"), 1,
                                args.runs))
        print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    state = None if args.no_train else state_per_account(args.guetteur, base, os.path.join(runs, "train"))
    streaming = []
    if args.flink_rates:
        from pipelines import bench_flink

        rates = [float(rate) for rate in args.flink_rates.split(",")]
        print(f"bench: Flink from Kafka at {args.flink_rates} events/s, {args.flink_events:,} events each",
              file=sys.stderr, flush=True)
        streaming = bench_flink.measure(rates, args.flink_events, os.path.join(runs, "flink"))
    report = {
        "scale": args.scale,
        "simulation": params,
        "rows": rows,
        "skipped_rows": skipped,
        "state_per_account": state,
        "rss_per_account": rss_per_account(rows),
        "streaming_on_flink": streaming,
        "verdict": verdict(rows),
        "notes": [
            "plain = orjson.loads + datetime.fromisoformat + dict count per (actor, 5-min window), one Python thread; "
            "the faster of a run before and a run after detect",
            "detect = `guetteur detect --workers N` subprocess on the local runner, wall time incl. start-up; "
            "N = what detect picks by default (one per core for inputs of 2 ranges of 32 MiB or more)",
            "peak RSS = of detect and its worker processes together, sampled every 0.2 s; peak PSS = the same "
            "with each shared page divided between the processes that map it (forked workers share their modules)",
            "ratio = detect ev/s / plain ev/s on the same file in the same run",
            f"{ONE_PROCESS_ROW} = the x1 file with --workers 1: the local runner in one process, as one plain-Python thread",
        ],
        "prepare_seconds": prepared,
        "total_seconds": time.perf_counter() - started,
    }
    with open(os.path.join(work, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)

    print(format_table(rows))
    print(f"detect s: the fastest of {args.runs} run(s), plain ev/s the fastest of {args.runs + 1}; x1 detect runs: "
          + ", ".join(f"{seconds:.1f}" for seconds in rows[0]["detect_runs_seconds"]) + " s")
    for skip in skipped:
        print(f"{skip['row']:<13}skipped: projected {skip['projected_seconds']:,.0f} s > {skip['seconds_left']:,.0f} s left of the budget")
    if state:
        print(f"state per account: {state['bytes_per_account']:,.0f} B of Parquet baselines "
              f"({state['parquet_bytes']:,} B / {state['accounts']:,} accounts, `guetteur train` on the x1 file)")
    growth = report["rss_per_account"]
    if growth:
        print(f"detect peak RSS growth per extra account: {growth['bytes_per_extra_account']:,.0f} B")
    v = report["verdict"]
    print(f"target: detect >= {TARGET_RATIO:.0%} of plain Python -> measured {v['ratio_x1']:.1%} with "
          f"{v['workers_x1']} worker process(es) ({'met' if v['meets_speed_target'] else 'NOT met'}); peak RSS "
          f"{v['events_max_row']} / x1 = {v['rss_events_max_over_x1'] or float('nan'):.2f}, {v['accounts_max_row']} / x1 = "
          f"{v['rss_accounts_max_over_x1'] or float('nan'):.2f}; peak PSS {v['events_max_row']} / x1 = "
          f"{v['pss_events_max_over_x1'] or float('nan'):.2f}, {v['accounts_max_row']} / x1 = "
          f"{v['pss_accounts_max_over_x1'] or float('nan'):.2f}")
    if v["meets_memory_target"] is not None:
        print(f"target: peak PSS {v['events_max_row']} / x1 <= {EVENTS_MEMORY_TARGET:.2f} (memory grows with accounts, "
              f"not events) -> measured {v['pss_events_max_over_x1']:.2f} "
              f"({'met' if v['meets_memory_target'] else 'NOT met'})")
    if v["ratio_x1_one_process"] is not None:
        print(f"in one process: {v['ratio_x1_one_process']:.1%} of one plain-Python thread")
    if streaming:
        from pipelines import bench_flink

        print(bench_flink.format_table(streaming))
    print(f"bench: {report['total_seconds']:.0f} s in all -> {os.path.join(work, 'report.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
