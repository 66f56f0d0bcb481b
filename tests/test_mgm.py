"""``mgm``: the MGMatting re-implementation reproduces the authors' released generator (tests/data/interop/README.md).

The reference numbers were made by the authors' own code (yucornetto/MGMatting 2bac93f0, CPU, float32) with the
interop stand-in weights. Measured on CPU (torch 2.13): max |difference| 4.8e-7 over every array of mgm_vectors.npz
(os1 1.5e-7 / 2.4e-7, os4 2.4e-7 / 2.1e-7, os8 4.8e-7 / 2.4e-7 pooled / crop; means equal), and the PRM matte is
within one 8-bit level everywhere (5 of 262,144 pixels differ, each where 255 * alpha lies within 2e-5 of an integer,
so float32 rounding decides the truncation).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from interop_rule import INTEROP, load_manifest

from baselines.mgm import (
    OUTPUT_KEYS,
    MGMatting,
    MGMConfig,
    ellipse_kernel,
    progressive_refinement,
    reflect_pad_amounts,
    unknown_region,
)
from baselines.refiner import normalise_image
from himbench.checkpoints import ReleasedWeights
from himbench.registry import config_to_dict, create_model

torch.set_num_threads(2)

DATA = INTEROP / "mgmatting"


@pytest.fixture(scope="module")
def model(mgm_rule_weights) -> MGMatting:
    net = MGMatting().eval()
    net.load_state_dict(mgm_rule_weights, strict=True)  # mgm_rule_state_dict, built once per run (conftest.py)
    return net


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(DATA / "input_512.png"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()  # BGR -> RGB
    guidance = cv2.imread(str(DATA / "guidance_512.png"), cv2.IMREAD_GRAYSCALE) >= 128
    return image, guidance


def _tensors(image: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = normalise_image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0)
    return x, torch.from_numpy(masks.astype(np.float32))[:, None]


@pytest.fixture(scope="module")
def outputs(model, inputs) -> dict[str, torch.Tensor]:
    image, guidance = inputs
    with torch.no_grad():
        return model(*_tensors(image, guidance[None]))


# ------------------------------------------------------------------------------------------------- checkpoint layout
def test_state_dict_is_exactly_the_authors_596_keys_in_order():
    manifest = load_manifest(DATA / "mgm_state_dict.json")
    state = MGMatting().state_dict()
    assert len(manifest) == len(state) == 596
    assert list(state) == [key for key, _, _ in manifest]
    for key, shape, dtype in manifest:
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key


def test_spectral_norm_vectors_are_frozen_parameters_as_the_authors_register_them():
    conv = MGMatting().encoder.conv1.module
    names = dict(conv.named_parameters(recurse=False))
    assert set(names) == {"weight_u", "weight_v", "weight_bar"}
    assert not names["weight_u"].requires_grad and not names["weight_v"].requires_grad
    assert names["weight_bar"].requires_grad


# ------------------------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("key", OUTPUT_KEYS)
def test_forward_reproduces_the_authors_outputs(outputs, key):
    reference = np.load(DATA / "mgm_vectors.npz")
    alpha = outputs[key]
    assert alpha.shape == (1, 1, 512, 512)
    pooled = F.avg_pool2d(alpha, 8)[0, 0].numpy()
    crop = alpha[0, 0, 200:264, 200:264].numpy()
    np.testing.assert_allclose(pooled, reference[f"{key}_pooled8"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(crop, reference[f"{key}_crop"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(alpha.mean().item(), reference[f"{key}_mean"], rtol=0, atol=1e-5)


def test_progressive_refinement_reproduces_the_authors_matte(outputs):
    reference = cv2.imread(str(DATA / "prm_alpha_512.png"), cv2.IMREAD_UNCHANGED)
    alpha = progressive_refinement(outputs, MGMConfig().refine_kernel_sizes)
    ours = (alpha[0, 0].numpy() * 255).astype(np.uint8)  # infer.py: alpha * 255, cast (truncation)
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3  # off-by-one only where float32 rounding straddles an integer


@pytest.mark.parametrize("size", [15, 7, 4])
def test_unknown_region_is_cv2_dilation_with_the_authors_ellipse(size):
    rng = np.random.default_rng(size)
    alpha = rng.choice([0.0, 0.5, 1.0, 1.0 / 255.0, 1.0 - 1.0 / 255.0], p=[0.6, 0.02, 0.34, 0.02, 0.02], size=(37, 53))
    alpha = alpha.astype(np.float32)
    undecided = ((alpha >= np.float32(1 / 255)) & (alpha <= np.float32(1 - 1 / 255))).astype(np.uint8)
    expected = cv2.dilate(undecided, ellipse_kernel(size)).astype(bool)
    got = unknown_region(torch.from_numpy(alpha)[None, None], size)[0, 0].numpy()
    np.testing.assert_array_equal(got, expected)


def test_progressive_refinement_keeps_confident_coarse_pixels():
    os8 = torch.zeros(1, 1, 41, 41)
    os8[..., 20, 20] = 0.5
    out = {"alpha_os8": os8, "alpha_os4": torch.full_like(os8, 0.25), "alpha_os1": torch.full_like(os8, 0.75)}
    alpha = progressive_refinement(out, (15, 7))[0, 0].numpy()
    seed = np.zeros((41, 41), np.uint8)
    seed[20, 20] = 1
    fine = cv2.dilate(cv2.dilate(seed, ellipse_kernel(15)), ellipse_kernel(7)).astype(bool)
    np.testing.assert_array_equal(alpha, np.where(fine, 0.75, 0.0).astype(np.float32))


# ------------------------------------------------------------------------------------------------- inference path
def test_predict_instances_pads_like_infer_py_and_crops_back(model, inputs):
    image, guidance = inputs[0][:300, 30:487], inputs[1][:300, 30:487]  # 300 x 457: neither a multiple of 32
    alphas, scores = model.predict_instances(image, guidance[None])
    assert alphas.shape == (1, 300, 457) and alphas.dtype == np.float32
    np.testing.assert_array_equal(scores, np.ones(1, np.float32))

    top, bottom, left, right = reflect_pad_amounts(300, 457)
    assert (top, bottom, left, right) == (32, 32 + 20, 32, 32 + 23)
    padded_image = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    padded_mask = np.pad(guidance.astype(np.float32), ((top, bottom), (left, right)), mode="reflect")
    with torch.no_grad():
        out = model(*_tensors(padded_image, padded_mask[None]))
    expected = progressive_refinement(out)[0, 0, top : top + 300, left : left + 457].numpy()
    np.testing.assert_allclose(alphas[0], expected, rtol=0, atol=1e-6)


def test_instances_in_one_call_equal_each_alone_and_empty_masks_are_dropped(model, inputs):
    image, guidance = inputs[0][150:246, 200:330], inputs[1][150:246, 200:330]  # 96 x 130
    box = np.zeros_like(guidance)
    box[20:70, 10:60] = True
    empty = np.zeros_like(guidance)
    together, scores = model.predict_instances(image, np.stack([guidance, empty, box]))
    assert together.shape == (2, 96, 130) and scores.shape == (2,)
    for k, mask in enumerate((guidance, box)):
        alone, _ = model.predict_instances(image, mask[None])
        np.testing.assert_allclose(together[k], alone[0], rtol=0, atol=1e-5)
    none, none_scores = model.predict_instances(image, empty[None])
    assert none.shape == (0, 96, 130) and none_scores.shape == (0,)
    batch = model.predict_batch([image], [box[None]])
    np.testing.assert_allclose(batch[0][0], together[1:], rtol=0, atol=1e-5)


def test_max_size_caps_the_working_resolution_and_returns_full_size_mattes(model, inputs):
    image, guidance = inputs[0][150:246, 200:330], inputs[1][150:246, 200:330]  # 96 x 130
    default = model.config
    model.config = dataclasses.replace(default, max_size=65)
    try:
        alphas, _ = model.predict_instances(image, guidance[None])
    finally:
        model.config = default
    assert alphas.shape == (1, 96, 130) and alphas.dtype == np.float32
    assert 0.0 <= alphas.min() and alphas.max() <= 1.0


def test_predict_instances_rejects_missing_or_mismatched_masks(model):
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="mask-guided"):
        model.predict_instances(image, None)
    with pytest.raises(ValueError, match="must be"):
        model.predict_instances(image, np.ones((1, 40, 49), bool))
    with pytest.raises(ValueError, match="must be"):
        model.predict_instances(image, np.ones((40, 50), bool))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 40, 64), torch.zeros(1, 1, 40, 64))


def test_eval_mode_never_updates_the_spectral_norm_vectors(model):
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("weight_u", "weight_v"))}
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64), torch.ones(1, 1, 64, 64))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------------------------------------- training
def _toy_batch(size: int = 64) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    discs = []
    for cy, cx, r in ((24, 28, 14.0), (40, 36, 11.0)):
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).float().sqrt()
        discs.append(((r - dist) / 3.0 + 0.5).clamp(0, 1))
    alphas = torch.stack(discs)[:, None]  # B=2, K=1
    image = torch.rand(2, 3, size, size, generator=gen) * 0.3 + alphas * 0.6
    return {"image": image, "alphas": alphas, "valid": torch.ones(2, 1, dtype=torch.bool)}


def test_three_training_steps_lower_the_loss_and_update_the_vectors():
    torch.manual_seed(0)
    net = MGMatting(MGMConfig(input_size=64, max_perturb=0.0)).train()
    u_before = net.encoder.conv2.module.weight_u.detach().clone()
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    batch = _toy_batch()
    losses = []
    for _ in range(4):
        out = net.training_loss(batch)
        assert set(out) == {"loss", "l1_os1", "l1_os4", "l1_os8"}
        losses.append(out["loss"].item())
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
    # Train mode runs the authors' power iteration: the stored vectors move.
    assert not torch.equal(net.encoder.conv2.module.weight_u, u_before)


def test_training_loss_handles_a_single_instance_and_an_empty_batch():
    net = MGMatting(MGMConfig(input_size=48)).train()
    batch = _toy_batch(48)
    batch["valid"] = torch.tensor([[True], [False]])
    assert torch.isfinite(net.training_loss(batch)["loss"])  # one instance, 48 px: padded to 64 and cropped back
    batch["valid"][:] = False
    out = net.training_loss(batch)
    assert out["loss"].item() == 0.0 and out["loss"].requires_grad


# ------------------------------------------------------------------------------------------------- registry
def test_registered_with_a_json_round_trip_config_and_released_weights():
    net = create_model("mgm", batch_instances=2)
    assert isinstance(net, MGMatting) and net.config.input_size == 512 and net.config.batch_instances == 2
    again = create_model("mgm", **config_to_dict(net.config))
    assert again.config == net.config
    assert dataclasses.asdict(again.config)["refine_kernel_sizes"] == (15, 7)
    weights = MGMatting.released_weights
    assert isinstance(weights, ReleasedWeights) and weights.requires_weights
    assert weights.code == "https://github.com/yucornetto/MGMatting" and "CC BY-NC 2.0" in weights.license
