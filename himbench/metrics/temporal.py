"""Temporal-coherence metrics of video matting: dtSSD and MESSDdt, the benchmark's definition and MaGGIe's variant.

All functions take ONE instance's clip: ``pred`` and ``gt`` are (T, H, W) float arrays in [0, 1], frame t at
index t, the same person in every frame (matching people across a clip is the caller's job). They return data and
never print. The definitions, every difference between the two variants and the zero-flow example are written
out in ``docs/temporal_metrics.md``; in short, for the frame pairs t = 0 .. T-2:

``dtSSD_t   = sqrt( sum_p [ (a_{t+1} - a_t)(p) - (g_{t+1} - g_t)(p) ]^2 )``
``MESSDdt_t = sum_p | E_t(p) - E_{t+1}(p + v_t(p)) |``, with ``E_t = (a_t - g_t)^2`` and v_t the motion of pixel p
from frame t to t+1,

and the clip's value is the mean over its T-1 pairs (:func:`temporal_errors`; Erofeev et al., "Perceptually
Motivated Benchmark for Video Matting", BMVC 2015, as restated by the OTVM and TCVOM evaluation code; see the doc
for what was and was not read first-hand). Values are in alpha units (alpha in [0, 1]), unscaled.

MaGGIe's variant (:func:`maggie_temporal`; Huynh et al., CVPR 2024, arXiv 2404.16035, ``maggie/utils/metric.py``
and ``maggie/engine/test.py``) scores the whole frame, takes the motion v from Farneback flow on the ground-truth
matte rounded to whole pixels, prints ``0.1 * dtSSD_t`` and ``1e4 * MESSDdt_t / (H*W + 1)``, pools all (pair,
instance) values of a split into one mean, and warps with transposed indices (``warp="maggie-transposed"``: pixel
(i, j) of frame t is compared with pixel (j + dx, i + dy) of frame t+1, clamped). himbench's default warp is the
correct one (``warp="correct"``: pixel (i + dy, j + dx), clamped).

Flow: :func:`gt_flow` computes it once per instance clip; :func:`clip_temporal` reuses it for both variants.
Accumulate clips with :class:`TemporalStat` (sums only, merges with ``+=``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from himbench.metrics.paper_units import MAGGIE_EPS

__all__ = [
    "FARNEBACK_PARAMS",
    "MAGGIE_CLIP_HIGH",
    "MAGGIE_CLIP_LOW",
    "MAGGIE_DTSSD_SCALE",
    "MAGGIE_MESSDDT_SCALE",
    "TEMPORAL_KEYS",
    "WARPS",
    "TemporalStat",
    "clip_temporal",
    "dtssd_pairs",
    "gt_flow",
    "maggie_temporal",
    "messddt_pairs",
    "temporal_errors",
    "warp_next",
]

Warp = Literal["correct", "maggie-transposed"]
WARPS: tuple[str, ...] = ("correct", "maggie-transposed")

# cv2.calcOpticalFlowFarneback(prev, next, None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags),
# the arguments of MaGGIe's (and OTVM's) MESSDdt.
FARNEBACK_PARAMS: tuple[float, int, int, int, int, float, int] = (
    0.5, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN,
)
MAGGIE_DTSSD_SCALE = 0.1  # dtSSD.update: np.sum(err) * 0.1
MAGGIE_MESSDDT_SCALE = 1e4  # MESSDdt.update: error += e * 10000

# Keys of one clip's dict (clip_temporal); TemporalStat averages the first two over clips and pools the maggie sums.
TEMPORAL_KEYS: tuple[str, ...] = (
    "dtSSD", "MESSDdt", "pairs", "maggie_dtSSD_sum", "maggie_MESSDdt_sum", "maggie_count",
)


# ------------------------------------------------------------------------------------------------------- inputs
def _clip(array: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(array)
    if out.ndim != 3:
        raise ValueError(f"{name}: expected one instance's clip (T, H, W), got shape {out.shape}")
    if out.shape[0] < 2:
        raise ValueError(f"{name}: a clip needs at least 2 frames for a temporal metric, got {out.shape[0]}")
    out = out.astype(np.float64, copy=False)
    if not np.isfinite(out.sum()):  # one reduction: NaN and inf propagate into the sum
        raise ValueError(f"{name}: contains NaN or infinite values")
    return out


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _clip(pred, "prediction"), _clip(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if region is None:
        return None
    out = np.asarray(region)
    if out.shape != shape:
        raise ValueError(f"region {out.shape} must have the clip's shape {shape}")
    return out.astype(np.float64)


def _flow(flow: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.asarray(flow)
    t, h, w = shape
    if out.shape != (t - 1, h, w, 2):
        raise ValueError(f"flow {out.shape} must be (T-1, H, W, 2) = {(t - 1, h, w, 2)}, channel 0 = dx, 1 = dy")
    low, high = float(out.min()), float(out.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("flow contains NaN or infinite values")
    if max(-low, high) > 1e6:
        raise ValueError(f"flow has displacements up to {max(-low, high):g} pixels; at most 1e6 are accepted")
    return out


# --------------------------------------------------------------------------------------------------------- flow
def gt_flow(gt: np.ndarray) -> np.ndarray:
    """Farneback flow from frame t to t+1 of a ground-truth clip, (T-1, H, W, 2) float32, channel 0 = dx (columns),
    channel 1 = dy (rows): MaGGIe's recipe, its parameters (:data:`FARNEBACK_PARAMS`) on ``uint8(gt * 255)``.

    The cast truncates, as MaGGIe's ``.astype(np.uint8)`` does, so a product landing just under k gives k - 1. The
    product is taken in float32, the dtype assumed for the ground truth its test loop hands over (torch tensors
    turned into NumPy); not verified against its data loader. OpenCV runs per frame pair."""
    return _farneback(_clip(gt, "ground truth"))


def _farneback(gt: np.ndarray) -> np.ndarray:
    frames = (gt.astype(np.float32) * np.float32(255.0)).clip(0, 255).astype(np.uint8)
    t, h, w = frames.shape
    out = np.empty((t - 1, h, w, 2), dtype=np.float32)
    for i in range(t - 1):
        out[i] = cv2.calcOpticalFlowFarneback(frames[i], frames[i + 1], None, *FARNEBACK_PARAMS)
    return out


def _flat_index(flow: np.ndarray, warp: str, frame_one: bool = False) -> np.ndarray:
    """Index into ``frames[1:].ravel()`` for every pixel of every frame t, (T-1, H, W): the flow rounded as MaGGIe
    (``np.rint``, half to even), row and column clamped to the frame. One index array, so that ``np.take``
    gathers all pairs in one pass. ``frame_one``: every pair reads the stack's first frame (MaGGIe's
    ``torch.take`` handed a whole clip)."""
    pairs, h, w, _ = flow.shape
    kind = np.int32 if pairs * h * w < 2**31 else np.int64  # half the memory traffic of int64 where it fits
    dx = np.rint(flow[..., 0]).astype(kind)
    dy = np.rint(flow[..., 1]).astype(kind)
    rows = np.arange(h, dtype=kind)[None, :, None]
    cols = np.arange(w, dtype=kind)[None, None, :]
    if warp == "correct":
        row, col = dy, dx
        row += rows
        col += cols
    elif warp == "maggie-transposed":
        # MaGGIe builds meshgrid([y, x]) ('ij'), stacks [col, row], adds (dx, dy) and reads channel 0 as the ROW:
        # row = col + dx clamped to the height, column = row + dy clamped to the width.
        row, col = dx, dy
        row += cols
        col += rows
    else:
        raise ValueError(f"warp must be one of {WARPS}, got {warp!r}")
    np.clip(row, 0, h - 1, out=row)
    np.clip(col, 0, w - 1, out=col)
    row *= w
    row += col
    if not frame_one:
        row += (np.arange(pairs, dtype=kind) * (h * w))[:, None, None]
    return row


def warp_next(frames: np.ndarray, flow: np.ndarray, warp: Warp = "correct") -> np.ndarray:
    """Frame t+1 of ``frames`` (T, H, W) brought onto frame t's pixel grid by nearest-pixel sampling along the
    rounded ``flow`` (T-1, H, W, 2): out[t, i, j] = frames[t+1, i + dy, j + dx] (``"correct"``), or MaGGIe's
    transposed read frames[t+1, j + dx, i + dy] (``"maggie-transposed"``), indices clamped. Returns (T-1, H, W).

    On a zero flow ``"correct"`` returns ``frames[1:]`` unchanged; ``"maggie-transposed"`` returns each frame
    transposed and clamped (a 4 x 6 frame 0..23 comes back with rows 0 6 12 18 18 18 / 1 7 13 19 19 19 / ...)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"expected frames (T >= 2, H, W), got shape {frames.shape}")
    flow = _flow(flow, frames.shape)
    return np.take(frames[1:].ravel(), _flat_index(flow, warp)).reshape(flow.shape[:3])


# ------------------------------------------------------------------------------------------- per-pair values
# The private functions take validated float64 arrays; the public ones validate once and call them.
def _ssd(err: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Per pair sum of ``[(a_{t+1} - a_t) - (g_{t+1} - g_t)]^2`` = ``(e_{t+1} - e_t)^2`` with ``e = a - g``."""
    d = np.diff(err, axis=0).reshape(err.shape[0] - 1, -1)
    if mask is None:
        return np.einsum("ij,ij->i", d, d)
    return np.einsum("ij,ij,ij->i", d, d, mask[:-1].reshape(d.shape))


def _change(sq_err: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per pair sum of ``|E_t - E_{t+1}[index]|``, (T-1,)."""
    moved = np.take(sq_err[1:].ravel(), index)
    moved -= sq_err[:-1]
    np.abs(moved, out=moved)
    return moved.reshape(moved.shape[0], -1).sum(axis=1)


def _squared(err: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    out = err * err
    if mask is not None:
        out *= mask
    return out


def _error_change(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray, mask: np.ndarray | None, warp: str,
                  frame_one: bool = False) -> np.ndarray:
    """``|E_t * m_t - warp(E_{t+1} * m_{t+1})|`` summed per pair, (T-1,)."""
    return _change(_squared(pred - gt, mask), _flat_index(flow, warp, frame_one))


def dtssd_pairs(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """``sqrt(sum_p [(a_{t+1} - a_t) - (g_{t+1} - g_t)]^2)`` for each pair t, (T-1,) float64, over the whole frame or
    over ``region[t]`` (a (T, H, W) 0/1 mask; the pair uses frame t's mask, as OTVM)."""
    pred, gt = _pair(pred, gt)
    return np.sqrt(_ssd(pred - gt, _region(region, gt.shape)))


def messddt_pairs(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                  region: np.ndarray | None = None, warp: Warp = "correct") -> np.ndarray:
    """``sum_p |E_t(p) - E_{t+1}(p + v_t(p))|`` with ``E = (a - g)^2`` for each pair t, (T-1,) float64.

    ``flow`` (T-1, H, W, 2), channel 0 = dx, 1 = dy, is the motion from frame t to t+1 (default: :func:`gt_flow`
    of ``gt``; pass the true motion where it is known, e.g. zeros for a static clip). It is rounded to whole
    pixels and indices are clamped (:func:`warp_next`). ``region`` masks E in each frame before warping (OTVM)."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    flow = _farneback(gt) if flow is None else _flow(flow, gt.shape)
    return _error_change(pred, gt, flow, mask, warp)


# ---------------------------------------------------------------------------------------------- clip values
def _paper(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray, mask: np.ndarray | None,
           warp: str) -> dict[str, float]:
    err = pred - gt
    return _paper_values(_ssd(err, mask), _change(_squared(err, mask), _flat_index(flow, warp)))


def _paper_values(ssd: np.ndarray, change: np.ndarray) -> dict[str, float]:
    return {"dtSSD": float(np.sqrt(ssd).mean()), "MESSDdt": float(change.mean()), "pairs": int(ssd.size)}


def temporal_errors(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                    region: np.ndarray | None = None, warp: Warp = "correct") -> dict[str, float]:
    """One instance clip in the benchmark's definition: ``{"dtSSD", "MESSDdt"}`` = the mean over the T-1 frame
    pairs of :func:`dtssd_pairs` and :func:`messddt_pairs` (alpha units, unscaled), plus ``"pairs"``."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    flow = _farneback(gt) if flow is None else _flow(flow, gt.shape)
    return _paper(pred, gt, flow, mask, warp)


def _maggie(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray, warp: str, window: str,
            clip_pred: bool) -> dict[str, float]:
    if window not in ("pairs", "clip"):
        raise ValueError(f"window must be 'pairs' or 'clip', got {window!r}")
    if clip_pred:
        pred = _maggie_clip32(pred)
    err = pred - gt
    ssd = _ssd(err, None)
    if window == "pairs":
        return _maggie_values(ssd, _change(_squared(err, None), _flat_index(flow, warp)), gt.shape)
    t, h, w = gt.shape
    change = _change(_squared(err, None), _flat_index(flow, warp, frame_one=warp == "maggie-transposed"))
    return {
        "maggie_dtSSD_sum": float(MAGGIE_DTSSD_SCALE * np.sqrt(ssd.sum())),
        "maggie_MESSDdt_sum": float(MAGGIE_MESSDDT_SCALE * change.sum() / ((t - 1) * (h * w + 1.0))),
        "maggie_count": 1,
    }


def _maggie_values(ssd: np.ndarray, change: np.ndarray, shape: tuple[int, ...]) -> dict[str, float]:
    t, h, w = shape
    return {
        "maggie_dtSSD_sum": float(MAGGIE_DTSSD_SCALE * np.sqrt(ssd).sum()),
        "maggie_MESSDdt_sum": float(MAGGIE_MESSDDT_SCALE * (change / (h * w + 1.0)).sum()),
        "maggie_count": t - 1,
    }


def maggie_temporal(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                    warp: Warp = "maggie-transposed", window: Literal["pairs", "clip"] = "pairs",
                    clip_pred: bool = True) -> dict[str, float]:
    """One instance clip in MaGGIe's units, as sums to pool: ``{"maggie_dtSSD_sum", "maggie_MESSDdt_sum",
    "maggie_count"}``; the split's table value is ``sum / (count + 1e-6)`` over all clips (:class:`TemporalStat`).

    Whole frame (no region), flow from :func:`gt_flow` unless given, predictions first clipped as MaGGIe's test
    loop does (``<= 1/255 -> 0``, ``>= 254/255 -> 1``, in float32; ``clip_pred=False`` skips it).

    ``window="pairs"`` (default) reproduces ``engine/test.py``'s video loop, which hands ``dtSSD.update`` and
    ``MESSDdt.update`` two frames at a time: each pair adds ``0.1 * dtSSD_t`` and ``1e4 * MESSDdt_t / (H*W + 1)``
    and counts 1. ``window="clip"`` reproduces the same classes handed the whole clip in one call: dtSSD adds
    ``0.1 * sqrt(sum over all pairs and pixels)`` and MESSDdt adds ``1e4 * sum_t MESSDdt_t / ((T-1)(H*W + 1))``,
    each counting 1; with ``warp="maggie-transposed"`` every pair then reads frame 1 (``torch.take`` indexes the
    flattened (T-1, H, W) stack with indices below H*W), as that code does."""
    pred, gt = _pair(pred, gt)
    flow = _farneback(gt) if flow is None else _flow(flow, gt.shape)
    return _maggie(pred, gt, flow, warp, window, clip_pred)


def _float32_bounds() -> tuple[float, float]:
    """float64 bounds equivalent to MaGGIe's float32 tests: ``float32(x) <= float32(1/255)`` iff ``x <= low`` and
    ``float32(x) >= float32(254/255)`` iff ``x >= high`` (its alphas are float32 and NumPy compares them with the
    Python floats in float32, so float32(1/255), which lies just above 1/255, IS set to 0). The bounds are the
    rounding midpoints, settled by NumPy's own float32 rounding."""
    t = np.float32(1.0 / 255.0)
    mid = (float(t) + float(np.nextafter(t, np.float32(1.0)))) / 2.0
    low = mid if np.float32(mid) <= t else float(np.nextafter(mid, -np.inf))
    u = np.float32(254.0 / 255.0)
    mid = (float(np.nextafter(u, np.float32(0.0))) + float(u)) / 2.0
    high = mid if np.float32(mid) >= u else float(np.nextafter(mid, np.inf))
    return low, high


MAGGIE_CLIP_LOW, MAGGIE_CLIP_HIGH = _float32_bounds()


def _maggie_clip32(pred: np.ndarray) -> np.ndarray:
    """MaGGIe's clipping, decided as in float32; returns ``pred`` itself when it changes nothing (the usual case:
    values at or below 1/255 are already 0 and those at or above 254/255 already 1)."""
    low = pred <= MAGGIE_CLIP_LOW
    high = pred >= MAGGIE_CLIP_HIGH
    low &= pred != 0.0
    high &= pred != 1.0
    if not (low.any() or high.any()):
        return pred
    out = pred.copy()
    out[low] = 0.0
    out[high] = 1.0
    return out


def clip_temporal(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                  region: np.ndarray | None = None, warp: Warp = "correct",
                  maggie_warp: Warp = "maggie-transposed") -> dict[str, float]:
    """Both variants of one instance clip with the ground-truth flow computed once: :func:`temporal_errors`'s
    keys (with ``region`` and ``warp``) and :func:`maggie_temporal`'s (whole frame, ``maggie_warp``, pairs).
    Where MaGGIe's clipping changes nothing and there is no region, its dtSSD and squared errors are the paper
    variant's, reused."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    flow = _farneback(gt) if flow is None else _flow(flow, gt.shape)
    err = pred - gt
    ssd, sq_err = _ssd(err, mask), _squared(err, mask)
    paper_change = _change(sq_err, _flat_index(flow, warp))
    out = _paper_values(ssd, paper_change)
    clipped = _maggie_clip32(pred)
    if mask is None and clipped is pred and maggie_warp == warp:
        change = paper_change
    else:
        if mask is not None or clipped is not pred:
            err = clipped - gt
            ssd, sq_err = _ssd(err, None), _squared(err, None)
        change = _change(sq_err, _flat_index(flow, maggie_warp))
    out.update(_maggie_values(ssd, change, gt.shape))
    return out


# -------------------------------------------------------------------------------------------------- averaging
@dataclass
class TemporalStat:
    """Sums over instance clips; ``stat.update(clip_dict)``, ``stat += other`` (workers each fill one).

    :meth:`result`: ``dtSSD`` and ``MESSDdt`` are means over the instance clips that had them (each clip already
    a mean over its pairs: the benchmark's per-sequence averaging); ``maggie_dtSSD`` and ``maggie_MESSDdt`` are
    MaGGIe's pooled ``sum / (count + 1e-6)`` over all (pair, instance) values; plus ``"clips"`` and
    ``"maggie_count"``."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    clips: int = 0

    def update(self, values: dict[str, float]) -> None:
        """Add one instance clip's dict (:func:`clip_temporal`, :func:`temporal_errors` or :func:`maggie_temporal`)."""
        self.clips += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def __iadd__(self, other: TemporalStat) -> TemporalStat:
        self.clips += other.clips
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]
        return self

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in ("dtSSD", "MESSDdt"):
            if self.counts.get(key):
                out[key] = self.sums[key] / self.counts[key]
        count = self.sums.get("maggie_count", 0.0)
        for key in ("maggie_dtSSD", "maggie_MESSDdt"):
            if f"{key}_sum" in self.sums:
                out[key] = self.sums[f"{key}_sum"] / (count + MAGGIE_EPS)
        out["clips"] = self.clips
        out["maggie_count"] = int(count)
        return out
