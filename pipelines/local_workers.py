"""How many worker processes the local runner gets for a replay.

A replay is CPU-bound Python: one process uses one core, whatever the
machine has. Beam's local runner can run its bundles in worker processes
instead (`--direct_num_workers`), and the work splits well:
file ranges, then accounts, then organisations are independent. Starting the
workers costs about two seconds, so a small input stays in this process. The `guetteur` command cuts
most of that by starting them warm (pipelines/warm_workers.py).
"""

from __future__ import annotations

import os
from typing import List, Optional

from apache_beam.io.filesystems import FileSystems

from pipelines import warm_workers
from pipelines.quiet_worker import prompt_bundle_end
from transforms.batch_ingest import split_file

# Below two ranges' worth of input the worker start-up costs more than a second core gives.
MIN_PARALLEL_RANGES = 2


def input_ranges(pattern: str) -> int:
    """How many ranges `transforms/batch_ingest.py` cuts the matched files into (a compressed file is one)."""
    return sum(len(split_file(metadata.path, metadata.size_in_bytes))
               for metadata in FileSystems.match([pattern])[0].metadata_list)


def default_workers(pattern: str, cores: Optional[int] = None) -> int:
    """One worker per core, no more than the input has ranges; 1 (in this process) for a small input."""
    cores = cores or os.cpu_count() or 1
    ranges = input_ranges(pattern)
    return 1 if ranges < MIN_PARALLEL_RANGES else min(cores, ranges)


def local_worker_args(pattern: str, workers: Optional[int], beam_args: List[str]) -> List[str]:
    """The local runner's options for `workers` processes (None: `default_workers`), unless Beam's are given.

    The processes themselves come from `worker_environment()`, given to the runner.
    """
    if any(arg.startswith(("--direct_num_workers", "--direct_running_mode")) for arg in beam_args):
        return []
    if workers is None:
        workers = default_workers(pattern)
    if workers <= 1:
        return []
    return [f"--direct_num_workers={workers}"]


def scoring_slots(options) -> Optional[int]:
    """How many slots a batch replay's organisations are dealt to by their work (transforms/scoring_slots.py):
    the local runner's workers, one or several; None on other runners, which hash keys."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from pipelines.options import LOCAL_RUNNER, resolve_runner

    if resolve_runner(options.view_as(StandardOptions).runner) != LOCAL_RUNNER:
        return None
    workers = options.view_as(DirectOptions).direct_num_workers or 1
    return workers


def worker_environment():
    """Worker processes running `pipelines/quiet_worker.py`: Beam's SDK worker, without its INFO chatter;
    forked warm from the zygote when the command started one (`warm_workers.warm_up()`).

    (Beam's own `--direct_running_mode=multi_processing` starts `sdk_worker_main` directly, whose
    start-up and shutdown lines land on the user's terminal.)
    """
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    return SubprocessSDKEnvironment.from_command_string(warm_workers.worker_command())


def local_runner(options, runner_class=None):
    """The local runner for these options: with worker processes from `worker_environment()` when they ask
    for several workers (`--direct_num_workers`) and leave the running mode to us."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    direct = options.view_as(DirectOptions)
    several = (direct.direct_num_workers or 1) > 1 and direct.direct_running_mode == "in_memory"
    if not several:
        warm_workers.cool_down()
        prompt_bundle_end()  # the bundles run in this process
    return (runner_class or FnApiRunner)(default_environment=worker_environment() if several else None)
