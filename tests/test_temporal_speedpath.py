"""The fast path of the temporal metrics (one frame pair at a time, float32 inputs kept, Farneback on threads) gives
the values of a plain whole-clip reference written from the definitions, and the threaded flow is the serial flow
bit for bit (docs/temporal_metrics.md, "Speed")."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from himbench.metrics import temporal
from himbench.metrics.temporal import clip_temporal, dtssd_pairs, gt_flow, maggie_temporal, messddt_pairs


def reference_pairs(pred, gt, flow, region=None, warp="correct", clip=False, frame_one=False):
    """Per pair (dtSSD^2, MESSDdt) straight from the definitions: float64, pixel grids, no sharing, no blocking."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if clip:  # MaGGIe's test loop, on float32 alphas
        as32 = pred.astype(np.float32)
        pred = np.where(as32 <= np.float32(1 / 255), 0.0, np.where(as32 >= np.float32(254 / 255), 1.0, pred))
    frames, h, w = gt.shape
    mask = np.ones_like(gt) if region is None else np.asarray(region, dtype=np.float64)
    err = pred - gt
    sq = err**2 * mask
    rows, cols = np.mgrid[0:h, 0:w]
    ssd, change = [], []
    for t in range(frames - 1):
        ssd.append(np.sum((err[t + 1] - err[t]) ** 2 * mask[t]))
        dx, dy = np.rint(flow[t, ..., 0]).astype(int), np.rint(flow[t, ..., 1]).astype(int)
        if warp == "correct":
            r, c = np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)
        else:  # MaGGIe's transposed read
            r, c = np.clip(cols + dx, 0, h - 1), np.clip(rows + dy, 0, w - 1)
        source = sq[1] if frame_one else sq[t + 1]
        change.append(np.sum(np.abs(sq[t] - source[r, c])))
    return np.array(ssd), np.array(change)


def random_clip(seed, frames=5, h=40, w=56, dtype=np.float32):
    rng = np.random.default_rng(seed)
    gt = (np.round(rng.random((frames, h, w)) * 255) / 255).astype(dtype)
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(dtype)
    pred[0, 0, :4] = [1 / 255, 254 / 255, 0.5 / 255, 254.5 / 255]  # values MaGGIe's clipping moves
    t, u = np.float32(1 / 255), np.float32(254 / 255)
    pred[1, 0, :4] = [np.nextafter(t, t + 1), np.nextafter(t, t - 1), np.nextafter(u, u + 1), np.nextafter(u, u - 1)]
    pred[2] = np.round(pred[2] * 255) / 255  # a frame with 8-bit values, 1/255 among them
    flow = rng.normal(0, 3, (frames - 1, h, w, 2)).astype(np.float32)
    region = (rng.random(gt.shape) > 0.3).astype(dtype)
    return pred, gt, flow, region


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("warp", ["correct", "maggie-transposed"])
def test_pair_by_pair_path_matches_the_reference(dtype, warp):
    pred, gt, flow, region = random_clip(3, dtype=dtype)
    for mask in (None, region):
        ssd, change = reference_pairs(pred, gt, flow, mask, warp)
        np.testing.assert_allclose(dtssd_pairs(pred, gt, mask), np.sqrt(ssd), rtol=1e-12, atol=0)
        np.testing.assert_allclose(messddt_pairs(pred, gt, flow, mask, warp), change, rtol=1e-12, atol=0)
        both = clip_temporal(pred, gt, flow, mask, warp=warp, maggie_warp=warp)
        assert both["dtSSD"] == pytest.approx(np.sqrt(ssd).mean(), rel=1e-12)
        assert both["MESSDdt"] == pytest.approx(change.mean(), rel=1e-12)
        m_ssd, m_change = reference_pairs(pred, gt, flow, None, warp, clip=True)
        n = gt.shape[1] * gt.shape[2]
        assert both["maggie_dtSSD_sum"] == pytest.approx(0.1 * np.sqrt(m_ssd).sum(), rel=1e-12)
        assert both["maggie_MESSDdt_sum"] == pytest.approx(1e4 * np.sum(m_change / (n + 1.0)), rel=1e-12)
        assert both["maggie_count"] == gt.shape[0] - 1
    # MaGGIe's clipping really moved values here (else the check above would not test it).
    assert not np.array_equal(reference_pairs(pred, gt, flow, clip=True)[0], reference_pairs(pred, gt, flow)[0])


def test_whole_clip_window_reads_frame_one():
    pred, gt, flow, _ = random_clip(4, frames=6)
    t, h, w = gt.shape
    for warp in ("correct", "maggie-transposed"):
        ssd, change = reference_pairs(pred, gt, flow, None, warp, clip=True, frame_one=warp == "maggie-transposed")
        out = maggie_temporal(pred, gt, flow, warp=warp, window="clip")
        assert out["maggie_dtSSD_sum"] == pytest.approx(0.1 * np.sqrt(ssd.sum()), rel=1e-12)
        assert out["maggie_MESSDdt_sum"] == pytest.approx(1e4 * change.sum() / ((t - 1) * (h * w + 1.0)), rel=1e-12)


def test_layout_and_dtype_do_not_change_values():
    # float32 frames are compared with MaGGIe's bounds in float32, float64 ones in float64: the same decisions.
    pred, gt, flow, region = random_clip(5)
    base = clip_temporal(pred, gt, flow, region)
    assert clip_temporal(pred.astype(np.float64), gt.astype(np.float64), flow, region) == base
    assert clip_temporal(pred, gt.astype(np.float64), flow, region.astype(bool)) == base
    fortran = np.asfortranarray(pred), np.asfortranarray(gt)  # frames not contiguous in memory
    assert clip_temporal(*fortran, flow, region) == base
    assert maggie_temporal(pred, gt, flow) == maggie_temporal(pred.astype(np.float64), gt, flow)


def test_threaded_flow_is_the_serial_flow_bit_for_bit():
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:48, 0:64]
    gt = np.stack([np.clip(1.5 - np.hypot(xx - 20 - 3 * t, yy - 24 + t) / 8, 0, 1) for t in range(7)])
    gt = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
    serial = gt_flow(gt, threads=1)
    assert np.abs(serial).max() > 0.5  # a real motion, not an all-zero flow
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(gt_flow(gt, threads=threads), serial)
    # And pair by pair, the same call MaGGIe makes.
    levels = (gt * np.float32(255)).astype(np.uint8)
    for t in range(len(gt) - 1):
        one = cv2.calcOpticalFlowFarneback(levels[t], levels[t + 1], None, *temporal.FARNEBACK_PARAMS)
        np.testing.assert_array_equal(serial[t], one)
    pred = np.clip(gt + 0.02, 0, 1)
    assert clip_temporal(pred, gt, threads=1) == clip_temporal(pred, gt, threads=4) == clip_temporal(pred, gt)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_raise(threads):
    gt = np.zeros((3, 8, 8))
    with pytest.raises(ValueError, match="threads"):
        gt_flow(gt, threads=threads)


def test_flow_is_computed_once_per_ground_truth_person(monkeypatch):
    from himbench.evaluation import video

    calls = []
    real = cv2.calcOpticalFlowFarneback

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(temporal.cv2, "calcOpticalFlowFarneback", counting)
    pred, gt, _, _ = random_clip(7, frames=4, h=24, w=32)
    clip_temporal(pred, gt)  # both variants: one flow per frame pair
    assert len(calls) == 3
    calls.clear()
    people_gt = np.stack([gt, gt[:, ::-1]])  # (N, T, H, W), as the video evaluation hands them over
    people_pred = np.stack([pred[:, ::-1], pred])
    stat = video._temporal(people_pred, people_gt, np.array([1, 0]), "maggie-transposed", "clip", [])
    assert stat.clips == 2 and len(calls) == 2 * 3
