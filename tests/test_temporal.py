"""Temporal metrics (dtSSD, MESSDdt) on tiny clips whose values are worked out by hand in the comments: the
benchmark's definition, MaGGIe's variant and its transposed warp (docs/temporal_metrics.md)."""

from __future__ import annotations

import numpy as np
import pytest

from himbench.metrics import mad
from himbench.metrics.temporal import (
    TemporalStat,
    clip_temporal,
    dtssd_pairs,
    gt_flow,
    maggie_temporal,
    messddt_pairs,
    temporal_errors,
    warp_next,
)

H, W = 2, 3
# One static ground-truth frame (values MaGGIe's prediction clipping leaves alone: 0, 0.2, 0.5, 1).
G = np.array([[0.2, 1.0, 0.0], [0.5, 0.0, 0.2]])
# An error map: +0.3 at (0, 0) and +0.4 at (1, 2); sum of squares 0.09 + 0.16 = 0.25, root 0.5.
ERR = np.zeros((H, W))
ERR[0, 0], ERR[1, 2] = 0.3, 0.4


def static_clip(frames: int = 3) -> np.ndarray:
    return np.repeat(G[None], frames, axis=0)


def zero_flow(frames: int = 3) -> np.ndarray:
    return np.zeros((frames - 1, H, W, 2))


def test_perfect_prediction_scores_zero_everywhere():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, size=(5, 32, 40))
    levels[(levels == 1) | (levels == 254)] = 0  # values MaGGIe's prediction clipping would move
    gt = levels / 255  # a flickering GT: its own flow, nothing to do with 0
    out = clip_temporal(gt.copy(), gt)
    assert out["dtSSD"] == 0.0 and out["MESSDdt"] == 0.0
    assert out["maggie_dtSSD_sum"] == 0.0 and out["maggie_MESSDdt_sum"] == 0.0
    assert out["pairs"] == 4 and out["maggie_count"] == 4
    for window in ("pairs", "clip"):
        for warp in ("correct", "maggie-transposed"):
            m = maggie_temporal(gt, gt, warp=warp, window=window, clip_pred=False)
            assert m["maggie_dtSSD_sum"] == 0.0 and m["maggie_MESSDdt_sum"] == 0.0


def test_maggie_clips_predictions_in_float32():
    # MaGGIe's alphas are float32 and NumPy compares them with 1/255 in float32: float32(1/255), just above the
    # float64 1/255, is set to 0. A prediction off by that one level where the GT is 0 is then perfect for MaGGIe.
    gt = np.zeros((3, H, W))
    pred = gt.copy()
    pred[1, 0, 0] = np.float32(1 / 255)
    assert maggie_temporal(pred, gt, flow=zero_flow())["maggie_dtSSD_sum"] == 0.0
    assert maggie_temporal(pred, gt, flow=zero_flow(), clip_pred=False)["maggie_dtSSD_sum"] > 0.0
    assert temporal_errors(pred, gt, flow=zero_flow())["dtSSD"] > 0.0


def test_same_error_in_every_frame_is_temporally_coherent():
    gt = static_clip(4)
    gt[2] = G[::-1]  # let the GT change over time too: the derivative error must still cancel
    pred = gt + ERR[None]
    assert dtssd_pairs(pred, gt) == pytest.approx(np.zeros(3), abs=1e-12)
    assert temporal_errors(pred, gt, flow=zero_flow(4))["dtSSD"] == pytest.approx(0.0, abs=1e-12)
    # ... while every frame has a per-frame error: MAD x 1000 = (0.3 + 0.4) / 6 * 1000.
    for t in range(4):
        assert mad(pred[t], gt[t]) == pytest.approx(700 / 6)


def test_error_in_one_frame_only_by_hand():
    gt = static_clip(3)
    pred = gt.copy()
    pred[1] += ERR
    # Pair 0: d = e_1, sqrt(0.09 + 0.16) = 0.5; pair 1: d = -e_1, 0.5 again. The clip's dtSSD is their mean.
    np.testing.assert_allclose(dtssd_pairs(pred, gt), [0.5, 0.5], rtol=1e-12)
    out = temporal_errors(pred, gt, flow=zero_flow())
    assert out["dtSSD"] == pytest.approx(0.5) and out["pairs"] == 2
    # Static clip, zero flow: E_0 = 0, E_1 = e_1^2, E_2 = 0, so each pair's sum |E_t - E_{t+1}| = 0.25.
    np.testing.assert_allclose(messddt_pairs(pred, gt, zero_flow()), [0.25, 0.25], rtol=1e-12)
    assert out["MESSDdt"] == pytest.approx(0.25)
    # Region: keep only pixel (0, 0): dtSSD 0.3 per pair, MESSDdt 0.09 per pair.
    region = np.zeros_like(gt)
    region[:, 0, 0] = 1
    assert temporal_errors(pred, gt, zero_flow(), region)["dtSSD"] == pytest.approx(0.3)
    assert temporal_errors(pred, gt, zero_flow(), region)["MESSDdt"] == pytest.approx(0.09)


def test_maggie_scaling_relation_on_zero_flow():
    # With the warp made correct and the flow zero, per pair MaGGIe prints 0.1 * dtSSD_t and
    # 1e4 * MESSDdt_t / (H*W + 1); pooled over pairs: maggie = 0.1 * paper and 1e4 / 7 * paper on this 2 x 3 clip.
    gt = static_clip(3)
    pred = gt.copy()
    pred[1] += ERR
    paper = temporal_errors(pred, gt, flow=zero_flow())
    stat = TemporalStat()
    stat.update(maggie_temporal(pred, gt, flow=zero_flow(), warp="correct"))
    result = stat.result()
    assert result["maggie_count"] == 2
    assert result["maggie_dtSSD"] == pytest.approx(0.1 * paper["dtSSD"], rel=1e-6)  # 0.05
    assert result["maggie_MESSDdt"] == pytest.approx(1e4 / (H * W + 1) * paper["MESSDdt"], rel=1e-6)  # 357.14
    assert result["maggie_MESSDdt"] == pytest.approx(1e4 * 0.25 / 7, rel=1e-6)
    # Handed the whole clip at once (window="clip"), dtSSD is 0.1 * sqrt(0.25 + 0.25), not 0.1 * mean(0.5, 0.5).
    whole = maggie_temporal(pred, gt, flow=zero_flow(), warp="correct", window="clip")
    assert whole["maggie_dtSSD_sum"] == pytest.approx(0.1 * np.sqrt(0.5))
    assert whole["maggie_MESSDdt_sum"] == pytest.approx(1e4 * 0.5 / (2 * 7))
    assert whole["maggie_count"] == 1


def test_maggie_transposed_warp_by_hand():
    gt = static_clip(3)
    pred = gt.copy()
    pred[1] += ERR
    # Transposed read on zero flow, 2 x 3: out[i, j] = E[min(j, 1), min(i, 2)]. For E_1 = [[.09, 0, 0], [0, 0, .16]]
    # that is [[.09, 0, 0], [0, 0, 0]]: pair 0 sums |0 - that| = 0.09 (the .16 at (1, 2) is never read);
    # pair 1 sums |E_1 - 0| = 0.25. MaGGIe pools 1e4 * (0.09 + 0.25) / 7 over 2 pairs.
    np.testing.assert_allclose(messddt_pairs(pred, gt, zero_flow(), warp="maggie-transposed"), [0.09, 0.25])
    m = maggie_temporal(pred, gt, flow=zero_flow())  # default warp: maggie-transposed
    assert m["maggie_MESSDdt_sum"] == pytest.approx(1e4 * 0.34 / 7)
    # A static error is no flicker: 0 with the correct warp, 0.16 per pair with the transposed one.
    steady = gt + ERR[None]
    assert temporal_errors(steady, gt, flow=zero_flow())["MESSDdt"] == 0.0
    np.testing.assert_allclose(messddt_pairs(steady, gt, zero_flow(), warp="maggie-transposed"), [0.16, 0.16])
    # Whole clip in one call: torch.take reads frame 1 for every pair, so pair 1 compares E_1 with transposed E_1
    # (0.16) instead of E_2 (0.25): 1e4 * (0.09 + 0.16) / (2 * 7).
    whole = maggie_temporal(pred, gt, flow=zero_flow(), window="clip")
    assert whole["maggie_MESSDdt_sum"] == pytest.approx(1e4 * 0.25 / 14)


def test_zero_flow_warp_4x6():
    frame = np.arange(24, dtype=np.float64).reshape(4, 6)
    frames = np.stack([frame, frame])
    flow = np.zeros((1, 4, 6, 2))
    np.testing.assert_array_equal(warp_next(frames, flow, "correct")[0], frame)
    transposed = warp_next(frames, flow, "maggie-transposed")[0]
    np.testing.assert_array_equal(
        transposed,
        [[0, 6, 12, 18, 18, 18], [1, 7, 13, 19, 19, 19], [2, 8, 14, 20, 20, 20], [3, 9, 15, 21, 21, 21]],
    )


def test_correct_warp_follows_the_flow():
    # Frame 1 is frame 0 moved one column right and one row down; flow (dx, dy) = (1, 1) brings it back.
    frame = np.arange(24, dtype=np.float64).reshape(4, 6)
    moved = np.zeros_like(frame)
    moved[1:, 1:] = frame[:-1, :-1]
    flow = np.zeros((1, 4, 6, 2))
    flow[..., 0], flow[..., 1] = 1.0, 1.0
    out = warp_next(np.stack([frame, moved]), flow)[0]
    np.testing.assert_array_equal(out[:-1, :-1], frame[:-1, :-1])
    # Flow is rounded half to even, as MaGGIe's np.rint: 0.5 -> 0, so frame 1 comes back as it is.
    half = np.full((1, 4, 6, 2), 0.5)
    np.testing.assert_array_equal(warp_next(np.stack([frame, moved]), half)[0], moved)


def test_gt_flow_of_a_static_clip_rounds_to_zero():
    gt = np.zeros((3, 24, 32))
    gt[:, 6:18, 8:20] = 1.0
    flow = gt_flow(gt)
    assert flow.shape == (2, 24, 32, 2) and flow.dtype == np.float32
    assert np.all(np.rint(flow) == 0)


def test_accumulator_merges_by_sum():
    gt = static_clip(3)
    a, b = gt.copy(), gt + ERR[None]
    a[1] += ERR
    clips = [clip_temporal(a, gt, zero_flow(), warp="correct"), clip_temporal(b, gt, zero_flow())]
    one = TemporalStat()
    for c in clips:
        one.update(c)
    left, right = TemporalStat(), TemporalStat()
    left.update(clips[0])
    right.update(clips[1])
    left += right
    assert left.result() == one.result()
    result = one.result()
    assert result["clips"] == 2 and result["maggie_count"] == 4
    assert result["dtSSD"] == pytest.approx((0.5 + 0.0) / 2)  # mean of the clips' means
    # MaGGIe pools pairs: (0.1 * 0.5 * 2 + 0) / 4 pairs.
    assert result["maggie_dtSSD"] == pytest.approx(0.025, rel=1e-6)


@pytest.mark.parametrize(
    "pred, gt, message",
    [
        (np.zeros((3, 2, 3)), np.zeros((3, 2, 4)), "differ in shape"),
        (np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), "at least 2 frames"),
        (np.zeros((2, 3)), np.zeros((2, 3)), "(T, H, W)"),
        (np.full((2, 2, 3), np.nan), np.zeros((2, 2, 3)), "NaN"),
    ],
)
def test_bad_clips_raise(pred, gt, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        temporal_errors(pred, gt, flow=np.zeros((max(pred.shape[0] - 1, 0), *pred.shape[1:], 2)))


def test_bad_flow_and_warp_raise():
    gt = static_clip(3)
    with pytest.raises(ValueError, match="flow"):
        messddt_pairs(gt, gt, np.zeros((3, H, W, 2)))
    with pytest.raises(ValueError, match="warp"):
        messddt_pairs(gt, gt, zero_flow(), warp="bilinear")


def test_maggie_clip_bounds_match_float32_comparison():
    from himbench.metrics.temporal import MAGGIE_CLIP_HIGH, MAGGIE_CLIP_LOW

    # float64 values around both thresholds, down to single ulps: the float64 bounds decide as float32 would.
    rng = np.random.default_rng(1)
    for centre in (1 / 255, 254 / 255):
        near = centre + rng.uniform(-1e-7, 1e-7, 20000)
        edges = [np.nextafter(b, k) for b in (MAGGIE_CLIP_LOW, MAGGIE_CLIP_HIGH) for k in (-1, 2)]
        near = np.concatenate([near, edges, [MAGGIE_CLIP_LOW, MAGGIE_CLIP_HIGH]])
        as32 = near.astype(np.float32)
        np.testing.assert_array_equal(near <= MAGGIE_CLIP_LOW, as32 <= 1.0 / 255.0)
        np.testing.assert_array_equal(near >= MAGGIE_CLIP_HIGH, as32 >= 254.0 / 255.0)


@pytest.mark.parametrize("with_region", [False, True])
def test_clip_temporal_equals_the_separate_functions(with_region):
    rng = np.random.default_rng(2)
    gt = np.round(rng.random((4, 20, 24)) * 255) / 255
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    pred[0, 0, :3] = [1 / 255, 254 / 255, 0.5 / 255]  # values MaGGIe's clipping moves
    region = (rng.random(gt.shape) > 0.3).astype(float) if with_region else None
    flow = rng.normal(0, 2, (3, 20, 24, 2))
    both = clip_temporal(pred, gt, flow, region)
    assert {k: both[k] for k in ("dtSSD", "MESSDdt", "pairs")} == temporal_errors(pred, gt, flow, region)
    assert {k: both[k] for k in ("maggie_dtSSD_sum", "maggie_MESSDdt_sum", "maggie_count")} == pytest.approx(
        maggie_temporal(pred, gt, flow), rel=1e-12)
