"""A worker process of the local runner (`guetteur detect --workers N`): Beam's SDK worker, quiet.

Beam starts each worker as `python -m apache_beam.runners.worker.sdk_worker_main`, whose imports
install a stderr handler on the root logger and whose harness logs at INFO: a dozen lines per worker
on the user's terminal, on every run. Here a stderr handler that hides Beam's own lines below ERROR
(as the `guetteur` command does) is in place before Beam is imported; everything the worker logs
still reaches the runner process through Beam's logging service, where `guetteur -v` shows it.
"""

import logging
import sys


def main(argv=None) -> None:
    from pipelines.quiet_logs import QuietBeam

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(QuietBeam())
    handler.setFormatter(logging.Formatter("worker %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(argv if argv is not None else sys.argv)


if __name__ == "__main__":
    main()
