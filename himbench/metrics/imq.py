"""Instance-aware matting quality (SPEC s.3): IMQ, RQ and MQ as InstMatt (CVPR 2022) defines them, plus per-instance
errors in the style of MaGGIe's tables.

Per image (:func:`evaluate_instances`, pure): binarise every matte at ``alpha > 0``, Hungarian assignment on
``1 - IoU``; a pair is a true positive at threshold ``thr`` when ``IoU >= thr``; ``FP = #pred - TP`` and
``FN = #gt - TP`` (a pair matched below ``thr`` counts as both). For each matched pair the InstMatt errors are
per-pixel means over the pair's union region U = (p > 0) | (g > 0)::

    err_mad  = sum_U |p - g|              / (|U| + 1)
    err_mse  = sum_U (p - g)^2            / (|U| + 1)
    err_grad = sum_U (|grad p| - |grad g|)^2 / (|U| + 1)     (inputs used as they are, in [0, 1]: InstMatt's /255)
    err_conn = sum_U |phi_p - phi_g|      / (|U| + 1)

and the similarity is ``s = 1 - min(10 * err, 1)``.

Over a dataset (:class:`IMQAccumulator`, merged with ``+``/``+=`` so sharded runs combine)::

    IMQ = sum s / (TP + FP/2 + FN/2)      RQ = TP / (TP + FP/2 + FN/2)      MQ = sum s / TP  (0 when TP = 0)

all reported x 100, at IoU 0.5 and 0.75. ``PQ`` (sum of matched IoU / (TP + FP/2 + FN/2)) is InstMatt's fifth
column. When ``TP + FP/2 + FN/2 = 0`` (no instance anywhere) IMQ and RQ are 0, as InstMatt's ``+ 1e-6`` gives.

Per-instance errors (the second, MaGGIe-style table): for every Hungarian pair with IoU > 0, the SPEC s.2 errors on
the whole image in reported units (SAD / 1000, MSE x 1000 and MAD x 1000 over H*W, Grad / 1000 with per-image
min-max, Conn / 1000), averaged over those instances. MaGGIe's own code scales MSE/MAD by 1e10 and divides twice;
these numbers use the SPEC units instead, so compare them with MaGGIe's tables by their definitions, not digits.

Deviations from the InstMatt reference (``evaluation/IMQ.py``), all deliberate:

- IoU is ``|P & G| / |P | G|`` (0 for two empty masks) instead of dividing by ``union + 1e-8``.
- Conn uses float32 thresholds (SPEC s.2) where InstMatt uses ``torch.arange`` thresholds; Grad uses float64
  arithmetic. Both differ only in rare threshold ties.
- An image whose prediction folder is missing counts all its ground-truth instances as FN (the evaluation layer
  calls :func:`evaluate_instances` with zero predictions); InstMatt skipped such images silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from himbench.geometry import Box, tight_box
from himbench.metrics.errors import connectivity_error_map, error_sums, gradient_magnitude
from himbench.metrics.kernels import kernel_half_size
from himbench.metrics.matching import binarise, match_instances
from himbench.metrics.table import IMQ_ERRORS, INSTANCE_ERRORS, metric_key

__all__ = [
    "DEFAULT_THRESHOLDS",
    "IMQ_ERRORS",
    "INSTANCE_ERRORS",
    "IMQAccumulator",
    "ImageInstanceStats",
    "PairErrors",
    "evaluate_instances",
    "similarity",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.75)
# IMQ_ERRORS and INSTANCE_ERRORS (the error names) live in himbench.metrics.table with the keys built from them


def similarity(error: float) -> float:
    """InstMatt's similarity of a per-pixel mean error: ``1 - min(10 * err, 1)``."""
    return 1.0 - min(10.0 * float(error), 1.0)


@dataclass(frozen=True)
class PairErrors:
    """Errors of one matched (prediction, ground truth) pair."""

    pred_index: int
    gt_index: int
    iou: float
    union_pixels: int
    # InstMatt per-pixel means over the union (sum / (|U| + 1)); Grad without min-max.
    imq_mad: float
    imq_mse: float
    imq_grad: float
    imq_conn: float
    # Whole-image errors in SPEC s.2 reported units (MaGGIe-style table).
    SAD: float
    MSE: float
    MAD: float
    Grad: float
    Conn: float

    def imq_error(self, name: str) -> float:
        return float(getattr(self, f"imq_{name}"))


@dataclass(frozen=True)
class ImageInstanceStats:
    """Everything one image contributes to the dataset metrics (pure data; merge with :class:`IMQAccumulator`)."""

    num_pred: int
    num_gt: int
    height: int
    width: int
    pairs: tuple[PairErrors, ...]  # Hungarian pairs with IoU > 0, ordered by gt_index

    def true_positives(self, threshold: float) -> tuple[PairErrors, ...]:
        return tuple(pair for pair in self.pairs if pair.iou >= threshold)

    def counts(self, threshold: float) -> tuple[int, int, int]:
        """(TP, FP, FN) at an IoU threshold."""
        tp = len(self.true_positives(threshold))
        return tp, self.num_pred - tp, self.num_gt - tp

    def summary(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, float]:
        """This image alone as a dataset (per-image IMQ etc.), the same keys as :meth:`IMQAccumulator.summary`."""
        accumulator = IMQAccumulator(tuple(thresholds))
        accumulator.add(self)
        return accumulator.summary()

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------- per image
def _stack(alphas: np.ndarray, name: str) -> np.ndarray:
    alphas = np.asarray(alphas)
    if alphas.ndim != 3:
        raise ValueError(f"{name}: expected an (N, H, W) stack of mattes, got shape {alphas.shape}")
    if alphas.dtype == np.uint8:
        return alphas.astype(np.float32) / np.float32(255.0)
    if alphas.dtype.kind != "f":
        raise ValueError(f"{name}: expected float mattes in [0, 1], got dtype {alphas.dtype}")
    alphas = alphas.astype(np.float32, copy=False)
    if alphas.size:
        low, high = float(alphas.min()), float(alphas.max())
        if not (0.0 <= low and high <= 1.0):  # NaN fails both comparisons
            raise ValueError(f"{name}: mattes must be finite and in [0, 1] (min {low}, max {high})")
    return alphas


def _hull(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.union(b)


def _minmax_limits(crop: np.ndarray, area: int, pixels: int) -> tuple[float, float]:
    """Whole-image (min, max) of a matte known to be zero outside ``crop`` (``area`` non-zero pixels)."""
    low = 0.0 if area < pixels else float(crop.min())
    return low, max(float(crop.max()), 0.0)


def _minmax(crop: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    low, high = limits
    if high == low:  # constant image: zero gradient either way
        return np.zeros(crop.shape, dtype=np.float64)
    return (crop.astype(np.float64) - low) / (high - low)


def _pair_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    union_box: Box,
    pred_area: int,
    gt_area: int,
    *,
    sigma: float,
    step: float,
    theta: float,
) -> dict[str, float]:
    height, width = gt.shape
    pixels = height * width
    half = kernel_half_size(sigma)
    # Grad needs `half` pixels of context around every pixel it measures, and the whole-image Grad measures up to
    # `half` pixels outside the union box (beyond that both mattes are 0 over the whole window).
    outer = union_box.pad(2 * half).clip((height, width))
    inner = union_box.relative_to(outer)
    pred_outer, gt_outer = pred[outer.slices], gt[outer.slices]
    pred_u, gt_u = pred_outer[inner.slices], gt_outer[inner.slices]
    union = (pred_u > 0) | (gt_u > 0)
    union_pixels = int(np.count_nonzero(union))
    divisor = union_pixels + 1.0

    # Both mattes are zero outside the union box, so these are also the whole-image sums; the same arithmetic as
    # errors.sad/mse/mad (error_sums), so the instance table equals them to summation-order rounding.
    abs_sum, sq_sum = error_sums(pred_u, gt_u)

    amp_diff = gradient_magnitude(pred_outer, sigma) - gradient_magnitude(gt_outer, sigma)
    amp_diff *= amp_diff
    grad_union_sum = float(amp_diff[inner.slices][union].sum())

    pred_limits = _minmax_limits(pred_outer, pred_area, pixels)
    gt_limits = _minmax_limits(gt_outer, gt_area, pixels)
    if pred_limits == (0.0, 1.0) and gt_limits == (0.0, 1.0):
        grad_image_sum = float(amp_diff.sum())  # min-max changes nothing when both mattes span exactly [0, 1]
    else:
        mm_diff = gradient_magnitude(_minmax(pred_outer, pred_limits), sigma) - gradient_magnitude(
            _minmax(gt_outer, gt_limits), sigma
        )
        grad_image_sum = float(np.dot(mm_diff.ravel(), mm_diff.ravel()))

    conn_sum = float(connectivity_error_map(pred_u, gt_u, step=step, theta=theta).sum())

    return {
        "union_pixels": union_pixels,
        "imq_mad": abs_sum / divisor,
        "imq_mse": sq_sum / divisor,
        "imq_grad": grad_union_sum / divisor,
        "imq_conn": conn_sum / divisor,
        "SAD": abs_sum / 1000.0,
        "MSE": sq_sum / pixels * 1000.0,
        "MAD": abs_sum / pixels * 1000.0,
        "Grad": grad_image_sum / 1000.0,
        "Conn": conn_sum / 1000.0,
    }


def evaluate_instances(
    pred_alphas: np.ndarray,
    gt_alphas: np.ndarray,
    *,
    sigma: float = 1.4,
    conn_step: float = 0.1,
    conn_theta: float = 0.15,
) -> ImageInstanceStats:
    """Match predicted to ground-truth instance mattes of one image and measure every matched pair.

    ``pred_alphas`` (P, H, W) and ``gt_alphas`` (G, H, W): float in [0, 1] (uint8 is read as value / 255); P or G may
    be 0. Returns an :class:`ImageInstanceStats`; thresholds are applied later, so one result serves every IoU
    threshold. The order of the predictions does not matter (up to exact IoU ties of different mattes).
    """
    pred = _stack(pred_alphas, "pred_alphas")
    gt = _stack(gt_alphas, "gt_alphas")
    if pred.shape[1:] != gt.shape[1:] and len(pred) and len(gt):
        raise ValueError(f"prediction size {pred.shape[1:]} differs from ground-truth size {gt.shape[1:]}")
    height, width = gt.shape[1:] if len(gt) or not len(pred) else pred.shape[1:]
    pred_masks, gt_masks = binarise(pred), binarise(gt)
    matching = match_instances(pred_masks, gt_masks)
    pairs = []
    for p_idx, g_idx, iou in zip(matching.pred_index, matching.gt_index, matching.iou, strict=True):
        if iou <= 0:
            continue
        box = _hull(tight_box(pred_masks[p_idx]), tight_box(gt_masks[g_idx]))
        errors = _pair_errors(
            pred[p_idx],
            gt[g_idx],
            box,
            int(np.count_nonzero(pred_masks[p_idx])),
            int(np.count_nonzero(gt_masks[g_idx])),
            sigma=sigma,
            step=conn_step,
            theta=conn_theta,
        )
        pairs.append(PairErrors(pred_index=int(p_idx), gt_index=int(g_idx), iou=float(iou), **errors))
    pairs.sort(key=lambda pair: pair.gt_index)
    return ImageInstanceStats(
        num_pred=int(len(pred)), num_gt=int(len(gt)), height=int(height), width=int(width), pairs=tuple(pairs)
    )


# ---------------------------------------------------------------------------------------------------- dataset sums
def _zeros(count: int) -> list[float]:
    return [0.0] * count


@dataclass
class IMQAccumulator:
    """Sums over images; ``acc += stats`` or ``acc += other_acc``; ``acc_a + acc_b`` is a new accumulator.

    Sums only (no averages are stored), so merging shards in any grouping gives the same totals up to float
    rounding. ``similarity_sums[t][name]`` holds sum of s over TPs at ``thresholds[t]`` for name in
    :data:`IMQ_ERRORS` plus ``"iou"``.
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    num_images: int = 0
    num_pred: int = 0
    num_gt: int = 0
    tp: list[int] = field(default_factory=list)
    fp: list[int] = field(default_factory=list)
    fn: list[int] = field(default_factory=list)
    similarity_sums: list[dict[str, float]] = field(default_factory=list)
    instance_count: int = 0
    instance_sums: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.thresholds = tuple(float(t) for t in self.thresholds)
        if any(not 0.0 < t <= 1.0 for t in self.thresholds):
            raise ValueError(f"IoU thresholds must be in (0, 1], got {self.thresholds}")
        count = len(self.thresholds)
        self.tp = list(self.tp) or [0] * count
        self.fp = list(self.fp) or [0] * count
        self.fn = list(self.fn) or [0] * count
        self.similarity_sums = [dict(s) for s in self.similarity_sums] or [
            dict.fromkeys((*IMQ_ERRORS, "iou"), 0.0) for _ in range(count)
        ]
        self.instance_sums = dict(self.instance_sums) or dict.fromkeys(INSTANCE_ERRORS, 0.0)

    def add(self, stats: ImageInstanceStats) -> IMQAccumulator:
        """Add one image's stats in place; returns self."""
        self.num_images += 1
        self.num_pred += stats.num_pred
        self.num_gt += stats.num_gt
        for t, threshold in enumerate(self.thresholds):
            positives = stats.true_positives(threshold)
            self.tp[t] += len(positives)
            self.fp[t] += stats.num_pred - len(positives)
            self.fn[t] += stats.num_gt - len(positives)
            sums = self.similarity_sums[t]
            for pair in positives:
                for name in IMQ_ERRORS:
                    sums[name] += similarity(pair.imq_error(name))
                sums["iou"] += pair.iou
        for pair in stats.pairs:
            self.instance_count += 1
            for name in INSTANCE_ERRORS:
                self.instance_sums[name] += float(getattr(pair, name))
        return self

    def merge(self, other: IMQAccumulator) -> IMQAccumulator:
        """Add another accumulator's sums in place; returns self."""
        if other.thresholds != self.thresholds:
            raise ValueError(f"cannot merge accumulators with thresholds {self.thresholds} and {other.thresholds}")
        self.num_images += other.num_images
        self.num_pred += other.num_pred
        self.num_gt += other.num_gt
        for t in range(len(self.thresholds)):
            self.tp[t] += other.tp[t]
            self.fp[t] += other.fp[t]
            self.fn[t] += other.fn[t]
            for name, value in other.similarity_sums[t].items():
                self.similarity_sums[t][name] += value
        self.instance_count += other.instance_count
        for name, value in other.instance_sums.items():
            self.instance_sums[name] += value
        return self

    def __iadd__(self, other: IMQAccumulator | ImageInstanceStats) -> IMQAccumulator:
        if isinstance(other, ImageInstanceStats):
            return self.add(other)
        if isinstance(other, IMQAccumulator):
            return self.merge(other)
        return NotImplemented

    def __add__(self, other: IMQAccumulator | ImageInstanceStats) -> IMQAccumulator:
        if not isinstance(other, IMQAccumulator | ImageInstanceStats):
            return NotImplemented
        result = IMQAccumulator.from_dict(self.to_dict())
        result += other
        return result

    def summary(self) -> dict[str, float]:
        """Flat dict of the dataset metrics (x 100 for IMQ/RQ/MQ/PQ), keys like ``IMQ_mad@0.5``, ``RQ@0.75``,
        ``MQ_conn@0.5``, ``PQ@0.5``, ``TP@0.5``, and the per-instance table ``inst_SAD`` ... ``inst_Conn``,
        ``inst_count``."""
        out: dict[str, float] = {
            "num_images": self.num_images,
            "num_pred": self.num_pred,
            "num_gt": self.num_gt,
        }
        for t, threshold in enumerate(self.thresholds):
            tag = f"{threshold:g}"
            tp, fp, fn = self.tp[t], self.fp[t], self.fn[t]
            denominator = tp + 0.5 * fp + 0.5 * fn
            sums = self.similarity_sums[t]
            for name in IMQ_ERRORS:
                out[metric_key("IMQ", name, tag)] = 100.0 * sums[name] / denominator if denominator else 0.0
            out[metric_key("RQ", threshold=tag)] = 100.0 * tp / denominator if denominator else 0.0
            for name in IMQ_ERRORS:
                out[metric_key("MQ", name, tag)] = 100.0 * sums[name] / tp if tp else 0.0
            out[metric_key("PQ", threshold=tag)] = 100.0 * sums["iou"] / denominator if denominator else 0.0
            out[metric_key("TP", threshold=tag)] = tp
            out[metric_key("FP", threshold=tag)] = fp
            out[metric_key("FN", threshold=tag)] = fn
        count = self.instance_count
        for name in INSTANCE_ERRORS:
            out[metric_key("inst", name)] = self.instance_sums[name] / count if count else 0.0
        out["inst_count"] = count
        return out

    def to_dict(self) -> dict:
        """JSON-ready sums (for saving a shard's partial result and merging later with :meth:`from_dict`)."""
        return {
            "thresholds": list(self.thresholds),
            "num_images": self.num_images,
            "num_pred": self.num_pred,
            "num_gt": self.num_gt,
            "tp": list(self.tp),
            "fp": list(self.fp),
            "fn": list(self.fn),
            "similarity_sums": [dict(s) for s in self.similarity_sums],
            "instance_count": self.instance_count,
            "instance_sums": dict(self.instance_sums),
        }

    @classmethod
    def from_dict(cls, data: dict) -> IMQAccumulator:
        return cls(
            thresholds=tuple(data["thresholds"]),
            num_images=int(data["num_images"]),
            num_pred=int(data["num_pred"]),
            num_gt=int(data["num_gt"]),
            tp=[int(v) for v in data["tp"]],
            fp=[int(v) for v in data["fp"]],
            fn=[int(v) for v in data["fn"]],
            similarity_sums=[{k: float(v) for k, v in s.items()} for s in data["similarity_sums"]],
            instance_count=int(data["instance_count"]),
            instance_sums={k: float(v) for k, v in data["instance_sums"].items()},
        )
