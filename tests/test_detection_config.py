"""The documented settings file and the loader agree, and bad files are refused."""

import pytest

from transforms.detection_config import DetectionConfig, RolePrior, load_detection_config

DOCUMENTED = "deploy/detection.toml"


def test_the_documented_file_states_exactly_the_defaults():
    assert load_detection_config(DOCUMENTED) == DetectionConfig()


def test_overrides_apply_and_the_rest_stays_default(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("window_minutes = 10\n[volume]\nfloor_1h = 80\n[role_priors.training_org]\nrecords_1h = 35\n")
    config = load_detection_config(str(path))
    assert config.window_minutes == 10 and config.volume.floor("1h") == 80.0
    assert config.role_prior("training_org").records("1h") == 35.0
    assert config.role_prior("training_org").records("5m") == RolePrior().records_5m
    assert config.volume.multiplier("1d") == DetectionConfig().volume.multiplier("1d")
    assert config.role_prior("unknown-role") == DetectionConfig().role_prior("default")


@pytest.mark.parametrize(
    "text",
    [
        "windows_minutes = 5\n",
        "window_minutes = 0\n",
        "window_minutes = 7\n",
        "[volume]\nmultiplierr = 3\n",
        "[volume]\nfloor_5m = 'high'\n",
        "[role_priors]\nadvisor = 20\n",
        "[role_priors.advisor]\nrecords_5m = -1\n",
        "[thresholds]\nx = 1\n",
        "not toml at all = = =\n",
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_detection_config(str(path))
