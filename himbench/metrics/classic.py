"""SAD, MSE, MAD, Grad and Conn in the classic single-person matting benchmarks' own terms (one matte per image).

Two conventions, each reproducing the evaluator that produced its benchmark's published tables:

``"p3m"``: P3M-500-P/NP and AIM-500 (``JizhiziLi/P3M`` and ``JizhiziLi/AIM`` ``core/evaluate.py``, the same code;
    PPM-100 has no trimap and is scored the same way over the whole image). Read from that code; none of it is copied.
``"dim"``: Composition-1k, the Deep Image Matting MATLAB reference as SPEC s.2 and :mod:`himbench.metrics.errors`
    define it (the plain keys on the whole image, the ``*_trimap`` keys on the trimap's unknown pixels).

Every difference between the two, key by key (``docs/metrics.md`` has the same table with the reasons):

============  =================================================  ==================================================
key           ``p3m``                                            ``dim``
============  =================================================  ==================================================
SAD           sum |p - g| / 1000, whole image                    sum |p - g| / 1000, whole image
MSE           sum (p - g)^2 / (H*W) (a fraction, no scaling)     sum (p - g)^2 / (H*W) x 1000
MAD           sum |p - g| / (H*W) (a fraction, no scaling)       sum |p - g| / (H*W) x 1000
Grad          scipy ``gaussian_filter`` derivatives (sigma 1.4,  9x9 MATLAB ``gaussgradient`` kernel, replicate
              13 taps, ``reflect`` border, float32 output), no   border, per-image min-max (``mat2gray``) first;
              normalisation; sum of squared magnitude            sum / 1000
              differences / 10
Conn          float64 thresholds ``np.arange(0, 1.1, 0.1)``      float32 thresholds k/10 (153/255 passes 0.6);
              (153/255 fails 0.6); an empty intersection at a    an empty intersection assigns t_{k-1} to every
              step assigns nothing (those pixels end at l = 1);  pixel still unassigned; theta 0.15; sum / 1000
              float32 levels; theta 0.15; sum / 1000
SAD_trimap    prediction forced to 1 where trimap = 255 and to   sum over the unknown pixels (trimap = 128)
              0 where it is 0, then summed over the WHOLE image  / 1000
              / 1000 (can exceed SAD: the known regions of the
              ground truth need not be exactly 0/1)
MSE_trimap    forced prediction, whole-image sum / number of     sum over unknown / number of unknown x 1000
              unknown pixels (no scaling)
MAD_trimap    forced prediction, whole-image sum / number of     sum over unknown / number of unknown x 1000
              unknown pixels (no scaling)
Grad_trimap   not defined (P3M/AIM report Grad on the whole      Grad on the unknown pixels (min-max still over the
              image only)                                        whole image), / 1000
Conn_trimap   not defined                                        Conn summed on the unknown pixels, / 1000
SAD_fg/_bg    sum |p - g| where trimap = 255 / = 0 (unforced     not defined
              prediction), / 1000
============  =================================================  ==================================================

Edge cases: a trimap without unknown pixels makes P3M divide by the number of pixels that are neither 0 nor 255 (its
fallback); when that is zero too P3M divides by zero, and this module reports 0.0 instead (as the ``dim`` convention
does for an empty region). A trimap value other than 0, 128 and 255 is neither forced nor unknown in ``p3m`` (it
counts only in that fallback) and is outside the unknown region in ``dim``.

Exactness: P3M reads 8-bit PNGs as ``value / 255`` in float64 and compares them with float64 thresholds. Conn here
compares the same float64 values: a uint8 input is divided by 255 in float64, and a float input whose every value is
a float32 ``k / 255`` (an 8-bit PNG read as float32) is mapped back to ``k / 255`` in float64 first. SAD, MSE and MAD
are summed in float64 as P3M does, from float32 inputs (:func:`himbench.metrics.errors.error_sums`: a difference may
be rounded to float32, and a float32 input holds k/255 to about 3e-8 relative), so values agree with P3M's to ~1e-7
relative, far below the printed digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

import himbench.metrics.errors as errors
from himbench.geometry import tight_box
from himbench.metrics.errors import as_matte

__all__ = [
    "CONVENTIONS",
    "UNITS",
    "ClassicStat",
    "classic_errors",
    "dim_simple_errors",
    "p3m_conn",
    "p3m_grad",
    "p3m_trimap_errors",
    "p3m_whole_errors",
]

CONVENTIONS: tuple[str, ...] = ("p3m", "dim")

UNITS: dict[str, dict[str, str]] = {
    "p3m": {
        "SAD": "sum |p-g| / 1000",
        "MSE": "mean (p-g)^2 over the image (fraction, not scaled)",
        "MAD": "mean |p-g| over the image (fraction, not scaled)",
        "Grad": "sum of squared differences of Gaussian-derivative magnitudes (scipy, sigma 1.4) / 10",
        "Conn": "sum |phi_p-phi_g| / 1000 (float64 thresholds 0.1 step, theta 0.15)",
        "SAD_trimap": "sum |p'-g| over the whole image / 1000, p' = p forced to 1 (trimap 255) and 0 (trimap 0)",
        "MSE_trimap": "sum (p'-g)^2 over the whole image / unknown pixels (fraction, not scaled)",
        "MAD_trimap": "sum |p'-g| over the whole image / unknown pixels (fraction, not scaled)",
        "SAD_fg": "sum |p-g| where trimap = 255, / 1000",
        "SAD_bg": "sum |p-g| where trimap = 0, / 1000",
    },
    "dim": {
        "SAD": "sum |p-g| / 1000",
        "MSE": "mean (p-g)^2 over the image x 1000",
        "MAD": "mean |p-g| over the image x 1000",
        "Grad": "sum (|grad p|-|grad g|)^2 / 1000 (MATLAB gaussgradient, sigma 1.4, mat2gray)",
        "Conn": "sum |phi_p-phi_g| / 1000 (float32 thresholds 0.1 step, theta 0.15)",
        "SAD_trimap": "sum |p-g| over the unknown pixels (trimap 128) / 1000",
        "MSE_trimap": "mean (p-g)^2 over the unknown pixels x 1000",
        "MAD_trimap": "mean |p-g| over the unknown pixels x 1000",
        "Grad_trimap": "sum (|grad p|-|grad g|)^2 over the unknown pixels / 1000",
        "Conn_trimap": "sum |phi_p-phi_g| over the unknown pixels / 1000",
    },
}

_P3M_SIGMA = 1.4
_P3M_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default
_P3M_THETA = 0.15


# ----------------------------------------------------------------------------------------------------------- inputs
def _trimap(trimap: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if trimap is None:
        return None
    trimap = np.asarray(trimap)
    if trimap.ndim != 2:
        raise ValueError(f"trimap: expected a 2-D HxW array, got shape {trimap.shape}")
    if trimap.shape != shape:
        raise ValueError(f"trimap shape {trimap.shape} differs from matte shape {shape}")
    if trimap.dtype != np.uint8:
        if trimap.dtype.kind != "f" or not trimap.size or float(np.nanmax(trimap)) > 1.0:
            raise ValueError(f"trimap: expected uint8 0/128/255 or float in [0, 1], got dtype {trimap.dtype}")
        # A [0, 1] float trimap (value / 255): 0.5 and 128/255 both round to 128, the unknown value.
        trimap = np.rint(np.nan_to_num(trimap) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(trimap)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.ascontiguousarray(as_matte(pred, "pred"))
    g = np.ascontiguousarray(as_matte(gt, "gt"))
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} differs from gt shape {g.shape}")
    return p, g


def _eight_bit_float64(original: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The float64 values P3M computes with: ``k / 255`` for 8-bit data (uint8, or float32 holding exact k/255)."""
    original = np.asarray(original)
    if original.dtype == np.uint8:
        return original / 255.0
    codes = np.rint(matte * np.float32(255.0))
    if np.array_equal((codes / np.float32(255.0)).astype(np.float32), matte):
        return codes.astype(np.float64) / 255.0
    return matte.astype(np.float64)


def p3m_whole_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """P3M's whole-image ``SAD`` (sum / 1000), ``MSE`` and ``MAD`` (means, not scaled)."""
    p, g = _pair(pred, gt)
    pixels = p.size
    abs_sum, sq_sum = errors.error_sums(p, g)
    return {"SAD": abs_sum / 1000.0, "MSE": sq_sum / pixels if pixels else 0.0,
            "MAD": abs_sum / pixels if pixels else 0.0}


def p3m_trimap_errors(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> dict[str, float]:
    """P3M's ``SAD_trimap``, ``MSE_trimap``, ``MAD_trimap`` (known pixels of the prediction forced to 0/1, summed over
    the whole image, MSE/MAD divided by the unknown-pixel count) and ``SAD_fg``/``SAD_bg`` (unforced, / 1000)."""
    p, g = _pair(pred, gt)
    tri = _trimap(trimap, p.shape)
    fg = (tri == 255).view(np.uint8)
    bg = (tri == 0).view(np.uint8)
    unknown = int(np.count_nonzero(tri == 128))
    if unknown == 0:  # P3M's fallback: pixels that are neither 0 nor 255
        unknown = int(tri.size - np.count_nonzero(fg) - np.count_nonzero(bg))
    sad_fg = errors.error_sums(p, g, fg.view(bool), squared=False)[0]
    sad_bg = errors.error_sums(p, g, bg.view(bool), squared=False)[0]
    forced = p.copy()
    np.copyto(forced, np.float32(1.0), where=fg.view(bool))  # faster than boolean-index assignment
    np.copyto(forced, np.float32(0.0), where=bg.view(bool))
    abs_sum, sq_sum = errors.error_sums(forced, g)
    return {
        "SAD_trimap": abs_sum / 1000.0,
        "MSE_trimap": sq_sum / unknown if unknown else 0.0,
        "MAD_trimap": abs_sum / unknown if unknown else 0.0,
        "SAD_fg": sad_fg / 1000.0,
        "SAD_bg": sad_bg / 1000.0,
    }


@lru_cache(maxsize=4)
def _scipy_gaussian_factors(sigma: float, truncate: float) -> tuple[np.ndarray, np.ndarray]:
    """scipy.ndimage's 1-D Gaussian (order 0) and first-derivative (order 1) kernels, as correlation kernels."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / sigma**2 * x**2)
    phi /= phi.sum()
    derivative = -x / sigma**2 * phi
    # scipy convolves (correlates with the reversed kernel); cv2 filters correlate, so reverse here.
    smooth_c = np.ascontiguousarray(phi[::-1])
    derivative_c = np.ascontiguousarray(derivative[::-1])
    smooth_c.setflags(write=False)
    derivative_c.setflags(write=False)
    return smooth_c, derivative_c


def _p3m_magnitude(matte: np.ndarray) -> np.ndarray:
    smooth, derivative = _scipy_gaussian_factors(_P3M_SIGMA, _P3M_TRUNCATE)
    # scipy "reflect" (d c b a | a b c d) is OpenCV's BORDER_REFLECT; float32 output as P3M asks scipy for.
    along_y = cv2.sepFilter2D(matte, cv2.CV_32F, smooth, derivative, borderType=cv2.BORDER_REFLECT)
    along_x = cv2.sepFilter2D(matte, cv2.CV_32F, derivative, smooth, borderType=cv2.BORDER_REFLECT)
    return cv2.magnitude(along_y, along_x)


def p3m_grad(pred: np.ndarray, gt: np.ndarray) -> float:
    """P3M's Grad: sum (|grad p| - |grad g|)^2 / 10, scipy Gaussian derivatives (sigma 1.4), whole image."""
    p, g = _pair(pred, gt)
    # float32 magnitudes as P3M's; their squared differences summed in float64 (P3M sums in float32).
    return float(cv2.norm(_p3m_magnitude(p), _p3m_magnitude(g), cv2.NORM_L2SQR)) / 10.0


def p3m_conn(pred: np.ndarray, gt: np.ndarray) -> float:
    """P3M's Conn: float64 thresholds ``np.arange(0, 1.1, 0.1)``, theta 0.15, whole image, / 1000."""
    p32, g32 = _pair(pred, gt)
    # Pixels where both mattes are 0 get phi = 1 on both sides whatever their level, and every thresholded set lies
    # inside the non-zero pixels: the box of non-zero pixels gives the exact sum.
    box = tight_box(((p32 > 0) | (g32 > 0)).view(np.uint8))
    if box is None:
        return 0.0
    p = _eight_bit_float64(pred, p32)[box.slices]
    g = _eight_bit_float64(gt, g32)[box.slices]
    thresholds = np.arange(0, 1.1, 0.1)  # float64, as P3M: its 0.6 is 0.6000000000000001
    levels = thresholds.astype(np.float32).astype(np.float64)  # P3M's level map is float32
    lower = np.minimum(p, g)
    level = np.ones(p.shape, dtype=np.float64)
    alive = np.ones(p.shape, dtype=bool)  # pixels inside every component so far (P3M's l_map == -1)
    for k in range(1, thresholds.size):
        omega = errors._largest_component(lower >= thresholds[k])
        if omega is None:
            break  # P3M skips the step (`continue`); the sets only shrink, so no later step assigns anything either
        level[alive & ~omega] = levels[k - 1]
        alive &= omega
    pred_d = p - level
    gt_d = g - level
    # Written as P3M writes phi (1 - d [d >= theta]), so the float64 rounding is the same.
    diff = np.abs((1.0 - pred_d * (pred_d >= _P3M_THETA)) - (1.0 - gt_d * (gt_d >= _P3M_THETA)))
    return float(diff.sum()) / 1000.0


def _p3m(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None) -> dict[str, float]:
    out = p3m_whole_errors(pred, gt)
    out["Grad"] = p3m_grad(pred, gt)
    out["Conn"] = p3m_conn(pred, gt)
    if trimap is not None:
        out.update(p3m_trimap_errors(pred, gt, trimap))
    return out


# -------------------------------------------------------------------------------------------------------------- DIM
def dim_simple_errors(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> dict[str, float]:
    """DIM ``SAD`` (/ 1000), ``MSE`` and ``MAD`` (x 1000) on ``region`` (None: whole image) in one call: the values
    of :func:`errors.sad`, :func:`errors.mse`, :func:`errors.mad` (two passes over the inputs instead of three)."""
    p, g = _pair(pred, gt)
    return _dim_simple(p, g, None if region is None else np.asarray(region, dtype=bool), "")


def _dim_simple(p: np.ndarray, g: np.ndarray, region: np.ndarray | None, suffix: str) -> dict[str, float]:
    abs_sum, sq_sum = errors.error_sums(p, g, region)
    count = p.size if region is None else int(np.count_nonzero(region))
    return {f"SAD{suffix}": abs_sum / 1000.0, f"MSE{suffix}": sq_sum / count * 1000.0 if count else 0.0,
            f"MAD{suffix}": abs_sum / count * 1000.0 if count else 0.0}


def _dim(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None) -> dict[str, float]:
    p, g = _pair(pred, gt)
    out = _dim_simple(p, g, None, "")
    out["Grad"] = errors.grad(p, g)
    region = None if trimap is None else errors.unknown_region(_trimap(trimap, p.shape))
    # One connectivity map serves both sums (errors.conn would build it twice); the box is exact (see errors).
    box = tight_box(((p > 0) | (g > 0)).view(np.uint8))
    conn_map = None if box is None else errors.connectivity_error_map(p[box.slices], g[box.slices])
    out["Conn"] = 0.0 if conn_map is None else float(conn_map.sum()) / 1000.0
    if region is not None:
        out.update({
            **_dim_simple(p, g, region, "_trimap"),
            "Grad_trimap": errors.grad(p, g, region),
            "Conn_trimap": 0.0 if conn_map is None else float(conn_map[region[box.slices]].sum()) / 1000.0,
        })
    return out


def classic_errors(
    pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None, convention: str = "p3m"
) -> dict[str, float]:
    """SAD, MSE, MAD, Grad, Conn of one matte in ``convention``'s terms (see the module table and :data:`UNITS`).

    ``pred``, ``gt``: HxW float in [0, 1] (uint8 is read as value / 255). ``trimap``: HxW uint8 with 0/128/255, or
    None. With a trimap the ``*_trimap`` keys are added (``p3m`` also adds ``SAD_fg`` and ``SAD_bg``, which its
    evaluator prints; ``dim`` adds ``Grad_trimap`` and ``Conn_trimap``, which only it defines).
    """
    if convention == "p3m":
        return _p3m(pred, gt, trimap)
    if convention == "dim":
        return _dim(pred, gt, trimap)
    raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")


# -------------------------------------------------------------------------------------------------------- accumulate
@dataclass
class ClassicStat:
    """Sums of per-image values; merges with ``+=`` (workers each fill one, the parent adds them up).

    ``result()`` is the mean over images per key (over the images that had the key), plus ``"images"``.
    """

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    images: int = 0

    def update(self, values: dict[str, float]) -> None:
        """Add one image's :func:`classic_errors` values."""
        self.images += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def __iadd__(self, other: ClassicStat) -> ClassicStat:
        self.images += other.images
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]
        return self

    def result(self) -> dict[str, float]:
        """Mean per key, plus ``"images"`` (the number of updates)."""
        out: dict[str, float] = {key: self.sums[key] / self.counts[key] for key in self.sums}
        out["images"] = self.images
        return out
