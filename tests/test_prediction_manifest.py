"""`himbench predict data/ -o preds/ && himbench evaluate preds/`: predictions that know their ground truth."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from helpers import make_toy_dataset

from himbench.checkpoints import save_checkpoint
from himbench.cli import main
from himbench.io import InputError
from himbench.predictions.manifest import MANIFEST_NAME, read_manifest
from himbench.registry import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(args: list[str], code: int = 0):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def predicted(tmp_path):
    """A toy shard folder, a small e2ehim-tiny checkpoint, and `himbench predict` of the shard folder."""
    data = make_toy_dataset(tmp_path / "gt", split="test", num_images=3, shards=1, seed=2)
    model = create_model("e2ehim-tiny", input_size=64, guidance={"num_queries": 6})
    checkpoint = save_checkpoint(model, tmp_path / "ckpt", "e2ehim-tiny")
    preds = tmp_path / "preds"
    _run(["predict", "--checkpoint", str(checkpoint), str(data), "-o", str(preds), "--score-threshold", "0",
          "--device", "cpu"])
    return data, checkpoint, preds


def _summary(result_dir) -> dict:
    return json.loads((result_dir / "summary.json").read_text())


def test_manifest_records_source_model_and_weights(predicted):
    data, checkpoint, preds = predicted
    manifest = read_manifest(preds)
    assert manifest.model == "e2ehim-tiny" and manifest.splits == ["test"]
    assert manifest.source["kind"] == "shards" and manifest.source["path"] == "../gt"  # relative to the manifest
    assert len(manifest.checkpoint["sha256"]) == 64 and manifest.versions["torch"]
    assert manifest.options["model_config"]["input_size"] == 64


def test_evaluate_without_gt_equals_evaluate_with_gt(predicted, tmp_path):
    data, _, preds = predicted
    _run(["evaluate", str(preds), "--workers", "1", "--quiet", "--out", str(tmp_path / "auto")])
    _run(["evaluate", str(preds), "--gt", str(data), "--workers", "1", "--quiet", "--out", str(tmp_path / "given")])
    auto, given = _summary(tmp_path / "auto"), _summary(tmp_path / "given")
    assert auto["summary"] == given["summary"] and auto["sums"] == given["sums"]
    assert auto["summary"]["num_gt"] > 0 and auto["config"]["gt"] == given["config"]["gt"]
    provenance = auto["provenance"]
    assert provenance["model"] == "e2ehim-tiny" and len(provenance["checkpoint_sha256"]) == 64


def test_moved_ground_truth_is_a_clear_error(predicted, tmp_path):
    data, _, preds = predicted
    shutil.move(data, tmp_path / "elsewhere")
    result = _run(["evaluate", str(preds), "--workers", "1", "--quiet"], code=2)
    assert "predictions.json" in result.output and "moved" in result.output and "--gt" in result.output
    # An explicit --gt always wins.
    _run(["evaluate", str(preds), "--gt", str(tmp_path / "elsewhere"), "--workers", "1", "--quiet"])


def test_rebuilt_ground_truth_is_a_clear_error(predicted):
    data, _, preds = predicted
    shutil.rmtree(data / "data")
    make_toy_dataset(data, split="test", num_images=3, shards=1, seed=9)  # same names, other content
    result = _run(["evaluate", str(preds), "--workers", "1", "--quiet"], code=2)
    assert "changed since the predictions were made" in result.output


def test_manifest_from_a_newer_format_or_not_json(predicted):
    _, _, preds = predicted
    path = preds / MANIFEST_NAME
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "format": "himbench-predictions-v9"}))
    result = _run(["evaluate", str(preds), "--workers", "1", "--quiet"], code=2)
    assert "newer himbench" in result.output
    path.write_text("{not json")
    result = _run(["evaluate", str(preds), "--workers", "1", "--quiet"], code=2)
    assert "not valid JSON" in result.output and "predictions.json" in result.output
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(preds)


def test_no_gt_and_no_manifest_says_how_to_point_at_ground_truth(tmp_path):
    (tmp_path / "preds" / "test" / "x").mkdir(parents=True)
    result = _run(["evaluate", str(tmp_path / "preds")], code=2)
    assert "--gt" in result.output and "shard folder" in result.output and "HIM-2K" in result.output


def test_another_model_into_the_same_folder_is_refused_before_writing(predicted, tmp_path):
    data, _, preds = predicted
    other = save_checkpoint(create_model("e2ehim-tiny", input_size=64, guidance={"num_queries": 4}),
                            tmp_path / "other", "e2ehim-tiny")
    before = sorted(p.relative_to(preds) for p in preds.rglob("*"))
    result = _run(["predict", "--checkpoint", str(other), str(data), "-o", str(preds), "--device", "cpu"], code=2)
    assert "another model or other weights" in result.output
    assert sorted(p.relative_to(preds) for p in preds.rglob("*")) == before


def test_a_real_build_then_a_rebuild_with_another_seed(tmp_path):
    """With build_config.json (a `himbench build-dataset` folder) the build fingerprint is recorded and checked."""
    data = tmp_path / "him-test"
    build = ["build-dataset", "--out", str(data), "--splits", "test=2", "--size", "96", "--workers", "1"]
    _run([*build, "--seed", "1"])
    checkpoint = save_checkpoint(create_model("e2ehim-tiny", input_size=64), tmp_path / "ckpt", "e2ehim-tiny")
    preds = tmp_path / "preds"
    _run(["predict", "--checkpoint", str(checkpoint), str(data), "-o", str(preds), "--device", "cpu"])
    assert len(read_manifest(preds).source["build_fingerprint"]) == 16
    _run(["evaluate", str(preds), "--workers", "1", "--quiet", "--out", str(tmp_path / "eval")])
    _run([*build, "--seed", "2", "--overwrite"])
    result = _run(["evaluate", str(preds), "--workers", "1", "--quiet"], code=2)
    assert "build_fingerprint" in result.output and "changed since the predictions were made" in result.output
