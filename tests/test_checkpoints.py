"""Checkpoints: safetensors + config.json round trips, Hub-layout folders, refusal of pickles, registry protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import toy_sample

from himbench.checkpoints import load_model, read_checkpoint_config, resolve_checkpoint, save_checkpoint
from himbench.io import InputError
from himbench.registry import apply_overrides, config_to_dict, count_parameters, create_model, list_models, model_info

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _perturbed_tiny(**overrides):
    torch.manual_seed(0)
    model = create_model("e2ehim-tiny", **overrides)
    with torch.no_grad():  # move away from the default init so a silent no-op load could not pass
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.add_(0.1)
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _perturbed_tiny(input_size=64, score_threshold=0.0)
    folder = save_checkpoint(model, tmp_path / "ckpt", "e2ehim-tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(folder)
    assert loaded.config == model.config and not loaded.training
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(image), loaded(image)
    for key in ("class_logits", "trimap_logits", "alpha_kernels", "alpha_features"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rgb, _ = toy_sample(np.random.default_rng(0), 40, 52, 2)
    alphas_a, scores_a = model.predict_instances(rgb)
    alphas_b, scores_b = loaded.predict_instances(rgb)
    np.testing.assert_array_equal(alphas_a, alphas_b)
    np.testing.assert_array_equal(scores_a, scores_b)


def test_load_from_hub_layout_folder_and_bare_file(tmp_path):
    model = _perturbed_tiny(input_size=64)
    repo = tmp_path / "owner--e2ehim-tiny"  # what snapshot_download returns: a folder with these two files
    save_checkpoint(model, repo, "e2ehim-tiny")
    record = json.loads((repo / "config.json").read_text())
    assert record["model_name"] == "e2ehim-tiny" and record["config"]["input_size"] == 64
    assert read_checkpoint_config(repo) == record
    from_file = load_model(repo / "model.safetensors")  # config.json is read from beside the file
    state_a, state_b = model.state_dict(), from_file.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_wrong_model_name_and_pickles_are_refused(tmp_path):
    model = _perturbed_tiny(input_size=64)
    save_checkpoint(model, tmp_path / "c", "e2ehim-tiny")
    with pytest.raises(InputError, match="not 'e2ehim-base'"):
        load_model(tmp_path / "c", "e2ehim-base")
    pickle = tmp_path / "weights.pt"
    torch.save(model.state_dict(), pickle)
    with pytest.raises(InputError, match="pickle"):
        resolve_checkpoint(pickle)
    with pytest.raises(InputError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "missing" / "x")


def test_hub_id_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="Hugging Face Hub"):
        resolve_checkpoint("himbench-test/definitely-not-cached")


def test_mismatched_weights_name_the_file(tmp_path):
    save_checkpoint(_perturbed_tiny(input_size=64), tmp_path / "c", "e2ehim-tiny")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    config["config"]["matting"]["alpha_channels"] = 8
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="model.safetensors: weights do not fit"):
        load_model(tmp_path / "c")


def test_apply_overrides_nested_and_unknown_keys():
    base = create_model("e2ehim-tiny").config
    changed = apply_overrides(base, {"input_size": 128, "backbone": {"depths": [1, 1, 1, 1]}})
    assert changed.input_size == 128 and changed.backbone.depths == (1, 1, 1, 1)
    assert changed.backbone.embed_dim == base.backbone.embed_dim and base.input_size == 384
    with pytest.raises(KeyError, match="no field 'widht'"):
        apply_overrides(base, {"backbone": {"widht": 3}})
    assert apply_overrides(base, config_to_dict(base)) == base  # JSON lists come back as tuples


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_follows_the_protocol(name):
    """Build every registered model; forward/loss only for small ones (e2ehim-base: build and count only)."""
    info = model_info(name)
    assert info.num_params > 0 and info.name == name
    if info.num_params > 20e6:
        assert name != "e2ehim-base" or 60e6 < info.num_params < 80e6
        return
    torch.manual_seed(0)
    model = create_model(name)
    assert count_parameters(model) == info.num_params
    size = 64
    rng = np.random.default_rng(0)
    image, alphas = toy_sample(rng, size, size, 2)
    batch = {
        "image": torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255,
        "alphas": torch.from_numpy(alphas)[None],
        "valid": torch.ones(1, 2, dtype=torch.bool),
        "boxes": torch.zeros(1, 2, 4),
        "ids": ["x"],
    }
    model.train()
    losses = model.training_loss(batch)
    assert "loss" in losses and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    model.eval()
    with torch.no_grad():
        pred, scores = model.predict_instances(image, alphas > 0.5)
    assert pred.dtype == np.float32 and pred.ndim == 3 and pred.shape[1:] == (size, size)
    assert scores.shape == (len(pred),)
