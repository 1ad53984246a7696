"""Local worker processes that start warm: forked from a process that imported Beam while the command did.

A worker of the local runner is a new Python process, and it spends most of a second importing Beam,
numpy and pyarrow before it can take its first bundle; the command started it only once it had itself
imported Beam and built the pipeline. So for about a second one core is idle, then both import, and
that is on every replay's critical path.

Here the command starts one spare interpreter (the zygote) first thing, and the zygote imports what a
worker needs on the other core while the command imports and builds. When the runner then asks for a
worker, its command (`pipelines/warm_launcher.py`) hands the worker's environment to the zygote over a
Unix socket; the zygote forks a child that runs Beam's SDK harness as `pipelines/quiet_worker.py`
would, and the launcher relays the child's exit status to the runner. A launcher that finds no zygote
starts the worker cold, as before, so a zygote that is gone or never came up costs nothing but time.

Forking is safe because the zygote forks before any gRPC channel, thread pool or worker state exists:
it refuses to serve (and the workers start cold) if its imports left a second thread running. The
zygote lives as long as the command: its stdin is a pipe the command holds open. On Ctrl-C it ends,
and ends the workers it forked first (the command passes a Ctrl-C on, should only it have got one);
a worker it forked dies with it in any case (`quiet_worker.die_with_parent`).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
from typing import Callable, Optional, Set

from pipelines.quiet_worker import die_with_parent, end_on_interrupt, quiet_stderr
from pipelines.warm_launcher import STARTED  # what a forked worker answers first, before its exit status
from transforms.gc_pause import kept_for_good

# The modules a worker imports before its first bundle: Beam's harness, and what unpickling the
# pipeline's DoFns imports (every transform `guetteur detect` and `train` run).
WARM_MODULES = ("apache_beam.runners.worker.sdk_worker_main", "pipelines.detect")
# numpy's OpenBLAS and pyarrow's jemalloc each start a thread when loaded, unless told not to; a worker
# needs neither (it does no linear algebra, and jemalloc then purges as it goes), and without them the
# zygote can fork. A user's own setting of either is kept: then the zygote declines and workers start cold.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warm_launcher.py")


def supported() -> bool:
    """Forking and abstract Unix sockets are Linux's; elsewhere workers start cold."""
    return sys.platform.startswith("linux")


def cold_worker_command() -> str:
    # `exec`: the runner starts its worker command through a shell, which need not stay between them, so
    # the worker's parent is this process, with which it dies.
    return f"exec {shlex.quote(sys.executable)} -m pipelines.quiet_worker --parent {os.getpid()}"


_zygote: Optional["Zygote"] = None


def warm_up() -> None:
    """Start the zygote this process's local workers are forked from, if it can run here.

    The `guetteur` command calls it before importing Beam (hence a module of the standard library only),
    so that the zygote's imports run on another core meanwhile.
    """
    global _zygote
    if _zygote is None and supported():
        _zygote = Zygote.start()


def cool_down() -> None:
    """Stop the zygote (the job runs in this process, or has ended); workers started after start cold."""
    global _zygote
    if _zygote is not None:
        _zygote.stop()
        _zygote = None


def interrupt() -> None:
    """The command was interrupted: its workers end now (the runner would otherwise wait for them)."""
    if _zygote is not None:
        _zygote.interrupt()


def worker_command() -> str:
    """The local runner's worker command: through the zygote when one is up, cold otherwise."""
    if _zygote is not None and _zygote.alive():
        return _zygote.worker_command()
    return cold_worker_command()


class Zygote:
    """The command's handle on its zygote: the address launchers reach it at, and the pipe that keeps it alive."""

    def __init__(self, address: str, process: subprocess.Popen):
        self.address = address
        self._process = process

    @classmethod
    def start(cls, target: str = "pipelines.quiet_worker:run_harness",
              warm_modules=WARM_MODULES) -> "Zygote":
        """Bind the address, then start the zygote with the listening socket; launchers that connect
        before it has finished importing wait in the socket's backlog."""
        address = f"guetteur-workers-{os.getpid()}-{secrets.token_hex(6)}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind("\0" + address)
        listener.listen(16)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.warm_workers", str(listener.fileno()), target, *warm_modules],
                stdin=subprocess.PIPE, pass_fds=(listener.fileno(),), env={**SINGLE_THREADED, **os.environ},
            )
        finally:
            # Only the zygote holds the socket from here: once it is gone, launchers are refused and go cold.
            listener.close()
        return cls(address, process)

    def worker_command(self) -> str:
        """The worker command line for the runner: the launcher, with the cold command to fall back to."""
        cold = cold_worker_command().removeprefix("exec ")
        return f"exec {shlex.quote(sys.executable)} -S {shlex.quote(LAUNCHER)} {self.address} {cold}"

    def alive(self) -> bool:
        return self._process.poll() is None

    def interrupt(self) -> None:
        """Pass a Ctrl-C on to the zygote, which ends the workers it forked (a terminal's reaches them anyway)."""
        if self.alive():
            self._process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Cut the lifeline: the zygote exits (workers it forked run on until the runner stops them)."""
        if self._process.stdin and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _read_exactly(conn: socket.socket, size: int) -> Optional[bytes]:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _receive_environment(conn: socket.socket) -> Optional[dict]:
    """The worker's environment as the launcher sends it: a 4-byte length, then JSON; None if cut short."""
    conn.settimeout(10)
    try:
        header = _read_exactly(conn, 4)
        payload = header and _read_exactly(conn, struct.unpack(">I", header)[0])
        return json.loads(payload) if payload else None
    except (OSError, ValueError):
        return None


def _run_worker(conn: socket.socket, environment: dict, target: Callable[[], None], zygote: int) -> None:
    """In the forked child: become the worker the runner asked for, then report how it ended."""
    end_on_interrupt()
    _children.clear()
    die_with_parent(zygote)  # which ends with the command
    conn.settimeout(None)
    os.environ.clear()
    os.environ.update(environment)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # not the zygote's lifeline
    os.close(devnull)
    sys.argv = [sys.argv[0]]
    code = 1
    try:
        conn.sendall(STARTED)
        target()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # noqa: BLE001 -- reported like an uncaught exception in a cold worker
        import traceback

        traceback.print_exc()
    finally:
        try:
            conn.sendall(bytes([code & 0xFF]))
        except OSError:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


_children: Set[int] = set()  # workers forked and not yet reaped: their pids cannot have been reused


def _reap() -> None:
    while _children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if not pid:
            return
        _children.discard(pid)


def _end_workers(signum, frame) -> None:
    """Ctrl-C, from the terminal or passed on by the command: the workers end with the zygote."""
    for pid in _children:
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    os._exit(130)


def serve(listener: socket.socket, target: Callable[[], None]) -> None:
    """Fork a worker per launcher that connects, until the lifeline (stdin) closes."""
    signal.signal(signal.SIGINT, _end_workers)
    while True:
        ready, _, _ = select.select([listener, sys.stdin.fileno()], [], [], 1.0)
        _reap()
        if sys.stdin.fileno() in ready and not os.read(sys.stdin.fileno(), 1):
            return
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        environment = _receive_environment(conn)
        if environment is not None:
            zygote = os.getpid()
            try:
                pid = os.fork()
            except OSError:
                pid = None  # no child: the launcher sees the connection close before STARTED and goes cold
            if pid == 0:
                listener.close()
                _run_worker(conn, environment, target, zygote)
            elif pid:
                _children.add(pid)
        conn.close()


def _resolve(target: str) -> Callable[[], None]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv) -> None:
    listener_fd, target, *warm_modules = argv[1:]
    listener = socket.socket(fileno=int(listener_fd))
    end_on_interrupt()  # until it serves: then it ends the workers it forked too (`_end_workers`)
    quiet_stderr()  # before Beam's imports, which would otherwise install their own stderr handler
    try:
        with kept_for_good():  # also spares the forked workers' collections from walking what they share
            for module in warm_modules:
                importlib.import_module(module)
        run = _resolve(target)
    except Exception:  # noqa: BLE001 -- a cold worker will meet the same error and report it where it matters
        return
    if _threads() > 1:
        return  # forking a process with threads is not safe: let every worker start cold
    serve(listener, run)


if __name__ == "__main__":
    main(sys.argv)
    os._exit(0)
