"""A small simulated replay through `guetteur detect`'s pipeline, for tests that compare against it."""

import apache_beam as beam

from pipelines.detect import build_pipeline
from pipelines.options import LOCAL_RUNNER, GuetteurOptions
from pipelines.simulation import write_simulation


def replay_simulation(workdir):
    """(events path, the sorted lines of alerts.jsonl) for five simulated days of 30 accounts, seed 11."""
    write_simulation(str(workdir / "sim"), seed=11, days=5, actors=30)
    path = str(workdir / "sim" / "events.jsonl")
    options = GuetteurOptions([f"--runner={LOCAL_RUNNER}", f"--input={path}", f"--output={workdir / 'out'}"])
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, options)
    return path, sorted(open(workdir / "out" / "alerts.jsonl", "rb").read().splitlines())
