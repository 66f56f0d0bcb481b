"""Image geometry shared by the data pipeline, the metrics and the models: pixel boxes and the letterbox resize
policy.

Boxes: :class:`Box` is the one box type of himbench, ``(x0, y0, x1, y1)`` in pixels with exclusive ends (columns
``x0 <= x < x1``, rows ``y0 <= y < y1``), the order of the dataset's ``boxes`` column. Its fields are read by name
only (a box cannot be unpacked or indexed), so no caller can read it in another order; ``arr[box.slices]`` crops.
:func:`tight_box` is the box of an array's non-zero pixels.

Resize policy (training and inference alike): **letterbox, top-left**. The image is scaled by
``size / max(H, W)`` (cv2 INTER_AREA when shrinking, INTER_LINEAR when enlarging) so that the longer side equals
``size``, placed at the top-left corner of a ``size x size`` canvas, and the rest is zero (black image, alpha 0, which
is the true matte there). :func:`unletterbox` crops the valid region and resizes predictions back (bilinear) to the
original size. Aspect ratios are kept, so people are never squashed.

This module depends on numpy and OpenCV (torch only inside :func:`unletterbox`), so a model package can use it
without the data pipeline, and the data pipeline without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "Box",
    "LetterboxInfo",
    "letterbox_geometry",
    "letterbox_image",
    "letterbox_mattes",
    "tight_box",
    "unletterbox",
]


# ------------------------------------------------------------------------------------------------------------ boxes
@dataclass(frozen=True, slots=True)
class Box:
    """Columns ``x0 <= x < x1`` and rows ``y0 <= y < y1`` of an image, in pixels (exclusive ends).

    A box may reach outside an image (a placement that overhangs the canvas) or be empty (``x1 <= x0`` or
    ``y1 <= y0``); :meth:`clip` and :meth:`intersection` give boxes of that kind and :attr:`is_empty` tells.
    """

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def of_shape(cls, shape: tuple[int, ...], x0: int = 0, y0: int = 0) -> Box:
        """The box covered by an array of ``shape`` (H, W, ...) whose top-left pixel sits at (x0, y0)."""
        return cls(x0, y0, x0 + shape[1], y0 + shape[0])

    @property
    def width(self) -> int:
        """Columns, x1 - x0 (negative for an inverted empty box)."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Rows, y1 - y0."""
        return self.y1 - self.y0

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width): the numpy shape of ``arr[box.slices]`` when the box lies inside ``arr``."""
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def is_empty(self) -> bool:
        """True when the box holds no pixel."""
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def area(self) -> int:
        """Pixels in the box, 0 when empty."""
        return 0 if self.is_empty else (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) for numpy: ``arr[box.slices]`` is the box's crop of an (H, W, ...) array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) as plain ints, for serialising (the dataset's ``boxes`` column)."""
        return int(self.x0), int(self.y0), int(self.x1), int(self.y1)

    def translate(self, dx: int, dy: int) -> Box:
        """The box moved by dx columns and dy rows."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def relative_to(self, outer: Box) -> Box:
        """The box in the coordinates of a crop whose top-left pixel is ``outer``'s: ``outer_crop[inner.slices]``."""
        return Box(self.x0 - outer.x0, self.y0 - outer.y0, self.x1 - outer.x0, self.y1 - outer.y0)

    def pad(self, margin: int) -> Box:
        """The box grown by ``margin`` pixels on every side (not clipped; see :meth:`clip`)."""
        return Box(self.x0 - margin, self.y0 - margin, self.x1 + margin, self.y1 + margin)

    def clip(self, shape: tuple[int, ...]) -> Box:
        """The part of the box inside an image of ``shape`` (H, W, ...); may be empty."""
        return Box(max(self.x0, 0), max(self.y0, 0), min(self.x1, shape[1]), min(self.y1, shape[0]))

    def union(self, other: Box) -> Box:
        """The smallest box holding both boxes (both assumed non-empty)."""
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def intersection(self, other: Box) -> Box:
        """The pixels in both boxes; empty (check :attr:`is_empty`) when they do not overlap."""
        return Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))


def tight_box(array: np.ndarray) -> Box | None:
    """The smallest box holding every non-zero pixel of a 2-D array (bool, integer or float; NaN counts as
    non-zero), or None when there is none."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"tight_box expects a 2-D array, got shape {array.shape}")
    if array.size == 0:
        return None
    if array.dtype == np.bool_ or array.dtype == np.uint8:
        # OpenCV scans 8-bit masks several times faster than two numpy reductions; bool views as 0/1 bytes.
        x, y, w, h = cv2.boundingRect(array.view(np.uint8))
        return Box(x, y, x + w, y + h) if w and h else None
    rows = np.flatnonzero(array.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(array[rows[0] : rows[-1] + 1].any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


# -------------------------------------------------------------------------------------------------------- letterbox


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


def unletterbox(
    mattes: torch.Tensor, info: LetterboxInfo, orig_size: tuple[int, int], clip: bool = True
) -> torch.Tensor:
    """N x size x size predictions -> N x H x W float at the original size ``orig_size`` (H, W), bilinear, clipped
    to [0, 1] unless ``clip`` is False (for logits, which a model composes after resizing)."""
    import torch  # here, not at the top: the data pipeline imports this module and must not pay for torch

    crop = mattes[:, : info.height, : info.width].float()
    if crop.shape[0] == 0:
        return crop.new_zeros((0, *orig_size))
    resized = torch.nn.functional.interpolate(crop[None], size=orig_size, mode="bilinear", align_corners=False)[0]
    return resized.clamp_(0.0, 1.0) if clip else resized
