"""Pure compositing functions: layer placement, occlusion (SPEC s.1) and the compositing equation.

Layers are kept as crops with an offset on the canvas so that work scales with the people, not the canvas: a person
is resized once, to the size it is drawn at, and only the part inside the canvas is kept (:func:`render_layer`);
the visible mattes (:func:`visible_mattes_crops`) and the composite (:func:`composite_crops`) work on those crops.
Every box is a :class:`himbench.geometry.Box` (x0, y0, x1, y1) in canvas pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import cv2
import numpy as np

from himbench.geometry import Box

__all__ = [
    "Layer",
    "apply_colour_matrix",
    "colour_jitter",
    "composite",
    "composite_crops",
    "jitter_matrix",
    "layer_geometry",
    "pack_rgba16",
    "place_layer",
    "render_layer",
    "stack_layer_alphas",
    "union_box",
    "visible_mattes_crops",
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
    def box(self) -> Box:
        """The canvas pixels that ``fg`` and ``alpha`` cover."""
        return Box.of_shape(self.alpha.shape, self.x0, self.y0)


def layer_geometry(alpha_hw: tuple[int, int], height: float, centre_x: float, bottom_y: float) -> Box:
    """Where a cut-out of size ``alpha_hw`` (H, W) goes when scaled to ``height`` px with its bottom-centre at
    (centre_x, bottom_y): its box on the canvas, in canvas pixels, the scaled size being the box's shape (the box
    may reach outside the canvas)."""
    scale = height / alpha_hw[0]
    new_w = max(1, round(alpha_hw[1] * scale))
    new_h = max(1, round(height))
    top, left = round(bottom_y - new_h), round(centre_x - new_w / 2)
    return Box(left, top, left + new_w, top + new_h)


_EMPTY = (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32))


def pack_rgba16(fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 RGB + float alpha -> one (h, w, 4) uint16 array (RGB x 257, alpha x 65535), as cut-outs are kept."""
    packed = np.empty((*alpha.shape, 4), np.uint16)
    np.multiply(np.asarray(fg, np.uint8), np.uint16(257), out=packed[:, :, :3], dtype=np.uint16)
    packed[:, :, 3] = np.rint(np.clip(alpha, 0.0, 1.0) * np.float32(65535.0))
    return packed


def render_layer(
    rgba16: np.ndarray,
    canvas_hw: tuple[int, int],
    geometry: Box,
    flip: bool,
    colour_matrix: np.ndarray | None = None,
    in_frame_share: float | None = None,
) -> Layer:
    """The full-resolution layer of a decided placement: the packed cut-out (:func:`pack_rgba16`) resized once to
    its drawn size (area averaging when shrinking), mirrored, clipped to the canvas, and colour-mapped
    (``colour_matrix``, see :func:`jitter_matrix`) on the kept part only. ``geometry`` is the drawn box on the
    canvas (:func:`layer_geometry`).

    ``in_frame_share`` is recorded as given (decided at low resolution); None computes it here."""
    on_canvas = geometry.clip(canvas_hw)
    if on_canvas.is_empty:
        return Layer(*_EMPTY, 0, 0, 0.0)
    new_h, new_w = geometry.shape
    interp = cv2.INTER_AREA if new_h < rgba16.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(rgba16, (new_w, new_h), interpolation=interp)
    # The kept part in the resized cut-out's own (unmirrored) coordinates: a mirrored layer keeps the mirrored columns.
    kept_box = on_canvas.relative_to(geometry)
    if flip:
        kept_box = Box(new_w - kept_box.x1, kept_box.y0, new_w - kept_box.x0, kept_box.y1)
    kept = resized[kept_box.slices]
    if flip:
        kept = cv2.flip(kept, 1)
    red, green, blue, alpha16 = cv2.split(kept)
    fg = cv2.convertScaleAbs(cv2.merge((red, green, blue)), alpha=1.0 / 257.0)  # rounds to the nearest level
    alpha = alpha16.astype(np.float32)
    alpha *= np.float32(1.0 / 65535.0)
    if colour_matrix is not None:
        fg = apply_colour_matrix(fg, colour_matrix)
    if in_frame_share is None:
        total = float(resized[:, :, 3].sum(dtype=np.float64))
        in_frame_share = float(alpha16.sum(dtype=np.float64)) / total if total > 0 else 0.0
    if in_frame_share <= 0:
        return Layer(*_EMPTY, 0, 0, 0.0)
    return Layer(fg, alpha, on_canvas.y0, on_canvas.x0, float(in_frame_share))


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
    geometry = layer_geometry(alpha.shape, height, centre_x, bottom_y)
    return render_layer(pack_rgba16(fg, alpha), canvas_hw, geometry, flip)


def stack_layer_alphas(layers: list[Layer], canvas_hw: tuple[int, int]) -> np.ndarray:
    """The layers' alphas on full canvases, (N, H, W) float32, in layer order."""
    stack = np.zeros((len(layers), *canvas_hw), np.float32)
    for k, layer in enumerate(layers):
        stack[k][layer.box.slices] = layer.alpha
    return stack


def visible_mattes_u8(alphas_back_to_front: np.ndarray, boxes: list[Box] | None = None) -> np.ndarray:
    """8-bit visible mattes (SPEC s.1) whose sum never exceeds 255.

    vis_i = a_i * prod_{j in front of i}(1 - a_j). Rounding each vis_i separately could push the sum over 255, so we
    round the cumulative coverage from the front, c_k = 1 - prod_{j <= k}(1 - a_j), and take differences: each
    rounded matte is within one level of vis_i and the rounded sum equals round(255 * total coverage).
    ``boxes``, one per matte, holding its non-zero pixels, lets all the work stay inside each person's box.
    """
    n, height, width = alphas_back_to_front.shape
    visible = np.zeros((n, height, width), np.uint8)
    if boxes is None:
        boxes = [Box(0, 0, width, height)] * n
    transmission = np.ones((height, width), np.float32)
    for k in range(n - 1, -1, -1):  # front to back
        box = boxes[k]
        if box.is_empty:
            continue
        t_box = transmission[box.slices]
        before = np.rint((1.0 - t_box) * 255.0)
        t_box *= 1.0 - alphas_back_to_front[k][box.slices]
        visible[k][box.slices] = np.rint((1.0 - t_box) * 255.0) - before
    return visible


def visible_mattes_crops(layers: list[Layer], canvas_hw: tuple[int, int]) -> list[np.ndarray]:
    """:func:`visible_mattes_u8` of layers (back to front) without full-canvas stacks: each layer's 8-bit visible
    matte over its own box (same shape as ``layer.alpha``), equal to the full-canvas version inside the box."""
    visible: list[np.ndarray] = [np.zeros(layer.alpha.shape, np.uint8) for layer in layers]
    union = union_box(layers)
    if union is None:
        return visible
    transmission = np.ones(union.shape, np.float32)  # only where someone is
    for k in range(len(layers) - 1, -1, -1):  # front to back
        layer = layers[k]
        box = layer.box
        if box.is_empty:
            continue
        t_box = transmission[box.relative_to(union).slices]
        before = np.rint((1.0 - t_box) * 255.0)
        t_box *= 1.0 - layer.alpha
        after = np.rint((1.0 - t_box) * 255.0)
        visible[k] = (after - before).astype(np.uint8)
    return visible


def union_box(layers: list[Layer]) -> Box | None:
    """The box bounding all non-empty layers, or None when there is none."""
    boxes = [layer.box for layer in layers if layer.alpha.size]
    if not boxes:
        return None
    return reduce(Box.union, boxes)


def _three(plane: np.ndarray) -> np.ndarray:
    return cv2.merge((plane, plane, plane)).astype(np.uint16)


def composite_crops(background: np.ndarray, layers: list[Layer], visible: list[np.ndarray]) -> np.ndarray:
    """:func:`composite` from per-layer crops (:func:`visible_mattes_crops`), with identical output: the integer
    compositing equation is evaluated over the union of the layers' boxes only, the rest is the background."""
    image = background.copy()
    union = union_box(layers)
    if union is None:
        return image
    coverage = np.zeros(union.shape, np.uint8)  # the 8-bit mattes sum to at most 255
    for layer, vis in zip(layers, visible, strict=True):
        if layer.alpha.size:
            roi = coverage[layer.box.relative_to(union).slices]
            np.add(roi, vis, out=roi)
    numerator = image[union.slices].astype(np.uint16)
    np.multiply(numerator, _three(cv2.bitwise_not(coverage)), out=numerator)  # B (255 - sum_i v_i)
    for layer, vis in zip(layers, visible, strict=True):
        if layer.alpha.size:
            term = layer.fg.astype(np.uint16)
            np.multiply(term, _three(vis), out=term)  # F_i v_i
            roi = numerator[layer.box.relative_to(union).slices]
            np.add(roi, term, out=roi)
    # numerator <= 255 * 255: one float32 multiply by 1/255 rounds every value to the nearest integer exactly (the
    # nearest .5 boundary is 1/510 away, far beyond float32 error), as (n + 127) // 255 does.
    image[union.slices] = cv2.convertScaleAbs(numerator, alpha=1.0 / 255.0)
    return image


# RGB <-> YIQ: hue rotation is a rotation of the (I, Q) plane, so the whole jitter is one affine colour map.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def jitter_matrix(
    mean_rgb, rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_degrees: float
) -> np.ndarray:
    """The 3x4 affine colour map of a random brightness/contrast/saturation/hue change (float32).

    Brightness scales, contrast stretches about ``mean_rgb`` (the cut-out's mean colour), saturation scales chroma and
    hue rotates it in YIQ space. All four are linear, so they compose into one affine map."""
    b = 1.0 + rng.uniform(-brightness, brightness)
    c = 1.0 + rng.uniform(-contrast, contrast)
    s = 1.0 + rng.uniform(-saturation, saturation)
    theta = np.deg2rad(rng.uniform(-hue_degrees, hue_degrees))
    chroma = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    yiq_map = np.eye(3)
    yiq_map[1:, 1:] = chroma
    colour = _YIQ_TO_RGB @ yiq_map @ _RGB_TO_YIQ  # saturation + hue
    mean = np.asarray(mean_rgb, np.float64)[:3]
    # x -> colour @ (c * (b x - b mean) + b mean) = (c b colour) x + colour (1 - c) b mean
    matrix = np.concatenate([c * b * colour, (colour @ ((1.0 - c) * b * mean))[:, None]], axis=1)
    return matrix.astype(np.float32)


def apply_colour_matrix(fg: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x4 colour map to uint8 RGB, rounded and saturated to uint8 (one cv2.transform pass)."""
    return cv2.transform(np.ascontiguousarray(fg), matrix)


def colour_jitter(
    fg: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_degrees: float
) -> np.ndarray:
    """Random brightness/contrast/saturation/hue change of a uint8 RGB cut-out (returns uint8), see
    :func:`jitter_matrix`."""
    matrix = jitter_matrix(cv2.mean(fg)[:3], rng, brightness, contrast, saturation, hue_degrees)
    return apply_colour_matrix(fg, matrix)


def composite(background: np.ndarray, layers: list[Layer], visible_u8: np.ndarray) -> np.ndarray:
    """I = sum_i F_i vis_i + B (1 - sum_i vis_i), exactly, in integers, rounded to the nearest 8-bit level.

    With 8-bit mattes summing to at most 255, the numerator sum_i F_i v_i + B (255 - sum_i v_i) is at most 255 * 255,
    so it fits uint16 (half the memory traffic of uint32). Rounding (n + 127) // 255 uses the exact identity
    floor(x / 255) = (x + 1 + (x >> 8)) >> 8 for 0 <= x < 65535, avoiding a division.
    """
    coverage = visible_u8.sum(axis=0, dtype=np.uint16)
    numerator = background.astype(np.uint16) * (255 - coverage)[..., None]
    for layer, vis in zip(layers, visible_u8, strict=True):
        box = layer.box
        if not box.is_empty:
            numerator[box.slices] += layer.fg.astype(np.uint16) * vis[box.slices][..., None]
    numerator += 127
    numerator += 1 + (numerator >> 8)
    return (numerator >> 8).astype(np.uint8)
