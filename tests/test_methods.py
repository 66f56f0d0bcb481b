"""The method interface and registry shared by E2E-HIM and the baselines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from himbench.guidance import GuidanceConfig
from himbench.methods import Prediction, create_method
from himbench.registry import default_checkpoint, list_methods


def _scene(size: int = 96):
    yy, xx = np.mgrid[:size, :size]
    alphas = np.stack(
        [np.clip((18 - np.hypot(yy - 48, xx - cx)) / 3 + 0.5, 0, 1).astype(np.float32) for cx in (28, 68)]
    )
    image = np.full((size, size, 3), 40, np.uint8)
    image[alphas[0] > 0.5] = (220, 60, 60)
    image[alphas[1] > 0.5] = (60, 220, 60)
    return image, alphas


@pytest.fixture(autouse=True)
def _quiet_untrained():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random weights.*")
        yield


def test_builtin_methods_are_listed():
    expected = {"e2ehim-tiny", "e2ehim-base", "mask-cf", "mask-only", "mask-refine", "seg-refine", "seg-tiny"}
    assert expected <= set(list_methods())
    with pytest.raises(KeyError, match="no-such-method"):
        create_method("no-such-method")


def test_prediction_validates_shapes():
    with pytest.raises(ValueError, match="scores"):
        Prediction(np.zeros((2, 4, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="N, H, W"):
        Prediction(np.zeros((4, 4)), np.zeros(0))
    assert Prediction(np.zeros((1, 4, 4), np.float64), [1]).alphas.dtype == np.float32


def test_mask_guided_methods_need_masks_and_keep_their_guidance():
    image, alphas = _scene()
    method = create_method("mask-cf", guidance="erode", guidance_seed=3, guidance_radius=2)
    assert method.needs_masks and method.guidance == GuidanceConfig(perturb="erode", seed=3, radius=2)
    with pytest.raises(ValueError, match="mask-guided"):
        method.predict(image)
    prediction = method.predict(image, alphas >= 0.5)
    assert prediction.num_instances == 2 and prediction.alphas.shape == (2, 96, 96)
    # The recorded spec rebuilds an equal method.
    assert create_method(**method.spec).spec == method.spec


def test_mask_only_returns_the_non_empty_guidance_masks():
    image, alphas = _scene()
    masks = np.concatenate([alphas >= 0.5, np.zeros((1, 96, 96), bool)])
    prediction = create_method("mask-only").predict(image, masks)
    np.testing.assert_array_equal(prediction.alphas, masks[:2].astype(np.float32))


def test_end_to_end_methods_ignore_masks():
    assert not create_method("e2ehim-tiny", device="cpu").needs_masks
    assert not create_method("seg-refine", device="cpu").needs_masks


def test_refiner_method_loads_a_saved_checkpoint(tmp_path):
    import torch

    from himbench.checkpoints import save_checkpoint
    from himbench.registry import create_model

    torch.manual_seed(1)
    model = create_model("mask-refine-tiny", width=8, depth=2, input_size=64)
    with torch.no_grad():
        model.prior.fill_(0.5)  # differs from a fresh model's 3.0, so loading is visible
    save_checkpoint(model, tmp_path / "ckpt", "mask-refine-tiny")
    method = create_method("mask-refine", checkpoint=str(tmp_path / "ckpt"), device="cpu")
    assert method.trained and method.num_parameters() == sum(p.numel() for p in model.parameters())
    image, alphas = _scene()
    expected, _ = model.eval().predict_instances(image, alphas >= 0.5)
    np.testing.assert_allclose(method.predict(image, alphas >= 0.5).alphas, expected, atol=1e-6)
    # Without a checkpoint argument the shipped one is used if the package has it, else random weights.
    shipped = default_checkpoint("mask-refine-tiny")
    assert create_method("mask-refine", device="cpu").trained == (shipped is not None)


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory):
    """Saved checkpoints of narrow, low-resolution versions of both learned stages (fast enough for tests)."""
    import torch

    from himbench.checkpoints import save_checkpoint
    from himbench.registry import create_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    segmenter = create_model("seg-tiny", width=8, depth=2, input_size=64, max_instances=4)
    refiner = create_model("mask-refine-tiny", width=8, depth=2, input_size=64)
    return (
        str(save_checkpoint(segmenter, root / "seg", "seg-tiny")),
        str(save_checkpoint(refiner, root / "ref", "mask-refine-tiny")),
    )


def test_seg_refine_timing_refines_the_probe_masks(small_checkpoints):
    image, alphas = _scene()
    seg, ref = small_checkpoints
    method = create_method("seg-refine", seg_checkpoint=seg, checkpoint=ref, device="cpu")
    assert method.trained and method.checkpoints_used == {"seg-tiny": seg, "mask-refine-tiny": ref}
    masks = alphas >= 0.5
    assert method.predict_for_timing(image, masks).num_instances == 2
    prediction = method.predict(image)
    assert prediction.alphas.shape[1:] == (96, 96) and prediction.alphas.dtype == np.float32


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mask-cf", "mask-refine", "seg-refine", "seg-tiny", "e2ehim-tiny"])
def test_every_method_runs_on_a_real_photo_at_full_resolution(realdata, name):
    from himbench.io import read_alpha, read_image

    # Two real portraits side by side (1280 x 427): a two-person photograph, masks from their alphas.
    folder = realdata / "P3M" / "demo" / "imgs"
    stems = [p.stem for p in sorted((folder / "alpha").glob("*.png"))[:2]]
    photos = [read_image(folder / "original" / f"{stem}.jpg") for stem in stems]
    image = np.concatenate(photos, axis=1)
    masks = np.zeros((2, *image.shape[:2]), bool)
    for k, stem in enumerate(stems):
        width = photos[0].shape[1]
        masks[k, :, k * width : (k + 1) * width] = read_alpha(folder / "alpha" / f"{stem}.png") >= 0.5
    method = create_method(name, device="cpu")
    prediction = method.predict(image, masks if method.needs_masks else None)
    assert prediction.alphas.shape[1:] == image.shape[:2]
    assert np.isfinite(prediction.alphas).all() and ((prediction.alphas >= 0) & (prediction.alphas <= 1)).all()
