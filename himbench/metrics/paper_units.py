"""Metrics in the units and with the quirks of the published tables, so a measured row can sit beside a paper's row.

himbench's own metrics (:mod:`himbench.metrics.errors`, :mod:`himbench.metrics.imq`) follow SPEC.md. The papers'
tables were produced by their own evaluation code, whose units and normalisations differ. This module reproduces
those, read from the code that produced the tables, and says which behaviour each mapping reproduces.

MaGGIe, Table 5 (Huynh et al., CVPR 2024, arXiv 2404.16035; ``hmchuong/MaGGIe`` ``maggie/utils/metric.py`` and
``maggie/engine/test.py``)
    Per image, all instances are handed to the metric together as one batch (N, H, W), at the original image size
    (predictions are resized back; the network sees the image with its short side at 576 px), with no trimap, so
    the region is the whole image. Predictions are first clipped: ``<= 1/255 -> 0`` and ``>= 254/255 -> 1``.
    For instance i with H*W pixels and error d = pred - gt:

    ======  ==============================================================  ===========================
    column  MaGGIe's code                                                    from himbench units
    ======  ==============================================================  ===========================
    MAD     ``mean(|d|) / (H*W + 1e-6) * 1e10``                             ``inst_MAD / 1e3 * 1e10 / (H*W + 1e-6)``
    MSE     ``mean(d^2) / (H*W + 1e-6) * 1e10``                              ``inst_MSE / 1e3 * 1e10 / (H*W + 1e-6)``
    SAD     ``sum(|d|) * 1e-3``                                              ``inst_SAD`` (same units)
    Grad    ``sum((|grad g_n| - |grad p_n|)^2) * 1e-3``, min-max over BATCH  see below
    Conn    ``sum(|phi_g - phi_p|) * 1e-3`` (float64 ``np.arange`` levels)  ``inst_Conn`` (same units)
    ======  ==============================================================  ===========================

    and the table value is ``sum over instances / (number of instances + 1e-6)`` (``Metric.average``). So MaGGIe's
    "MAD" is the per-pixel mean error times ``1e10 / (H*W)``: it depends on the image size (x 5000 for a 1920 x 1080
    image, x 1000 only for a 10-megapixel one), which is why its digits cannot be compared with a x1000 MAD without
    the image sizes. :class:`MaggieAccumulator` (used by ``himbench bench``, columns ``maggie_*``) evaluates each
    image exactly as MaGGIe does; :func:`maggie_mad_from_himbench` converts one instance's himbench value.

    **Grad normalises over the whole batch**: ``(x - x.min()) / (x.max() - x.min() + 1e-6)`` with the minimum and
    maximum of all instances of the image together (separately for the prediction stack and the ground-truth
    stack), not of each matte. A matte scored on its own and the same matte scored beside others therefore differ:
    an instance whose prediction is half as bright as its ground truth scores ~0 alone (min-max rescales it) but not
    beside a full-range prediction. :func:`maggie_batch_errors` reproduces this batch behaviour (it is what the
    table reports); ``himbench``'s ``inst_Grad`` normalises each matte on its own (MATLAB ``mat2gray``). The
    gradient filter is the same 9 x 9 Gaussian-derivative kernel, applied as a correlation with zero padding
    (``F.conv2d(padding=4)``), where himbench's SPEC Grad replicates the border; computed here in float64 where
    MaGGIe used float32.

    Conn thresholds are ``np.arange(0, 1.1, 0.1)`` in float64 (its 0.6 is 0.6000000000000001) and components are
    4-connected (``skimage.measure.label(connectivity=1)``), largest one excluding the background, as MaGGIe's code.
    MADf and MADu (foreground / unknown region) are not reproduced.

    The table is the mean over the ten M-HIM2K mask sets (``masks_matched_<model>``), with the standard deviation
    over sets in parentheses: ``himbench bench --masks M-HIM2K_DIR`` writes one row per set and a mean/std row.

InstMatt's IMQ (Sun et al., CVPR 2022; ``nowsyn/InstMatt`` ``evaluation/IMQ.py``, ``evaluation/metrics.py``)
    ``IMQ = sum of similarities / (TP + FP/2 + FN/2 + 1e-6)`` is a fraction; papers print it x 100. himbench's
    ``IMQ_*`` columns are already x 100 (:func:`instmatt_columns` is the identity on them). Two behaviours of the
    reference evaluator are *not* himbench's defaults and are reproduced only by :func:`instmatt_aggregate`:

    - an image without a prediction folder is skipped (its people are not counted as misses; himbench counts them
      as false negatives);
    - ``MQ = sum / float(TP)`` divides by zero when no instance matches at a threshold (``ZeroDivisionError``;
      himbench reports 0).

E2E-HIM (Liu et al., TCSVT 2023, arXiv 2403.01510; ``aipixel/E2E-HIM`` README)
    EMSE 5.33 and EMAD 6.62 on HIM-100K are printed without a definition and no evaluation code for them is public:
    no mapping exists, and none is invented (:data:`PAPER_TABLES` says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from himbench.metrics.kernels import gaussian_derivative_kernel
from himbench.metrics.table import IMQ_ERRORS, MAGGIE_COLUMNS, metric_key, metric_label

__all__ = [
    "MAGGIE_COLUMNS",
    "MAGGIE_EPS",
    "PAPER_TABLES",
    "InstMattImage",
    "MaggieAccumulator",
    "instmatt_aggregate",
    "instmatt_columns",
    "maggie_batch_errors",
    "maggie_clip",
    "maggie_columns",
    "maggie_conn_sum",
    "maggie_grad_sum",
    "maggie_mad_from_himbench",
    "maggie_mse_from_himbench",
    "mean_and_std",
]

MAGGIE_EPS = 1e-6
# MAGGIE_COLUMNS (MaGGIe's error names, in its table's order) lives in himbench.metrics.table with the maggie_* keys

# Which measured CSV column feeds which published column, per table; None = cannot be reproduced (say why).
PAPER_TABLES: dict[str, dict[str, Any]] = {
    "maggie-table5": {
        "paper": "MaGGIe (Huynh et al., CVPR 2024)",
        "arxiv": "2404.16035",
        "columns": {name: metric_key("maggie", name) for name in ("MAD", "MSE", "Grad", "Conn")},
        "units": "MaGGIe's code: MAD/MSE mean x 1e10 / (H*W); Grad, Conn sums / 1000 (Grad min-max over the batch)",
    },
    "instmatt-imq": {
        "paper": "InstMatt (Sun et al., CVPR 2022)",
        "arxiv": "2205.10767",
        "columns": {metric_label("IMQ", name): metric_key("IMQ", name, 0.5) for name in IMQ_ERRORS},
        "units": "x 100 (himbench's IMQ columns are already x 100)",
    },
    "e2ehim-readme": {
        "paper": "E2E-HIM (Liu et al., TCSVT 2023)",
        "arxiv": "2403.01510",
        "columns": {"EMSE": None, "EMAD": None},
        "units": "undefined by the authors: no mapping",
    },
}


# ----------------------------------------------------------------------------------------------------------- MaGGIe
def maggie_clip(alphas: np.ndarray) -> np.ndarray:
    """MaGGIe's post-processing before scoring (``engine/test.py``): ``<= 1/255 -> 0``, ``>= 254/255 -> 1``."""
    out = np.array(alphas, dtype=np.float64, copy=True)
    out[out <= 1.0 / 255.0] = 0.0
    out[out >= 254.0 / 255.0] = 1.0
    return out


def _stack(array: np.ndarray) -> np.ndarray:
    out = np.asarray(array, dtype=np.float64)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3:
        raise ValueError(f"expected (N, H, W) mattes, got shape {out.shape}")
    return out


def maggie_grad_sum(pred: np.ndarray, gt: np.ndarray) -> float:
    """``sum((|grad gt_n| - |grad pred_n|)^2)`` over a batch (N, H, W), min-max normalised over the whole batch
    (MaGGIe's ``Grad.compute_grad``); not yet scaled by 1e-3."""
    pred, gt = _stack(pred), _stack(gt)
    hx, hy = gaussian_derivative_kernel(1.4)

    def normed(x: np.ndarray) -> np.ndarray:
        return (x - x.min()) / (x.max() - x.min() + MAGGIE_EPS)

    def magnitude(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i, matte in enumerate(x):  # F.conv2d is a correlation; padding=4 pads with zeros
            gx = ndimage.correlate(matte, hx, mode="constant", cval=0.0)
            gy = ndimage.correlate(matte, hy, mode="constant", cval=0.0)
            out[i] = np.sqrt(gx * gx + gy * gy)
        return out

    if pred.size == 0:
        return 0.0
    diff = magnitude(normed(gt)) - magnitude(normed(pred))
    return float(np.sum(diff * diff))


def _largest_component(intersection: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(intersection)  # 4-connected, raster-order labels: skimage connectivity=1
    omega = np.zeros(intersection.shape, dtype=bool)
    if count > 0:
        largest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
        omega[labels == largest] = True
    return omega


def maggie_conn_sum(pred: np.ndarray, gt: np.ndarray) -> float:
    """``sum(|phi_gt - phi_pred|)`` over a batch with MaGGIe's ``Conn.compute_conn`` (not yet scaled by 1e-3)."""
    pred, gt = _stack(pred), _stack(gt)
    steps = np.arange(0, 1 + 0.1, 0.1)  # float64, as MaGGIe: its 0.6 is 0.6000000000000001
    total = 0.0
    for p, g in zip(pred, gt, strict=True):
        round_down = -np.ones_like(g)
        for i in range(1, len(steps)):
            omega = _largest_component((g >= steps[i]) & (p >= steps[i]))
            round_down[(round_down == -1) & ~omega] = steps[i - 1]
        round_down[round_down == -1] = 1
        g_diff, p_diff = g - round_down, p - round_down
        g_phi = 1 - g_diff * (g_diff >= 0.15)
        p_phi = 1 - p_diff * (p_diff >= 0.15)
        total += float(np.sum(np.abs(g_phi - p_phi)))
    return total


def maggie_batch_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """MaGGIe's per-batch scores for one image: ``{"MAD", "MSE", "SAD", "Grad", "Conn"}`` summed over the N
    instances handed together (the ``score`` of ``Metric.compute_metric``), plus ``"count"`` = N.

    ``pred`` and ``gt`` are (N, H, W) in [0, 1], paired by index, already clipped (:func:`maggie_clip`) if the
    protocol asks for it. Divide a sum by ``count`` (or use :class:`MaggieAccumulator`) for the table value."""
    pred, gt = _stack(pred), _stack(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must pair by index")
    n, h, w = gt.shape
    if n == 0:
        return {"MAD": 0.0, "MSE": 0.0, "SAD": 0.0, "Grad": 0.0, "Conn": 0.0, "count": 0}
    diff = pred - gt
    pixels = h * w
    mad = np.abs(diff).mean(axis=(1, 2)) / (pixels + MAGGIE_EPS)
    mse = (diff * diff).mean(axis=(1, 2)) / (pixels + MAGGIE_EPS)
    return {
        "MAD": float(mad.sum() * 1e10),
        "MSE": float(mse.sum() * 1e10),
        "SAD": float(np.abs(diff).sum() * 1e-3),
        "Grad": maggie_grad_sum(pred, gt) * 1e-3,
        "Conn": maggie_conn_sum(pred, gt) * 1e-3,
        "count": n,
    }


@dataclass
class MaggieAccumulator:
    """Dataset totals of MaGGIe's metrics; :meth:`summary` gives ``maggie_MAD`` ... (``score / (count + 1e-6)``)."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MAGGIE_COLUMNS, 0.0))
    count: int = 0

    def add(self, pred: np.ndarray, gt: np.ndarray, clip: bool = True) -> MaggieAccumulator:
        """Score one image's instances, paired by index, handed over together (as MaGGIe's batch of one image)."""
        errors = maggie_batch_errors(maggie_clip(pred) if clip else pred, gt)
        for name in MAGGIE_COLUMNS:
            self.sums[name] += errors[name]
        self.count += int(errors["count"])
        return self

    def merge(self, other: MaggieAccumulator) -> MaggieAccumulator:
        """Add another accumulator's sums in place (a split evaluation merged equals the whole); returns self."""
        for name in MAGGIE_COLUMNS:
            self.sums[name] += other.sums[name]
        self.count += other.count
        return self

    def __iadd__(self, other: MaggieAccumulator) -> MaggieAccumulator:
        if not isinstance(other, MaggieAccumulator):
            return NotImplemented
        return self.merge(other)

    def __add__(self, other: MaggieAccumulator) -> MaggieAccumulator:
        if not isinstance(other, MaggieAccumulator):
            return NotImplemented
        return MaggieAccumulator(dict(self.sums), self.count).merge(other)

    def summary(self) -> dict[str, float]:
        out = {metric_key("maggie", name): self.sums[name] / (self.count + MAGGIE_EPS) for name in MAGGIE_COLUMNS}
        out[metric_key("maggie_count")] = self.count
        return out


def maggie_mad_from_himbench(inst_mad: float, height: int, width: int) -> float:
    """One instance's himbench MAD (x 1000, over H*W) in MaGGIe's MAD units for an image of ``height x width``."""
    return inst_mad / 1e3 * 1e10 / (height * width + MAGGIE_EPS)


def maggie_mse_from_himbench(inst_mse: float, height: int, width: int) -> float:
    """One instance's himbench MSE (x 1000, over H*W) in MaGGIe's MSE units for an image of ``height x width``."""
    return inst_mse / 1e3 * 1e10 / (height * width + MAGGIE_EPS)


def maggie_columns(row: Mapping[str, Any]) -> dict[str, float | None]:
    """A measured CSV row in MaGGIe Table 5's columns (None where the row has no ``maggie_*`` value)."""
    return _columns(row, "maggie-table5")


# ---------------------------------------------------------------------------------------------------------- InstMatt
def instmatt_columns(row: Mapping[str, Any]) -> dict[str, float | None]:
    """A measured CSV row in InstMatt's IMQ columns (x 100, IoU 0.5): the identity on himbench's ``IMQ_*@0.5``."""
    return _columns(row, "instmatt-imq")


def _columns(row: Mapping[str, Any], table: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for column, source in PAPER_TABLES[table]["columns"].items():
        try:
            out[column] = float(row[source]) if source and row.get(source) not in (None, "") else None
        except (TypeError, ValueError):
            out[column] = None
    return out


@dataclass(frozen=True)
class InstMattImage:
    """One image's counts at one IoU threshold: TP/FP/FN and the sum of the TPs' similarities (in [0, TP])."""

    tp: int
    fp: int
    fn: int
    similarity_sum: float


def instmatt_aggregate(images: Iterable[InstMattImage | None]) -> dict[str, float]:
    """InstMatt's ``compute_stats`` for one threshold, reproduced: ``None`` (an image without a prediction folder)
    is skipped; ``IMQ = sum s / (TP + FP/2 + FN/2 + 1e-6)``, ``RQ = TP * same``, ``MQ = sum s / float(TP)``, all
    x 100. Raises ZeroDivisionError when TP = 0, as the reference does."""
    tp = fp = fn = 0
    total = 0.0
    for image in images:
        if image is None:
            continue
        tp, fp, fn, total = tp + image.tp, fp + image.fp, fn + image.fn, total + image.similarity_sum
    coeff = 1.0 / (tp + 0.5 * fp + 0.5 * fn + 1e-6)
    if tp == 0:
        raise ZeroDivisionError("InstMatt's evaluator divides by TP = 0 here (no instance matched at this threshold)")
    return {"IMQ": 100.0 * total * coeff, "RQ": 100.0 * tp * coeff, "MQ": 100.0 * total / float(tp)}


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (numpy's default ``ddof=0``) of per-set values (MaGGIe's paper does
    not say which standard deviation its Table 5 prints)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())
