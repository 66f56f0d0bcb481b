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

from himbench.build_config import BuildConfig
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
from himbench.synthesis.sources import BackgroundRef, Cutout, ForegroundRef, load_background, load_foreground

__all__ = [
    "DROP_NO_PLACEMENT",
    "DROP_NO_PLACEMENT_IN_RANGE",
    "DROP_VANISHED",
    "MIN_DRAWN_SIDE",
    "Placement",
    "SampleResult",
    "drawable_cutout",
    "procedural_height",
    "encode_composite",
    "foregrounds_drawn",
    "image_id",
    "image_rng",
    "in_occlusion_range",
    "jitter_matrices",
    "occlusion_fractions",
    "pick_foregrounds",
    "pick_source",
    "place_people",
    "place_people_in_range",
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
DROP_NO_PLACEMENT_IN_RANGE = "no placement kept min_in_frame and the occlusion range within max_attempts tries"
DROP_VANISHED = "matte empty once drawn (too faint or too small at 8 bits)"
# With an occlusion range (config.occlusion_range), the 1/4-resolution placement aims this far inside the range (at
# most a quarter of its width), so that the exact full-resolution fractions land in it; an image whose exact
# fractions miss the range is placed again, up to _RANGE_TRIES times, and the try closest to the range is kept.
_RANGE_MARGIN = 0.02
_RANGE_TRIES = 6
# A person placed to hide another is drawn at this share of the other's height (people at about the same depth), and
# its centre is found by bisection on the horizontal offset (this many steps).
_SEEK_HEIGHT = (0.85, 1.2)
_SEEK_STEPS = 8


@dataclass
class SampleResult:
    row: dict
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    asked: int = 0  # people drawn for the image (its count in min..max instances)
    dropped: dict[str, int] = field(default_factory=dict)  # people not in the image, by reason (DROP_*)
    # With an occlusion range: False when no try within _RANGE_TRIES put the most-hidden person in the range.
    in_range: bool = True


def image_id(split: str, index: int) -> str:
    return f"{split}_{index:07d}"


def image_seed(config: BuildConfig, split: str, index: int) -> int:
    return int(np.random.SeedSequence([config.seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def image_rng(config: BuildConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(image_seed(config, split, index))


def procedural_height(config: BuildConfig) -> int:
    """The height the procedural people are generated at: the largest they will be shown at (multiple of 64,
    capped), so that they are scaled down, never up."""
    return int(min(1536, max(256, 64 * -(-round(config.height * config.scale_max) // 64))))


def prepared_cap(config: BuildConfig) -> tuple[int, int]:
    """(max height, max width) a cut-out is prepared at: the largest size a person can be drawn at in this build
    (height up to ``scale_max`` of the canvas, width up to 95% of it), and never over ``fg_max_side``. Sources are
    cropped to their alpha's box and scaled down to fit once; foreground colours are estimated at that size."""
    cap_h = min(-(-config.height * config.scale_max // 1), config.fg_max_side)
    cap_w = min(-(-config.width * _MAX_WIDTH_SHARE // 1), config.fg_max_side)
    return max(1, int(cap_h)), max(1, int(cap_w))


def drawable_cutout(cutout: Cutout, ref: ForegroundRef, config: BuildConfig) -> Cutout:
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


def pick_source(refs: list, rng: np.random.Generator, loader, bad: dict, problems: list[str], what: str, avoid=()):
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


def pick_foregrounds(config, rng, fg_refs, loader, bad, problems) -> list[tuple[ForegroundRef, object]]:
    """The people of one image: a count drawn from the config, each a loaded source picked by :func:`pick_source`
    (no source twice in an image while others remain)."""
    picked: list = []
    for _ in range(_count(config, rng)):
        avoid = {ref for ref, _ in picked}
        picked.append(pick_source(fg_refs, rng, loader, bad, problems, "foreground", avoid))
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
        for ref, _ in pick_foregrounds(config, rng, fg_refs, lambda r: None, {}, []):
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


def _low_res_shape(config: BuildConfig) -> tuple[int, int]:
    """(height, width) of the canvas placement decisions are made on (1/_SEARCH_SCALE of the image, rounded up)."""
    return -(-config.height // _SEARCH_SCALE), -(-config.width // _SEARCH_SCALE)


def jitter_matrices(cutouts: list[Cutout], config: BuildConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """One colour-jitter matrix per person, drawn from ``rng`` in order (before placement, so that the draws do not
    depend on where people land)."""
    return [
        jitter_matrix(cut.mean_colour, rng, config.brightness, config.contrast, config.saturation, config.hue_degrees)
        for cut in cutouts
    ]


def place_people(config: BuildConfig, cutouts: list[Cutout], rng: np.random.Generator) -> list[Placement]:
    """Greedy placement in a random depth order: each person gets up to max_attempts tries; one that never fits is
    dropped. Returns the accepted placements back to front.

    Each new person goes in front of those already placed, so it is fully visible itself and only the people behind
    lose area: a try is accepted when its in-frame share is at least ``min_in_frame`` and every person behind keeps
    at least ``min_visible`` of its own (in-frame) mass, all evaluated on the 1/4-resolution canvas, where each
    person's still-visible part is kept up to date (only overlaps are touched)."""
    low_hw = _low_res_shape(config)
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
            for behind in placed:  # stops at the first person the try would hide too much
                overlap, loss = _loss(behind, layer)
                if overlap is not None and behind.visible_sum - loss < config.min_visible * behind.own:
                    break
                losses.append((overlap, loss))
            else:
                _accept(placed, losses, layer)
                placements.append(Placement(int(source), geometry, flip, share))
                break
    return placements


def _accept(placed: list[_LowRes], losses: list, layer: _LowRes) -> None:
    """Put ``layer`` in front of everyone placed: each person it overlaps loses the covered part of its visible
    mass (``losses`` holds, per placed person, the overlap slices and the mass lost)."""
    for behind, (overlap, loss) in zip(placed, losses, strict=True):
        if overlap is not None and loss > 0:
            in_behind, in_new = overlap
            behind.visible[in_behind] *= 1.0 - layer.alpha[in_new]
            behind.visible_sum = float(behind.visible.sum(dtype=np.float64))
    placed.append(layer)


def _hidden(layer: _LowRes) -> float:
    return 1.0 - layer.visible_sum / layer.own if layer.own > 0 else 0.0


def _loss(behind: _LowRes, layer: _LowRes):
    """(overlap slices, alpha mass of ``behind`` still visible that ``layer`` in front of it would hide)."""
    overlap = behind.overlap(layer)
    if overlap is None:
        return None, 0.0
    in_behind, in_new = overlap
    return overlap, float(np.vdot(behind.visible[in_behind], layer.alpha[in_new]))


def _seek_layout(config, rng, cutout, target: _LowRes, target_box: Box, goal: float, low_hw):
    """A layout (height, centre_x, bottom_y, flip) that puts ``cutout`` in front of ``target`` so that the target's
    hidden fraction reaches about ``goal``: drawn at about the target's height with its bottom near the target's, at
    the horizontal offset from the target's centre (found by bisection; left or right at random) where the hidden
    fraction crosses ``goal``. None when even a centred placement hides less than ``goal``."""
    aspect = cutout.shape[1] / cutout.shape[0]
    height = target_box.shape[0] * rng.uniform(*_SEEK_HEIGHT)
    height = min(max(height, config.height * config.scale_min), config.height * config.scale_max)
    height = min(height, _MAX_WIDTH_SHARE * config.width / max(aspect, 1e-3))
    bottom_y = target_box.y1 + rng.uniform(-0.05, 0.05) * height
    flip = bool(rng.random() < config.flip_prob)
    side = 1.0 if rng.random() < 0.5 else -1.0
    centre = (target_box.x0 + target_box.x1) / 2

    def hidden_at(offset: float) -> float:
        geometry = layer_geometry(cutout.shape, height, centre + side * offset, bottom_y)
        layer, _ = _low_res_try(cutout, geometry, flip, low_hw)
        loss = 0.0 if layer is None else _loss(target, layer)[1]
        return 1.0 - (target.visible_sum - loss) / target.own

    near, far = 0.0, (target_box.shape[1] + height * aspect) / 2  # at `far` the two boxes no longer overlap
    if hidden_at(near) < goal:
        return None
    for _ in range(_SEEK_STEPS):
        middle = (near + far) / 2
        if hidden_at(middle) >= goal:
            near = middle
        else:
            far = middle
    return height, centre + side * near, bottom_y, flip


def place_people_in_range(config: BuildConfig, cutouts: list[Cutout], rng: np.random.Generator) -> list[Placement]:
    """:func:`place_people` under ``config.occlusion_range`` (LO, HI) instead of min_visible: a try is refused when
    it would leave someone behind hidden more than HI, and while nobody is hidden LO yet, the next person seeks the
    overlap (:func:`_seek_layout`: placed in front of a person already placed, at the offset that hides about a
    fraction drawn in the range) for the first three quarters of its tries, then is placed at random. Decided on the
    1/4-resolution canvas, aiming _RANGE_MARGIN inside the range; the caller checks the exact fractions."""
    low, high = config.occlusion_range
    margin = min(_RANGE_MARGIN, (high - low) / 4)
    low_goal = low + margin if low > 0 else 0.0
    cap = high - margin if high < 1 else 1.0
    low_hw = _low_res_shape(config)
    placed: list[_LowRes] = []
    placements: list[Placement] = []
    for source in rng.permutation(len(cutouts)):
        cutout = cutouts[source]
        aspect = cutout.shape[1] / cutout.shape[0]
        for attempt in range(config.max_attempts):
            seeking = low_goal > 0 and placed and attempt < 0.75 * config.max_attempts
            seeking = seeking and max(_hidden(p) for p in placed) < low_goal
            if seeking:
                pick = int(rng.integers(len(placed)))
                layout = _seek_layout(
                    config, rng, cutout, placed[pick], placements[pick].geometry, rng.uniform(low_goal, cap), low_hw
                )
                if layout is None:
                    continue
            else:
                layout = _sample_layout(config, rng, aspect, cutout.cut_at_bottom)
            height, centre_x, bottom_y, flip = layout
            geometry = layer_geometry(cutout.shape, height, centre_x, bottom_y)
            layer, share = _low_res_try(cutout, geometry, flip, low_hw)
            if layer is None or share < config.min_in_frame:
                continue
            losses = [_loss(behind, layer) for behind in placed]
            # cap 0 (no overlap at all): any loss refuses the try; else the behind keeps at least 1 - cap of itself.
            if any(behind.visible_sum - loss < (1.0 - cap) * behind.own or (cap == 0 and loss > 0)
                   for behind, (_, loss) in zip(placed, losses, strict=True)):
                continue
            _accept(placed, losses, layer)
            placements.append(Placement(int(source), geometry, flip, share))
            break
    return placements


def occlusion_fractions(layers: list[Layer], visible: list[np.ndarray]) -> list[float]:
    """Per person, the fraction of its own in-frame alpha hidden by the people in front (the ``occlusion`` column):
    1 - sum(vis_i) / sum(a_i), with vis_i the 8-bit visible matte stored in ``alphas`` and a_i the person's 8-bit
    amodal matte (its alpha clipped to the canvas, rounded to 8 bits as ``amodal_alphas`` stores it). Exactly 0 for
    a person nobody overlaps; clipped to [0, 1] (8-bit rounding can make vis_i exceed a_i by a level)."""
    fractions = []
    for layer, vis in zip(layers, visible, strict=True):
        own = float(np.rint(layer.alpha * np.float32(255.0)).sum(dtype=np.float64))
        seen = float(vis.sum(dtype=np.float64))
        fractions.append(min(1.0, max(0.0, 1.0 - seen / own)) if own > 0 else 0.0)
    return fractions


def in_occlusion_range(fractions: list[float], occlusion_range: tuple[float, float]) -> bool:
    """True when the most-hidden person's fraction (0 without people), as stored (float32), is in the range."""
    worst = float(np.float32(max(fractions, default=0.0)))
    return occlusion_range[0] <= worst <= occlusion_range[1]


def _range_miss(fractions: list[float], occlusion_range: tuple[float, float]) -> float:
    worst = float(np.float32(max(fractions, default=0.0)))
    return max(occlusion_range[0] - worst, worst - occlusion_range[1], 0.0)


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
    cap, embedded_height = prepared_cap(config), procedural_height(config)

    def load(ref: ForegroundRef) -> Cutout:
        return drawable_cutout(load_foreground(ref, cap, embedded_height), ref, config)

    picked = pick_foregrounds(config, rng, fg_refs, load, bad, problems)
    bg_ref, background = pick_source(
        bg_refs, rng, lambda r: load_background(r, config.height, config.width, rng), bad, problems, "background"
    )
    seconds["decode"] += time.perf_counter() - tic

    tic = time.perf_counter()
    cutouts = [cut for _, cut in picked]
    # Colour jitter per person (drawn before placement), applied to the drawn pixels of the people who are placed.
    matrices = jitter_matrices(cutouts, config, rng)
    canvas_hw = (config.height, config.width)
    in_range = True
    if config.occlusion_range is None:
        placements = place_people(config, cutouts, rng)
        drawn = _render(cutouts, picked, matrices, placements, canvas_hw)
    else:
        # Placed again until the exact fractions are in the range; the try closest to it is kept otherwise.
        best = None
        for _ in range(_RANGE_TRIES):
            placements = place_people_in_range(config, cutouts, rng)
            drawn = _render(cutouts, picked, matrices, placements, canvas_hw)
            fractions = occlusion_fractions(*drawn[:2])
            # judged on the people kept (a vanished matte is dropped below), as the occlusion column records them
            miss = _range_miss([f for f, vis in zip(fractions, drawn[1], strict=True) if vis.any()],
                               config.occlusion_range)
            if best is None or miss < best[0]:
                best = (miss, placements, drawn)
            if miss == 0:
                break
        miss, placements, drawn = best
        in_range = miss == 0
    all_layers, all_visible, all_labels = drawn
    image = composite_crops(background, all_layers, all_visible)
    # Drop people whose 8-bit visible matte vanished (possible only for extremely faint cut-outs).
    keep = [k for k, vis in enumerate(all_visible) if vis.any()]
    unplaced = DROP_NO_PLACEMENT if config.occlusion_range is None else DROP_NO_PLACEMENT_IN_RANGE
    dropped = Counter({unplaced: len(cutouts) - len(placements)})
    dropped[DROP_VANISHED] += len(placements) - len(keep)
    visible, layers = [all_visible[k] for k in keep], [all_layers[k] for k in keep]
    kept_labels = [all_labels[k] for k in keep]
    boxes, union, soft = _matte_statistics(layers, visible, canvas_hw)
    occlusion = occlusion_fractions(layers, visible)
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
        "occlusion": occlusion,
    }
    if config.store_layers:
        row["foregrounds"] = [_encode_layer_rgb(layer, canvas_hw, config.png_compression) for layer in layers]
        row["background"] = encode_png(background, config.png_compression)
        row["amodal_alphas"] = [_encode_amodal(layer, canvas_hw, config.png_compression) for layer in layers]
    seconds["encode"] += time.perf_counter() - tic
    return SampleResult(row, problems, seconds, len(picked), {k: n for k, n in dropped.items() if n > 0}, in_range)


def _render(
    cutouts: list[Cutout], picked: list, matrices: list[np.ndarray], placements: list[Placement],
    canvas_hw: tuple[int, int],
) -> tuple[list[Layer], list[np.ndarray], list[str]]:
    """The full-resolution layers of accepted placements (back to front; empty ones left out), their 8-bit visible
    mattes, and the source label of each."""
    layers: list[Layer] = []
    labels: list[str] = []
    for placement in placements:
        cut = cutouts[placement.source]
        layer = render_layer(
            cut.rgba16, canvas_hw, placement.geometry, placement.flip, matrices[placement.source],
            placement.in_frame_share,
        )
        if layer.alpha.size:
            layers.append(layer)
            labels.append(picked[placement.source][0].label)
    return layers, visible_mattes_crops(layers, canvas_hw), labels


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


def _encode_amodal(layer: Layer, canvas_hw: tuple[int, int], compression: int) -> bytes:
    """The person's own (amodal) alpha on the canvas, 8-bit: what ``occlusion_fractions`` divides by."""
    canvas = np.zeros(canvas_hw, np.uint8)
    canvas[layer.box.slices] = np.rint(layer.alpha * np.float32(255.0)).astype(np.uint8)
    return encode_png(canvas, compression)


def _encode_layer_rgb(layer: Layer, canvas_hw: tuple[int, int], compression: int) -> bytes:
    canvas = np.zeros((*canvas_hw, 3), np.uint8)
    canvas[layer.box.slices] = layer.fg
    return encode_png(canvas, compression)
