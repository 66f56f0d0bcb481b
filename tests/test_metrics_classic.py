"""Classic-benchmark conventions (himbench.metrics.classic): P3M's evaluator reproduced on 36 reference values,
hand-worked cases for both conventions and for P3M's trimap-forcing rule, and straightforward references."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from himbench.io import read_alpha
from himbench.metrics import CONVENTIONS, UNITS, ClassicStat, classic_errors, errors
from himbench.metrics.classic import p3m_conn, p3m_grad

DATA = Path(__file__).parent / "data" / "interop" / "classic"
REFERENCE = json.loads((DATA / "p3m_evaluator_values.json").read_text())["values"]
IMAGES = sorted({row["image"] for row in REFERENCE})

# Tolerances (relative), and why:
# - SAD/MSE/MAD and their trimap/fg/bg variants: himbench subtracts in float32 and sums in float64; P3M does both in
#   float64. The float32 rounding of k/255 (<= 3e-8 relative per pixel) leaves the sums within ~1e-7; 1e-6 is ten
#   times that and still far below any printed digit.
# - Grad: P3M's own value is a float32 sum of float32 filter outputs (scipy, output=np.float32), so the reference
#   itself carries ~1e-7..1e-6 relative rounding; 1e-5.
# - Conn: the same float64 comparisons, levels and sums as P3M: equal to rounding (1e-12).
TOLERANCE = {"Grad": 1e-5, "Conn": 1e-12}
DEFAULT_TOLERANCE = 1e-6


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8 and image.ndim == 2, path
    return image


@pytest.mark.parametrize("image", IMAGES)
def test_reproduces_p3m_evaluator(image):
    rows = [row for row in REFERENCE if row["image"] == image]
    assert len(rows) == 3
    gt = read_alpha(DATA / "alpha" / f"{image}.png")  # float32 k/255, as the evaluation reads PNGs
    trimap = _read(DATA / "trimap" / f"{image}.png")
    for row in rows:
        pred = read_alpha(DATA / "pred" / f"{row['prediction']}__{image}.png")
        got = classic_errors(pred, gt, trimap, convention="p3m")
        expected = {k: v for k, v in row.items() if k not in ("image", "prediction")}
        assert set(expected) <= set(got)
        for key, value in expected.items():
            tolerance = TOLERANCE.get(key, DEFAULT_TOLERANCE)
            assert got[key] == pytest.approx(value, rel=tolerance, abs=1e-12), (image, row["prediction"], key)


def test_reference_covers_36_values_and_shows_the_forcing_rule():
    assert len(REFERENCE) == 36 and len(IMAGES) == 12
    # The data were made so that forcing the known regions changes SAD: both directions occur.
    assert any(row["SAD_trimap"] > row["SAD"] for row in REFERENCE)
    assert any(row["SAD_trimap"] < row["SAD"] for row in REFERENCE)


def test_uint8_input_equals_float_input():
    image = IMAGES[0]
    gt8 = _read(DATA / "alpha" / f"{image}.png")
    pred8 = _read(DATA / "pred" / f"shift__{image}.png")
    trimap = _read(DATA / "trimap" / f"{image}.png")
    from_uint8 = classic_errors(pred8, gt8, trimap)
    from_float = classic_errors(pred8 / 255.0, gt8.astype(np.float32) / np.float32(255), trimap)
    assert from_uint8["Conn"] == from_float["Conn"]
    for key, value in from_float.items():
        assert from_uint8[key] == pytest.approx(value, rel=1e-6), key


# --------------------------------------------------------------------------------------- hand-worked: both conventions
def test_hand_worked_plain_and_trimap_keys():
    pred = np.array([[0.5, 1.0], [0.0, 0.25]])
    gt = np.array([[0.25, 1.0], [0.0, 0.75]])
    trimap = np.array([[128, 255], [0, 128]], dtype=np.uint8)
    # |d| = 0.25, 0, 0, 0.5 (sum 0.75); d^2 sum 0.3125; 4 pixels, 2 unknown; the known pixels already agree.
    dim = classic_errors(pred, gt, trimap, convention="dim")
    assert dim["SAD"] == pytest.approx(0.75 / 1000)
    assert dim["MSE"] == pytest.approx(0.3125 / 4 * 1000)
    assert dim["MAD"] == pytest.approx(0.75 / 4 * 1000)
    assert dim["SAD_trimap"] == pytest.approx(0.75 / 1000)
    assert dim["MSE_trimap"] == pytest.approx(0.3125 / 2 * 1000)
    assert dim["MAD_trimap"] == pytest.approx(0.75 / 2 * 1000)
    assert {"Grad_trimap", "Conn_trimap"} <= set(dim)
    p3m = classic_errors(pred, gt, trimap, convention="p3m")
    assert p3m["SAD"] == pytest.approx(0.75 / 1000)
    assert p3m["MSE"] == pytest.approx(0.3125 / 4)  # a fraction: P3M does not scale MSE/MAD
    assert p3m["MAD"] == pytest.approx(0.75 / 4)
    assert p3m["SAD_trimap"] == pytest.approx(0.75 / 1000)
    assert p3m["MSE_trimap"] == pytest.approx(0.3125 / 2)
    assert p3m["MAD_trimap"] == pytest.approx(0.75 / 2)
    assert "Grad_trimap" not in p3m and "Conn_trimap" not in p3m  # P3M/AIM do not define them
    for convention in CONVENTIONS:
        got = classic_errors(pred, gt, trimap, convention=convention)
        assert set(got) == set(UNITS[convention]), convention
        assert set(classic_errors(pred, gt, convention=convention)) == {"SAD", "MSE", "MAD", "Grad", "Conn"}


def test_p3m_trimap_forcing_makes_sad_trimap_exceed_sad():
    # 4x4: top row known foreground (trimap 255) where the ground truth is 0.75, not 1; bottom row known background
    # where it is 0.25, not 0; the prediction equals the ground truth there. Middle rows unknown: pred 0.5, gt 0.25.
    gt = np.full((4, 4), 0.25)
    gt[0] = 0.75
    pred = gt.copy()
    pred[1:3] = 0.5
    trimap = np.full((4, 4), 128, dtype=np.uint8)
    trimap[0] = 255
    trimap[3] = 0
    got = classic_errors(pred, gt, trimap, convention="p3m")
    assert got["SAD"] == pytest.approx(8 * 0.25 / 1000)  # only the unknown rows differ
    # Forced: top row 1 (4 x 0.25), bottom row 0 (4 x 0.25), plus the unknown rows (8 x 0.25), over 8 unknown.
    assert got["SAD_trimap"] == pytest.approx(16 * 0.25 / 1000)
    assert got["SAD_trimap"] > got["SAD"]
    assert got["MAD_trimap"] == pytest.approx(16 * 0.25 / 8)
    assert got["MSE_trimap"] == pytest.approx(16 * 0.0625 / 8)
    assert got["SAD_fg"] == 0.0 and got["SAD_bg"] == 0.0  # unforced prediction equals the ground truth there
    dim = classic_errors(pred, gt, trimap, convention="dim")  # unknown pixels only: no forcing
    assert dim["SAD_trimap"] == pytest.approx(8 * 0.25 / 1000)
    assert dim["MSE_trimap"] == pytest.approx(0.0625 * 1000)
    assert dim["MAD_trimap"] == pytest.approx(0.25 * 1000)

    # P3M's fallback: no 128 pixel -> divide by the pixels that are neither 0 nor 255 (here the 8 middle ones).
    other = trimap.copy()
    other[1:3] = 100
    fallback = classic_errors(pred, gt, other, convention="p3m")
    assert fallback["MAD_trimap"] == pytest.approx(16 * 0.25 / 8)
    # No unknown pixel at all: P3M divides by zero; himbench reports 0 (documented).
    known = np.where(trimap == 128, 255, trimap).astype(np.uint8)
    empty = classic_errors(pred, gt, known, convention="p3m")
    assert empty["MSE_trimap"] == 0.0 and empty["MAD_trimap"] == 0.0


@pytest.mark.parametrize("as_uint8", [True, False])
def test_conn_thresholds_differ_between_conventions(as_uint8):
    # gt = 1 everywhere; pred = 153/255 (= 0.6) on the left half, 1 on the right.
    gt = np.full((4, 4), 255, dtype=np.uint8)
    pred = gt.copy()
    pred[:, :2] = 153
    if not as_uint8:  # an 8-bit PNG read as float32 must score the same as the uint8 array
        gt, pred = gt.astype(np.float32) / np.float32(255), pred.astype(np.float32) / np.float32(255)
    # DIM (float32 thresholds): 0.6 passes 0.6; at 0.7 the right half is Omega, the left gets l = 0.6:
    # phi_p = 1, phi_g = 1 - 0.4 -> 0.4 on 8 pixels.
    assert classic_errors(pred, gt, convention="dim")["Conn"] == pytest.approx(8 * 0.4 / 1000)
    # P3M (float64 np.arange: 0.6000000000000001): 0.6 fails, the left gets l = 0.5: d_p = 0.1 < 0.15 so phi_p = 1,
    # phi_g = 1 - 0.5 -> 0.5 on 8 pixels.
    assert classic_errors(pred, gt, convention="p3m")["Conn"] == pytest.approx(8 * 0.5 / 1000)


def test_conn_empty_intersection_differs_between_conventions():
    pred = np.zeros((8, 8))
    gt = np.ones((8, 8))
    # DIM: empty at t = 0.1, every pixel gets l = 0: phi_p = 1, phi_g = 0 -> 64 / 1000.
    assert classic_errors(pred, gt, convention="dim")["Conn"] == pytest.approx(0.064)
    # P3M skips an empty step, so every pixel ends at l = 1: phi_p = phi_g = 1 -> 0.
    assert classic_errors(pred, gt, convention="p3m")["Conn"] == 0.0


# ----------------------------------------------------------------------------------- straightforward references
def ref_p3m_grad(p: np.ndarray, g: np.ndarray) -> float:
    """Written from the definition: scipy Gaussian derivatives, sigma 1.4, float32 output, squared difference / 10."""
    def magnitude(a):
        dy = ndimage.gaussian_filter(a, sigma=1.4, order=[1, 0], output=np.float32)
        dx = ndimage.gaussian_filter(a, sigma=1.4, order=[0, 1], output=np.float32)
        return np.sqrt(dy.astype(np.float64) ** 2 + dx.astype(np.float64) ** 2)

    return float(((magnitude(p) - magnitude(g)) ** 2).sum()) / 10


def ref_p3m_conn(p: np.ndarray, g: np.ndarray) -> float:
    """Written from the definition: float64 thresholds np.arange(0, 1.1, 0.1), an empty step assigns nothing."""
    thresholds = np.arange(0, 1.1, 0.1)
    l_map = np.full(p.shape, -1.0)
    for k in range(1, thresholds.size):
        labels, count = ndimage.label((p >= thresholds[k]) & (g >= thresholds[k]))  # 4-connectivity
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())[1:]
        omega = labels == int(np.argmax(areas)) + 1
        l_map[(l_map == -1) & ~omega] = np.float32(thresholds[k - 1])
    l_map[l_map == -1] = 1.0
    dp, dg = p - l_map, g - l_map
    return float(np.abs((1 - dp * (dp >= 0.15)) - (1 - dg * (dg >= 0.15))).sum()) / 1000


def _random_pair(seed: int, shape=(64, 96)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = cv2.GaussianBlur((rng.random(shape) > 0.6).astype(np.float32), (0, 0), 3)
    gt = np.clip(gt * 2 - 0.3, 0, 1)
    pred = np.clip(gt + rng.normal(0, 0.08, shape).astype(np.float32), 0, 1)
    # 8-bit values, as read from PNGs
    return np.round(pred * 255).astype(np.uint8), np.round(gt * 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(64, 96), (5, 7)])
def test_p3m_grad_matches_scipy_definition(shape):
    pred, gt = _random_pair(1, shape)
    expected = ref_p3m_grad(pred / 255.0, gt / 255.0)
    assert expected > 0
    assert p3m_grad(pred, gt) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [2, 3])
def test_p3m_conn_matches_definition(seed):
    pred, gt = _random_pair(seed)
    expected = ref_p3m_conn(pred / 255.0, gt / 255.0)
    assert expected > 0
    assert p3m_conn(pred, gt) == pytest.approx(expected, rel=1e-12)


def test_dim_convention_is_errors_module_on_whole_image_and_unknown_region():
    pred, gt = _random_pair(4)
    trimap = np.full(gt.shape, 128, dtype=np.uint8)
    trimap[gt == 255] = 255
    trimap[gt == 0] = 0
    trimap[:10] = 0  # known background over a region where the prediction may be wrong
    got = classic_errors(pred, gt, trimap, convention="dim")
    region = trimap == 128
    for key, fn in (("SAD", errors.sad), ("MSE", errors.mse), ("MAD", errors.mad), ("Grad", errors.grad),
                    ("Conn", errors.conn)):
        assert got[key] == pytest.approx(fn(pred, gt), rel=1e-6), key
        assert got[f"{key}_trimap"] == pytest.approx(fn(pred, gt, region), rel=1e-6), key


# ------------------------------------------------------------------------------------------------- accumulation
def test_classic_stat_sums_and_merges():
    values = [classic_errors(*_random_pair(seed), convention="p3m") for seed in range(3)]
    sequential = ClassicStat()
    for v in values:
        sequential.update(v)
    left, right = ClassicStat(), ClassicStat()
    left.update(values[0])
    right.update(values[1])
    right.update(values[2])
    left += right
    assert left.result() == pytest.approx(sequential.result())
    result = sequential.result()
    assert result["images"] == 3
    assert result["SAD"] == pytest.approx(sum(v["SAD"] for v in values) / 3)
    # A key present on only some images is averaged over those images.
    partial = ClassicStat()
    partial.update({"SAD": 1.0, "SAD_trimap": 4.0})
    partial.update({"SAD": 3.0})
    assert partial.result() == {"SAD": 2.0, "SAD_trimap": 4.0, "images": 2}
    assert ClassicStat().result() == {"images": 0}


# ---------------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected():
    pred, gt = _random_pair(5)
    with pytest.raises(ValueError, match="convention"):
        classic_errors(pred, gt, convention="matlab")
    with pytest.raises(ValueError, match="shape"):
        classic_errors(pred, gt[:, :-1])
    with pytest.raises(ValueError, match="trimap"):
        classic_errors(pred, gt, np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="trimap"):
        classic_errors(pred, gt, np.zeros(gt.shape, dtype=np.int32))
