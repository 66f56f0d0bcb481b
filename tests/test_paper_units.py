"""Paper units: MaGGIe's and InstMatt's evaluation code reproduced on hand-made cases whose values are worked out by
hand (in the comments), including MaGGIe's batch-normalised Grad."""

from __future__ import annotations

import numpy as np
import pytest

from himbench.metrics import conn, grad, mad
from himbench.metrics.paper_units import (
    InstMattImage,
    MaggieAccumulator,
    instmatt_aggregate,
    instmatt_columns,
    maggie_batch_errors,
    maggie_clip,
    maggie_columns,
    maggie_grad_sum,
    maggie_mad_from_himbench,
    maggie_mse_from_himbench,
)


def test_maggie_mad_mse_sad_by_hand():
    # 4 x 5 image, two pixels of the person missed entirely: sum|d| = 2, mean|d| = 2/20 = 0.1.
    gt = np.zeros((1, 4, 5))
    gt[0, 1, 1] = gt[0, 2, 3] = 1.0
    pred = np.zeros_like(gt)
    errors = maggie_batch_errors(pred, gt)
    # MaGGIe: mean|d| / (H*W + 1e-6) * 1e10 = 0.1 / 20 * 1e10 = 5e7 (d^2 = |d| here, so MSE is the same).
    assert errors["MAD"] == pytest.approx(5e7, rel=1e-6)
    assert errors["MSE"] == pytest.approx(5e7, rel=1e-6)
    assert errors["SAD"] == pytest.approx(2e-3)  # sum|d| * 1e-3
    assert errors["count"] == 1
    # The same instance in himbench units (MAD x1000 over H*W = 100) converts to the same number.
    assert mad(pred[0], gt[0]) == pytest.approx(100.0)
    assert maggie_mad_from_himbench(100.0, 4, 5) == pytest.approx(errors["MAD"], rel=1e-9)
    assert maggie_mse_from_himbench(100.0, 4, 5) == pytest.approx(errors["MSE"], rel=1e-9)
    # The unit depends on the image size: the same per-pixel error on a 10x bigger image is 10x smaller.
    assert maggie_mad_from_himbench(100.0, 40, 5) == pytest.approx(5e6, rel=1e-6)


def test_maggie_conn_by_hand():
    # 2 x 2 person, prediction empty: no threshold keeps a common component, so every pixel's level l is 0;
    # gt: d = 1 - 0 >= 0.15 -> phi = 0; pred: d = 0 -> phi = 1; |0 - 1| * 4 pixels = 4 -> 4 * 1e-3.
    gt = np.ones((1, 2, 2))
    errors = maggie_batch_errors(np.zeros_like(gt), gt)
    assert errors["Conn"] == pytest.approx(4e-3)
    assert conn(np.zeros((2, 2)), np.ones((2, 2))) == pytest.approx(errors["Conn"])  # same units as himbench
    assert maggie_batch_errors(gt, gt)["Conn"] == 0.0


def _blob(size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.clip((radius - np.hypot(yy - cy, xx - cx)) / 3 + 0.5, 0, 1)


def test_maggie_grad_normalises_over_the_whole_batch():
    """The trap: a matte scored alone and the same matte scored beside another differ, because MaGGIe min-max
    normalises the stack of all instances together."""
    gt_a, gt_b = _blob(32, 9, 10, 5), _blob(32, 22, 20, 6)
    pred_a, pred_b = gt_a.copy(), 0.5 * gt_b  # B's prediction is half as bright as its ground truth
    # Alone, B's prediction is stretched back to [0, 1] by its own min-max: ~perfect.
    alone_b = maggie_batch_errors(pred_b[None], gt_b[None])["Grad"]
    # Hand derivation in the batch: the prediction stack's max is 1 (from A), so B's prediction stays 0.5 * gt_B,
    # |grad p_B| = 0.5 |grad g_B|, and B's error is (0.5 |grad g_B|)^2 summed = 0.25 * S, with S the error of an
    # empty prediction against g_B (S = sum |grad g_B|^2); A contributes 0.
    s = maggie_grad_sum(np.zeros((1, 32, 32)), gt_b[None])
    together = maggie_batch_errors(np.stack([pred_a, pred_b]), np.stack([gt_a, gt_b]))
    assert together["Grad"] == pytest.approx(0.25 * s * 1e-3, rel=1e-5)
    assert alone_b < 1e-6 * together["Grad"]
    # So the per-instance average MaGGIe's table reports depends on which instances share the image.
    one_at_a_time = (maggie_batch_errors(pred_a[None], gt_a[None])["Grad"] + alone_b) / 2
    assert together["Grad"] / 2 > 1000 * max(one_at_a_time, 1e-12)


def test_maggie_grad_of_one_instance_matches_himbench_grad():
    # One instance whose mattes span [0, 1] and stay away from the border: batch min-max = per-matte mat2gray, and
    # zero padding = replicate padding, so MaGGIe's Grad equals himbench's SPEC Grad up to the 1e-6 in MaGGIe's
    # denominator.
    gt, pred = _blob(40, 20, 20, 8), _blob(40, 21, 20, 7)
    assert maggie_batch_errors(pred[None], gt[None])["Grad"] == pytest.approx(grad(pred, gt), rel=1e-4)


def test_maggie_clip_and_accumulator_average():
    assert maggie_clip(np.array([0.0, 1 / 255, 2 / 255, 253 / 255, 254 / 255])).tolist() == [
        0.0, 0.0, 2 / 255, 253 / 255, 1.0]
    gt = np.zeros((2, 4, 5))
    gt[0, 0, 0] = 1.0
    acc = MaggieAccumulator().add(np.zeros_like(gt), gt)  # instance 0: MAD 1/20/20*1e10 = 2.5e7; instance 1: 0
    summary = acc.summary()
    assert summary["maggie_count"] == 2
    assert summary["maggie_MAD"] == pytest.approx(2.5e7 / 2, rel=1e-6)  # score / (count + 1e-6)


def test_instmatt_aggregate_by_hand_and_its_quirks():
    images = [InstMattImage(1, 0, 1, 0.8), None, InstMattImage(1, 1, 0, 0.6)]
    # None (no prediction folder) is skipped: TP = 2, FP = 1, FN = 1 -> denominator 2 + 0.5 + 0.5 = 3.
    out = instmatt_aggregate(images)
    assert out["IMQ"] == pytest.approx(100 * 1.4 / 3, rel=1e-6)
    assert out["RQ"] == pytest.approx(100 * 2 / 3, rel=1e-6)
    assert out["MQ"] == pytest.approx(70.0)
    with pytest.raises(ZeroDivisionError, match="TP = 0"):
        instmatt_aggregate([InstMattImage(0, 1, 1, 0.0)])


def test_measured_rows_in_paper_columns():
    row = {"IMQ_mad@0.5": "71.19", "IMQ_mse@0.5": "93.0", "maggie_MAD": "12.5", "maggie_Grad": ""}
    assert instmatt_columns(row)["IMQ_mad"] == pytest.approx(71.19)  # already x100
    assert instmatt_columns(row)["IMQ_grad"] is None
    columns = maggie_columns(row)
    assert columns["MAD"] == 12.5 and columns["Grad"] is None and columns["Conn"] is None
