"""Finishing a procedural figure: tilt, whole-body motion blur, tight crop, exact height, un-premultiply, and colour
under alpha = 0 (so a later resize of the foreground alone cannot pull black into the edges)."""

from __future__ import annotations

import cv2
import numpy as np

from himbench.geometry import tight_box
from himbench.synthesis.procedural.figure import Figure
from himbench.synthesis.procedural.paint import PaintLayer, motion_blur

__all__ = ["finish"]


def _fill_colour_everywhere(p: np.ndarray, a: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Give alpha ~ 0 pixels the colour of nearby structure, by push-pull over an image pyramid.

    Going down, premultiplied colour and alpha are averaged; coming back up, a level keeps its own alpha-weighted
    colour (P / A) where it has any coverage and takes the coarser estimate elsewhere, so empty pixels inherit the
    colour of the nearest structure.
    """
    empty = a < 1.0 / 255.0
    if not empty.any():
        return fg
    levels = [(p, a)]
    while min(levels[-1][1].shape) > 2:
        lp, la = levels[-1]
        size = (max(la.shape[1] // 2, 1), max(la.shape[0] // 2, 1))
        levels.append(
            (cv2.resize(lp, size, interpolation=cv2.INTER_AREA), cv2.resize(la, size, interpolation=cv2.INTER_AREA))
        )
    mean = p.reshape(-1, 3).sum(0) / max(float(a.sum()), 1e-6)
    colour = np.broadcast_to(mean.astype(np.float32), levels[-1][0].shape)
    for lp, la in reversed(levels):
        up = cv2.resize(np.ascontiguousarray(colour), (la.shape[1], la.shape[0]), interpolation=cv2.INTER_LINEAR)
        covered = la > 1e-4
        colour = up
        colour[covered] = lp[covered] / la[covered][:, None]
    out = fg.copy()
    out[empty] = colour[empty]
    return out


def finish(layer: PaintLayer, fig: Figure, unit: float, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The drawn figure as a cut-out: tilted and blurred as `fig` says, cropped to alpha > 0 with a 3-pixel margin,
    exactly `height` pixels tall, un-premultiplied. Returns (RGB uint8 (h, w, 3), alpha float32 (h, w) in [0, 1])."""
    p, a = layer.p, layer.a
    if fig.blur == "body":
        motion_blur(layer, fig.blur_length * unit * 0.6, fig.blur_angle)
    if abs(fig.lean) > 0.5:
        h, w = a.shape
        m = cv2.getRotationMatrix2D((w / 2, h * 0.85), fig.lean, 1.0)
        p = cv2.warpAffine(p, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        a = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    a[a < 0.5 / 255.0] = 0.0  # below half an 8-bit step: would round to 0 anyway; keeps the crop tight
    box = tight_box(a > 0)
    if box is None:
        raise RuntimeError("procedural figure came out empty")
    p = p[box.slices]
    a = a[box.slices]
    margin = 3
    inner = height - 2 * margin
    scale = inner / a.shape[0]
    new_w = max(int(round(a.shape[1] * scale)), 1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    p = cv2.resize(p, (new_w, inner), interpolation=interp)
    a = cv2.resize(a, (new_w, inner), interpolation=interp)
    p = cv2.copyMakeBorder(p, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    a = cv2.copyMakeBorder(a, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    a = np.clip(a, 0.0, 1.0)
    a[a < 0.5 / 255.0] = 0.0
    p = np.clip(p, 0.0, None)
    fg = p / np.maximum(a, 1e-6)[..., None]
    fg = _fill_colour_everywhere(p, a, fg)
    return np.clip(np.round(fg), 0, 255).astype(np.uint8), a.astype(np.float32)
