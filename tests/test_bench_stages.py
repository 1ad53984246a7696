"""The stage-by-stage bench runs the replay's own code and raises what `guetteur detect` raises."""

from pipelines.bench_stages import main, run_stages
from transforms.detection_config import DetectionConfig

from tests.simulated_replay import replay_simulation


def test_its_alerts_are_those_guetteur_detect_writes_for_the_same_file(tmp_path):
    path, written = replay_simulation(tmp_path)
    dead = open(tmp_path / "out" / "deadletter.jsonl", "rb").read().splitlines()

    report = run_stages(path, DetectionConfig())
    assert len(written) >= 3  # the simulation's incidents alert: not an empty comparison
    assert report["alert_lines"] == written
    assert report["stages"]["fold"]["dead_letters"] == len(dead)
    assert report["stages"]["merge"]["accounts"] >= 30
    assert all(stage["cpu_s"] > 0 for stage in report["stages"].values())


def test_no_matching_file_or_a_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--input", str(tmp_path / "nothing-*.jsonl")]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[volume]\nnot_a_setting = 1\n")
    (tmp_path / "e.jsonl").write_text("")
    assert main(["--input", str(tmp_path / "e.jsonl"), "--detection-config", str(bad)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("bench_stages: ") for line in lines)
