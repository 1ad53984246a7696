"""`python -m pipelines` is the `guetteur` command."""

from pipelines.cli import run

run()
