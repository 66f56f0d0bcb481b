"""`build-dataset --preset`: a preset fills the options the command line leaves out, and him-100k has HIM-100K's
published mean of 3.26 people per image (E2E-HIM, arXiv 2403.01510, as issue 24 quotes it)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from himbench.cli import main
from himbench.cli.build_dataset import BUILD_PRESETS


def test_him100k_weights_give_the_published_mean():
    preset = BUILD_PRESETS["him-100k"]
    low, high = (int(v) for v in preset["instances"].split("-"))
    weights = [float(w) for w in preset["instance_weights"].split(",")]
    assert len(weights) == high - low + 1
    mean = sum(n * w for n, w in zip(range(low, high + 1), weights, strict=True)) / sum(weights)
    assert abs(mean - 3.26) < 1e-12
    assert preset["splits"] == "train=100000"


def _config(out) -> dict:
    return json.loads((out / "build_config.json").read_text())


def test_preset_fills_defaults_and_the_command_line_wins(tmp_path):
    runner = CliRunner()
    out = tmp_path / "p"
    result = runner.invoke(main, ["build-dataset", "--out", str(out), "--preset", "him-100k", "--splits", "test=2",
                                  "--size", "64x96", "--workers", "1", "--no-progress", "--no-fg-cache"])
    assert result.exit_code == 0, result.output
    config = _config(out)
    assert config["splits"] == {"test": 2}  # given: wins
    assert (config["width"], config["height"]) == (64, 96)
    assert config["image_format"] == "jpg"  # from the preset
    assert (config["min_instances"], config["max_instances"]) == (2, 5)
    assert config["instance_weights"] == [0.3, 0.3, 0.24, 0.16]


def test_unknown_preset_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["build-dataset", "--out", str(tmp_path / "x"), "--preset", "him-1m"])
    assert result.exit_code == 2
    assert "him-1m" in result.output
    assert not (tmp_path / "x").exists()
