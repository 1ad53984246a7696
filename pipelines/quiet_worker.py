"""A worker process of the local runner (`guetteur detect --workers N`): Beam's SDK worker, quiet.

Beam starts each worker as `python -m apache_beam.runners.worker.sdk_worker_main`, whose imports
install a stderr handler on the root logger and whose harness logs at INFO: a dozen lines per worker
on the user's terminal, on every run. Here a stderr handler that hides Beam's own lines below ERROR
(as the `guetteur` command does) is in place before Beam is imported; everything the worker logs
still reaches the runner process through Beam's logging service, where `guetteur -v` shows it.

A worker forked warm (pipelines/warm_workers.py) runs the same two steps, the first before the fork.
"""

import logging
import os
import sys


def quiet_stderr() -> None:
    """The worker's stderr handler: warnings and errors, without Beam's own chatter."""
    from pipelines.quiet_logs import QuietBeam

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(QuietBeam())
    handler.setFormatter(logging.Formatter("worker %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def run_harness() -> None:
    """Beam's SDK harness, for the runner named in this process's environment, until it has no more work."""
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


def leave() -> None:
    """Exit at once once the harness has returned, without taking the interpreter apart.

    The harness returns when the runner has no more work for it, with its log handler closed and
    every output sent. The runner then stops its workers one after the other, each waiting for the
    previous one's process to end, and freeing the heap of a worker that had just replayed a month
    took about 0.3 s: 0.6 s at the end of every replay on two workers, spent on nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    quiet_stderr()
    run_harness()
    leave()
