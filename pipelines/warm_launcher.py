"""The local runner's worker command when a zygote is up (pipelines/warm_workers.py).

    python -S warm_launcher.py ADDRESS COLD_COMMAND...

Hands this process's environment (the runner's control and logging addresses, the pipeline options,
the worker id) to the zygote listening at the abstract Unix address ADDRESS, then waits for the worker
the zygote forked to end and exits with its status, as the worker itself would have. If no zygote
answers, or it goes before the worker started, this process becomes COLD_COMMAND: the worker starts
cold. Standard library only, and run without `site`, so that relaying costs a few milliseconds.
"""

import json
import os
import signal
import socket
import struct
import sys

STARTED = b"+"  # pipelines/warm_workers.py sends it once the forked worker runs


def _hand_over(address: str):
    """A connection to the worker the zygote forked for this environment; None if there is none."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect("\0" + address)
        payload = json.dumps(dict(os.environ)).encode("utf-8")
        conn.sendall(struct.pack(">I", len(payload)) + payload)
        if conn.recv(1) == STARTED:
            return conn
    except OSError:
        pass
    conn.close()
    return None


def main(argv) -> int:
    address, cold = argv[1], argv[2:]
    # Ctrl-C reaches every process of the terminal's group: the worker ends of it (pipelines/quiet_worker.py),
    # and this relay reports how.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = _hand_over(address)
    if conn is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp(cold[0], cold)
    try:
        status = conn.recv(1)
    except OSError:
        status = b""
    return status[0] if status else 1  # gone without a status: it died as a cold worker would have failed


if __name__ == "__main__":
    sys.exit(main(sys.argv))
