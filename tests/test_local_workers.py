"""How many worker processes `guetteur detect` gives the local runner by default."""

import gzip

from pipelines.local_workers import default_workers, input_ranges, local_runner, local_worker_args
from transforms.batch_ingest import RANGE_BYTES


def _sized(path, size):
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: no need to write the bytes
    return str(path)


def test_ranges_follow_the_reader_s_cut(tmp_path):
    _sized(tmp_path / "a.jsonl", 2 * RANGE_BYTES + 1)  # three ranges
    _sized(tmp_path / "b.jsonl", 10)  # one
    with gzip.open(tmp_path / "c.jsonl.gz", "wb") as handle:  # one, whatever its size: it cannot be split
        handle.write(b"{}\n" * 10)
    assert input_ranges(str(tmp_path / "*")) == 5


def test_one_worker_per_core_for_a_large_input_and_none_for_a_small_one(tmp_path):
    small = _sized(tmp_path / "small.jsonl", RANGE_BYTES)
    large = _sized(tmp_path / "large.jsonl", 8 * RANGE_BYTES)
    assert default_workers(small, cores=2) == 1
    assert default_workers(large, cores=2) == 2
    assert default_workers(large, cores=16) == 8  # no more workers than ranges
    assert local_worker_args(small, None, []) == []
    assert local_worker_args(large, 2, []) == ["--direct_num_workers=2"]
    # Beam's own options, when given, are the user's choice.
    assert local_worker_args(large, None, ["--direct_num_workers=3"]) == []


def test_several_workers_run_as_quiet_subprocesses_and_one_runs_in_process():
    from apache_beam.options.pipeline_options import PipelineOptions

    several = local_runner(PipelineOptions(["--direct_num_workers=2"]))
    assert "pipelines.quiet_worker" in several._default_environment.command_string
    assert not hasattr(local_runner(PipelineOptions([]))._default_environment, "command_string")  # in process
    # Beam's own multi_processing mode, when asked for, is left as Beam makes it.
    beam_mode = local_runner(PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]))
    assert not hasattr(beam_mode._default_environment, "command_string")


def _sampling_periods(tmp_path, flags):
    """The state sampler's period each worker's bundles ran under, as a DoFn there reads it."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(flags)
    with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
        _ = (
            pipeline
            | beam.Create(range(4))
            | beam.Map(lambda _: __import__("apache_beam.runners.worker.statesampler", fromlist=["_"])
                       .get_current_tracker().sampling_period_ms)
            | beam.io.WriteToText(str(tmp_path / "periods"), num_shards=1, shard_name_template="")
        )
    return set((tmp_path / "periods").read_text().split())


def test_bundles_end_when_their_work_does_in_worker_processes_and_in_process(tmp_path):
    # Beam's state sampler finishes its sleep before a bundle can end: short, it keeps no bundle waiting.
    from pipelines.quiet_worker import SAMPLING_PERIOD_MS

    assert _sampling_periods(tmp_path / "two", ["--direct_num_workers=2"]) == {str(SAMPLING_PERIOD_MS)}
    assert _sampling_periods(tmp_path / "one", []) == {str(SAMPLING_PERIOD_MS)}
