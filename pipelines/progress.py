"""A progress line on stderr while a long replay runs: lines done, rate, event-time position.

On a terminal the line is redrawn in place every couple of seconds and cleared
at the end (the command's own summary line follows). Elsewhere — a log file, CI —
it prints nothing unless asked (`guetteur detect --progress`), and then one line
every ten seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable, Optional

from pipelines.metrics_export import METRICS_NAMESPACE, MetricsSnapshot

TTY_INTERVAL_S = 2.0
LOG_INTERVAL_S = 10.0


def _format_event_time(ms: Optional[int]) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def format_progress(snapshot: MetricsSnapshot, elapsed_s: float, lines_per_s: float, windows_per_s: float = 0.0) -> str:
    """One progress line. Pure, for tests."""
    alerts = sum(v for (ns, name), v in snapshot.counters.items() if ns == METRICS_NAMESPACE and name.startswith("alerts_"))
    parts = [
        f"{snapshot.counter('lines_read'):,} lines ({lines_per_s:,.0f}/s)",
        f"event time {_format_event_time(snapshot.gauge('event_time_position_ms'))}",
        f"{snapshot.counter('dead_lettered'):,} dead letters",
    ]
    if snapshot.counter("windows_scored"):
        parts.append(f"{snapshot.counter('windows_scored'):,} windows scored ({windows_per_s:,.0f}/s)")
    if alerts:
        parts.append(f"{alerts:,} alerts")
    parts.append(_format_elapsed(elapsed_s))
    return "guetteur detect: " + ", ".join(parts)


class ProgressReporter:
    """Polls a JobMetrics on a daemon thread and writes the progress line to `stream`."""

    def __init__(self, job, stream, tty: bool, interval: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        self._job = job
        self._stream = stream
        self._tty = tty
        self._interval = interval if interval is not None else (TTY_INTERVAL_S if tty else LOG_INTERVAL_S)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = clock()
        self._last_at = self._started
        self._last_lines = 0
        self._last_windows = 0
        self._drawn = False

    def start(self) -> None:
        self._started = self._last_at = self._clock()
        self._thread = threading.Thread(target=self._loop, name="guetteur-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.report(self._job.snapshot())
            except Exception:  # progress must never break the job
                pass

    def report(self, snapshot: MetricsSnapshot) -> str:
        now = self._clock()
        lines, windows = snapshot.counter("lines_read"), snapshot.counter("windows_scored")
        span = now - self._last_at

        def rate(count, last):
            return max(count - last, 0) / span if span > 0 else 0.0

        line = format_progress(snapshot, now - self._started, rate(lines, self._last_lines),
                               rate(windows, self._last_windows))
        self._last_at, self._last_lines, self._last_windows = now, lines, windows
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        return line

    def stop(self, final: Optional[MetricsSnapshot] = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._tty and self._drawn:  # the command's summary line takes its place
            self._stream.write("\r\x1b[K")
            self._stream.flush()
