"""Instance matching (SPEC s.3, InstMatt): IoU of binarised mattes and a Hungarian assignment on 1 - IoU.

A matte is binarised at ``alpha > 0``. IoU = |P & G| / |P | G|, and 0 when both are empty (InstMatt divides by
``union + 1e-8``, which gives the same 0 and differs from this by under 1e-8 otherwise; no IoU threshold is that
close to an attainable IoU on real images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from himbench.geometry import tight_box

__all__ = ["Matching", "binarise", "iou_matrix", "match_instances"]


@dataclass(frozen=True)
class Matching:
    """A Hungarian assignment: ``pred_index[i]`` is paired with ``gt_index[i]`` at IoU ``iou[i]``."""

    iou_matrix: np.ndarray  # float64 (P, G)
    pred_index: np.ndarray  # int64 (M,), M = min(P, G)
    gt_index: np.ndarray  # int64 (M,)
    iou: np.ndarray  # float64 (M,)


def binarise(mattes: np.ndarray) -> np.ndarray:
    """(N, H, W) mattes -> boolean masks ``alpha > 0``."""
    return np.asarray(mattes) > 0


def iou_matrix(pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
    """IoU (P, G) float64 of boolean masks (P, H, W) and (G, H, W).

    Intersections are counted only where the two masks' bounding boxes overlap (elsewhere they are 0), which is
    exact and much cheaper than a full-image product when people occupy different parts of the image.
    """
    pred_masks = np.asarray(pred_masks, dtype=bool)
    gt_masks = np.asarray(gt_masks, dtype=bool)
    if pred_masks.shape[1:] != gt_masks.shape[1:]:
        raise ValueError(f"mask sizes differ: pred {pred_masks.shape[1:]} vs gt {gt_masks.shape[1:]}")
    num_pred, num_gt = len(pred_masks), len(gt_masks)
    iou = np.zeros((num_pred, num_gt), dtype=np.float64)
    if num_pred == 0 or num_gt == 0:
        return iou
    pred_boxes = [tight_box(m) for m in pred_masks]
    gt_boxes = [tight_box(m) for m in gt_masks]
    pred_area = [0 if b is None else int(np.count_nonzero(m)) for m, b in zip(pred_masks, pred_boxes, strict=True)]
    gt_area = [0 if b is None else int(np.count_nonzero(m)) for m, b in zip(gt_masks, gt_boxes, strict=True)]
    for i, pb in enumerate(pred_boxes):
        for j, gb in enumerate(gt_boxes):
            if pb is None or gb is None:
                continue
            common = pb.intersection(gb)
            if common.is_empty:
                continue
            inter = int(np.count_nonzero(pred_masks[i][common.slices] & gt_masks[j][common.slices]))
            iou[i, j] = inter / (pred_area[i] + gt_area[j] - inter)
    return iou


def match_instances(pred_masks: np.ndarray, gt_masks: np.ndarray) -> Matching:
    """Hungarian assignment minimising sum(1 - IoU) (scipy ``linear_sum_assignment``); every pair of the
    assignment is returned, whatever its IoU (thresholding is the caller's job)."""
    matrix = iou_matrix(pred_masks, gt_masks)
    if matrix.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Matching(matrix, empty, empty, np.zeros(0, dtype=np.float64))
    rows, cols = linear_sum_assignment(1.0 - matrix)
    return Matching(matrix, rows.astype(np.int64), cols.astype(np.int64), matrix[rows, cols])
