"""Flex Template entry point: `guetteur detect` options in, a Dataflow job out (launched, not awaited).

The launcher calls `python main.py --input=... --output=... --runner=DataflowRunner --project=...
--region=... --temp_location=...` with the template parameters of metadata.json as flags.
"""

import logging

import apache_beam as beam

from pipelines.detect import build_pipeline
from pipelines.options import GuetteurOptions


def run(argv=None):
    options = GuetteurOptions(argv)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    return pipeline.run()  # the launcher exits once the job is submitted


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    run()
