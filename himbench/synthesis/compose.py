"""Pure compositing functions: layer placement, occlusion (SPEC s.1) and the compositing equation.

Layers are kept as crops with an offset on the canvas so that work scales with the people, not the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Layer",
    "colour_jitter",
    "composite",
    "layer_alpha_on_canvas",
    "place_layer",
    "visible_mattes_u8",
]


@dataclass
class Layer:
    """A cut-out placed on the canvas: ``fg``/``alpha`` cover canvas rows y0:y0+h and columns x0:x0+w (clipped)."""

    fg: np.ndarray  # uint8 (h, w, 3)
    alpha: np.ndarray  # float32 (h, w)
    y0: int
    x0: int
    in_frame_share: float  # share of the scaled cut-out's alpha mass that lies inside the canvas

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.y0, self.x0, self.y0 + self.alpha.shape[0], self.x0 + self.alpha.shape[1]


def place_layer(
    fg: np.ndarray,
    alpha: np.ndarray,
    canvas_hw: tuple[int, int],
    height: int,
    centre_x: float,
    bottom_y: float,
    flip: bool,
) -> Layer:
    """Scale a cut-out to ``height`` px, put its bottom-centre at (centre_x, bottom_y), clip to the canvas."""
    canvas_h, canvas_w = canvas_hw
    scale = height / alpha.shape[0]
    new_w = max(1, round(alpha.shape[1] * scale))
    new_h = max(1, round(height))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fg_s = cv2.resize(fg, (new_w, new_h), interpolation=interp)
    alpha_s = np.clip(cv2.resize(alpha, (new_w, new_h), interpolation=interp), 0.0, 1.0)
    if flip:
        fg_s, alpha_s = fg_s[:, ::-1], alpha_s[:, ::-1]
    top = round(bottom_y - new_h)
    left = round(centre_x - new_w / 2)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + new_h, canvas_h), min(left + new_w, canvas_w)
    total = float(alpha_s.sum())
    if y1 <= y0 or x1 <= x0 or total <= 0:
        return Layer(np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32), 0, 0, 0.0)
    crop = np.s_[y0 - top : y1 - top, x0 - left : x1 - left]
    alpha_c = np.ascontiguousarray(alpha_s[crop], dtype=np.float32)
    return Layer(np.ascontiguousarray(fg_s[crop]), alpha_c, y0, x0, float(alpha_c.sum()) / total)


def layer_alpha_on_canvas(layer: Layer, canvas_hw: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(canvas_hw, np.float32)
    y0, x0, y1, x1 = layer.box
    canvas[y0:y1, x0:x1] = layer.alpha
    return canvas


def visible_mattes_u8(alphas_back_to_front: np.ndarray) -> np.ndarray:
    """8-bit visible mattes (SPEC s.1) whose sum never exceeds 255.

    vis_i = a_i * prod_{j in front of i}(1 - a_j). Rounding each vis_i separately could push the sum over 255, so we
    round the cumulative coverage from the front, c_k = 1 - prod_{j <= k}(1 - a_j), and take differences: each
    rounded matte is within one level of vis_i and the rounded sum equals round(255 * total coverage).
    """
    n = alphas_back_to_front.shape[0]
    if n == 0:
        return np.zeros(alphas_back_to_front.shape, np.uint8)
    front_to_back = alphas_back_to_front[::-1].astype(np.float32)
    transmission = np.cumprod(1.0 - front_to_back, axis=0)
    coverage = np.rint((1.0 - transmission) * 255.0).astype(np.int16)
    vis = np.diff(coverage, axis=0, prepend=np.zeros((1, *coverage.shape[1:]), np.int16))
    return np.clip(vis, 0, 255).astype(np.uint8)[::-1].copy()


def colour_jitter(
    fg: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_degrees: float
) -> np.ndarray:
    """Random brightness/contrast/saturation/hue change of a uint8 RGB cut-out (returns uint8)."""
    out = fg.astype(np.float32) / 255.0
    b = 1.0 + rng.uniform(-brightness, brightness)
    c = 1.0 + rng.uniform(-contrast, contrast)
    s = 1.0 + rng.uniform(-saturation, saturation)
    h = rng.uniform(-hue_degrees, hue_degrees)
    out = out * b
    mean = out.mean()
    out = (out - mean) * c + mean
    grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
    out = (out - grey[..., None]) * s + grey[..., None]
    out = np.clip(out, 0.0, 1.0)
    if abs(h) > 1e-3:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # float input: hue in degrees [0, 360)
        hsv[..., 0] = np.mod(hsv[..., 0] + h, 360.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def composite(background: np.ndarray, layers: list[Layer], visible_u8: np.ndarray) -> np.ndarray:
    """I = sum_i F_i vis_i + B (1 - sum_i vis_i), exactly, in integers, rounded to the nearest 8-bit level."""
    coverage = visible_u8.sum(axis=0, dtype=np.uint32)
    numerator = background.astype(np.uint32) * (255 - coverage)[..., None]
    for layer, vis in zip(layers, visible_u8, strict=True):
        y0, x0, y1, x1 = layer.box
        if y1 > y0 and x1 > x0:
            numerator[y0:y1, x0:x1] += layer.fg.astype(np.uint32) * vis[y0:y1, x0:x1, None].astype(np.uint32)
    return ((numerator + 127) // 255).astype(np.uint8)
