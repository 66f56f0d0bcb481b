"""Synthesis of one composite image from its seed: choose people and a background, place them, composite.

Deterministic: everything random comes from ``image_rng(config, split, index)``, so an image does not depend on which
worker makes it or in which order.

Work is spent where it shows. Cut-outs are prepared once per process at the largest size the build can draw them
(:func:`prepared_cap`). Every placement try is decided on a 1/4-resolution canvas (the cut-out's alpha at 1/4 scale,
resized to the try's footprint: a few thousand pixels), including the in-frame and visibility rules; only the
accepted placements are then resized, once each, to full resolution, clipped to the canvas and colour-jittered.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from himbench.geometry import Box, tight_box
from himbench.io import InputError, encode_jpeg, encode_png
from himbench.synthesis.compose import (
    Layer,
    composite_crops,
    jitter_matrix,
    layer_geometry,
    render_layer,
    union_box,
    visible_mattes_crops,
)
from himbench.synthesis.config import BuildConfig
from himbench.synthesis.sources import BackgroundRef, Cutout, ForegroundRef, load_background, load_foreground

__all__ = [
    "DROP_NO_PLACEMENT",
    "DROP_VANISHED",
    "MIN_DRAWN_SIDE",
    "Placement",
    "SampleResult",
    "encode_composite",
    "foregrounds_drawn",
    "image_id",
    "image_rng",
    "prepared_cap",
    "synthesize_image",
]

_SEARCH_SCALE = 4  # placement decisions (in-frame share, visibility) are made on a 1/4-resolution canvas
_MAX_WIDTH_SHARE = 0.95  # a person is never drawn wider than this share of the canvas width
# A cut-out whose narrow side would be drawn narrower than this (in canvas pixels, at the smallest height the build
# draws it: scale_min of the canvas, or less for a wide one) is refused as a bad source: a 20x20000 cut-out would
# otherwise become a 1-pixel-wide ground-truth "person". Checked on the prepared cut-out, whatever its source.
MIN_DRAWN_SIDE = 2
# Why a person drawn for an image is not in it (the keys of SampleResult.dropped and of the build report).
DROP_NO_PLACEMENT = "no placement kept min_in_frame and min_visible within max_attempts tries"
DROP_VANISHED = "matte empty once drawn (too faint or too small at 8 bits)"


@dataclass
class SampleResult:
    row: dict
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    asked: int = 0  # people drawn for the image (its count in min..max instances)
    dropped: dict[str, int] = field(default_factory=dict)  # people not in the image, by reason (DROP_*)


def image_id(split: str, index: int) -> str:
    return f"{split}_{index:07d}"


def image_seed(config: BuildConfig, split: str, index: int) -> int:
    return int(np.random.SeedSequence([config.seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def image_rng(config: BuildConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(image_seed(config, split, index))


def _embedded_height(config: BuildConfig) -> int:
    # Generate procedural people at the largest height they will be shown at (multiple of 64, capped).
    return int(min(1536, max(256, 64 * -(-round(config.height * config.scale_max) // 64))))


def prepared_cap(config: BuildConfig) -> tuple[int, int]:
    """(max height, max width) a cut-out is prepared at: the largest size a person can be drawn at in this build
    (height up to ``scale_max`` of the canvas, width up to 95% of it), and never over ``fg_max_side``. Sources are
    cropped to their alpha's box and scaled down to fit once; foreground colours are estimated at that size."""
    cap_h = min(-(-config.height * config.scale_max // 1), config.fg_max_side)
    cap_w = min(-(-config.width * _MAX_WIDTH_SHARE // 1), config.fg_max_side)
    return max(1, int(cap_h)), max(1, int(cap_w))


def _drawable(cutout: Cutout, ref: ForegroundRef, config: BuildConfig) -> Cutout:
    """``cutout`` unchanged, or InputError naming its file when its narrow side would be drawn under MIN_DRAWN_SIDE
    pixels (an extreme aspect ratio: the person would be a line of pixels in the ground truth)."""
    h, w = cutout.shape
    aspect = w / h
    smallest = min(config.height * config.scale_min, _MAX_WIDTH_SHARE * config.width / aspect)
    narrow = min(smallest, smallest * aspect)
    if narrow < MIN_DRAWN_SIDE:
        raise InputError(
            ref.paths[-1] if ref.paths else ref.label,
            f"cut-out is {w}x{h} px at the largest size this build draws it, and {narrow:.2f} px "
            f"{'wide' if aspect < 1 else 'high'} at the smallest (minimum {MIN_DRAWN_SIDE} px); too thin to be a "
            "person",
        )
    return cutout


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


def _pick_foregrounds(config, rng, fg_refs, loader, bad, problems) -> list[tuple[ForegroundRef, object]]:
    picked: list = []
    for _ in range(_count(config, rng)):
        avoid = {ref for ref, _ in picked}
        picked.append(_pick(fg_refs, rng, loader, bad, problems, "foreground", avoid))
    return picked


def foregrounds_drawn(
    config: BuildConfig, images, fg_refs: list[ForegroundRef], kinds=("image_alpha",)
) -> list[ForegroundRef]:
    """The refs of ``kinds`` that ``images`` ((split, index) pairs) draw when every file loads, in order of first
    use, without decoding anything: what a build needs prepared before its shards start. A bad file makes its image
    draw again, so a few more refs may be needed; those are prepared by the worker that meets them."""
    wanted = {ref for ref in fg_refs if ref.kind in kinds}
    found: dict[ForegroundRef, None] = {}
    for split, index in images:
        if len(found) == len(wanted):
            break
        rng = image_rng(config, split, index)
        for ref, _ in _pick_foregrounds(config, rng, fg_refs, lambda r: None, {}, []):
            if ref in wanted:
                found.setdefault(ref)
    return list(found)


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
    # keep very wide cut-outs inside the frame width
    height = min(height, _MAX_WIDTH_SHARE * config.width / max(aspect, 1e-3))
    centre_x = rng.uniform(0.0, config.width)
    low = config.height if cut_at_bottom else 0.7 * config.height
    bottom_y = rng.uniform(low, config.height + 0.3 * height)
    return height, centre_x, bottom_y, bool(rng.random() < config.flip_prob)


@dataclass(frozen=True)
class Placement:
    """An accepted placement: which cut-out, where (full-resolution geometry), mirrored or not."""

    source: int  # index of the cut-out among the image's picks
    geometry: Box  # the drawn box on the canvas, may overhang it (see compose.layer_geometry)
    flip: bool
    in_frame_share: float  # decided at low resolution


class _LowRes:
    """A layer on the low-resolution canvas: its alpha clipped to the canvas (covering ``box``), the part of it still
    visible (its alpha times the transmission of every layer in front), and their sums."""

    __slots__ = ("box", "alpha", "visible", "own", "visible_sum")

    def __init__(self, box: Box, alpha: np.ndarray) -> None:
        self.box, self.alpha = box, alpha
        self.visible = alpha.copy()
        self.own = self.visible_sum = float(alpha.sum(dtype=np.float64))

    def overlap(self, other: _LowRes) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
        """Slices of the overlap in self's crop, then in other's crop; None when they do not overlap."""
        common = self.box.intersection(other.box)
        if common.is_empty:
            return None
        return common.relative_to(self.box).slices, common.relative_to(other.box).slices


def _low_res_try(
    cutout: Cutout, geometry: Box, flip: bool, low_hw: tuple[int, int]
) -> tuple[_LowRes | None, float]:
    """The try's layer on the low-resolution canvas and its in-frame share (alpha mass inside the canvas / all)."""
    step = _SEARCH_SCALE
    new_h, new_w = geometry.shape
    h, w = max(1, round(new_h / step)), max(1, round(new_w / step))
    # Bilinear from the area-averaged 1/4-scale alpha: a decision needs its mass, not its fine detail (area
    # resampling at a fractional scale costs ten times more).
    alpha = cv2.resize(cutout.small_alpha(step), (w, h), interpolation=cv2.INTER_LINEAR)
    if flip:
        alpha = alpha[:, ::-1]
    drawn = Box.of_shape((h, w), round(geometry.x0 / step), round(geometry.y0 / step))
    on_canvas = drawn.clip(low_hw)
    total = float(alpha.sum(dtype=np.float64))
    if on_canvas.is_empty or total <= 0:
        return None, 0.0
    kept = np.ascontiguousarray(alpha[on_canvas.relative_to(drawn).slices])
    layer = _LowRes(on_canvas, kept)
    return layer, layer.own / total


def _place_people(config: BuildConfig, cutouts: list[Cutout], rng: np.random.Generator) -> list[Placement]:
    """Greedy placement in a random depth order: each person gets up to max_attempts tries; one that never fits is
    dropped. Returns the accepted placements back to front.

    Each new person goes in front of those already placed, so it is fully visible itself and only the people behind
    lose area: a try is accepted when its in-frame share is at least ``min_in_frame`` and every person behind keeps
    at least ``min_visible`` of its own (in-frame) mass, all evaluated on the 1/4-resolution canvas, where each
    person's still-visible part is kept up to date (only overlaps are touched)."""
    step = _SEARCH_SCALE
    low_hw = (-(-config.height // step), -(-config.width // step))
    placed: list[_LowRes] = []
    placements: list[Placement] = []
    for source in rng.permutation(len(cutouts)):
        cutout = cutouts[source]
        aspect = cutout.shape[1] / cutout.shape[0]
        for _ in range(config.max_attempts):
            height, centre_x, bottom_y, flip = _sample_layout(config, rng, aspect, cutout.cut_at_bottom)
            geometry = layer_geometry(cutout.shape, height, centre_x, bottom_y)
            layer, share = _low_res_try(cutout, geometry, flip, low_hw)
            if layer is None or share < config.min_in_frame:
                continue
            losses = []
            for behind in placed:
                overlap = behind.overlap(layer)
                loss = 0.0
                if overlap is not None:
                    in_behind, in_new = overlap
                    loss = float(np.vdot(behind.visible[in_behind], layer.alpha[in_new]))
                    if behind.visible_sum - loss < config.min_visible * behind.own:
                        break
                losses.append((overlap, loss))
            else:
                for behind, (overlap, loss) in zip(placed, losses, strict=True):
                    if overlap is not None and loss > 0:
                        in_behind, in_new = overlap
                        behind.visible[in_behind] *= 1.0 - layer.alpha[in_new]
                        behind.visible_sum = float(behind.visible.sum(dtype=np.float64))
                placed.append(layer)
                placements.append(Placement(int(source), geometry, flip, share))
                break
    return placements


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
    cap, embedded_height = prepared_cap(config), _embedded_height(config)
    picked = _pick_foregrounds(
        config, rng, fg_refs, lambda r: _drawable(load_foreground(r, cap, embedded_height), r, config), bad, problems
    )
    bg_ref, background = _pick(
        bg_refs, rng, lambda r: load_background(r, config.height, config.width, rng), bad, problems, "background"
    )
    seconds["decode"] += time.perf_counter() - tic

    tic = time.perf_counter()
    cutouts = [cut for _, cut in picked]
    # Colour jitter per person (drawn before placement), applied to the drawn pixels of the people who are placed.
    matrices = [
        jitter_matrix(cut.mean_colour, rng, config.brightness, config.contrast, config.saturation, config.hue_degrees)
        for cut in cutouts
    ]
    placements = _place_people(config, cutouts, rng)
    canvas_hw = (config.height, config.width)
    layers: list[Layer] = []
    kept_labels: list[str] = []
    dropped = Counter({DROP_NO_PLACEMENT: len(cutouts) - len(placements)})
    for placement in placements:
        cut = cutouts[placement.source]
        layer = render_layer(
            cut.rgba16, canvas_hw, placement.geometry, placement.flip, matrices[placement.source],
            placement.in_frame_share,
        )
        if layer.alpha.size:
            layers.append(layer)
            kept_labels.append(picked[placement.source][0].label)
    visible = visible_mattes_crops(layers, canvas_hw)
    image = composite_crops(background, layers, visible)
    # Drop people whose 8-bit visible matte vanished (possible only for extremely faint cut-outs).
    keep = [k for k, vis in enumerate(visible) if vis.any()]
    dropped[DROP_VANISHED] += len(placements) - len(keep)
    visible, layers, kept_labels = [visible[k] for k in keep], [layers[k] for k in keep], [kept_labels[k] for k in keep]
    boxes, union, soft = _matte_statistics(layers, visible, canvas_hw)
    seconds["composite"] += time.perf_counter() - tic

    tic = time.perf_counter()
    row = {
        "id": image_id(split, index),
        "seed": image_seed(config, split, index),
        "image": encode_composite(image, config),
        "alphas": [
            _encode_matte(layer, vis, canvas_hw, config.png_compression)
            for layer, vis in zip(layers, visible, strict=True)
        ],
        "boxes": boxes,
        "depth_order": list(range(len(layers))),
        "fg_sources": kept_labels,
        "bg_source": bg_ref.label,
        "width": config.width,
        "height": config.height,
        "num_instances": len(layers),
        "unknown_fraction": float(soft / max(union, 1)),
    }
    if config.store_layers:
        row["foregrounds"] = [_encode_layer_rgb(layer, canvas_hw, config.png_compression) for layer in layers]
        row["background"] = encode_png(background, config.png_compression)
    seconds["encode"] += time.perf_counter() - tic
    return SampleResult(row, problems, seconds, len(picked), {k: n for k, n in dropped.items() if n > 0})


def encode_composite(image: np.ndarray, config: BuildConfig) -> bytes:
    """The composite's bytes in the build's ``image_format``: lossless PNG at ``png_compression``, or JPEG at
    ``jpeg_quality`` (deterministic: OpenCV's libjpeg gives the same bytes for the same pixels and quality)."""
    if config.image_format == "jpg":
        return encode_jpeg(image, config.jpeg_quality)
    return encode_png(image, config.png_compression)


def _matte_statistics(
    layers: list[Layer], visible: list[np.ndarray], canvas_hw: tuple[int, int]
) -> tuple[list[list[int]], int, int]:
    """Tight box of each visible matte as [x0, y0, x1, y1] (the ``boxes`` column; every matte here is non-empty),
    and the pixel counts of the union of the people and of their soft (0 < v < 255) pixels, from the crops."""
    boxes = []
    bounds = union_box(layers)
    if bounds is None:
        return boxes, 0, 0
    union = np.zeros(bounds.shape, bool)
    soft = np.zeros_like(union)
    for layer, vis in zip(layers, visible, strict=True):
        box = layer.box
        boxes.append(list(tight_box(vis).translate(box.x0, box.y0).as_tuple()))
        crop = box.relative_to(bounds).slices
        union[crop] |= vis > 0
        soft[crop] |= (vis > 0) & (vis < 255)
    return boxes, int(union.sum()), int(soft.sum())


def _encode_matte(layer: Layer, vis: np.ndarray, canvas_hw: tuple[int, int], compression: int) -> bytes:
    canvas = np.zeros(canvas_hw, np.uint8)
    canvas[layer.box.slices] = vis
    return encode_png(canvas, compression)


def _encode_layer_rgb(layer: Layer, canvas_hw: tuple[int, int], compression: int) -> bytes:
    canvas = np.zeros((*canvas_hw, 3), np.uint8)
    canvas[layer.box.slices] = layer.fg
    return encode_png(canvas, compression)
