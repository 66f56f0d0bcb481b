"""Instance metrics on video: one matching per clip, identity switches, per-frame IMQ with that matching.

**One matching per clip.** Predicted tracks (K, T, H, W) are paired with ground-truth people (N, T, H, W) once, by a
Hungarian assignment maximising the clip's summed IoU::

    S[p, g] = sum over frames t of IoU_t(p, g)        IoU_t of the binarised mattes (alpha > 0), 0 when both empty

(the sum of per-frame IoUs, not sum of intersections / sum of unions). Every frame weighs the same, as it does in the
per-frame-averaged metrics below, so a swap that lasts n frames costs n frames whatever the people's size; with
summed intersections over summed unions a swap while the people are small (far from the camera) would cost almost
nothing. The pairs are then fixed for the whole clip: a prediction that swaps two people halfway through keeps its
clip-level partner, so in the swapped frames each of its pairs has IoU near 0 and counts as a false positive plus a
false negative instead of being re-matched frame by frame.

**Identity switches** (:class:`IdentitySwitches`). For every frame the image benchmark's own matching (Hungarian on
that frame's IoU) is also computed; ground-truth person g is *tracked by* prediction p in frame t when that per-frame
matching pairs them at ``IoU >= threshold`` (default 0.5, the InstMatt true-positive threshold). For each g:

* ``switched_frames[g]``: frames where g is tracked by a prediction other than its clip-level partner (g's clip-level
  partner is -1 when g is unmatched at clip level; then every tracked frame counts);
* ``id_switches[g]``: how many times the tracking prediction changes between consecutive tracked frames (frames where
  g is tracked by none are skipped, as MOT's IDSW skips them), so one swap halfway through is 1 per person involved.

**Per-frame scores** (:func:`frame_stats_fixed`): each frame becomes an
:class:`~himbench.metrics.imq.ImageInstanceStats` with the clip-level pairs instead of that frame's own matching.
Only people present in the frame count: a matte that is empty in frame t (a person who has left the picture, a track
with nothing to show) is neither a ground-truth instance nor a prediction of that frame, so a prediction equal to
the ground truth scores 100 even when people come and go. The pair errors are
:func:`~himbench.metrics.imq.evaluate_instances` run on the pair alone (the same arithmetic as for images; pairs with
IoU 0 are left out as there).

**Per clip** (:func:`evaluate_clip`): the per-frame values of :meth:`ImageInstanceStats.summary` are averaged over
the clip's frames: ``IMQ_*``, ``RQ@``, ``PQ@`` over frames with at least one person (predicted or true); ``MQ_*@t``
over frames with a true positive at t; the per-instance errors ``inst_*`` over frames with at least one matched pair
(a frame with nothing to measure would otherwise add a 0 error). ``pooled`` also keeps the frames' sums in one
:class:`~himbench.metrics.imq.IMQAccumulator`, which merges across clips for dataset-level numbers pooled over all
frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from himbench.metrics.imq import DEFAULT_THRESHOLDS, ImageInstanceStats, IMQAccumulator, evaluate_instances
from himbench.metrics.matching import binarise, iou_matrix

__all__ = [
    "ClipMatching",
    "ClipResult",
    "IdentitySwitches",
    "average_frame_summaries",
    "clip_iou",
    "evaluate_clip",
    "frame_stats_fixed",
    "identity_switches",
    "match_clip",
]


def _clip(alphas: np.ndarray, name: str) -> np.ndarray:
    alphas = np.asarray(alphas)
    if alphas.ndim != 4:
        raise ValueError(f"{name}: expected a (N, T, H, W) stack of per-frame mattes, got shape {alphas.shape}")
    return alphas


def clip_iou(pred_alphas: np.ndarray, gt_alphas: np.ndarray) -> np.ndarray:
    """Per-frame IoU (K, N, T) float64 of predicted tracks (K, T, H, W) and ground-truth people (N, T, H, W)."""
    pred, gt = _clip(pred_alphas, "pred_alphas"), _clip(gt_alphas, "gt_alphas")
    if pred.shape[1] != gt.shape[1] and len(pred) and len(gt):
        raise ValueError(f"prediction has {pred.shape[1]} frames, ground truth {gt.shape[1]}")
    length = gt.shape[1] if len(gt) or not len(pred) else pred.shape[1]
    out = np.zeros((len(pred), len(gt), length), dtype=np.float64)
    if len(pred) and len(gt):
        for t in range(length):
            out[:, :, t] = iou_matrix(binarise(pred[:, t]), binarise(gt[:, t]))
    return out


@dataclass(frozen=True)
class ClipMatching:
    """The clip-level assignment: ``pred_index[i]`` is paired with ``gt_index[i]`` for the whole clip.
    ``frame_iou`` (K, N, T) per-frame IoU; ``score`` (K, N) its sum over frames; ``mean_iou[i]`` the pair's mean
    per-frame IoU over the frames where the ground-truth person is present (``score`` / those frames; a person
    absent from some frames and predicted exactly scores 1; an empty person, 0)."""

    frame_iou: np.ndarray
    score: np.ndarray
    pred_index: np.ndarray
    gt_index: np.ndarray
    mean_iou: np.ndarray

    def partner_of_gt(self) -> np.ndarray:
        """(N,) the clip-level prediction of every ground-truth person, -1 when unmatched."""
        partner = np.full(self.frame_iou.shape[1], -1, dtype=np.int64)
        partner[self.gt_index] = self.pred_index
        return partner


def match_clip(pred_alphas: np.ndarray, gt_alphas: np.ndarray) -> ClipMatching:
    """One Hungarian assignment for the whole clip on the summed per-frame IoU (see the module docstring). Pairs
    whose summed IoU is 0 are dropped: they share no pixel in any frame."""
    frame_iou = clip_iou(pred_alphas, gt_alphas)
    score = frame_iou.sum(axis=2)
    # IoU is 0 on a frame where the person is absent (both masks empty): average over the frames it is present in.
    gt = _clip(gt_alphas, "gt_alphas")
    present = binarise(gt).reshape(*gt.shape[:2], -1).any(axis=2).sum(axis=1).astype(np.float64)
    if score.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ClipMatching(frame_iou, score, empty, empty, np.zeros(0, dtype=np.float64))
    rows, cols = linear_sum_assignment(score, maximize=True)
    keep = score[rows, cols] > 0
    rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    return ClipMatching(frame_iou, score, rows, cols, score[rows, cols] / np.maximum(present[cols], 1.0))


@dataclass(frozen=True)
class IdentitySwitches:
    """Per ground-truth person (see the module docstring): ``tracked_by`` (N, T) the prediction that tracks it in
    each frame (-1: none), ``switched_frames`` (N,) and ``id_switches`` (N,)."""

    threshold: float
    tracked_by: np.ndarray
    switched_frames: np.ndarray
    id_switches: np.ndarray

    @property
    def total_switches(self) -> int:
        return int(self.id_switches.sum())

    @property
    def total_switched_frames(self) -> int:
        return int(self.switched_frames.sum())


def identity_switches(matching: ClipMatching, threshold: float = 0.5) -> IdentitySwitches:
    """Identity switches of a clip, from its per-frame IoU and clip-level assignment (module docstring)."""
    frame_iou = matching.frame_iou
    num_pred, num_gt, length = frame_iou.shape
    tracked = np.full((num_gt, length), -1, dtype=np.int64)
    if num_pred and num_gt:
        for t in range(length):
            rows, cols = linear_sum_assignment(frame_iou[:, :, t], maximize=True)
            good = frame_iou[rows, cols, t] >= threshold
            tracked[cols[good], t] = rows[good]
    partner = matching.partner_of_gt()
    switched = np.zeros(num_gt, dtype=np.int64)
    switches = np.zeros(num_gt, dtype=np.int64)
    for g in range(num_gt):
        sequence = tracked[g][tracked[g] >= 0]
        switched[g] = int(np.count_nonzero(sequence != partner[g]))
        switches[g] = int(np.count_nonzero(sequence[1:] != sequence[:-1]))
    return IdentitySwitches(float(threshold), tracked, switched, switches)


def frame_stats_fixed(
    pred_frame: np.ndarray,
    gt_frame: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    *,
    sigma: float = 1.4,
    conn_step: float = 0.1,
    conn_theta: float = 0.15,
) -> ImageInstanceStats:
    """One frame's :class:`ImageInstanceStats` with a fixed assignment ``pairs`` of (prediction, ground truth)
    indices instead of the frame's own Hungarian matching. Only non-empty mattes count as instances of the frame;
    indices in the result are those of the full stacks (K, H, W) and (N, H, W)."""
    pred = np.asarray(pred_frame)
    gt = np.asarray(gt_frame)
    pred_present = binarise(pred).reshape(len(pred), -1).any(axis=1) if len(pred) else np.zeros(0, dtype=bool)
    gt_present = binarise(gt).reshape(len(gt), -1).any(axis=1) if len(gt) else np.zeros(0, dtype=bool)
    height, width = gt.shape[1:] if len(gt) or not len(pred) else pred.shape[1:]
    found = []
    for p, g in pairs:
        if not (pred_present[p] and gt_present[g]):
            continue
        alone = evaluate_instances(pred[p : p + 1], gt[g : g + 1], sigma=sigma, conn_step=conn_step,
                                   conn_theta=conn_theta)
        found.extend(replace(pair, pred_index=int(p), gt_index=int(g)) for pair in alone.pairs)
    found.sort(key=lambda pair: pair.gt_index)
    return ImageInstanceStats(num_pred=int(pred_present.sum()), num_gt=int(gt_present.sum()), height=int(height),
                              width=int(width), pairs=tuple(found))


def average_frame_summaries(
    frames: Sequence[ImageInstanceStats], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> dict[str, float]:
    """Mean over frames of the per-frame summary values, each over the frames where it is defined (module
    docstring); counts (``TP@``, ``FP@``, ``FN@``, ``num_*``, ``inst_count``) are summed instead."""
    summaries = [stats.summary(thresholds) for stats in frames]
    if not summaries:
        return {}
    out: dict[str, float] = {"num_frames": len(summaries)}
    scored = [s for s in summaries if s["num_pred"] + s["num_gt"] > 0]
    out["scored_frames"] = len(scored)
    for key in summaries[0]:
        if key.startswith(("TP@", "FP@", "FN@", "num_")) or key == "inst_count":
            out[key] = float(sum(s[key] for s in summaries))
            continue
        if key.startswith("MQ_"):
            tag = key.split("@", 1)[1]
            pool = [s for s in summaries if s[f"TP@{tag}"] > 0]
        elif key.startswith("inst_"):
            pool = [s for s in summaries if s["inst_count"] > 0]
        else:
            pool = scored
        out[key] = float(np.mean([s[key] for s in pool])) if pool else 0.0
    return out


@dataclass(frozen=True)
class ClipResult:
    """Everything one clip contributes: the matching, identity switches, per-frame stats with the clip-level pairs,
    their per-clip averages (``summary``) and pooled sums (``pooled``)."""

    matching: ClipMatching
    switches: IdentitySwitches
    frames: tuple[ImageInstanceStats, ...]
    summary: dict[str, float]
    pooled: IMQAccumulator


def evaluate_clip(
    pred_alphas: np.ndarray,
    gt_alphas: np.ndarray,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    switch_threshold: float = 0.5,
    sigma: float = 1.4,
    conn_step: float = 0.1,
    conn_theta: float = 0.15,
) -> ClipResult:
    """Score one clip: predicted tracks (K, T, H, W) against ground-truth people (N, T, H, W), float in [0, 1] or
    uint8. K may be 0 (a missing prediction: every person missed). ``summary`` adds ``id_switches``,
    ``switched_frames`` and ``clip_mean_iou`` (mean over ground-truth people of the clip-level pair's mean per-frame
    IoU, 0 for an unmatched person) to the averaged frame metrics."""
    pred = _clip(pred_alphas, "pred_alphas")
    gt = _clip(gt_alphas, "gt_alphas")
    if len(pred) == 0:
        pred = np.zeros((0, *gt.shape[1:]), dtype=gt.dtype)
    if pred.shape[1:] != gt.shape[1:] and len(gt):
        raise ValueError(f"prediction clip {pred.shape[1:]} differs from ground-truth clip {gt.shape[1:]} (T, H, W)")
    matching = match_clip(pred, gt)
    switches = identity_switches(matching, switch_threshold)
    pairs = list(zip(matching.pred_index.tolist(), matching.gt_index.tolist(), strict=True))
    length = gt.shape[1] if len(gt) else pred.shape[1]
    frames = tuple(
        frame_stats_fixed(pred[:, t], gt[:, t], pairs, sigma=sigma, conn_step=conn_step, conn_theta=conn_theta)
        for t in range(length)
    )
    pooled = IMQAccumulator(tuple(thresholds))
    for stats in frames:
        pooled.add(stats)
    summary = average_frame_summaries(frames, thresholds)
    summary["id_switches"] = float(switches.total_switches)
    summary["switched_frames"] = float(switches.total_switched_frames)
    summary["clip_mean_iou"] = float(matching.mean_iou.sum() / len(gt)) if len(gt) else 0.0
    return ClipResult(matching, switches, frames, summary, pooled)
