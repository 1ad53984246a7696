"""A batch replay's own code, stage by stage and in one process: where its CPU goes, without the runner.

`make bench` times `guetteur detect` as users run it, and on two cores that wall time swings with
the machine and with how the runner happens to split organisations between workers. Here the
same DoFns run one after the other in this process — fold every file range, merge each account's
folds, score each organisation — and each stage's CPU seconds are reported, so that a change to
one stage is measured on that stage. (The stages are those of a replay with organisations as keys,
on Flink or Dataflow; the local runner's slots run the same merge and scoring a week at a time,
from spilled folds: transforms/detect_in_slots.py.) Under callgrind the same run counts instructions, which the
machine's swings in speed do not move:

    python -m pipelines.bench_stages --input out/bench/data/sim-s7-d28-a600/events.jsonl
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m pipelines.bench_stages --input FILE

The alerts are those `guetteur detect` writes for the same file (tests/test_bench_stages.py), and
their digest is printed: an optimisation must leave it unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import orjson
from apache_beam.io.filesystems import FileSystems

from schemas.alert import Alert, alert_to_json
from transforms.batch_ingest import _FoldRange, split_file
from transforms.batch_windows import _MergeAccountFolds
from transforms.detect_per_group import DetectPerGroupInBatchFn
from transforms.detection_config import DetectionConfig, load_detection_config
from transforms.event_parsing import DEFAULT_MAPPING
from transforms.read_events import DEAD_LETTER_TAG


def _cpu() -> float:
    return time.process_time()


def run_stages(pattern: str, config: DetectionConfig) -> dict:
    """Each stage's CPU seconds and counts, and the alerts (as `guetteur detect` writes them, in order)."""
    window_ms = config.window_ms
    stages: Dict[str, dict] = {}

    started = _cpu()
    fold = _FoldRange(window_ms, DEFAULT_MAPPING)
    fold.setup()
    folds: Dict[str, List[bytes]] = defaultdict(list)
    ranges = dead_letters = 0
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        for file_range in split_file(metadata.path, metadata.size_in_bytes):
            ranges += 1
            for output in fold.process(file_range):
                tag = getattr(output, "tag", None)
                if tag == DEAD_LETTER_TAG:
                    dead_letters += 1
                elif tag is None:
                    for actor, packed in output:
                        folds[actor].append(packed)
    stages["fold"] = {"cpu_s": _cpu() - started, "ranges": ranges, "account_packs": sum(map(len, folds.values())),
                      "dead_letters": dead_letters}

    started = _cpu()
    merge = _MergeAccountFolds(window_ms)
    by_group: Dict[str, List[bytes]] = defaultdict(list)
    for actor in sorted(folds):
        for group, packed in merge.process((actor, folds[actor])):
            by_group[group].append(packed)
    stages["merge"] = {"cpu_s": _cpu() - started, "accounts": len(folds), "organisations": len(by_group)}

    started = _cpu()
    score = DetectPerGroupInBatchFn(config)
    score.setup()
    alerts: List[Alert] = [alert for group in sorted(by_group) for alert in score.process((group, by_group[group]), {})]
    stages["score"] = {"cpu_s": _cpu() - started, "alerts": len(alerts)}

    lines = sorted(orjson.dumps(alert_to_json(alert)) for alert in alerts)
    return {
        "stages": stages,
        "cpu_s": sum(stage["cpu_s"] for stage in stages.values()),
        "alerts_sha256": hashlib.sha256(b"\n".join(lines)).hexdigest(),
        "alert_lines": lines,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench_stages", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="JSON Lines file(s), path or glob")
    parser.add_argument("--detection-config", default=None, help="as guetteur detect's")
    args = parser.parse_args(argv)
    if not FileSystems.match([args.input])[0].metadata_list:
        print(f"bench_stages: no file matches {args.input!r}", file=sys.stderr)
        return 2
    try:
        config = load_detection_config(args.detection_config)
    except (OSError, ValueError) as err:
        print(f"bench_stages: bad --detection-config: {err}", file=sys.stderr)
        return 2
    report = run_stages(args.input, config)
    report.pop("alert_lines")
    for name, stage in report["stages"].items():
        stage["cpu_s"] = round(stage["cpu_s"], 3)
    report["cpu_s"] = round(report["cpu_s"], 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
