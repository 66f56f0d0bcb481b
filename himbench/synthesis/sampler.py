"""Synthesis of one composite image from its seed: choose people and a background, place them, composite.

Deterministic: everything random comes from ``image_rng(config, split, index)``, so an image does not depend on which
worker makes it or in which order.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from himbench.io import InputError, encode_alpha_png, encode_png
from himbench.shards import boxes_from_alphas
from himbench.synthesis.compose import (
    Layer,
    colour_jitter,
    composite,
    place_layer,
    stack_layer_alphas,
    visible_mattes_u8,
)
from himbench.synthesis.config import BuildConfig
from himbench.synthesis.sources import BackgroundRef, Cutout, ForegroundRef, load_background, load_foreground

__all__ = ["SampleResult", "image_id", "image_rng", "synthesize_image"]

_SEARCH_SCALE = 4  # placement search runs on a 1/4-resolution canvas; the final check is at full resolution


@dataclass
class SampleResult:
    row: dict
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def image_id(split: str, index: int) -> str:
    return f"{split}_{index:07d}"


def image_seed(config: BuildConfig, split: str, index: int) -> int:
    return int(np.random.SeedSequence([config.seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def image_rng(config: BuildConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(image_seed(config, split, index))


def _embedded_height(config: BuildConfig) -> int:
    # Generate procedural people at the largest height they will be shown at (multiple of 64, capped).
    return int(min(1536, max(256, 64 * -(-round(config.height * config.scale_max) // 64))))


def _pick(refs: list, rng: np.random.Generator, loader, bad: dict, problems: list[str], what: str, avoid=()):
    """Draw refs until one loads; bad files are remembered (per process) and reported, never fatal.

    Refs in ``avoid`` (already in this image) are redrawn for the first draws, so people in one image differ when the
    pool allows. The draws do not depend on ``bad``, so output stays deterministic whichever worker (with whichever
    memory of bad files) makes the image."""
    for attempt in range(256):
        ref = refs[int(rng.integers(len(refs)))]
        if ref in avoid and attempt < 16:
            continue
        if ref in bad:
            if bad[ref] not in problems:  # reported by every image that drew it, whichever process remembers it
                problems.append(bad[ref])
            continue
        try:
            return ref, loader(ref)
        except InputError as err:
            bad[ref] = str(err)
            problems.append(str(err))
    raise InputError(
        f"{what} sources", f"no usable file after 256 draws ({len(bad)} bad files): " + "; ".join(problems)
    )


def _count(config: BuildConfig, rng: np.random.Generator) -> int:
    counts = np.arange(config.min_instances, config.max_instances + 1)
    if config.instance_weights is None:
        return int(rng.choice(counts))
    weights = np.asarray(config.instance_weights, np.float64)
    return int(rng.choice(counts, p=weights / weights.sum()))


def _sample_layout(
    config: BuildConfig, rng: np.random.Generator, aspect: float, cut_at_bottom: bool
) -> tuple[float, float, float, bool]:
    height = config.height * rng.uniform(config.scale_min, config.scale_max)
    height = min(height, 0.95 * config.width / max(aspect, 1e-3))  # keep very wide cut-outs inside the frame width
    centre_x = rng.uniform(0.0, config.width)
    low = config.height if cut_at_bottom else 0.7 * config.height
    bottom_y = rng.uniform(low, config.height + 0.3 * height)
    return height, centre_x, bottom_y, bool(rng.random() < config.flip_prob)


def _visible_shares(layers: list[Layer], canvas_hw: tuple[int, int], step: int) -> np.ndarray:
    """Visible mass / own in-frame mass of each layer (back to front) on a canvas subsampled by ``step``."""
    h, w = -(-canvas_hw[0] // step), -(-canvas_hw[1] // step)
    stack = np.zeros((len(layers), h, w), np.float32)
    for k, layer in enumerate(layers):
        y0, x0, y1, x1 = layer.box
        if y1 <= y0 or x1 <= x0:
            continue
        sub = layer.alpha[(-y0) % step :: step, (-x0) % step :: step]
        ys, xs = -(-y0 // step), -(-x0 // step)
        stack[k, ys : ys + sub.shape[0], xs : xs + sub.shape[1]] = sub
    own = stack.reshape(len(layers), -1).sum(axis=1)
    transmission_in_front = np.ones((h, w), np.float32)
    visible = np.zeros(len(layers), np.float64)
    for k in range(len(layers) - 1, -1, -1):
        visible[k] = float((stack[k] * transmission_in_front).sum())
        transmission_in_front *= 1.0 - stack[k]
    return np.where(own > 0, visible / np.maximum(own, 1e-12), 0.0)


def _place_people(config: BuildConfig, cutouts: list, rng: np.random.Generator) -> tuple[list[Layer], list[int]]:
    """Greedy placement in a random depth order: each person gets up to max_attempts tries; one that never fits is
    dropped. Returns the layers back to front and, for each, the index of its cut-out."""
    canvas_hw = (config.height, config.width)
    layers: list[Layer] = []
    sources: list[int] = []
    for source in rng.permutation(len(cutouts)):
        cutout = cutouts[source]
        aspect = cutout.alpha.shape[1] / cutout.alpha.shape[0]
        for _ in range(config.max_attempts):
            height, centre_x, bottom_y, flip = _sample_layout(config, rng, aspect, cutout.cut_at_bottom)
            layer = place_layer(cutout.fg, cutout.alpha, canvas_hw, height, centre_x, bottom_y, flip)
            if layer.in_frame_share < config.min_in_frame:
                continue
            # Insert at its depth: later (front) people are appended, so each new person is in front of earlier ones.
            candidate = [*layers, layer]
            if (_visible_shares(candidate, canvas_hw, _SEARCH_SCALE) >= config.min_visible).all():
                layers = candidate
                sources.append(int(source))
                break
    return layers, sources


def synthesize_image(
    config: BuildConfig,
    split: str,
    index: int,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
    bad: dict,
) -> SampleResult:
    """Make image ``index`` of ``split``: returns the encoded shard row, problems met, and time per stage."""
    rng = image_rng(config, split, index)
    problems: list[str] = []
    seconds = {"decode": 0.0, "composite": 0.0, "encode": 0.0}
    tic = time.perf_counter()
    embedded_height = _embedded_height(config)
    count = _count(config, rng)
    picked: list = []
    for _ in range(count):
        avoid = {ref for ref, _ in picked}
        loader = lambda r: load_foreground(r, config.fg_max_side, embedded_height)  # noqa: E731
        picked.append(_pick(fg_refs, rng, loader, bad, problems, "foreground", avoid))
    bg_ref, background = _pick(
        bg_refs, rng, lambda r: load_background(r, config.height, config.width, rng), bad, problems, "background"
    )
    seconds["decode"] += time.perf_counter() - tic

    tic = time.perf_counter()
    # Jitter colours per person before placement so the stored foreground is exactly what was composited.
    jittered = [
        Cutout(
            colour_jitter(cut.fg, rng, config.brightness, config.contrast, config.saturation, config.hue_degrees),
            cut.alpha,
            cut.cut_at_bottom,
        )
        for _, cut in picked
    ]
    layers, sources = _place_people(config, jittered, rng)
    kept_labels = [picked[k][0].label for k in sources]
    canvas_hw = (config.height, config.width)
    visible = visible_mattes_u8(stack_layer_alphas(layers, canvas_hw), [layer.box for layer in layers])
    image = composite(background, layers, visible)
    # Drop people whose 8-bit visible matte vanished (possible only for extremely faint cut-outs).
    keep = [k for k in range(len(layers)) if visible[k].any()]
    visible, layers, kept_labels = visible[keep], [layers[k] for k in keep], [kept_labels[k] for k in keep]
    boxes = boxes_from_alphas(visible)
    union = visible.sum(axis=0) > 0
    soft = ((visible > 0) & (visible < 255)).any(axis=0)
    seconds["composite"] += time.perf_counter() - tic

    tic = time.perf_counter()
    row = {
        "id": image_id(split, index),
        "seed": image_seed(config, split, index),
        "image": encode_png(image, config.png_compression),
        "alphas": [encode_alpha_png(v, config.png_compression) for v in visible],
        "boxes": boxes.tolist(),
        "depth_order": list(range(len(layers))),
        "fg_sources": kept_labels,
        "bg_source": bg_ref.label,
        "width": config.width,
        "height": config.height,
        "num_instances": len(layers),
        "unknown_fraction": float(soft.sum() / max(union.sum(), 1)),
    }
    if config.store_layers:
        row["foregrounds"] = [_encode_layer_rgb(layer, canvas_hw, config.png_compression) for layer in layers]
        row["background"] = encode_png(background, config.png_compression)
    seconds["encode"] += time.perf_counter() - tic
    return SampleResult(row, problems, seconds)


def _encode_layer_rgb(layer: Layer, canvas_hw: tuple[int, int], compression: int) -> bytes:
    canvas = np.zeros((*canvas_hw, 3), np.uint8)
    y0, x0, y1, x1 = layer.box
    canvas[y0:y1, x0:x1] = layer.fg
    return encode_png(canvas, compression)
