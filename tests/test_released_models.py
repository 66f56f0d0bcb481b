"""The field's released models end to end: fake authors' checkpoints (built from the key manifests, saved the
authors' ways) -> ``himbench import-checkpoint`` -> ``himbench predict`` / ``himbench bench``, with outputs identical
to the re-implementation run directly on the same weights. Missing weights are a clear error.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from interop_rule import INTEROP, e2ehim_pipeline_weights, load_manifest

from himbench.cli import main
from himbench.io import InputError, read_alpha
from himbench.methods import create_method
from himbench.registry import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _predicted(folder) -> list[np.ndarray]:
    return [read_alpha(p) for p in sorted(folder.glob("*.png"))]


# ----------------------------------------------------------------------------------------------------- MGMatting
@pytest.fixture(scope="module")
def mgm_import(tmp_path_factory, mgm_rule_weights):
    """An authors'-style MGMatting checkpoint ({'state_dict': {'module.' + key: ...}}, keys in the manifest's order)
    imported with the CLI; returns (imported folder, the model holding the same weights)."""
    root = tmp_path_factory.mktemp("mgm")
    manifest = load_manifest(INTEROP / "mgmatting" / "mgm_state_dict.json")
    model = create_model("mgm").eval()
    state = mgm_rule_weights  # mgm_rule_state_dict: u, v consistent with W, as training leaves them (conftest.py)
    model.load_state_dict(state)
    authors = {f"module.{key}": state[key] for key, _, _ in manifest}
    torch.save({"state_dict": authors, "epoch": 100}, root / "latest_model.pth")
    result = _invoke(["import-checkpoint", str(root / "latest_model.pth"), str(root / "mgm"), "--model", "mgm"])
    assert "imported 596 tensors" in result.output and "non-commercial" in result.output
    return root, model


def test_mgm_import_predict_round_trip(mgm_import):
    root, model = mgm_import
    image = cv2.resize(_rgb(INTEROP / "mgmatting" / "input_512.png"), (120, 96), interpolation=cv2.INTER_AREA)
    guide = cv2.resize(cv2.imread(str(INTEROP / "mgmatting" / "guidance_512.png"), 0), (120, 96)) >= 128
    second = np.zeros_like(guide)
    second[10:40, 5:30] = True
    photos, masks = root / "photos", root / "masks" / "test" / "portrait"
    photos.mkdir()
    masks.mkdir(parents=True)
    cv2.imwrite(str(photos / "portrait.png"), image[:, :, ::-1])
    for k, mask in enumerate((guide, second)):
        cv2.imwrite(str(masks / f"{k:02d}.png"), mask.astype(np.uint8) * 255)
    _invoke(
        [
            "predict",
            "--checkpoint",
            str(root / "mgm"),
            str(photos),
            "-o",
            str(root / "preds"),
            "--masks",
            str(root / "masks"),
            "--device",
            "cpu",
        ]
    )
    expected, _ = model.predict_instances(image, np.stack([guide, second]))
    got = _predicted(root / "preds" / "test" / "portrait")
    assert len(got) == 2
    for matte, reference in zip(got, expected, strict=True):
        assert np.abs(matte - np.round(reference * 255) / 255).max() <= 1 / 255 + 1e-6
    manifest = json.loads((root / "preds" / "predictions.json").read_text())
    assert manifest["model"] == "mgm" and len(manifest["checkpoint"]["sha256"]) == 64


def test_mask_guided_predict_without_masks_is_a_usage_error(mgm_import, tmp_path):
    root, _ = mgm_import
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 40, 3), np.uint8))
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--checkpoint",
            str(root / "mgm"),
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2 and "mask-guided" in result.output


@pytest.mark.parametrize("name", ["mgm", "seg-mgm", "e2ehim-official"])
def test_released_models_without_weights_say_where_to_get_them(name, monkeypatch):
    from baselines.mgm import MGMatting
    from e2ehim.official import E2EHIMOfficial

    def built(*args, **kwargs):
        raise AssertionError("the network was built only to say that its weights are missing")

    # The error comes from the registered class, before the paper-size network is built.
    monkeypatch.setattr(MGMatting, "__init__", built)
    monkeypatch.setattr(E2EHIMOfficial, "__init__", built)
    with pytest.raises(InputError, match="needs the authors' weights.*licence.*import-checkpoint"):
        create_method(name, device="cpu")


def test_model_class_reads_the_factory_without_building_it(monkeypatch):
    from baselines.mgm import MGMatting
    from himbench import registry

    assert registry.model_class("mgm") is MGMatting

    def unannotated(**overrides):
        return None

    monkeypatch.setitem(registry._FACTORIES, "test-unannotated", unannotated)  # gone again after the test
    assert registry.model_class("test-unannotated") is None
    with pytest.raises(KeyError, match="unknown model"):
        registry.model_class("no-such-model")


def test_predict_without_weights_says_where_to_get_them(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 40, 3), np.uint8))
    result = CliRunner().invoke(main, ["predict", "--model", "mgm", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "sharepoint" in result.output.lower() and "himbench import-checkpoint" in result.output


# ------------------------------------------------------------------------------------------------------ E2E-HIM
@pytest.fixture(scope="module")
def e2ehim_import(tmp_path_factory, e2ehim_official_rule_weights):
    """An authors'-style E2E-HIM checkpoint (a bare state dict, as eval_swintiny.py loads it) with the interop
    pipeline weights (people found, all trimap classes present), imported with the CLI."""
    root = tmp_path_factory.mktemp("e2ehim")
    manifest = load_manifest(INTEROP / "e2ehim-official" / "e2ehim_official_state_dict.json")
    model = create_model("e2ehim-official").eval()
    state = e2ehim_pipeline_weights(e2ehim_official_rule_weights)  # rule_state_dict of this network (conftest.py)
    model.load_state_dict(state)
    torch.save({key: state[key] for key, _, _ in manifest}, root / "swintiny.ckpt")
    result = _invoke(
        ["import-checkpoint", str(root / "swintiny.ckpt"), str(root / "e2ehim"), "--model", "e2ehim-official"]
    )
    assert "imported 649 tensors" in result.output and "noncommercial" in result.output
    return root, model


def test_e2ehim_import_predict_round_trip(e2ehim_import):
    root, model = e2ehim_import
    photo = _rgb(INTEROP / "e2ehim-official" / "pipeline" / "photo_720x540.png")
    image = cv2.resize(photo, (180, 135), interpolation=cv2.INTER_AREA)
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "group.png"), image[:, :, ::-1])
    _invoke(
        ["predict", "--checkpoint", str(root / "e2ehim"), str(photos), "-o", str(root / "preds"), "--device", "cpu"]
    )
    expected, scores = model.predict_instances(image)
    got = _predicted(root / "preds" / "test" / "group")
    assert len(expected) > 0 and len(got) == len(expected)
    for matte, reference in zip(got, expected, strict=True):
        np.testing.assert_array_equal(matte, reference)  # the authors' mattes are 8-bit already: no rounding
    written = json.loads((root / "preds" / "test" / "group" / "scores.json").read_text())
    np.testing.assert_allclose(sorted(written.values()), sorted(scores.tolist()), rtol=1e-6)


def test_bench_runs_both_released_models_end_to_end(e2ehim_import, mgm_import, tmp_path):
    from helpers import make_toy_dataset

    data = make_toy_dataset(tmp_path / "data", split="test", num_images=2, shards=1, seed=1, size=(72, 96))
    e2e_root, _ = e2ehim_import
    mgm_root, _ = mgm_import
    out = tmp_path / "bench"
    result = _invoke(
        [
            "bench",
            "--methods",
            "e2ehim-official,mgm",
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--checkpoint",
            f"e2ehim-official={e2e_root / 'e2ehim'}",
            "--checkpoint",
            f"mgm={mgm_root / 'mgm'}",
            "--max-instances",
            "1",
            "--latency-size",
            "64",
            "--latency-repeats",
            "1",
            "--warmup",
            "0",
            "--no-leaderboard",
            "--no-progress",
        ]
    )
    assert "e2ehim-official" in result.output and "mgm" in result.output
    records = [json.loads(p.read_text()) for p in out.glob("bench_*.json") if not p.name.endswith(".config.json")]
    assert records, sorted(p.name for p in out.iterdir())
    text = json.dumps(records)
    assert '"e2ehim-official"' in text and '"mgm' in text
