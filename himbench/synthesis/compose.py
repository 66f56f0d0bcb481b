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
    "place_layer",
    "stack_layer_alphas",
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


def stack_layer_alphas(layers: list[Layer], canvas_hw: tuple[int, int]) -> np.ndarray:
    """The layers' alphas on full canvases, (N, H, W) float32, in layer order."""
    stack = np.zeros((len(layers), *canvas_hw), np.float32)
    for k, layer in enumerate(layers):
        y0, x0, y1, x1 = layer.box
        stack[k, y0:y1, x0:x1] = layer.alpha
    return stack


def visible_mattes_u8(
    alphas_back_to_front: np.ndarray, boxes: list[tuple[int, int, int, int]] | None = None
) -> np.ndarray:
    """8-bit visible mattes (SPEC s.1) whose sum never exceeds 255.

    vis_i = a_i * prod_{j in front of i}(1 - a_j). Rounding each vis_i separately could push the sum over 255, so we
    round the cumulative coverage from the front, c_k = 1 - prod_{j <= k}(1 - a_j), and take differences: each
    rounded matte is within one level of vis_i and the rounded sum equals round(255 * total coverage).
    ``boxes`` (y0, x0, y1, x1) per matte, where it is non-zero, lets all the work stay inside each person's box.
    """
    n, height, width = alphas_back_to_front.shape
    visible = np.zeros((n, height, width), np.uint8)
    if boxes is None:
        boxes = [(0, 0, height, width)] * n
    transmission = np.ones((height, width), np.float32)
    for k in range(n - 1, -1, -1):  # front to back
        y0, x0, y1, x1 = boxes[k]
        if y1 <= y0 or x1 <= x0:
            continue
        t_box = transmission[y0:y1, x0:x1]
        before = np.rint((1.0 - t_box) * 255.0)
        t_box *= 1.0 - alphas_back_to_front[k, y0:y1, x0:x1]
        visible[k, y0:y1, x0:x1] = np.rint((1.0 - t_box) * 255.0) - before
    return visible


# RGB <-> YIQ: hue rotation is a rotation of the (I, Q) plane, so the whole jitter is one affine colour map.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def colour_jitter(
    fg: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_degrees: float
) -> np.ndarray:
    """Random brightness/contrast/saturation/hue change of a uint8 RGB cut-out (returns uint8).

    Brightness scales, contrast stretches about the mean colour, saturation scales chroma and hue rotates it in YIQ
    space. All four are linear, so they compose into one 3x4 affine map applied with a single cv2.transform.
    """
    b = 1.0 + rng.uniform(-brightness, brightness)
    c = 1.0 + rng.uniform(-contrast, contrast)
    s = 1.0 + rng.uniform(-saturation, saturation)
    theta = np.deg2rad(rng.uniform(-hue_degrees, hue_degrees))
    chroma = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    yiq_map = np.eye(3)
    yiq_map[1:, 1:] = chroma
    colour = _YIQ_TO_RGB @ yiq_map @ _RGB_TO_YIQ  # saturation + hue
    mean = np.array(cv2.mean(fg)[:3])
    # x -> colour @ (c * (b x - b mean) + b mean) = (c b colour) x + colour (1 - c) b mean
    matrix = np.concatenate([c * b * colour, (colour @ ((1.0 - c) * b * mean))[:, None]], axis=1)
    out = cv2.transform(fg.astype(np.float32), matrix.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def composite(background: np.ndarray, layers: list[Layer], visible_u8: np.ndarray) -> np.ndarray:
    """I = sum_i F_i vis_i + B (1 - sum_i vis_i), exactly, in integers, rounded to the nearest 8-bit level.

    With 8-bit mattes summing to at most 255, the numerator sum_i F_i v_i + B (255 - sum_i v_i) is at most 255 * 255,
    so it fits uint16 (half the memory traffic of uint32). Rounding (n + 127) // 255 uses the exact identity
    floor(x / 255) = (x + 1 + (x >> 8)) >> 8 for 0 <= x < 65535, avoiding a division.
    """
    coverage = visible_u8.sum(axis=0, dtype=np.uint16)
    numerator = background.astype(np.uint16) * (255 - coverage)[..., None]
    for layer, vis in zip(layers, visible_u8, strict=True):
        y0, x0, y1, x1 = layer.box
        if y1 > y0 and x1 > x0:
            numerator[y0:y1, x0:x1] += layer.fg.astype(np.uint16) * vis[y0:y1, x0:x1, None]
    numerator += 127
    numerator += 1 + (numerator >> 8)
    return (numerator >> 8).astype(np.uint8)
