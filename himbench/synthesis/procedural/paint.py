"""Painting primitives of the procedural figures: a premultiplied layer, anti-aliased shapes on uint8 masks, shading,
smooth noise, motion blur, and the painter that lays one body part over the layer inside the part's box.

All coordinates are canvas pixels as floats (x, y); shapes are drawn by OpenCV at 1/8-pixel precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import ArrayLike

from himbench.geometry import Box, tight_box

__all__ = [
    "SUBPIXEL",
    "SUBPIXEL_BITS",
    "Colour",
    "PaintLayer",
    "Painter",
    "capsule",
    "chaikin",
    "ellipse",
    "fill",
    "hull",
    "motion_blur",
    "padded_box",
    "shading",
    "value_noise",
]

SUBPIXEL_BITS = 3  # cv2 drawing precision: coordinates in 1/8 pixel
SUBPIXEL = 1 << SUBPIXEL_BITS

# An RGB triple (0-255), a float RGB field over a part's box, or a function of the box that returns that field.
Colour = ArrayLike | Callable[[Box], np.ndarray]


class PaintLayer:
    """Premultiplied colour ``p`` (float32 HxWx3, 0-255 scale) and alpha ``a`` (float32 HxW), painted back to front
    with the 'over' operator."""

    def __init__(self, height: int, width: int) -> None:
        self.p = np.zeros((height, width, 3), np.float32)
        self.a = np.zeros((height, width), np.float32)

    def paint(self, cov: np.ndarray, colour: ArrayLike, box: Box | None = None) -> None:
        """Lay `colour` (RGB triple or a field of the box's shape x 3) over the layer with coverage `cov`, an array
        of the box's shape (the whole layer when `box` is None)."""
        box = box if box is not None else Box.of_shape(self.a.shape)
        a = self.a[box.slices]
        p = self.p[box.slices]
        keep = 1.0 - cov
        colour = np.asarray(colour, np.float32)
        p *= keep[..., None]
        p += colour * cov[..., None]
        a *= keep
        a += cov

    def over(self, top: PaintLayer) -> None:
        """Lay a whole layer of the same size over this one."""
        self.p *= (1.0 - top.a)[..., None]
        self.p += top.p
        self.a *= 1.0 - top.a
        self.a += top.a


def padded_box(mask: np.ndarray, pad: int) -> Box | None:
    """The tight box of a mask's non-zero pixels grown by `pad` and clipped to the mask; None when it is empty."""
    box = tight_box(mask)
    return None if box is None else box.pad(pad).clip(mask.shape)


def fill(mask: np.ndarray, points: np.ndarray) -> None:
    """Anti-aliased filled polygon on a uint8 mask, at sub-pixel precision."""
    pts = np.round(np.asarray(points, np.float64) * SUBPIXEL).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, SUBPIXEL_BITS)


def ellipse(
    mask: np.ndarray, centre: ArrayLike, axes: ArrayLike, angle_deg: float = 0.0, value: int = 255
) -> None:
    """Anti-aliased filled ellipse on a uint8 mask: `axes` are the half-axes in pixels, `angle_deg` its rotation."""
    c = (int(round(centre[0] * SUBPIXEL)), int(round(centre[1] * SUBPIXEL)))
    ax = (max(int(round(axes[0] * SUBPIXEL)), 1), max(int(round(axes[1] * SUBPIXEL)), 1))
    cv2.ellipse(mask, c, ax, angle_deg, 0, 360, value, -1, cv2.LINE_AA, SUBPIXEL_BITS)


def _capsule_points(p0: ArrayLike, p1: ArrayLike, r0: float, r1: float, steps: int = 10) -> np.ndarray:
    """Outline of a tapered limb: half-discs of radius r0 at p0 and r1 at p1 joined by tangents."""
    p0 = np.asarray(p0, np.float64)
    p1 = np.asarray(p1, np.float64)
    d = p1 - p0
    base = math.atan2(d[1], d[0])
    t = np.linspace(-math.pi / 2, math.pi / 2, steps)
    end = p1 + r1 * np.stack([np.cos(base + t), np.sin(base + t)], 1)
    start = p0 + r0 * np.stack([np.cos(base + math.pi + t), np.sin(base + math.pi + t)], 1)
    return np.concatenate([end, start])


def capsule(mask: np.ndarray, p0: ArrayLike, p1: ArrayLike, r0: float, r1: float) -> None:
    """Anti-aliased tapered limb (see :func:`_capsule_points`) on a uint8 mask."""
    pts = np.round(_capsule_points(p0, p1, r0, r1) * SUBPIXEL).astype(np.int32)
    cv2.fillConvexPoly(mask, pts, 255, cv2.LINE_AA, SUBPIXEL_BITS)


def chaikin(points: np.ndarray, rounds: int = 2, closed: bool = True) -> np.ndarray:
    """Corner-cutting smoothing, so body outlines have no hard polygon corners."""
    pts = np.asarray(points, np.float64)
    for _ in range(rounds):
        nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
        cur = pts if closed else pts[:-1]
        q = 0.75 * cur + 0.25 * nxt
        r = 0.25 * cur + 0.75 * nxt
        pts = np.stack([q, r], 1).reshape(-1, 2)
    return pts


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, octaves: int = 3) -> np.ndarray:
    """Smooth multi-octave noise in about [-1, 1]: random grids upsampled bicubically."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh = max(int(h / cell) + 2, 2)
        gw = max(int(w / cell) + 2, 2)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(cell / 2, 1.0)
    return out / total


def hull(points: np.ndarray, shrink: float) -> np.ndarray:
    """The convex hull of (n, 2) points, scaled by `shrink` about its vertices' mean."""
    outline = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    centre = outline.mean(0)
    return centre + (outline - centre) * shrink


def shading(cov: np.ndarray, radius: float, strength: float = 0.45) -> np.ndarray:
    """Rounded-volume shading: darker towards a part's silhouette, lit from the upper left."""
    sigma = max(radius * 0.45, 1.0)
    s = cv2.GaussianBlur(cov, (0, 0), sigma)
    gx = cv2.Sobel(s, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(s, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    light = (gx * 0.7 + gy * 0.7) * sigma * 0.9  # the gradient points inwards: the lit side faces the light
    shade = (1.0 - strength) + strength * np.sqrt(np.clip(s, 0, 1)) + light
    return np.clip(shade, 0.35, 1.2)


def motion_blur(layer: PaintLayer, length: float, angle: float) -> None:
    """Smear a layer (premultiplied, so colours stay right) along a line of `length` pixels at `angle` radians."""
    size = max(int(round(length)) | 1, 3)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(
        kernel,
        (int(round(c * 8 - dx * 8)), int(round(c * 8 - dy * 8))),
        (int(round(c * 8 + dx * 8)), int(round(c * 8 + dy * 8))),
        1.0,
        1,
        cv2.LINE_AA,
        3,
    )
    kernel /= kernel.sum()
    box = padded_box(layer.a > 0, size)
    if box is None:
        return
    layer.p[box.slices] = cv2.filter2D(layer.p[box.slices], -1, kernel, borderType=cv2.BORDER_CONSTANT)
    layer.a[box.slices] = cv2.filter2D(layer.a[box.slices], -1, kernel, borderType=cv2.BORDER_CONSTANT)


class Painter:
    """Draws body parts onto a layer: masks are drawn full-size in uint8, composited inside their bounding box."""

    def __init__(self, layer: PaintLayer, unit: float, rng: np.random.Generator) -> None:
        self.layer = layer
        self.unit = unit
        self.rng = rng
        self.scratch = np.zeros(layer.a.shape, np.uint8)

    def part(
        self,
        draw: Callable[[np.ndarray], object],
        colour: Colour,
        shade_radius: float | None = None,
        opacity: float = 1.0,
        soften: float = 0.0,
        shade_strength: float = 0.45,
    ) -> Box | None:
        """Paint one part: `draw(mask)` draws it; colour is an RGB triple or a callable box -> colour field. Returns
        the box painted, None when the part fell outside the layer."""
        self.scratch[:] = 0
        draw(self.scratch)
        pad = int(max(shade_radius or 0.0, soften) * 1.5) + 3
        box = padded_box(self.scratch, pad)
        if box is None:
            return None
        cov = self.scratch[box.slices].astype(np.float32) * (1.0 / 255.0)
        if soften > 0:
            cov = cv2.GaussianBlur(cov, (0, 0), soften)
        col = colour(box) if callable(colour) else np.asarray(colour, np.float32)
        if shade_radius:
            col = col * shading(cov, shade_radius, shade_strength)[..., None]
        self.layer.paint(cov * opacity, np.clip(col, 0, 255), box)
        return box
