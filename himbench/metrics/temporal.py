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

Flow: :func:`gt_flow` computes it once per instance clip, its frame pairs on a few threads (``threads``), bit for
bit the serial result; :func:`clip_temporal` reuses it for both variants. The sums run one frame pair at a time in
float64 (inputs kept float32 where given so), without whole-clip float64 temporaries.
Accumulate clips with :class:`TemporalStat` (sums only, merges with ``+=``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from himbench.metrics.paper_units import MAGGIE_EPS

__all__ = [
    "DEFAULT_FLOW_THREADS",
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
# Threads over a clip's frame pairs for Farneback (most of the cost): a few, not every core, since callers may
# already run clips in parallel processes.
DEFAULT_FLOW_THREADS = max(1, min(4, os.cpu_count() or 1))

# Keys of one clip's dict (clip_temporal); TemporalStat averages the first two over clips and pools the maggie sums.
TEMPORAL_KEYS: tuple[str, ...] = (
    "dtSSD", "MESSDdt", "pairs", "maggie_dtSSD_sum", "maggie_MESSDdt_sum", "maggie_count",
)


# ------------------------------------------------------------------------------------------------------- inputs
def _clip(array: np.ndarray, name: str) -> np.ndarray:
    """A validated clip, float32 or float64 as given (no whole-clip float64 copy: frames are widened to float64 one
    at a time where they are used); any other dtype is converted to float64 as before."""
    out = np.asarray(array)
    if out.ndim != 3:
        raise ValueError(f"{name}: expected one instance's clip (T, H, W), got shape {out.shape}")
    if out.shape[0] < 2:
        raise ValueError(f"{name}: a clip needs at least 2 frames for a temporal metric, got {out.shape[0]}")
    if out.dtype not in (np.float32, np.float64):
        out = out.astype(np.float64)
    # One reduction, accumulated in float64 so that large finite float32 values cannot overflow into a false alarm:
    # NaN and inf propagate into the sum.
    if not np.isfinite(out.sum(dtype=np.float64)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return out


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _clip(pred, "prediction"), _clip(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The region as given (its frames are widened to float64 where used: the same values as a whole-clip cast)."""
    if region is None:
        return None
    out = np.asarray(region)
    if out.shape != shape:
        raise ValueError(f"region {out.shape} must have the clip's shape {shape}")
    return out


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


def _threads(threads: int | None, pairs: int) -> int:
    if threads is None:
        threads = DEFAULT_FLOW_THREADS
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a whole number of at least 1 (or None for the default), got {threads!r}")
    return max(1, min(int(threads), pairs))


# --------------------------------------------------------------------------------------------------------- flow
def gt_flow(gt: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Farneback flow from frame t to t+1 of a ground-truth clip, (T-1, H, W, 2) float32, channel 0 = dx (columns),
    channel 1 = dy (rows): MaGGIe's recipe, its parameters (:data:`FARNEBACK_PARAMS`) on ``uint8(gt * 255)``.

    The cast truncates, as MaGGIe's ``.astype(np.uint8)`` does, so a product landing just under k gives k - 1. The
    product is taken in float32, the dtype assumed for the ground truth its test loop hands over (torch tensors
    turned into NumPy); not verified against its data loader. OpenCV runs per frame pair; the pairs are spread over
    ``threads`` threads (default :data:`DEFAULT_FLOW_THREADS`; OpenCV releases the GIL), each pair's flow the same
    bits as in a serial run (every pair is an independent call on the same inputs)."""
    return _farneback(_clip(gt, "ground truth"), threads)


def _farneback(gt: np.ndarray, threads: int | None = None) -> np.ndarray:
    t, h, w = gt.shape
    workers = _threads(threads, t - 1)
    # Frame by frame, the same elementwise float32 product, clip and truncating cast as on the whole clip.
    frames = [(gt[i].astype(np.float32) * np.float32(255.0)).clip(0, 255).astype(np.uint8) for i in range(t)]
    out = np.empty((t - 1, h, w, 2), dtype=np.float32)

    def one(i: int) -> None:
        out[i] = cv2.calcOpticalFlowFarneback(frames[i], frames[i + 1], None, *FARNEBACK_PARAMS)

    if workers == 1:
        for i in range(t - 1):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="himbench-flow") as pool:
            list(pool.map(one, range(t - 1)))  # consumed so that a worker's exception is raised here
    return out


def _flat_index(flow: np.ndarray, warp: str, frame_one: bool = False, kind: type | None = None) -> np.ndarray:
    """Index into ``frames[1:].ravel()`` for every pixel of every frame t, (T-1, H, W): the flow rounded as MaGGIe
    (``np.rint``, half to even), row and column clamped to the frame. ``frame_one``: every pair reads the stack's
    first frame (MaGGIe's ``torch.take`` handed a whole clip). Called with one pair at a time by the scoring loop
    (:func:`_pair_sums`), where the index is into that pair's next frame. ``kind``: the integer dtype (default
    int32 where it can hold the indices)."""
    pairs, h, w, _ = flow.shape
    if kind is None:
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
# The clip is scored one frame pair at a time: each frame's error is widened to float64 once, kept while its two
# pairs need it, and every per-pair sum runs over one frame (2.4 MB at 480 x 640 in float64) instead of a whole-clip
# float64 array (74 MB at 30 frames), which outgrew the cache. Each pair's sum is the same reduction, in the same
# order, as one row of the former whole-clip arrays, so the values are unchanged (tests/test_temporal_speedpath.py).
@dataclass(frozen=True)
class _Variant:
    """One set of per-pair sums to compute: over ``mask`` (a (T, H, W) region or None), with MaGGIe's prediction
    clipping (``clip``) or not, dtSSD's squared sums (``ssd``) and the MESSDdt change for each ``(warp, frame_one)``
    of ``changes``."""

    mask: np.ndarray | None = field(default=None, compare=False)
    clip: bool = False
    ssd: bool = True
    changes: tuple[tuple[str, bool], ...] = ()


def _maggie_error(p: np.ndarray, g: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """One frame's error after MaGGIe's clipping of the prediction (decided as in float32, :func:`_float32_bounds`);
    ``raw`` itself where the clipping changes nothing in this frame."""
    if p.dtype == np.float32:  # float32(1/255) and float32(254/255) decide a float32 value as the bounds do
        low, high = p <= _CLIP_LOW32, p >= _CLIP_HIGH32  # in float32: half the traffic of a float64 comparison
    else:
        low, high = p <= _CLIP_LOW, p >= _CLIP_HIGH
    low &= p != 0.0
    high &= p != 1.0
    if not (low.any() or high.any()):
        return raw
    clipped = p.astype(np.float64)  # a copy: float64 values of p, as the former whole-clip cast gave
    clipped[low] = 0.0
    clipped[high] = 1.0
    return np.subtract(clipped, g, dtype=np.float64)


def _pair_sums(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None,
               variants: tuple[_Variant, ...]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """For each variant: per pair ``sum (e_{t+1} - e_t)^2 [* m_t]`` (T-1,) and, per change, ``sum |E_t -
    warp(E_{t+1})|`` (T-1,), with ``E = e^2 [* m]``, all float64. Work two variants share (the same error, mask or
    warp in a pair) is done once."""
    frames, h, w = gt.shape
    n, pairs = h * w, frames - 1
    results = [(np.zeros(pairs), [np.empty(pairs) for _ in v.changes]) for v in variants]
    diff = np.empty(n)
    moved = np.empty(n)
    previous: list[tuple[np.ndarray, str, np.ndarray, tuple]] = []
    first_sq: dict[int, np.ndarray] = {}  # frame 1's E per variant, for frame_one (window="clip", transposed)
    for f in range(frames):
        p, g = pred[f].reshape(n), gt[f].reshape(n)
        raw = np.subtract(p, g, dtype=np.float64)  # float64 arithmetic on the float64 values of both inputs
        clipped: np.ndarray | None = None
        squares: dict[tuple, np.ndarray] = {}
        current = []
        for i, v in enumerate(variants):
            err, err_key = raw, "raw"
            if v.clip:
                if clipped is None:
                    clipped = _maggie_error(p, g, raw)
                if clipped is not raw:
                    err, err_key = clipped, "clip"
            sq_key = (err_key, id(v.mask) if v.mask is not None else None)
            sq = squares.get(sq_key)
            if sq is None and v.changes:
                sq = err * err
                if v.mask is not None:
                    sq *= v.mask[f].reshape(n)  # multiplied as float64, the value a float64 region holds
                squares[sq_key] = sq
            current.append((err, err_key, sq, sq_key))
            if f == 1 and any(one for _, one in v.changes):
                first_sq[i] = sq
        if f:
            t = f - 1
            sums: dict[tuple, float] = {}
            indices: dict[str, np.ndarray] = {}
            for i, v in enumerate(variants):
                err0, key0, sq0, sq_key0 = previous[i]
                err1, key1, sq1, sq_key1 = current[i]
                mask_key = id(v.mask) if v.mask is not None else None
                if v.ssd:
                    key = ("ssd", key0, key1, mask_key)
                    if key not in sums:
                        np.subtract(err1, err0, out=diff)
                        if v.mask is None:
                            sums[key] = np.einsum("i,i->", diff, diff)
                        else:
                            sums[key] = np.einsum("i,i,i->", diff, diff,
                                                  v.mask[t].reshape(n).astype(np.float64, copy=False))
                    results[i][0][t] = sums[key]
                for j, (warp, frame_one) in enumerate(v.changes):
                    source, source_key = (first_sq[i], ("first", i)) if frame_one else (sq1, sq_key1)
                    key = ("change", sq_key0, source_key, warp)
                    if key not in sums:
                        index = indices.get(warp)
                        if index is None:
                            # np.intp: what np.take indexes with, spared a conversion per call
                            index = indices[warp] = _flat_index(flow[t:t + 1], warp, kind=np.intp).reshape(n)
                        np.take(source, index, out=moved)
                        moved -= sq0
                        np.abs(moved, out=moved)
                        sums[key] = moved.sum()
                    results[i][1][j][t] = sums[key]
        previous = current
    return results


def dtssd_pairs(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """``sqrt(sum_p [(a_{t+1} - a_t) - (g_{t+1} - g_t)]^2)`` for each pair t, (T-1,) float64, over the whole frame or
    over ``region[t]`` (a (T, H, W) 0/1 mask; the pair uses frame t's mask, as OTVM)."""
    pred, gt = _pair(pred, gt)
    ((ssd, _),) = _pair_sums(pred, gt, None, (_Variant(mask=_region(region, gt.shape)),))
    return np.sqrt(ssd)


def messddt_pairs(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                  region: np.ndarray | None = None, warp: Warp = "correct", *,
                  threads: int | None = None) -> np.ndarray:
    """``sum_p |E_t(p) - E_{t+1}(p + v_t(p))|`` with ``E = (a - g)^2`` for each pair t, (T-1,) float64.

    ``flow`` (T-1, H, W, 2), channel 0 = dx, 1 = dy, is the motion from frame t to t+1 (default: :func:`gt_flow`
    of ``gt`` on ``threads`` threads; pass the true motion where it is known, e.g. zeros for a static clip). It is
    rounded to whole pixels and indices are clamped (:func:`warp_next`). ``region`` masks E in each frame before
    warping (OTVM)."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    _check_warp(warp)
    flow = _farneback(gt, threads) if flow is None else _flow(flow, gt.shape)
    ((_, (change,)),) = _pair_sums(pred, gt, flow, (_Variant(mask=mask, ssd=False, changes=((warp, False),)),))
    return change


def _check_warp(*warps: str) -> None:
    for warp in warps:
        if warp not in WARPS:
            raise ValueError(f"warp must be one of {WARPS}, got {warp!r}")


# ---------------------------------------------------------------------------------------------- clip values
def _paper_values(ssd: np.ndarray, change: np.ndarray) -> dict[str, float]:
    return {"dtSSD": float(np.sqrt(ssd).mean()), "MESSDdt": float(change.mean()), "pairs": int(ssd.size)}


def temporal_errors(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                    region: np.ndarray | None = None, warp: Warp = "correct", *,
                    threads: int | None = None) -> dict[str, float]:
    """One instance clip in the benchmark's definition: ``{"dtSSD", "MESSDdt"}`` = the mean over the T-1 frame
    pairs of :func:`dtssd_pairs` and :func:`messddt_pairs` (alpha units, unscaled), plus ``"pairs"``. ``threads``:
    for the flow, when it is computed here (:func:`gt_flow`)."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    _check_warp(warp)
    flow = _farneback(gt, threads) if flow is None else _flow(flow, gt.shape)
    ((ssd, (change,)),) = _pair_sums(pred, gt, flow, (_Variant(mask=mask, changes=((warp, False),)),))
    return _paper_values(ssd, change)


def _maggie_values(ssd: np.ndarray, change: np.ndarray, shape: tuple[int, ...]) -> dict[str, float]:
    t, h, w = shape
    return {
        "maggie_dtSSD_sum": float(MAGGIE_DTSSD_SCALE * np.sqrt(ssd).sum()),
        "maggie_MESSDdt_sum": float(MAGGIE_MESSDDT_SCALE * (change / (h * w + 1.0)).sum()),
        "maggie_count": t - 1,
    }


def maggie_temporal(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                    warp: Warp = "maggie-transposed", window: Literal["pairs", "clip"] = "pairs",
                    clip_pred: bool = True, *, threads: int | None = None) -> dict[str, float]:
    """One instance clip in MaGGIe's units, as sums to pool: ``{"maggie_dtSSD_sum", "maggie_MESSDdt_sum",
    "maggie_count"}``; the split's table value is ``sum / (count + 1e-6)`` over all clips (:class:`TemporalStat`).

    Whole frame (no region), flow from :func:`gt_flow` (on ``threads`` threads) unless given, predictions first
    clipped as MaGGIe's test loop does (``<= 1/255 -> 0``, ``>= 254/255 -> 1``, in float32; ``clip_pred=False``
    skips it).

    ``window="pairs"`` (default) reproduces ``engine/test.py``'s video loop, which hands ``dtSSD.update`` and
    ``MESSDdt.update`` two frames at a time: each pair adds ``0.1 * dtSSD_t`` and ``1e4 * MESSDdt_t / (H*W + 1)``
    and counts 1. ``window="clip"`` reproduces the same classes handed the whole clip in one call: dtSSD adds
    ``0.1 * sqrt(sum over all pairs and pixels)`` and MESSDdt adds ``1e4 * sum_t MESSDdt_t / ((T-1)(H*W + 1))``,
    each counting 1; with ``warp="maggie-transposed"`` every pair then reads frame 1 (``torch.take`` indexes the
    flattened (T-1, H, W) stack with indices below H*W), as that code does."""
    pred, gt = _pair(pred, gt)
    if window not in ("pairs", "clip"):
        raise ValueError(f"window must be 'pairs' or 'clip', got {window!r}")
    _check_warp(warp)
    flow = _farneback(gt, threads) if flow is None else _flow(flow, gt.shape)
    frame_one = window == "clip" and warp == "maggie-transposed"
    ((ssd, (change,)),) = _pair_sums(pred, gt, flow, (_Variant(clip=clip_pred, changes=((warp, frame_one),)),))
    if window == "pairs":
        return _maggie_values(ssd, change, gt.shape)
    t, h, w = gt.shape
    return {
        "maggie_dtSSD_sum": float(MAGGIE_DTSSD_SCALE * np.sqrt(ssd.sum())),
        "maggie_MESSDdt_sum": float(MAGGIE_MESSDDT_SCALE * change.sum() / ((t - 1) * (h * w + 1.0))),
        "maggie_count": 1,
    }


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
# As NumPy float64 scalars, so that a float32 frame is compared with them in float64 (a Python float would be cast
# to float32 under NumPy 2's promotion rules, moving the bound).
_CLIP_LOW, _CLIP_HIGH = np.float64(MAGGIE_CLIP_LOW), np.float64(MAGGIE_CLIP_HIGH)
_CLIP_LOW32, _CLIP_HIGH32 = np.float32(1.0 / 255.0), np.float32(254.0 / 255.0)


def clip_temporal(pred: np.ndarray, gt: np.ndarray, flow: np.ndarray | None = None,
                  region: np.ndarray | None = None, warp: Warp = "correct",
                  maggie_warp: Warp = "maggie-transposed", *, threads: int | None = None) -> dict[str, float]:
    """Both variants of one instance clip with the ground-truth flow computed once (on ``threads`` threads):
    :func:`temporal_errors`'s keys (with ``region`` and ``warp``) and :func:`maggie_temporal`'s (whole frame,
    ``maggie_warp``, pairs). In a frame where MaGGIe's clipping changes nothing and there is no region, its errors
    are the paper variant's, reused (and a pair's change, where the warps are the same)."""
    pred, gt = _pair(pred, gt)
    mask = _region(region, gt.shape)
    _check_warp(warp, maggie_warp)
    flow = _farneback(gt, threads) if flow is None else _flow(flow, gt.shape)
    (ssd, (change,)), (maggie_ssd, (maggie_change,)) = _pair_sums(pred, gt, flow, (
        _Variant(mask=mask, changes=((warp, False),)),
        _Variant(clip=True, changes=((maggie_warp, False),)),
    ))
    out = _paper_values(ssd, change)
    out.update(_maggie_values(maggie_ssd, maggie_change, gt.shape))
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
