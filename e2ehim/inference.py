"""E2E-HIM inference helpers: batch preparation and the post-processing of per-query outputs (SPEC s.5).

Post-processing, per image: keep the queries whose person probability exceeds ``score_threshold``; undo the letterbox
of their trimap and alpha logits (bilinear, to the original size) and compose there (predicted alpha in the unknown
region, 1 in the foreground, 0 in the background: :meth:`e2ehim.model.E2EHIM.output_alphas`); drop
instances whose area (alpha > 0.5) is under ``min_area_fraction`` of the image (SPEC: 1000 px at 640 x 640); sort
by score, highest first.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from himbench.geometry import LetterboxInfo, letterbox_image

__all__ = ["filter_instances", "predict_single", "prepare_batch"]


def prepare_batch(images: list[np.ndarray], size: int, device: torch.device) -> tuple[Tensor, list[LetterboxInfo]]:
    """RGB uint8 images of any sizes -> (B,3,size,size float [0, 1] on ``device``, letterbox geometries)."""
    boxed = [letterbox_image(image, size) for image in images]
    batch = torch.from_numpy(np.stack([b[0] for b in boxed])).permute(0, 3, 1, 2).float().div_(255.0)
    return batch.to(device), [b[1] for b in boxed]


def filter_instances(alphas: Tensor, scores: Tensor, min_area_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop small instances and sort by score: (n,H,W) alphas at the original size, (n,) scores -> numpy float32."""
    height, width = alphas.shape[-2:]
    large = (alphas > 0.5).flatten(1).sum(1) >= min_area_fraction * height * width
    alphas, scores = alphas[large], scores[large]
    order = torch.argsort(scores, descending=True)
    return alphas[order].float().cpu().numpy(), scores[order].float().cpu().numpy()


def predict_single(model, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``model.predict_batch([image])[0]`` in eval mode, restoring the model's train/eval mode afterwards: the
    protocol's ``predict_instances`` for models whose real entry point is ``predict_batch``."""
    was_training = model.training
    model.eval()
    try:
        return model.predict_batch([image])[0]
    finally:
        model.train(was_training)
