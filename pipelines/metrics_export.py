"""Beam metrics as Prometheus metrics: served while a job runs, written to a file when it ends.

What is exported
    Every Beam user counter and gauge, named `<namespace>_<name>` with characters
    outside `[a-zA-Z0-9_:]` replaced by `_` — for Guetteur `guetteur_lines_read`,
    `guetteur_dead_lettered_invalid_json`, `guetteur_event_time_position_ms`, ...
    That is exactly the tail of what Flink's Prometheus reporter produces for the
    same Beam metrics (`flink_taskmanager_job_task_operator_guetteur_lines_read`),
    so one Prometheus relabelling (deploy/prometheus/prometheus.yml) maps both onto
    the same series and one dashboard serves both runners. Counters are exposed
    without a `_total` suffix (and so as `untyped`: prometheus-client appends
    `_total` to anything typed `counter`), like Flink's reporter, which exposes
    them as gauges. Beam distributions are left out: Flink's reporter drops them
    too, so nothing may depend on them. The exporter adds `guetteur_job_state`
    (one sample per state, the current one at 1).

Where live values come from
    The local runner (FnApiRunner) runs the whole job inside `pipeline.run()` and
    hands back its metrics only at the end; in a batch replay the read stage is a
    single bundle over the whole input (or a few). `LiveFnApiRunner` keeps what finished
    bundles reported and, for bundles still running on the in-process SDK worker,
    asks that worker for progress (the Fn API `ProcessBundleProgressRequest` a
    remote runner would send), so counters move while a bundle is still reading.
    On runners whose `run()` returns while the job runs (Flink, Prism, Dataflow)
    the live values are `result.metrics()`; on Flink, Flink's own reporter is the
    one Prometheus should scrape.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from apache_beam.metrics import monitoring_infos as beam_mi
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

METRICS_NAMESPACE = "guetteur"  # transforms.read_events.METRICS_NAMESPACE, without importing the pipeline
DEFAULT_METRICS_ADDRESS = "127.0.0.1"

# Counters every Guetteur job has; exported at 0 until Beam reports them, so that
# rate() and the dashboards have a series from the first scrape.
CORE_COUNTERS = (
    "lines_read",
    "events_accepted",
    "dead_lettered",
    "events_duplicate",
    "windows_scored",
    "late_windows",
    "accounts_tracked",
)
JOB_STATES = ("running", "done", "failed")

MetricKey = Tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class MetricsSnapshot:
    """User metrics of a job at one moment, summed over the steps that report them."""

    counters: Dict[MetricKey, int] = field(default_factory=dict)
    gauges: Dict[MetricKey, Tuple[int, float]] = field(default_factory=dict)  # value, when set (s)

    def counter(self, name: str, namespace: str = METRICS_NAMESPACE) -> int:
        return self.counters.get((namespace, name), 0)

    def gauge(self, name: str, namespace: str = METRICS_NAMESPACE) -> Optional[int]:
        found = self.gauges.get((namespace, name))
        return None if found is None else found[0]


def _add_gauge(gauges: Dict[MetricKey, Tuple[int, float]], key: MetricKey, value: int, when: float) -> None:
    # Beam's own rule across bundles and steps: the most recently set value wins.
    known = gauges.get(key)
    if known is None or when >= known[1]:
        gauges[key] = (int(value), when)


def snapshot_from_monitoring_infos(infos: Iterable) -> MetricsSnapshot:
    """Counters and gauges out of Fn API MonitoringInfos (user metrics only)."""
    counters: Dict[MetricKey, int] = {}
    gauges: Dict[MetricKey, Tuple[int, float]] = {}
    for info in beam_mi.consolidate(info for info in infos if beam_mi.is_user_monitoring_info(info)):
        key = beam_mi.parse_namespace_and_name(info)
        if beam_mi.is_counter(info):
            counters[key] = counters.get(key, 0) + int(beam_mi.extract_metric_result_map_value(info))
        elif beam_mi.is_gauge(info):
            result = beam_mi.extract_metric_result_map_value(info)
            _add_gauge(gauges, key, result.value, result.timestamp)
    return MetricsSnapshot(counters, gauges)


def snapshot_from_results(results) -> MetricsSnapshot:
    """Counters and gauges out of a runner's MetricResults (`PipelineResult.metrics()`)."""
    queried = results.query()
    counters: Dict[MetricKey, int] = {}
    gauges: Dict[MetricKey, Tuple[int, float]] = {}
    for result in queried.get("counters", ()):
        key = (result.key.metric.namespace, result.key.metric.name)
        value = result.committed if result.committed is not None else result.attempted
        counters[key] = counters.get(key, 0) + int(value or 0)
    for result in queried.get("gauges", ()):
        value = result.committed if result.committed is not None else result.attempted
        if value is None or value.value is None:
            continue
        key = (result.key.metric.namespace, result.key.metric.name)
        _add_gauge(gauges, key, value.value, value.timestamp or 0.0)
    return MetricsSnapshot(counters, gauges)


class LiveFnApiRunner(FnApiRunner):
    """Beam's local FnApiRunner, with metrics that can be read while `run()` is still running.

    `live_snapshot()` may be called from any thread. Values are a lower bound of
    the truth at that moment (a bundle finishing during the read may be missed
    once); `JobMetrics` keeps what it exposes monotonic.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._live_lock = threading.Lock()
        self._finished_infos: List = []  # user MonitoringInfos of finished bundles, consolidated
        self._worker_handlers: List = []

    # FnApiRunner runs every bundle of every stage through this method.
    def _execute_bundle(self, runner_execution_context, bundle_context_manager, bundle_input):
        with self._live_lock:
            for handler in bundle_context_manager.worker_handlers:
                if not any(handler is known for known in self._worker_handlers):
                    self._worker_handlers.append(handler)
        results = super()._execute_bundle(runner_execution_context, bundle_context_manager, bundle_input)
        reported = [i for i in results.process_bundle.monitoring_infos if beam_mi.is_user_monitoring_info(i)]
        with self._live_lock:
            self._finished_infos = list(beam_mi.consolidate(itertools.chain(self._finished_infos, reported)))
        return results

    def _in_flight_infos(self, handler) -> List:
        cache = getattr(handler, "bundle_processor_cache", None)
        if cache is None:  # an out-of-process SDK worker: its bundles count once they finish
            return []
        infos: List = []
        for instruction_id in list(cache.active_bundle_processors):
            request = beam_fn_api_pb2.InstructionRequest(
                process_bundle_progress=beam_fn_api_pb2.ProcessBundleProgressRequest(instruction_id=instruction_id)
            )
            try:
                response = handler.control_conn.push(request).get()
            except Exception:  # the bundle ended, or the worker is shutting down
                continue
            if not response.error:
                infos.extend(response.process_bundle_progress.monitoring_infos)
        return infos

    def live_snapshot(self) -> MetricsSnapshot:
        # Under the lock, a bundle cannot be both folded into the finished infos
        # and still reported as in flight: it is never counted twice.
        with self._live_lock:
            infos = list(self._finished_infos)
            for handler in self._worker_handlers:
                infos.extend(self._in_flight_infos(handler))
        return snapshot_from_monitoring_infos(infos)


class JobMetrics:
    """The latest metrics of one job, from whichever source is live, kept monotonic."""

    def __init__(self, runner: Optional[LiveFnApiRunner] = None):
        self._runner = runner
        self._result = None
        self._final: Optional[MetricsSnapshot] = None
        self._last = MetricsSnapshot()
        self._state = "running"
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return self._state

    def attach_result(self, result) -> None:
        """For runners whose run() returns while the job runs: read live values from the result."""
        self._result = result

    def finish(self, result, state: str) -> MetricsSnapshot:
        """The job ended: its final metrics are the runner's own, exact figures."""
        final = None
        if result is not None:
            try:
                final = snapshot_from_results(result.metrics())
            except Exception:  # some runners report no metrics to the client
                final = None
        with self._lock:
            self._final = final or self._read_live()
            self._last = self._final
            self._state = state
            return self._final

    def _read_live(self) -> MetricsSnapshot:
        fresh = None
        try:
            if self._result is not None:
                fresh = snapshot_from_results(self._result.metrics())
            elif self._runner is not None:
                fresh = self._runner.live_snapshot()
        except Exception:
            fresh = None
        if fresh is None:
            return self._last
        # A counter never goes down: a read that missed a bundle between its
        # progress report and its final report keeps the previous value.
        counters = dict(self._last.counters)
        for key, value in fresh.counters.items():
            counters[key] = max(value, counters.get(key, 0))
        gauges = dict(self._last.gauges)
        for key, (value, when) in fresh.gauges.items():
            _add_gauge(gauges, key, value, when)
        return MetricsSnapshot(counters, gauges)

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            if self._final is None:
                self._last = self._read_live()
            return self._last


def prometheus_name(namespace: str, name: str) -> str:
    """The Prometheus name of a Beam metric: what Flink's reporter puts after its scope prefix."""
    joined = re.sub(r"[^a-zA-Z0-9_:]", "_", f"{namespace}_{name}")
    return joined if not joined[0].isdigit() else f"_{joined}"


class BeamMetricsCollector:
    """A prometheus-client collector over a JobMetrics: each scrape reads fresh values."""

    def __init__(self, job: JobMetrics):
        self._job = job
        self.scrapes = 0
        self.scraped = threading.Event()  # set once a scrape has been answered

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily

        self.scrapes += 1
        snapshot = self._job.snapshot()
        counters = dict(snapshot.counters)
        for name in CORE_COUNTERS:
            counters.setdefault((METRICS_NAMESPACE, name), 0)
        for (namespace, name), value in sorted(counters.items()):
            yield UnknownMetricFamily(
                prometheus_name(namespace, name),
                f"Beam counter {namespace}/{name} (monotonic: use rate() or increase())",
                value=value,
            )
        for (namespace, name), (value, _) in sorted(snapshot.gauges.items()):
            yield GaugeMetricFamily(prometheus_name(namespace, name), f"Beam gauge {namespace}/{name}", value=value)
        state = GaugeMetricFamily(
            f"{METRICS_NAMESPACE}_job_state", "State of this guetteur job: 1 for the current one", labels=["state"]
        )
        for name in JOB_STATES:
            state.add_metric([name], 1 if self._job.state == name else 0)
        yield state
        self.scraped.set()


class MetricsExporter:
    """Serves a job's metrics over HTTP while it runs, and writes them to a file when it ends."""

    def __init__(self, job: JobMetrics, port: Optional[int] = None, address: str = DEFAULT_METRICS_ADDRESS,
                 path: Optional[str] = None):
        from prometheus_client import CollectorRegistry

        self._job = job
        self._collector = BeamMetricsCollector(job)
        self.path = path
        self._server = None
        self.address = address
        self.port = port
        self._file_registry = CollectorRegistry(auto_describe=False)
        self._file_registry.register(self._collector)
        if port is not None:
            from prometheus_client import ProcessCollector, start_http_server

            registry = CollectorRegistry(auto_describe=False)
            registry.register(self._collector)
            ProcessCollector(registry=registry)
            self._server, _ = start_http_server(port, addr=address, registry=registry)  # OSError if taken
            self.port = self._server.server_port

    @property
    def url(self) -> Optional[str]:
        if self._server is None:
            return None
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    @property
    def scrapes(self) -> int:
        return self._collector.scrapes

    def write_file(self) -> None:
        from prometheus_client import write_to_textfile

        if self.path:
            write_to_textfile(self.path, self._file_registry)

    def wait_for_scrape(self, seconds: float) -> bool:
        """Waits up to `seconds` for a first scrape (so a short batch job is seen from zero)."""
        if self._server is None or seconds <= 0:
            return False
        return self._collector.scraped.wait(seconds)

    def linger(self, seconds: float) -> None:
        """Keeps serving the final values for `seconds` (so a scraper sees how a batch job ended).

        Ctrl-C or SIGTERM ends the wait early, as a normal end.
        """
        if self._server is None or seconds <= 0:
            return
        done = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            done.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def check_metrics_file(path: str) -> None:
    """Raises ValueError when the metrics file could not be written at the end of the job."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ValueError("is a directory")
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise ValueError(f"directory {directory!r} is not writable")


class JobObservation:
    """Everything that watches one job run: the Prometheus exporter, the metrics file, the progress line.

    `runner` is what to give `beam.Pipeline(runner=...)`: for the local runner, a LiveFnApiRunner when
    something watches, else the local runner `options` call for (pipelines/local_workers.py); None for
    the others (Beam picks the runner from the options).
    """

    def __init__(self, runner_name: str, local_runner_name: str, *, port: Optional[int] = None,
                 address: str = DEFAULT_METRICS_ADDRESS, path: Optional[str] = None, linger: float = 0.0,
                 wait: float = 0.0, progress=None, stream=None, options=None):
        from pipelines.progress import ProgressReporter

        self.stream = stream if stream is not None else sys.stderr
        watching = port is not None or path is not None or progress is not None
        self.runner = None
        if runner_name == local_runner_name and (watching or options is not None):
            from pipelines.local_workers import local_runner

            self.runner = local_runner(options, LiveFnApiRunner if watching else None) if options is not None \
                else LiveFnApiRunner()
        self.job = JobMetrics(self.runner if watching else None)
        self.exporter = MetricsExporter(self.job, port, address, path) if (port is not None or path) else None
        self.progress: Optional[ProgressReporter] = None
        if progress is not None:
            self.progress = ProgressReporter(self.job, stream=self.stream, tty=progress == "tty")
        self.linger_seconds = linger
        self.wait_seconds = wait
        self.ok = True

    @property
    def watching(self) -> bool:
        return self.exporter is not None or self.progress is not None

    def run(self, pipeline):
        """pipeline.run() and wait; metrics stay readable throughout. Returns the PipelineResult."""
        if self.exporter is not None and self.exporter.url:
            print(f"guetteur detect: metrics on {self.exporter.url}", file=self.stream)
            if self.wait_seconds > 0:
                print(f"guetteur detect: waiting up to {self.wait_seconds:g} s for a first scrape", file=self.stream)
                self.exporter.wait_for_scrape(self.wait_seconds)
        if self.progress is not None:
            self.progress.start()
        result, state = None, "failed"
        try:
            result = pipeline.run()
            if self.runner is None:
                self.job.attach_result(result)
            result.wait_until_finish()
            state = "done"
            return result
        finally:
            final = self.job.finish(result, state)
            if self.progress is not None:
                self.progress.stop(final)
            if self.exporter is not None:
                try:
                    self.exporter.write_file()
                except OSError as err:
                    self.ok = False
                    print(f"guetteur detect: cannot write --metrics-file {self.exporter.path!r}: {err.strerror or err}",
                          file=self.stream)

    def close(self, linger: bool = True) -> None:
        """After the job: serve the final values for the linger time, then stop serving."""
        if self.exporter is not None:
            try:
                if linger and self.exporter.url and self.linger_seconds > 0:
                    print(f"guetteur detect: serving the final metrics on {self.exporter.url} for "
                          f"{self.linger_seconds:g} s (Ctrl-C to stop)", file=self.stream)
                    self.exporter.linger(self.linger_seconds)
            finally:
                self.exporter.close()
