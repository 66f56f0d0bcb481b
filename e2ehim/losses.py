"""E2E-HIM training losses: Hungarian query matching, then classification, trimap and alpha losses.

Matching (DETR): per image, the cost of assigning query q to ground-truth instance k is
``match_cls * -P(person | q) + match_l1 * mean|a8_q - g8_k| + match_dice * dice(a8_q, g8_k)`` where ``a8_q`` is the
query's expected alpha at 1/8 (P(fg) + 0.5 P(unknown) from its trimap logits) and ``g8_k`` the area-mean of the
ground-truth matte at 1/8. Scipy's ``linear_sum_assignment`` solves it (queries >= instances normally; extra
instances beyond the number of queries stay unmatched).

Losses (each a mean, weighted by :class:`~e2ehim.config.LossConfig`):
* classification: 2-way cross-entropy over all queries, matched ones are "person", the no-person class weighted by
  ``no_person_weight``;
* trimap: 3-class cross-entropy at 1/8 against the trimap derived from the ground truth (:func:`trimap_from_alpha`);
* alpha (matched queries, full resolution, on the soft composite alpha that inference hardens): L1, gradient L1
  (finite differences) and Laplacian-pyramid L1 (5 levels, Gaussian 5x5, level i weighted 2**i, normalised);
* alpha_unknown: L1 of the raw dynamic-conv alpha inside the ground-truth unknown band, which trains the alpha head
  directly where the final alpha is taken from it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from e2ehim.config import LossConfig

__all__ = [
    "dice_cost",
    "gradient_loss",
    "hungarian_match",
    "laplacian_loss",
    "match_costs",
    "trimap_from_alpha",
]


def trimap_from_alpha(alpha_small: Tensor, fg_threshold: float, bg_threshold: float) -> Tensor:
    """Area-mean alpha at low resolution -> long labels 0 bg, 1 unknown, 2 fg."""
    labels = torch.ones_like(alpha_small, dtype=torch.long)
    labels[alpha_small >= fg_threshold] = 2
    labels[alpha_small <= bg_threshold] = 0
    return labels


def dice_cost(pred: Tensor, gt: Tensor) -> Tensor:
    """pred Q,P and gt K,P in [0, 1] -> Q,K soft dice distance (1 - dice)."""
    numerator = 2 * pred @ gt.T
    denominator = pred.sum(1)[:, None] + gt.sum(1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def match_costs(person_prob: Tensor, pred8: Tensor, gt8: Tensor, cfg: LossConfig) -> Tensor:
    """person_prob Q; pred8 Q,P; gt8 K,P -> cost matrix Q,K."""
    l1 = torch.cdist(pred8, gt8, p=1) / pred8.shape[1]
    return cfg.match_cls * -person_prob[:, None] + cfg.match_l1 * l1 + cfg.match_dice * dice_cost(pred8, gt8)


def hungarian_match(cost: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment -> (query indices, instance indices), sorted by query."""
    rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
    return rows.astype(np.int64), cols.astype(np.int64)


def gradient_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean L1 between finite-difference gradients (x and y) of N,H,W mattes."""
    dx = (pred[:, :, 1:] - pred[:, :, :-1]) - (gt[:, :, 1:] - gt[:, :, :-1])
    dy = (pred[:, 1:, :] - pred[:, :-1, :]) - (gt[:, 1:, :] - gt[:, :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def _gauss_kernel(device: torch.device) -> Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device)
    k = torch.outer(k, k)
    return (k / k.sum()).view(1, 1, 5, 5)


def _laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    kernel = _gauss_kernel(x.device)
    pyramid = []
    current = x
    for _ in range(levels):
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="reflect"), kernel)
        down = blurred[:, :, ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
        if min(current.shape[-2:]) < 3:
            break
    pyramid.append(current)
    return pyramid


def laplacian_loss(pred: Tensor, gt: Tensor, levels: int = 5) -> Tensor:
    """Laplacian-pyramid L1 of N,H,W mattes: level i weighted 2**i (as in the matting literature), normalised by
    the sum of the weights so the loss stays on the scale of a plain L1."""
    pp = _laplacian_pyramid(pred.unsqueeze(1), levels)
    gp = _laplacian_pyramid(gt.unsqueeze(1), levels)
    weights = [2.0**i for i in range(len(pp))]
    total = sum(w * (a - b).abs().mean() for w, a, b in zip(weights, pp, gp, strict=True))
    return total / sum(weights)
