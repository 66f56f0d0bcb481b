"""Image geometry shared by the data pipeline and the models: the letterbox resize policy.

Resize policy (training and inference alike): **letterbox, top-left**. The image is scaled by
``size / max(H, W)`` (cv2 INTER_AREA when shrinking, INTER_LINEAR when enlarging) so that the longer side equals
``size``, placed at the top-left corner of a ``size x size`` canvas, and the rest is zero (black image, alpha 0, which
is the true matte there). :func:`unletterbox` crops the valid region and resizes predictions back (bilinear) to the
original size. Aspect ratios are kept, so people are never squashed.

This module depends on numpy, OpenCV and torch only, so a model package can use it without the data pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["LetterboxInfo", "letterbox_geometry", "letterbox_image", "letterbox_mattes", "unletterbox"]


@dataclass(frozen=True)
class LetterboxInfo:
    """Where an image went on the letterbox canvas: content of ``height x width`` pixels at the top-left corner of a
    ``size x size`` canvas, scaled by ``scale`` (canvas pixels per original pixel)."""

    scale: float
    height: int  # size of the resized content inside the canvas, pixels
    width: int
    size: int  # canvas side, pixels


def letterbox_geometry(shape: tuple[int, int], size: int) -> LetterboxInfo:
    """The letterbox of an image of ``shape`` (H, W) pixels onto a ``size`` x ``size`` canvas."""
    h, w = shape
    scale = size / max(h, w)
    return LetterboxInfo(scale, max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale))), size)


def _resize(array: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    interpolation = cv2.INTER_AREA if info.scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(array, (info.width, info.height), interpolation=interpolation)


def letterbox_image(image: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo]:
    """uint8 HxWx3 -> (uint8 size x size x 3 canvas, geometry)."""
    info = letterbox_geometry(image.shape[:2], size)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[: info.height, : info.width] = _resize(image, info)
    return canvas, info


def letterbox_mattes(alphas: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """float32 NxHxW mattes in [0, 1] -> float32 N x size x size with the same geometry as the image."""
    out = np.zeros((len(alphas), info.size, info.size), dtype=np.float32)
    for k, alpha in enumerate(alphas):
        out[k, : info.height, : info.width] = np.clip(_resize(alpha, info), 0.0, 1.0)
    return out


def unletterbox(mattes: torch.Tensor, info: LetterboxInfo, orig_size: tuple[int, int]) -> torch.Tensor:
    """N x size x size predictions -> N x H x W float at the original size ``orig_size`` (H, W), bilinear, clipped
    to [0, 1]."""
    crop = mattes[:, : info.height, : info.width].float()
    if crop.shape[0] == 0:
        return crop.new_zeros((0, *orig_size))
    resized = torch.nn.functional.interpolate(crop[None], size=orig_size, mode="bilinear", align_corners=False)[0]
    return resized.clamp_(0.0, 1.0)
