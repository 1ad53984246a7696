"""The `guetteur` command (CONTRACT §3): detect, simulate, evaluate, show.

Every error a user can cause — a bad flag, an unreadable input, a broken
settings file — ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, List, Optional, Sequence

from pipelines import warm_workers
from pipelines.quiet_logs import QuietBeam
from transforms.gc_pause import kept_for_good

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line."""


class _Interruptible:
    """While a job runs: Ctrl-C ends it with one line, whatever the runner's threads make of it.

    The terminal sends Ctrl-C to the workers too, which end at once (pipelines/quiet_worker.py). The
    runner may then meet their end before this process meets the signal, and its threads and logs
    report workers that exited: consequences of the interrupt, not news, and not printed. (After an
    interrupt the process is on its way out: logging and the thread hook are left silenced.)
    """

    def __init__(self):
        self.seen = threading.Event()

    def __enter__(self):
        self._in_main_thread = threading.current_thread() is threading.main_thread()
        if self._in_main_thread:  # only the main thread may set a signal handler
            self._previous_handler = signal.signal(signal.SIGINT, self._on_interrupt)
            self._previous_hook = threading.excepthook
            threading.excepthook = self._thread_failed
            # The signal reaches Python's handler only once the main thread runs again, maybe after the
            # runner's threads have met the workers' end: the byte the C handler writes, in whatever thread
            # took the signal, lets a watcher note the interrupt at once.
            read, self._write = os.pipe()
            os.set_blocking(self._write, False)
            self._previous_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
            threading.Thread(target=self._watch, args=(read,), name="guetteur-interrupt", daemon=True).start()
        return self

    def _watch(self, read: int) -> None:
        with os.fdopen(read, "rb", buffering=0) as signals:
            while True:
                received = signals.read(64)
                if not received:
                    return
                if signal.SIGINT in received:
                    self._noted()

    def _noted(self) -> None:
        if not self.seen.is_set():
            self.seen.set()
            logging.disable(logging.CRITICAL)  # what the runner logs of its workers' end from here is noise
            warm_workers.interrupt()  # a Ctrl-C sent to this process alone: the workers must end too

    def _on_interrupt(self, signum, frame):
        self._noted()
        raise KeyboardInterrupt

    def _thread_failed(self, args) -> None:
        # A worker ended by a Ctrl-C can be met by the runner's threads a moment before this process
        # notes the signal: a failing thread first gives the interrupt that moment to show.
        if not self.seen.wait(0.5):
            self._previous_hook(args)

    def __exit__(self, *exc):
        # After an interrupt the runner's threads may still report, until the process is gone.
        if self._in_main_thread and not self.seen.is_set():
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._write)  # the watcher reads the end and goes
            signal.signal(signal.SIGINT, self._previous_handler)
            threading.excepthook = self._previous_hook
        return False


def _run_job(run: Callable[[], object], in_a_thread: bool):
    """`run()`, on a helper thread when `in_a_thread`, while this thread waits for it in short steps.

    Python handles a signal in the main thread, but the kernel hands a process its Ctrl-C through any of
    its threads; Beam's local runner waits for its bundles in the main thread without a timeout, and one
    signal taken by another thread then left it waiting on workers that had already ended. Waiting here in
    steps, this thread sees the signal within a fraction of a second. (Only for the local runner: the
    portable runners' clients set signal handlers of their own, which only the main thread may do.)
    """
    if not in_a_thread:
        return run()
    outcome: dict = {}

    def job():
        try:
            outcome["result"] = run()
        except BaseException as err:  # noqa: BLE001 -- re-raised in the caller's thread, as run() would
            outcome["error"] = err

    thread = threading.Thread(target=job, name="guetteur-job", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _failed(command: str, err: Exception) -> int:
    """The one line for a failed pipeline."""
    reason = str(err).strip().splitlines()
    print(f"guetteur {command}: the pipeline failed: {reason[-1] if reason else type(err).__name__} "
          "(run with -v for details)", file=sys.stderr)
    return EXIT_FAILED


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 86400, got {text!r}")
    return value


def _parser() -> _Parser:
    parser = _Parser(prog="guetteur", description="Detects authorised accounts reading data they should not.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the runner's own logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    detect = commands.add_parser("detect", help="run the detection pipeline over JSON Lines events")
    detect.add_argument("--input", required=True, help="events: a path or glob, plain or .gz")
    detect.add_argument("--output", required=True, help="directory for alerts.jsonl and deadletter.jsonl")
    detect.add_argument("--runner", default="local", help="local (default), FlinkRunner, PrismRunner, DataflowRunner, ...")
    detect.add_argument("--config", help="TOML file of detector settings (see deploy/detection.toml)")
    detect.add_argument("--field-mapping", help="JSON file mapping ECS paths to contract fields")
    detect.add_argument("--baselines", help="Parquet baselines written by `guetteur train`: start from them")
    detect.add_argument("--metrics-port", type=_port, help="serve Prometheus metrics on this port while the job runs (0: any free port)")
    detect.add_argument("--metrics-address", default="127.0.0.1", help="address the metrics port listens on (default 127.0.0.1)")
    detect.add_argument("--metrics-file", help="write the final metrics here, in Prometheus text format, when the job ends")
    detect.add_argument("--metrics-linger", type=_seconds, default=0.0, metavar="SECONDS",
                        help="after the job, keep serving the final metrics this long so a scraper sees the end")
    detect.add_argument("--metrics-wait", type=_seconds, default=0.0, metavar="SECONDS",
                        help="before the job, wait up to this long for a first scrape so a scraper sees it from zero")
    detect.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr: lines, rate, event time (default: only on a terminal)")
    detect.add_argument("--workers", type=_positive_int, default=None,
                        help="local runner: worker processes (default: one per core for inputs of 64 MiB and "
                             "more; 1 runs in this process)")

    train = commands.add_parser("train", help="learn baselines from history in batch (Parquet)")
    train.add_argument("--input", required=True, help="history: a path or glob of JSON Lines events, plain or .gz")
    train.add_argument("--output", required=True, help="the Parquet file of baselines to write")
    train.add_argument("--runner", default="local", help="local (default), FlinkRunner, PrismRunner, DataflowRunner, ...")
    train.add_argument("--config", help="TOML file of detector settings (see deploy/detection.toml)")
    train.add_argument("--field-mapping", help="JSON file mapping ECS paths to contract fields")
    train.add_argument("--baselines", help="earlier baselines to continue learning from")
    train.add_argument("--workers", type=_positive_int, default=None,
                       help="local runner: worker processes (default: one per core for inputs of 64 MiB and more)")

    simulate = commands.add_parser("simulate", help="write realistic partner traffic with labelled incidents")
    simulate.add_argument("--output", required=True, help="directory for events.jsonl and labels.json")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--days", type=_positive_int, default=14)
    simulate.add_argument("--actors", type=_positive_int, default=300)
    simulate.add_argument("--scenarios", default=None, metavar="A,B,...",
                          help="incident scenarios, comma-separated, repeats allowed, '' for none "
                               "(default: the seed trio, plus the five harder ones from 14 days)")

    evaluate = commands.add_parser("evaluate", help="detection metrics of alerts against labels, as JSON")
    evaluate.add_argument("--alerts", required=True, help="alerts JSON Lines: a path or glob")
    evaluate.add_argument("--labels", required=True, help="labels.json written by simulate")

    show = commands.add_parser("show", help="print alerts as a short table")
    show.add_argument("--alerts", required=True, help="alerts JSON Lines: a path or glob")
    show.add_argument("--limit", type=_positive_int, default=20)
    return parser


def _check_input(pattern: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # a malformed pattern or an unreachable filesystem
        raise UsageError(f"cannot read input {pattern!r}: {err}") from None
    if not matches:
        raise UsageError(f"no input file matches {pattern!r}")
    for metadata in matches:
        try:
            FileSystems.open(metadata.path).close()
        except Exception as err:
            raise UsageError(f"cannot read input {metadata.path!r}: {err}") from None


def _check_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output directory {path!r}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"output directory {path!r} is not writable")


def _load_settings(args):
    from transforms.detection_config import load_detection_config
    from transforms.event_parsing import FieldMapping

    try:
        load_detection_config(args.config)
    except (OSError, ValueError) as err:
        raise UsageError(f"bad --config {args.config!r}: {err}") from None
    if args.field_mapping:
        try:
            FieldMapping.from_json_file(args.field_mapping)
        except (OSError, ValueError) as err:
            raise UsageError(f"bad --field-mapping {args.field_mapping!r}: {err}") from None


def _counter_totals(result) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    totals = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("guetteur"))["counters"]
    except Exception:  # some runners report no metrics to the client
        return totals
    for counter in counters:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (counter.committed or counter.attempted or 0)
    return totals


def _pipeline_options(args, beam_args: List[str]):
    """The pipeline options `detect` and `train` share: runner, input, output, settings, baselines, workers."""
    from pipelines.local_workers import local_worker_args
    from pipelines.options import LOCAL_RUNNER, GuetteurOptions, resolve_runner

    local_files = resolve_runner(args.runner) == LOCAL_RUNNER and not args.input.startswith("kafka://")
    if args.workers is not None and not local_files:
        raise UsageError("--workers is for the local runner reading files (other runners size their own workers)")
    return GuetteurOptions([
        *(local_worker_args(args.input, args.workers, beam_args) if local_files else []),
        f"--runner={resolve_runner(args.runner)}",
        f"--input={args.input}",
        f"--output={args.output}",
        *([f"--detection_config={args.config}"] if args.config else []),
        *([f"--field_mapping={args.field_mapping}"] if args.field_mapping else []),
        *([f"--baselines={args.baselines}"] if args.baselines else []),
        *beam_args,
    ])


def run_detect(args, beam_args: List[str]) -> int:
    import apache_beam as beam

    from pipelines.detect import build_pipeline

    if not args.input.startswith("kafka://"):  # kafka://HOST:PORT/TOPIC: read through KafkaIO (README)
        _check_input(args.input)
    if not args.output.startswith("kafka://"):  # kafka://HOST:PORT/PREFIX: PREFIX.alerts, PREFIX.deadletter
        _check_output_dir(args.output)
    _load_settings(args)
    options = _pipeline_options(args, beam_args)
    observation = _observation(args, options)
    started = time.monotonic()
    pipeline = beam.Pipeline(runner=observation.runner, options=options)
    interrupt = _Interruptible()
    try:
        build_pipeline(pipeline, options)
        with interrupt:
            if observation.watching:
                result = _run_job(lambda: observation.run(pipeline), observation.runner is not None)
            else:
                result = _run_job(pipeline.run, observation.runner is not None)
                result.wait_until_finish()
    except Exception as err:
        if interrupt.seen.is_set():  # the workers' end after a Ctrl-C, met before the signal
            observation.close(linger=False)
            raise KeyboardInterrupt from None
        if args.verbose:
            observation.close(linger=False)
            raise
        observation.close()
        return _failed("detect", err)
    except BaseException:  # Ctrl-C: stop serving, no lingering
        observation.close(linger=False)
        raise
    elapsed = time.monotonic() - started
    totals = _counter_totals(result)
    alerts = sum(v for k, v in totals.items() if k.startswith("alerts_"))
    print(
        f"guetteur detect: {totals.get('lines_read', 0):,} lines, {totals.get('events_accepted', 0):,} events, "
        f"{totals.get('dead_lettered', 0):,} dead letters, {alerts:,} alert records in {elapsed:.1f} s "
        f"-> {os.path.join(args.output, 'alerts.jsonl')}",
        file=sys.stderr,
    )
    observation.close()
    return 0 if observation.ok else EXIT_FAILED


def _observation(args, options=None):
    """The metrics exporter, metrics file and progress line asked for on the command line."""
    from pipelines.metrics_export import JobObservation, check_metrics_file
    from pipelines.options import LOCAL_RUNNER, resolve_runner

    if args.metrics_file:
        try:
            check_metrics_file(args.metrics_file)
        except ValueError as err:
            raise UsageError(f"bad --metrics-file {args.metrics_file!r}: {err}") from None
    for flag, value in (("--metrics-linger", args.metrics_linger), ("--metrics-wait", args.metrics_wait)):
        if value and args.metrics_port is None:
            raise UsageError(f"{flag} needs --metrics-port")
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        return JobObservation(
            resolve_runner(args.runner), LOCAL_RUNNER, port=args.metrics_port, address=args.metrics_address,
            path=args.metrics_file, linger=args.metrics_linger, wait=args.metrics_wait,
            progress=("tty" if sys.stderr.isatty() else "lines") if progress else None, options=options,
        )
    except OSError as err:
        raise UsageError(f"cannot serve metrics on {args.metrics_address}:{args.metrics_port}: "
                         f"{err.strerror or err}") from None


def _local_runner(args, options):
    """The local runner these options call for (its worker processes: pipelines/local_workers.py); None for others."""
    from pipelines.local_workers import local_runner
    from pipelines.options import LOCAL_RUNNER, resolve_runner

    return local_runner(options) if resolve_runner(args.runner) == LOCAL_RUNNER else None


def _check_baselines(path: Optional[str]) -> None:
    if path and not os.path.isfile(path):
        raise UsageError(f"cannot read baselines {path!r}: no such file")


def run_train(args, beam_args: List[str]) -> int:
    import apache_beam as beam

    from pipelines.detect import build_training_pipeline

    _check_input(args.input)
    _check_output_dir(os.path.dirname(os.path.abspath(args.output)))
    _load_settings(args)
    _check_baselines(args.baselines)
    options = _pipeline_options(args, beam_args)
    started = time.monotonic()
    local = _local_runner(args, options)
    pipeline = beam.Pipeline(runner=local, options=options)
    build_training_pipeline(pipeline, options)
    interrupt = _Interruptible()
    try:
        with interrupt:
            result = _run_job(pipeline.run, local is not None)
            result.wait_until_finish()
    except Exception as err:
        if interrupt.seen.is_set():  # the workers' end after a Ctrl-C, met before the signal
            raise KeyboardInterrupt from None
        if args.verbose:
            raise
        return _failed("train", err)
    totals = _counter_totals(result)
    print(
        f"guetteur train: {totals.get('events_accepted', 0):,} events, {totals.get('accounts_tracked', 0):,} accounts "
        f"learned in {time.monotonic() - started:.1f} s -> {args.output}",
        file=sys.stderr,
    )
    return 0


def run_simulate(args) -> int:
    from pipelines.simulation import write_simulation
    from pipelines.simulation.scenarios import check_scenarios

    scenarios = None
    if args.scenarios is not None:
        scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
        try:
            check_scenarios(scenarios, args.days)
        except ValueError as err:
            raise UsageError(f"guetteur simulate: --scenarios: {err}") from None
    _check_output_dir(args.output)
    try:
        summary = write_simulation(args.output, seed=args.seed, days=args.days, actors=args.actors,
                                   scenarios=scenarios)
    except ValueError as err:  # e.g. a population too small for a named scenario
        raise UsageError(f"guetteur simulate: {err}") from None
    print(json.dumps(summary, sort_keys=True))
    return 0


def _load_alerts(pattern: str):
    from pipelines.evaluation import load_alerts

    try:
        return load_alerts(pattern)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read alerts {pattern!r}: {err}") from None


def run_evaluate(args) -> int:
    from pipelines.evaluation import evaluate

    alerts = _load_alerts(args.alerts)
    try:
        with open(args.labels, "rb") as handle:
            labels = json.load(handle)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read labels {args.labels!r}: {err}") from None
    print(json.dumps(evaluate(alerts, labels), indent=2, sort_keys=True))
    return 0


def run_show(args) -> int:
    from pipelines.alert_table import format_alert_table

    print(format_alert_table(_load_alerts(args.alerts), limit=args.limit))
    return 0


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(QuietBeam())


def _may_run_local_workers(args, beam_args: List[str]) -> bool:
    """Whether this job may run on local worker processes, judged before Beam is imported: then their
    zygote starts now (pipelines/warm_workers.py); if the job ends up in this process, it is stopped."""
    return (args.runner == "local" and not args.input.startswith("kafka://") and args.workers != 1
            and (os.cpu_count() or 1) > 1
            and not any(arg.startswith(("--direct_num_workers", "--direct_running_mode")) for arg in beam_args))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = _parser().parse_known_args(argv)
        if args.command not in ("detect", "train") and extra:
            raise UsageError(f"guetteur {args.command}: unrecognized arguments: {' '.join(extra)}")
        _configure_logging(args.verbose)
        if args.command in ("detect", "train"):
            if _may_run_local_workers(args, extra):
                warm_workers.warm_up()
            with kept_for_good():
                importlib.import_module("pipelines.detect")
            try:
                if args.command == "detect":
                    _check_baselines(args.baselines)
                    return run_detect(args, extra)
                return run_train(args, extra)
            finally:
                warm_workers.cool_down()
        if args.command == "simulate":
            return run_simulate(args)
        if args.command == "evaluate":
            return run_evaluate(args)
        return run_show(args)
    except UsageError as err:
        print(f"guetteur: {err}" if not str(err).startswith("guetteur") else str(err), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("guetteur: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `guetteur` command: `main()`, then out without taking the interpreter apart.

    What an exit owes is done: threads still working are waited for and exit handlers run (Beam's
    portable runner stops the job server it started through one). The modules are not finalised
    one by one: with Beam, pyarrow and gRPC loaded that took a quarter of a second on every command,
    after every output had been written and closed.
    """
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what the interpreter runs on its way out; there is no public name for it
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader gone (`guetteur show | head`), a stream closed
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
