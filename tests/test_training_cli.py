"""`himbench train`, `himbench predict` and `himbench models` end to end on toy shards."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_toy_dataset, toy_sample

from himbench.cli import main
from himbench.io import read_alpha
from himbench.shards import read_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_then_predict_writes_him2k_layout(tmp_path):
    data = make_toy_dataset(tmp_path / "data", num_images=3, shards=1, seed=4)
    make_toy_dataset(tmp_path / "data", split="test", num_images=2, shards=1, seed=5)
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(
        main,
        ["train", "--data", str(data), "--out", str(run), "--steps", "3", "--batch-size", "2", "--size", "64",
         "--set", "input_size=64", "--set", "guidance.num_queries=8", "--threads", "1", "--log-every", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "final checkpoint" in result.output
    stored = json.loads((run / "final" / "config.json").read_text())
    assert stored["config"]["guidance"]["num_queries"] == 8 and stored["config"]["input_size"] == 64

    # a photo folder with one odd-sized image and one broken file, plus the shard folder's test split
    photos = tmp_path / "photos"
    photos.mkdir()
    image, _ = toy_sample(np.random.default_rng(0), 37, 81, 2)
    cv2.imwrite(str(photos / "odd.png"), image[:, :, ::-1])
    (photos / "broken.jpg").write_bytes(b"not an image")
    pred = tmp_path / "pred"
    common = ["predict", "--checkpoint", str(run / "final"), "-o", str(pred), "--score-threshold", "0"]
    common += ["--device", "cpu"]
    result = runner.invoke(main, [*common, str(photos), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.output and "1 failed" in result.output
    folder = pred / "test" / "odd"
    scores = json.loads((folder / "scores.json").read_text())
    mattes = sorted(folder.glob("*.png"))
    assert [m.stem for m in mattes] == sorted(scores)
    assert all(read_alpha(m).shape == (37, 81) for m in mattes)

    result = runner.invoke(main, [*common, str(data), "--split", "test"])
    assert result.exit_code == 0, result.output
    for sample in read_split(data, "test"):
        assert (pred / "test" / sample.id / "scores.json").is_file()
        for m in (pred / "test" / sample.id).glob("*.png"):
            assert read_alpha(m).shape == sample.image.shape[:2]


def test_models_lists_parameter_counts():
    result = CliRunner().invoke(main, ["models", "e2ehim-*"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "params"]
    base = next(line for line in lines if line.startswith("e2ehim-base"))
    assert base.split()[1] == "model+method" and 60 < float(base.split()[2]) < 80  # millions
    assert any(line.startswith("e2ehim-tiny") for line in lines)
    listed = json.loads(CliRunner().invoke(main, ["models", "--json", "e2ehim-tiny"]).output)
    assert listed[0]["name"] == "e2ehim-tiny" and listed[0]["config"]["input_size"] == 384
