"""How many worker processes the local runner gets for a replay.

A replay is CPU-bound Python: one process uses one core, whatever the
machine has. Beam's local runner can run its bundles in worker processes
instead (`--direct_running_mode=multi_processing`), and the work splits well:
file ranges, then accounts, then organisations are independent. Starting the
workers costs about two seconds, so a small input stays in this process.
"""

from __future__ import annotations

import os
from typing import List, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.batch_ingest import RANGE_BYTES

# Below two ranges' worth of input the worker start-up costs more than a second core gives.
MIN_PARALLEL_RANGES = 2


def input_ranges(pattern: str) -> int:
    """How many ranges `transforms/batch_ingest.py` cuts the matched files into (a compressed file is one)."""
    ranges = 0
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        if CompressionTypes.detect_compression_type(metadata.path) != CompressionTypes.UNCOMPRESSED:
            ranges += 1
        else:
            ranges += max(1, -(-metadata.size_in_bytes // RANGE_BYTES))
    return ranges


def default_workers(pattern: str, cores: Optional[int] = None) -> int:
    """One worker per core, no more than the input has ranges; 1 (in this process) for a small input."""
    cores = cores or os.cpu_count() or 1
    ranges = input_ranges(pattern)
    return 1 if ranges < MIN_PARALLEL_RANGES else min(cores, ranges)


def local_worker_args(pattern: str, workers: Optional[int], beam_args: List[str]) -> List[str]:
    """The local runner's options for `workers` processes (None: `default_workers`), unless Beam's are given."""
    if any(arg.startswith(("--direct_num_workers", "--direct_running_mode")) for arg in beam_args):
        return []
    if workers is None:
        workers = default_workers(pattern)
    if workers <= 1:
        return []
    return [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
