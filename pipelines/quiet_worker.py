"""A worker process of the local runner (`guetteur detect --workers N`): Beam's SDK worker, quiet.

Beam starts each worker as `python -m apache_beam.runners.worker.sdk_worker_main`, whose imports
install a stderr handler on the root logger and whose harness logs at INFO: a dozen lines per worker
on the user's terminal, on every run. Here a stderr handler that hides Beam's own lines below ERROR
(as the `guetteur` command does) is in place before Beam is imported; everything the worker logs
still reaches the runner process through Beam's logging service, where `guetteur -v` shows it.

A worker belongs to the command that started it. Ctrl-C reaches every process of the job, and the
command reports it in one line; a worker just ends there, at once and without a word (were it to
finish its bundle, the runner, which waits for its workers as it stops, would wait on it). A worker
whose runner has gone mid-job ends as quietly: it has nobody left to report to, and its tracebacks
would only bury the command's own last line.

A worker forked warm (pipelines/warm_workers.py) runs the same steps, the first before the fork.
"""

import logging
import os
import signal
import sys
import threading


def quiet_stderr() -> None:
    """The worker's stderr handler: warnings and errors, without Beam's own chatter."""
    from pipelines.quiet_logs import QuietBeam

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(QuietBeam())
    handler.addFilter(_RunnerGone())
    handler.setFormatter(logging.Formatter("worker %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    default_hook = threading.excepthook
    # The harness's threads die of the same closed channel; each would print its traceback.
    threading.excepthook = lambda args: None if runner_gone(args.exc_value) else default_hook(args)


def runner_gone(error) -> bool:
    """Whether `error` is the runner's end: its channel closed under the worker (it exited, or was interrupted)."""
    import grpc

    code = getattr(error, "code", None)
    return isinstance(error, grpc.RpcError) and callable(code) and code() in (
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class _RunnerGone(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and runner_gone(record.exc_info[1]))


def die_with_parent(parent: int) -> None:
    """Have the kernel end this worker when `parent`, the process that started it, ends (Linux only).

    A worker started, or still starting, as its command ends (a Ctrl-C that crossed its start-up, a
    command killed) would otherwise wait for a runner that is gone, for ever.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it had ended already
        os._exit(130)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_on_interrupt() -> None:
    """Ctrl-C: the command says it; this process ends where it is (status 130, as a shell reports it)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


# How often Beam's state sampler (the time spent per step) wakes up in a worker: see `prompt_bundle_end`.
SAMPLING_PERIOD_MS = 10


def prompt_bundle_end() -> None:
    """Beam's state sampler, asked to stop as a bundle ends, finishes its sleep first: up to its period,
    200 ms by default, and about as long as that at the end of every bundle longer than a second, that is
    both of a replay's long stages (the fold, the scoring), in every worker. Its bundles sampled every
    10 ms end as soon as their work does; the sampler then wakes 100 times a second, for nothing measurable."""
    from apache_beam.runners.worker import statesampler

    statesampler.StateSampler.__init__.__defaults__ = (SAMPLING_PERIOD_MS,)


def run_harness() -> None:
    """Beam's SDK harness, for the runner named in this process's environment, until it has no more work
    or the runner is gone."""
    import grpc
    from apache_beam.runners.worker import sdk_worker_main

    end_on_interrupt()  # (a forked worker's is set as it is forked)
    prompt_bundle_end()
    try:
        sdk_worker_main.main(sys.argv)
    except grpc.RpcError as error:
        if not runner_gone(error):
            raise


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
    if len(sys.argv) == 3 and sys.argv[1] == "--parent":  # pipelines/warm_workers.py: cold_worker_command()
        die_with_parent(int(sys.argv[2]))
    quiet_stderr()
    run_harness()
    leave()
