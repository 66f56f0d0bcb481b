"""Baselines: guidance perturbations, closed-form matting per instance, the learned refiner and segmenter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.mask_cf import MaskCFConfig, normalise_overlaps, predict_mask_cf, trimap_from_mask
from himbench.guidance import (
    GuidanceConfig,
    dilate_masks,
    drop_mask,
    erode_masks,
    guidance_masks,
    masks_from_alphas,
    merge_masks,
    perturb_masks,
    read_disk_masks,
    sample_rng,
)
from himbench.io import InputError, write_alpha_png


def _discs(size: int = 64, centres=((20, 20), (44, 40), (20, 48)), radius: float = 10.0, soft: float = 0.0):
    yy, xx = np.mgrid[:size, :size]
    out = []
    for cy, cx in centres:
        r = np.hypot(yy - cy, xx - cx)
        if soft:
            out.append(np.clip((radius - r) / soft + 0.5, 0, 1).astype(np.float32))
        else:
            out.append((r <= radius).astype(np.float32))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------- perturbations
def test_erode_shrinks_and_dilate_grows_every_mask():
    masks = masks_from_alphas(_discs())
    eroded, dilated = erode_masks(masks, 3), dilate_masks(masks, 3)
    for m, e, d in zip(masks, eroded, dilated, strict=True):
        assert e.sum() < m.sum() < d.sum()
        assert not (e & ~m).any()  # erosion only removes pixels
        assert not (m & ~d).any()  # dilation only adds pixels
    # A disc of radius 10 eroded by 3 is (about) a disc of radius 7.
    assert abs(eroded[0].sum() - np.pi * 7**2) < 0.15 * np.pi * 7**2


def test_drop_removes_exactly_one_original_mask():
    masks = masks_from_alphas(_discs())
    out = drop_mask(masks, sample_rng(0, "a"))
    assert len(out) == len(masks) - 1
    remaining = {m.tobytes() for m in out}
    assert remaining < {m.tobytes() for m in masks}


def test_merge_unions_two_masks_and_keeps_the_rest():
    masks = masks_from_alphas(_discs())
    out = merge_masks(masks, sample_rng(0, "a"))
    assert len(out) == len(masks) - 1
    unions = {(masks[i] | masks[j]).tobytes() for i in range(3) for j in range(i + 1, 3)}
    assert out[0].tobytes() in unions
    kept = [m for m in masks if not (m & out[0]).any()]
    assert len(kept) == 1 and np.array_equal(kept[0], out[1])
    assert len(merge_masks(masks[:1], sample_rng(0, "a"))) == 1  # nothing to merge with one mask


def test_perturbations_are_deterministic_per_seed_and_image():
    masks = masks_from_alphas(_discs())
    config = GuidanceConfig(perturb="drop", seed=7)
    first = perturb_masks(masks, config, "img001")
    assert np.array_equal(first, perturb_masks(masks, config, "img001"))
    dropped = {perturb_masks(masks, GuidanceConfig(perturb="drop", seed=s), "img001").tobytes() for s in range(12)}
    assert len(dropped) > 1  # the seed matters


def test_perturbations_compose_in_order():
    masks = masks_from_alphas(_discs())
    out = perturb_masks(masks, GuidanceConfig(perturb="erode,drop", radius=2), "x")
    assert len(out) == 2 and all(o.sum() < masks[0].sum() for o in out)


def test_guidance_none_is_binarised_ground_truth():
    alphas = _discs(soft=4.0)
    assert np.array_equal(guidance_masks(GuidanceConfig(), "x", alphas), alphas >= 0.5)


def test_unknown_perturbation_is_rejected():
    with pytest.raises(ValueError, match="blur"):
        GuidanceConfig(perturb="erode,blur")


def test_disk_masks_round_trip_and_missing_folder(tmp_path):
    masks = masks_from_alphas(_discs())
    for k, m in enumerate(masks):
        write_alpha_png(tmp_path / "masks" / "test" / "img7" / f"{k:02d}.png", m.astype(np.float32))
    assert np.array_equal(read_disk_masks(tmp_path, "test", "img7", (64, 64)), masks)
    config = GuidanceConfig(masks_dir=str(tmp_path / "masks"))
    assert np.array_equal(guidance_masks(config, "img7", np.zeros((0, 64, 64), np.float32)), masks)
    with pytest.raises(InputError, match="img8"):
        read_disk_masks(tmp_path, "test", "img8", (64, 64))


# ---------------------------------------------------------------------------------------------------- mask-cf
def _composite(alpha: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (*alpha.shape, 3)
    fg = np.array([0.9, 0.3, 0.2]) + rng.normal(0, 0.02, shape)
    bg = np.array([0.1, 0.4, 0.8]) + rng.normal(0, 0.02, shape)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def test_trimap_has_the_three_regions():
    mask = masks_from_alphas(_discs()[:1])[0]
    trimap = trimap_from_mask(mask, 3)
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}
    assert (trimap[mask & (trimap != 0.5)] == 1.0).all() and (trimap[~mask & (trimap != 0.5)] == 0.0).all()


def test_mask_cf_recovers_a_soft_disc_better_than_the_mask():
    alpha = _discs(size=160, centres=((80, 76),), radius=45.0, soft=10.0)[0]
    image = _composite(alpha)
    mask = alpha >= 0.5
    # The trimap band must cover the 10-px soft edge: 5 px either side of the 0.5 contour.
    pred, scores = predict_mask_cf(image, mask[None], MaskCFConfig(band=6))
    assert pred.shape == (1, 160, 160) and pred.dtype == np.float32 and scores.tolist() == [1.0]
    mad_cf = np.abs(pred[0] - alpha).mean()
    mad_mask = np.abs(mask - alpha).mean()
    assert mad_cf < 0.005
    assert mad_cf < 0.25 * mad_mask


def test_mask_cf_keeps_overlapping_mattes_valid_and_drops_empty_masks():
    alphas = _discs(size=96, centres=((48, 40), (48, 56)), radius=20.0, soft=6.0)
    image = _composite(alphas.max(axis=0))
    masks = np.concatenate([alphas >= 0.5, np.zeros((1, 96, 96), bool)])
    pred, scores = predict_mask_cf(image, masks)
    assert len(pred) == 2 and len(scores) == 2
    assert pred.sum(axis=0).max() <= 1.0 + 1e-5
    assert normalise_overlaps(np.full((2, 2, 2), 0.8, np.float32)).sum(axis=0).max() == pytest.approx(1.0)


def test_mask_cf_rejects_masks_of_another_size():
    with pytest.raises(ValueError, match="match the image"):
        predict_mask_cf(np.zeros((10, 10, 3), np.uint8), np.zeros((1, 12, 10), bool))


def test_mask_cf_on_a_real_portrait_is_sane(realdata):
    import cv2

    from himbench.io import read_alpha, read_image

    folder = realdata / "P3M" / "demo" / "imgs"
    alpha_path = sorted((folder / "alpha").glob("*.png"))[1]
    image = read_image(next((folder / "original").glob(alpha_path.stem + ".*")))
    alpha = read_alpha(alpha_path, expected_shape=image.shape[:2])
    scale = 400 / max(alpha.shape)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = alpha >= 0.5
    pred, _ = predict_mask_cf(image, mask[None])
    hard = pred[0] >= 0.5
    assert np.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1
    assert (hard & mask).sum() / (hard | mask).sum() > 0.9  # still the same person
    assert np.abs(pred[0] - alpha).mean() < 0.03
    assert ((pred[0] > 0) & (pred[0] < 1)).any()  # a real matte, not the mask handed back


# ---------------------------------------------------------------------------------------------- learned models
def _batch(size: int = 48, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    images, alphas = [], []
    for b in range(2):
        centres = [tuple(rng.integers(12, size - 12, 2)) for _ in range(2)]
        a = _discs(size, centres, radius=8.0, soft=3.0)
        a[1] *= 1 - a[0]  # visible mattes: the first person is in front
        images.append(_composite(np.clip(a.sum(0), 0, 1), seed + b))
        alphas.append(a)
    return {
        "image": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255,
        "alphas": torch.from_numpy(np.stack(alphas)),
        "valid": torch.ones(2, 2, dtype=torch.bool),
        "ids": ["a", "b"],
    }


@pytest.fixture
def one_thread():
    # Tiny networks gain nothing from threads, and the test machine's cores are shared.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _train(model, batch, steps: int) -> list[float]:
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model.training_loss(batch)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def test_refiner_trains_and_the_loss_falls(one_thread):
    from himbench.registry import create_model

    torch.manual_seed(0)
    # No random mask perturbation, so successive losses are comparable.
    model = create_model("mask-refine-tiny", width=8, depth=2, input_size=32, max_perturb=0.0, band=0.25)
    losses = _train(model, _batch(size=32), 30)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_refiner_predicts_one_matte_per_non_empty_mask_at_full_size():
    from himbench.registry import create_model

    model = create_model("mask-refine-tiny", width=8, depth=2, input_size=64).eval()
    masks = masks_from_alphas(_discs(size=100, centres=((30, 30), (60, 70)), radius=15))
    masks = np.concatenate([masks, np.zeros((1, 100, 100), bool)])
    alphas, scores = model.predict_instances(np.zeros((100, 100, 3), np.uint8), masks)
    assert alphas.shape == (2, 100, 100) and scores.shape == (2,)
    # Untrained, the learned mask prior dominates: the output is close to the guidance mask.
    assert np.abs(alphas - masks[:2]).mean() < 0.2
    with pytest.raises(ValueError, match="mask-guided"):
        model.predict_instances(np.zeros((100, 100, 3), np.uint8))


def test_refiner_training_patches_sit_on_the_outline_and_inside_the_image():
    from baselines.refiner import outline_patches

    torch.manual_seed(0)
    masks = torch.zeros(3, 100, 80, dtype=torch.bool)
    masks[0, 10:30, 10:30] = True  # near the top-left corner: the patch must be moved inside the image
    masks[1, 60:100, 50:80] = True  # touching the bottom-right corner
    # mask 2 is empty: no outline, so its patches are centred on the image
    corners = outline_patches(masks, 32, jitter=0, count=2)
    assert len(corners) == 6
    for y, x in corners:
        assert 0 <= y <= 100 - 32 and 0 <= x <= 80 - 32
    for i, (y, x) in enumerate(corners[:4]):
        patch = masks[i // 2, y : y + 32, x : x + 32]
        assert patch.any() and not patch.all()  # every patch of a non-empty mask crosses its outline
    assert corners[4] == corners[5] == (50 - 16, 40 - 16)


def test_refiner_changes_only_the_band_and_keeps_the_working_scale():
    """Outside ``band_px`` of the mask's outline the matte is the mask itself; an image already at the working
    size is not resized (a 640 px image is refined at 640 px, not at a downscaled size)."""
    from baselines.refiner import outline_band
    from himbench.registry import create_model

    torch.manual_seed(0)
    model = create_model("mask-refine-tiny", width=8, depth=2, input_size=96, band=0.05, snap=0.0).eval()
    torch.nn.init.normal_(model.unet.head.weight, std=5.0)  # an untrained zero head would return the mask anyway
    masks = masks_from_alphas(_discs(size=96, centres=((40, 40),), radius=20))
    image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    alphas, _ = model.predict_instances(image, masks)
    band = outline_band(torch.from_numpy(masks[:, None].astype(np.float32)), model.config.band_px)[:, 0].numpy() > 0
    assert model.config.band_px == 5
    assert np.array_equal(alphas[0][~band[0]], masks[0][~band[0]].astype(np.float32))
    changed = np.abs(alphas[0] - masks[0]) > 0.05
    assert changed[band[0]].mean() > 0.2  # the network does decide the band


def test_segmenter_targets_point_at_each_instance_centre():
    from baselines.segmenter import segmentation_targets

    alphas = torch.zeros(1, 2, 20, 20)
    alphas[0, 0, 2:6, 2:6] = 1.0  # centre (3.5, 3.5)
    alphas[0, 1, 10:20, 10:14] = 1.0  # centre (14.5, 11.5)
    person, centre, offset = segmentation_targets(alphas, torch.tensor([[True, True]]), sigma_px=2.0, unit=1.0)
    assert person.sum() == 16 + 40
    assert torch.allclose(offset[0, :, 2, 2], torch.tensor([1.5, 1.5]))
    assert torch.allclose(offset[0, :, 19, 10], torch.tensor([-4.5, 1.5]))
    assert offset[0, :, 0, 0].abs().sum() == 0  # background carries no offset
    # Heatmap peaks near the centres (grid points nearest 3.5 and (14.5, 11.5)).
    assert centre[0, 0, 3:5, 3:5].min() > 0.9 and centre[0, 0, 14:16, 11:13].min() > 0.9


def test_segmenter_grouping_separates_two_people():
    from baselines.segmenter import SegmenterConfig, group_instances

    person = np.zeros((20, 20), np.float32)
    person[2:8, 2:8] = 1
    person[10:18, 12:18] = 1
    centre = np.zeros_like(person)
    centre[5, 5], centre[14, 15] = 0.9, 0.8
    yy, xx = np.mgrid[:20, :20].astype(np.float32)
    to_first = np.stack([5 - yy, 5 - xx])
    to_second = np.stack([14 - yy, 15 - xx])
    offset = np.where(yy[None] < 9, to_first, to_second)
    labels, scores = group_instances(person, centre, offset, SegmenterConfig(peak_window=3))
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    assert (labels[2:8, 2:8] == 1).all() and (labels[10:18, 12:18] == 2).all() and (labels[person == 0] == 0).all()


def test_segmenter_trains_and_the_loss_falls(one_thread):
    from himbench.registry import create_model

    torch.manual_seed(0)
    model = create_model("seg-tiny", width=8, depth=2, input_size=32)
    losses = _train(model, _batch(size=32), 30)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
