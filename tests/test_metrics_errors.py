"""Per-matte errors (SPEC s.2): hand-worked cases and agreement with a straightforward reference written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from himbench import metrics
from himbench.io import read_alpha
from himbench.metrics import errors
from himbench.metrics.kernels import gaussian_derivative_kernel

# ------------------------------------------------------------------ straightforward reference (MATLAB transcription)


def ref_kernel(sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    eps = 1e-2
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    size = 2 * half + 1
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y, x = i - half, j - half
            g_y = math.exp(-(y**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            g_x = math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            hx[i, j] = g_y * (-x * g_x / sigma**2)
    hx /= math.sqrt((hx**2).sum())
    return hx, hx.T


def ref_mat2gray(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    low, high = a.min(), a.max()
    return np.zeros_like(a) if high == low else (a - low) / (high - low)


def ref_grad_sum(p, g, region=None, normalize="minmax"):
    hx, hy = ref_kernel()
    if normalize == "minmax":
        p, g = ref_mat2gray(p), ref_mat2gray(g)
    else:
        p, g = p.astype(np.float64), g.astype(np.float64)
    # ndimage.convolve is a true convolution; mode="nearest" is MATLAB's 'replicate'.
    amp_p = np.hypot(ndimage.convolve(p, hx, mode="nearest"), ndimage.convolve(p, hy, mode="nearest"))
    amp_g = np.hypot(ndimage.convolve(g, hx, mode="nearest"), ndimage.convolve(g, hy, mode="nearest"))
    err = (amp_p - amp_g) ** 2
    return float(err.sum() if region is None else err[region].sum())


def ref_conn_sum(p, g, region=None, theta=0.15):
    p = p.astype(np.float32)
    g = g.astype(np.float32)
    l_map = np.full(p.shape, -1.0)
    for k in range(1, 11):
        t = np.float32(k / 10)
        inter = (p >= t) & (g >= t)
        labels, count = ndimage.label(inter)  # default structure: 4-connectivity
        omega = np.zeros(p.shape, dtype=bool)
        if count:
            sizes = np.bincount(labels.ravel())[1:]  # background label 0 excluded
            omega = labels == (np.argmax(sizes) + 1)
        flag = (l_map == -1) & ~omega
        l_map[flag] = (k - 1) / 10
    l_map[l_map == -1] = 1.0
    d_p = p.astype(np.float64) - l_map
    d_g = g.astype(np.float64) - l_map
    phi_p = 1 - d_p * (d_p >= theta)
    phi_g = 1 - d_g * (d_g >= theta)
    err = np.abs(phi_p - phi_g)
    return float(err.sum() if region is None else err[region].sum())


def close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


# ---------------------------------------------------------------------------------------------- hand-worked cases

P_SMALL = np.array([[0.0, 0.5], [1.0, 1.0]], dtype=np.float32)
G_SMALL = np.array([[0.0, 1.0], [0.5, 1.0]], dtype=np.float32)


def test_sad_mse_mad_hand_worked():
    # |p - g| = [[0, .5], [.5, 0]]: SAD = 1 -> 0.001; MSE = (.25 + .25) / 4 = .125 -> 125; MAD = 1 / 4 -> 250.
    assert metrics.sad(P_SMALL, G_SMALL) == pytest.approx(0.001)
    assert metrics.mse(P_SMALL, G_SMALL) == pytest.approx(125.0)
    assert metrics.mad(P_SMALL, G_SMALL) == pytest.approx(250.0)
    region = np.array([[False, True], [False, False]])
    # Only the top-right pixel: SAD .5 -> 0.0005; MSE .25 / 1 -> 250; MAD .5 / 1 -> 500.
    assert metrics.sad(P_SMALL, G_SMALL, region) == pytest.approx(0.0005)
    assert metrics.mse(P_SMALL, G_SMALL, region) == pytest.approx(250.0)
    assert metrics.mad(P_SMALL, G_SMALL, region) == pytest.approx(500.0)
    # Published variants: over H*W = 4 -> .25 / 4 * 1000 = 62.5; InstMatt's |R| + 1 = 2 -> .5 / 2 * 1000 = 250.
    assert metrics.mse(P_SMALL, G_SMALL, region, denominator="image") == pytest.approx(62.5)
    assert metrics.mad(P_SMALL, G_SMALL, region, denominator="region+1") == pytest.approx(250.0)
    # Empty region: nothing measured.
    assert metrics.mse(P_SMALL, G_SMALL, np.zeros((2, 2), bool)) == 0.0


def test_uint8_input_is_value_over_255():
    assert metrics.sad(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.float32)) == pytest.approx(0.004)


def test_kernel_matches_matlab_construction():
    hx, hy = gaussian_derivative_kernel(1.4)
    ref_hx, ref_hy = ref_kernel(1.4)
    assert hx.shape == (9, 9)
    np.testing.assert_allclose(hx, ref_hx, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hy, ref_hy, rtol=1e-12, atol=1e-15)
    assert (hx**2).sum() == pytest.approx(1.0)


def test_grad_of_vertical_step_hand_worked():
    # p = 1 on columns >= 20 of a 12x40 image, g = 0 (constant, so its gradient is 0).
    # hx = outer(Gn, Dn) with unit-norm factors. Along y the image is constant, so gy = 0 and gx picks up
    # S = sum Gn: G(u) ~ exp(-u^2/3.92) = 1, .7748, .3604, .1007, .01688 -> S = 3.50556 / 1.57520 = 2.22546.
    # Along x, gx at column 20 + j is the partial sum of Dn(u) = -u G(u) / ||.|| over u <= j; |Dn| for u = 1..4 is
    # (.7748, .7208, .3021, .06752) / 1.55931, partial sums .04330, .23704, .69929, 1.19617, 1.19617, .69929,
    # .23704, .04330 for j = -4..3. Sum of squares 3.95578; per row S^2 * 3.95578 = 19.5919; 12 rows = 235.10.
    p = np.zeros((12, 40), np.float32)
    p[:, 20:] = 1.0
    g = np.zeros_like(p)
    assert metrics.gradient_error_sum(p, g) == pytest.approx(235.10, rel=1e-3)
    assert metrics.grad(p, g) == pytest.approx(0.23510, rel=1e-3)
    # A 0.25 -> 0.75 step: min-max makes it the same 0 -> 1 step; without it the gradient halves (x 1/4 squared).
    half_step = np.where(p > 0, 0.75, 0.25).astype(np.float32)
    assert metrics.gradient_error_sum(half_step, g) == pytest.approx(235.10, rel=1e-3)
    assert metrics.gradient_error_sum(half_step, g, normalize="none") == pytest.approx(235.10 / 4, rel=1e-3)
    # Measured only on column 20: 12 rows x S^2 x 1.19617^2 = 85.04.
    region = np.zeros(p.shape, bool)
    region[:, 20] = True
    assert metrics.gradient_error_sum(p, g, region) == pytest.approx(12 * 2.22546**2 * 1.19617**2, rel=1e-3)
    assert metrics.grad(p, p) == 0.0


def test_conn_hand_worked_component_and_levels():
    # g = [1 1 0 1], p = [1 1 0 .5]. For t <= .5 the intersection is {0,1} (size 2) and {3} (size 1): Omega = {0,1}.
    # Pixels 2 and 3 leave Omega at k = 1 -> l = 0; pixels 0, 1 stay in Omega up to t = 1 -> l = 1.
    # Pixel 3: d_p = .5 -> phi_p = .5; d_g = 1 -> phi_g = 0; |diff| = .5. Others: 0. Conn = .5 -> 0.0005.
    g = np.array([[1, 1, 0, 1]], np.float32)
    p = np.array([[1, 1, 0, 0.5]], np.float32)
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(0.5)
    assert metrics.conn(p, g) == pytest.approx(0.0005)
    # g = [.35 .8], p = [.35 .35]: both pixels are in Omega for t <= .3, the intersection is empty at .4, so l = .3.
    # Pixel 0: d = .05 for both -> phi 1, 1. Pixel 1: d_p = .05 -> 1; d_g = .5 -> .5. Conn = .5.
    g = np.array([[0.35, 0.8]], np.float32)
    p = np.array([[0.35, 0.35]], np.float32)
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(0.5)


def test_conn_threshold_0_6_is_met_by_153_over_255():
    # g = 153/255 = 0.6, p = 1. In float32 0.6 >= t_6 = 0.6, so l = t_6 = .6 (the intersection empties at .7):
    # d_g ~ 0 -> phi_g = 1; d_p = .4 -> phi_p = .6; Conn = .4. With float64 np.arange thresholds t_6 is
    # 0.6000000000000001, 153/255 fails it, l = .5 and Conn would be .5.
    g = np.array([[153]], np.uint8)
    p = np.array([[1.0]], np.float32)
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(0.4)


def test_conn_background_label_is_not_a_component():
    # One foreground pixel in a 3x3 matte: the background (8 pixels) must not win as "largest component".
    # g = p except the centre: g = 1, p = .5 -> intersection {centre} for t <= .5, so the centre keeps Omega until
    # t = .6 where it is empty -> l = .5; d_p = 0 -> phi_p = 1, d_g = .5 -> phi_g = .5: Conn = .5.
    g = np.zeros((3, 3), np.float32)
    p = np.zeros((3, 3), np.float32)
    g[1, 1], p[1, 1] = 1.0, 0.5
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(0.5)


def test_conn_tie_prefers_first_component_in_raster_order():
    # g = [.4 0 .4], p = [.5 0 .4]: for t <= .4 the intersection is two single pixels, a tie. The first in
    # row-major order, (0, 0), is Omega: it keeps it until t = .5 -> l = .4: d_p = .1 < .15 -> phi_p = 1,
    # d_g = 0 -> phi_g = 1: no error. (0, 2) gets l = 0 at k = 1: d_p = d_g = .4 -> equal phis. Conn = 0.
    # Had (0, 2) won the tie, (0, 0) would get l = 0: phi_p = .5, phi_g = .6, Conn = .1.
    g = np.array([[0.4, 0.0, 0.4]], np.float32)
    p = np.array([[0.5, 0.0, 0.4]], np.float32)
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(0.0, abs=1e-6)
    assert metrics.connectivity_error_sum(p, g) == pytest.approx(ref_conn_sum(p, g), abs=1e-6)


# ------------------------------------------------------------------------------------------- reference agreement


def _random_pair(rng: np.random.Generator, shape=(48, 64)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = ndimage.gaussian_filter(rng.random(shape), 3)
    g = np.clip((base - base.mean()) * 8 + 0.5, 0, 1)
    g = np.round(g * 255) / 255
    p = np.clip(g + rng.normal(0, 0.1, shape) * (rng.random(shape) < 0.3), 0, 1)
    p = (np.round(p * 255) / 255).astype(np.float32)
    region = rng.random(shape) < 0.5
    return p, g.astype(np.float32), region


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_reference_on_random_mattes(seed):
    rng = np.random.default_rng(seed)
    p, g, region = _random_pair(rng)
    for reg in (None, region):
        d = p.astype(np.float64) - g
        ref_sad = np.abs(d).sum() if reg is None else np.abs(d)[reg].sum()
        ref_sq = (d**2).sum() if reg is None else (d**2)[reg].sum()
        assert close(metrics.abs_error_sum(p, g, reg), ref_sad)
        assert close(metrics.squared_error_sum(p, g, reg), ref_sq)
        assert close(metrics.gradient_error_sum(p, g, reg), ref_grad_sum(p, g, reg))
        assert close(metrics.gradient_error_sum(p, g, reg, normalize="none"), ref_grad_sum(p, g, reg, "none"))
        assert close(metrics.connectivity_error_sum(p, g, reg), ref_conn_sum(p, g, reg))


def test_agrees_with_reference_on_sparse_mattes_near_border():
    # Non-zero pixels touching the image border and small blobs: exercises cropping and replicate padding.
    rng = np.random.default_rng(7)
    g = np.zeros((40, 50), np.float32)
    p = np.zeros_like(g)
    g[0:10, 0:12] = rng.random((10, 12))
    p[0:9, 0:14] = rng.random((9, 14))
    g[30:40, 44:50] = 1.0
    p[31:40, 40:50] = 0.7
    for normalize in ("minmax", "none"):
        assert close(metrics.gradient_error_sum(p, g, normalize=normalize), ref_grad_sum(p, g, None, normalize))
    assert close(metrics.connectivity_error_sum(p, g), ref_conn_sum(p, g))


def test_agrees_with_reference_on_real_mattes(realdata):
    alpha_dir = realdata / "P3M" / "demo" / "imgs" / "alpha"
    paths = sorted(alpha_dir.glob("*.png"))[:2]
    assert paths, f"no alphas in {alpha_dir}"
    for path in paths:
        g = read_alpha(path)
        # A plausible prediction: blurred and eroded ground truth, requantised to 8 bits.
        p = ndimage.grey_erosion(ndimage.gaussian_filter(g, 2.0), size=(3, 3))
        p = (np.round(np.clip(p, 0, 1) * 255) / 255).astype(np.float32)
        unknown = (g > 0) & (g < 1)
        unknown = ndimage.binary_dilation(unknown, iterations=5)
        for reg in (None, unknown):
            assert close(metrics.gradient_error_sum(p, g, reg), ref_grad_sum(p, g, reg))
            assert close(metrics.connectivity_error_sum(p, g, reg), ref_conn_sum(p, g, reg))
        assert close(metrics.mse(p, g, unknown), ((p.astype(np.float64) - g) ** 2)[unknown].mean() * 1000)


def test_crop_bounds_are_exact_for_a_region_away_from_the_support():
    # Grad and Conn work on boxes around the non-zero pixels and the region; a brute-force full-image sum must agree,
    # including when the region's box and the mattes' box only partly overlap.
    gt = np.zeros((30, 40), np.float32)
    gt[8:20, 10:25] = 1.0
    gt[8:20, 25] = 0.5
    pred = np.roll(gt, 2, axis=1) * np.float32(0.9)
    region = np.zeros(gt.shape, bool)
    region[15:28, 22:38] = True
    full = (
        errors.gradient_magnitude(pred.astype(np.float64) / pred.max())
        - errors.gradient_magnitude(gt.astype(np.float64))
    ) ** 2
    assert metrics.gradient_error_sum(pred, gt, region) == pytest.approx(float(full[region].sum()), rel=1e-12)
    conn_full = errors.connectivity_error_map(pred, gt)
    assert metrics.connectivity_error_sum(pred, gt, region) == pytest.approx(float(conn_full[region].sum()), rel=1e-12)


def test_unknown_region_reads_trimap_values():
    trimap = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(metrics.unknown_region(trimap), [[False, True, False]])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="differs"):
        metrics.sad(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        metrics.mse(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))
