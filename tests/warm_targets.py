"""Targets for the zygote in tests/test_warm_workers.py: what a forked worker runs instead of Beam's harness."""

import json
import os
import sys
import threading
import time

THREAD_AT_IMPORT = "tests.warm_targets_threaded"


def report(path_variable: str = "WARM_REPORT") -> None:
    """Write what the worker was handed (its environment's test keys, its parent) and exit as asked."""
    with open(os.environ[path_variable], "w") as handle:
        json.dump({"worker_id": os.environ.get("WORKER_ID"), "parent": os.getppid(), "pid": os.getpid(),
                   "stdin_is_devnull": os.path.samefile("/dev/stdin", os.devnull)}, handle)
    code = int(os.environ.get("WARM_EXIT", "0"))
    if os.environ.get("WARM_RAISE"):
        raise RuntimeError("the worker failed")
    sys.exit(code)


def recorded_harness() -> None:
    """Beam's harness, after noting in $WARM_RECORD (a directory) that this process ran it."""
    with open(os.path.join(os.environ["WARM_RECORD"], str(os.getpid())), "w") as handle:
        handle.write(str(os.getppid()))
    from pipelines.quiet_worker import run_harness

    run_harness()


def start_a_thread() -> None:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
