"""Video synthesis: clips of people moving over a background, with exact visible mattes in every frame.

A clip reuses the image engine (:mod:`himbench.synthesis.sampler`, :mod:`himbench.synthesis.compose`): the same
cut-outs, colour jitter, placement (decided once, at the clip's middle frame, by the image engine's placement with
its ``min_visible`` rule or ``occlusion_range``), the same 8-bit visible mattes rounded through cumulative coverage
(SPEC s.1) and the same integer compositing of exactly those 8-bit mattes. So every frame's composite equals the
8-bit mattes' composite to rounding, as for images.

Motion. Each person gets a smooth, seeded trajectory around its placement at the middle frame: a linear drift of
its bottom-centre (up to ``motion`` of the canvas width over the clip), a geometric change of its height (up to
``scale_drift``, walking towards or away from the camera), a slow small rotation about its feet (up to
``rotation_degrees``) and a gait-like sway: the lower 45% of the body is sheared sideways by up to ``gait`` of its
height, with a period of 10-16 frames, plus a small vertical bob. The sway is an image warp of the cut-out, not a
re-posed figure: redrawing the procedural people with other leg angles would re-run their hair simulation and
painting for every frame (a figure costs far more than a frame), so the engine does not give true articulation
cheaply. Backgrounds are static or pan slowly: a clip's background is drawn ``pan`` wider (a share of the width,
drawn per clip in [0, pan]) and each frame is an integer-pixel window sliding across it.

Identity and depth. Person k of a clip is the same cut-out in every frame, and the depth order (back to front, the
order of ``alphas``) is fixed per clip, as decided at the middle frame.

Occlusion. A clip is accepted when every frame keeps the image rules for every person: at least ``min_in_frame`` of
its alpha inside the canvas, and either the ``min_visible`` rule (no ``occlusion_range``) or, with a range
[LO, HI], the clip rule: the most-hidden person's hidden fraction taken over the whole clip (its maximum over all
frames and people) lies in [LO, HI]. So no person is ever more than HI hidden, and somebody is at least LO hidden in
some frame. A clip that misses is placed again with new trajectories, with the motion halved every second try and
the last try static (the image engine's case); the try closest to the rules is kept otherwise and counted.

Determinism. Everything random comes from :func:`clip_rng` (seed, split, index): a clip's bytes do not depend on
which worker makes it or in which order.
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from himbench.build_config import BuildConfig
from himbench.geometry import Box, tight_box
from himbench.io import InputError, encode_png
from himbench.synthesis.compose import Layer, composite_crops, layer_geometry, visible_mattes_crops
from himbench.synthesis.sampler import (
    DROP_NO_PLACEMENT,
    DROP_NO_PLACEMENT_IN_RANGE,
    drawable_cutout,
    encode_composite,
    jitter_matrices,
    occlusion_fractions,
    pick_foregrounds,
    pick_source,
    place_people,
    place_people_in_range,
    prepared_cap,
    procedural_height,
)
from himbench.synthesis.sources import BackgroundRef, Cutout, ForegroundRef, load_background, load_foreground

__all__ = [
    "MAX_FRAMES",
    "VIDEO_ENGINE_VERSION",
    "ClipResult",
    "RenderedClip",
    "VideoConfig",
    "build_video_dataset",
    "clip_id",
    "clip_rng",
    "clip_seed",
    "VIDEO_KIND",
    "is_video_folder",
    "scan_video_cutouts",
    "render_clip",
    "render_video_card",
    "synthesize_clip",
]

# Frames per clip: V-HIM60 clips have 30; a thousand is a typo (a clip is one Parquet row held in memory).
MAX_FRAMES = 1000
# Bumped whenever the same config makes other bytes (part of the video build's fingerprint).
VIDEO_ENGINE_VERSION = 1
# Mixed into every clip's seed so that clip k and image k of one seed draw unrelated numbers.
_VIDEO_TAG = 0x56494430  # "VID0"
# Motion factor of each try (see the module docstring): halved every second try, the last try static.
_TRY_MOTION = (1.0, 1.0, 0.5, 0.5, 0.25, 0.0)
_GAIT_PERIOD = (10.0, 16.0)  # frames per gait cycle
_LEG_START = 0.55  # the sway shears the body below this share of its height
_BOB = 0.25  # vertical bob, as a share of the sway amplitude


@dataclass(frozen=True)
class VideoConfig:
    """A video build: ``build`` gives the canvas, sources, people, placement rules, seed and splits (the counts are
    clips; ``images_per_shard`` is clips per shard); the rest is the motion. Amplitudes are maxima: each person
    draws its own in [-A, A]."""

    build: BuildConfig
    frames: int = 30
    motion: float = 0.15  # drift of a person's bottom-centre over the clip, share of the canvas width
    scale_drift: float = 0.15  # relative change of a person's height over the clip
    rotation_degrees: float = 3.0
    gait: float = 0.04  # sway of the feet relative to the hips, share of the person's height
    pan: float = 0.1  # background pan over the clip, share of the canvas width

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.build, BuildConfig):
            problems.append("build must be a BuildConfig")
        frames = self.frames
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
            problems.append(f"frames must be an integer from 1 to {MAX_FRAMES} (got {frames!r})")
        limits = {"motion": 1.0, "scale_drift": 0.9, "rotation_degrees": 45.0, "gait": 0.3, "pan": 1.0}
        for name, top in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
                problems.append(f"{name} must be a number in [0, {top:g}] (got {value!r})")
        if problems:
            raise ValueError("invalid video config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "build"}
        return {"build": self.build.to_dict(), **data}

    @classmethod
    def from_dict(cls, data: dict) -> VideoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown video config keys: {sorted(unknown)}")
        return cls(**{**data, "build": BuildConfig.from_dict(data["build"])})

    def fingerprint(self) -> str:
        import hashlib
        import json

        data = {**self.to_dict(), "build": self.build.fingerprinted(), "video_engine_version": VIDEO_ENGINE_VERSION}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ClipResult:
    row: dict
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    asked: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    in_range: bool = True  # False when no try kept every rule (the closest try is kept)


def clip_id(split: str, index: int) -> str:
    return f"{split}_v{index:06d}"


def clip_seed(config: VideoConfig, split: str, index: int) -> int:
    entropy = [config.build.seed, zlib.crc32(split.encode()), index, _VIDEO_TAG]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def clip_rng(config: VideoConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(clip_seed(config, split, index))


@dataclass(frozen=True)
class _Trajectory:
    """One person's motion; ``pose(t)`` gives (height factor, dx, dy, rotation radians, sway share) at frame t."""

    drift: float  # px over the whole clip
    growth: float  # height factor at the last frame relative to the first, as log
    rotation: float  # radians (amplitude)
    rotation_period: float
    rotation_phase: float
    gait: float  # share of height (amplitude)
    gait_period: float
    gait_phase: float
    frames: int

    def pose(self, t: int) -> tuple[float, float, float, float, float]:
        s = (t - (self.frames - 1) / 2) / max(self.frames - 1, 1)  # -0.5 .. 0.5, 0 at the middle frame
        phase = 2 * math.pi * t / self.gait_period + self.gait_phase
        sway = self.gait * math.sin(phase)
        bob = _BOB * self.gait * abs(math.cos(phase))
        rotation = self.rotation * math.sin(2 * math.pi * t / self.rotation_period + self.rotation_phase)
        return math.exp(self.growth * s), self.drift * s, bob, rotation, sway


def _trajectory(video: VideoConfig, rng: np.random.Generator, factor: float) -> _Trajectory:
    width, frames = video.build.width, video.frames
    return _Trajectory(
        drift=factor * video.motion * width * rng.uniform(-1, 1),
        growth=factor * math.log1p(video.scale_drift * rng.uniform(-1, 1)),
        rotation=factor * math.radians(video.rotation_degrees) * rng.uniform(-1, 1),
        rotation_period=float(rng.uniform(frames, 2 * frames)),
        rotation_phase=float(rng.uniform(0, 2 * math.pi)),
        gait=factor * video.gait * rng.uniform(0.5, 1.0),
        gait_period=float(rng.uniform(*_GAIT_PERIOD)),
        gait_phase=float(rng.uniform(0, 2 * math.pi)),
        frames=frames,
    )


_EMPTY = Layer(np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32), 0, 0, 0.0)


def _render_posed(
    cut: Cutout, base: Box, flip: bool, matrix: np.ndarray, pose: tuple, canvas_hw: tuple[int, int]
) -> Layer:
    """The layer of a person at one frame: the cut-out resized once to its drawn size (area averaging when
    shrinking, as :func:`compose.render_layer`), mirrored, then rotated about its feet and swayed by one bilinear
    remap onto the part of the canvas it can reach; colour-mapped after. ``base`` is its box at the middle frame."""
    grow, dx, bob, rotation, sway = pose
    height = base.shape[0] * grow
    centre_x, bottom_y = (base.x0 + base.x1) / 2 + dx, base.y1 - bob * height
    geometry = layer_geometry(cut.shape, height, centre_x, bottom_y)
    new_h, new_w = geometry.shape
    interp = cv2.INTER_AREA if new_h < cut.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(cut.rgba16, (new_w, new_h), interpolation=interp)
    if flip:
        resized = cv2.flip(resized, 1)
    total = float(resized[:, :, 3].sum(dtype=np.float64))
    sway_px = sway * new_h
    # Where the warped person can be: the drawn box's corners swayed and rotated about the feet, plus a pixel.
    pivot = np.array([new_w / 2, new_h], np.float64)
    cos, sin = math.cos(rotation), math.sin(rotation)
    corners = np.array([[0, 0], [new_w, 0], [-abs(sway_px), new_h], [new_w + abs(sway_px), new_h]], np.float64)
    turned = (corners - pivot) @ np.array([[cos, sin], [-sin, cos]]) + pivot
    reach = Box(
        geometry.x0 + math.floor(turned[:, 0].min()) - 1, geometry.y0 + math.floor(turned[:, 1].min()) - 1,
        geometry.x0 + math.ceil(turned[:, 0].max()) + 1, geometry.y0 + math.ceil(turned[:, 1].max()) + 1,
    )
    on_canvas = reach.clip(canvas_hw)
    if on_canvas.is_empty or total <= 0:
        return _EMPTY
    # Inverse map of each canvas pixel to the resized cut-out: undo the rotation about the feet, then the sway
    # (a shear that depends on the row only, so it inverts exactly). Pixel centres are integer coordinates.
    ys, xs = np.mgrid[on_canvas.y0 : on_canvas.y1, on_canvas.x0 : on_canvas.x1].astype(np.float32)
    qx, qy = xs - np.float32(geometry.x0 + pivot[0]), ys - np.float32(geometry.y0 + pivot[1])
    px = np.float32(cos) * qx + np.float32(sin) * qy + np.float32(pivot[0])
    py = -np.float32(sin) * qx + np.float32(cos) * qy + np.float32(pivot[1])
    legs = np.clip((py - np.float32(_LEG_START * new_h)) / np.float32((1 - _LEG_START) * new_h), 0, 1)
    px -= np.float32(sway_px) * legs
    # One transparent pixel around the cut-out, its colour replicated: bilinear taps outside it then fade the alpha
    # without darkening the edge colours.
    padded = cv2.copyMakeBorder(resized, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    padded[0, :, 3] = padded[-1, :, 3] = padded[:, 0, 3] = padded[:, -1, 3] = 0
    warped = cv2.remap(padded, px + 1, py + 1, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    red, green, blue, alpha16 = cv2.split(warped)
    alpha = alpha16.astype(np.float32) * np.float32(1.0 / 65535.0)
    kept = tight_box(alpha16 > 0)
    if kept is None:
        return _EMPTY
    fg = cv2.convertScaleAbs(cv2.merge((red, green, blue)), alpha=1.0 / 257.0)
    fg = cv2.transform(np.ascontiguousarray(fg[kept.slices]), matrix)
    share = min(1.0, float(alpha16.sum(dtype=np.float64)) / total)
    return Layer(fg, np.ascontiguousarray(alpha[kept.slices]), on_canvas.y0 + kept.y0, on_canvas.x0 + kept.x0, share)


def _frame_layers(cutouts, placements, matrices, trajectories, t, canvas_hw) -> list[Layer]:
    layers = []
    for p, traj in zip(placements, trajectories, strict=True):
        cut = cutouts[p.source]
        cut = cut.frames[t] if isinstance(cut, _ClipCutout) else cut  # a source video moves by itself too
        layers.append(_render_posed(cut, p.geometry, p.flip, matrices[p.source], traj.pose(t), canvas_hw))
    return layers


def _try_clip(video: VideoConfig, cutouts, matrices, rng, factor: float, best_miss: float):
    """One placement with new trajectories: (miss, placements, trajectories, per-frame (layers, visible, fractions))
    or None when it is already worse than ``best_miss`` (a violation only grows as frames are added)."""
    config = video.build
    canvas_hw = (config.height, config.width)
    if config.occlusion_range is None:
        placements = place_people(config, cutouts, rng)
    else:
        placements = place_people_in_range(config, cutouts, rng)
    trajectories = [_trajectory(video, rng, factor) for _ in placements]
    excess, worst, frames = 0.0, 0.0, []
    high = 1.0 - config.min_visible if config.occlusion_range is None else config.occlusion_range[1]
    for t in range(video.frames):
        layers = _frame_layers(cutouts, placements, matrices, trajectories, t, canvas_hw)
        visible = visible_mattes_crops(layers, canvas_hw)
        fractions = occlusion_fractions(layers, visible)
        for layer, hidden in zip(layers, fractions, strict=True):
            excess += max(0.0, config.min_in_frame - layer.in_frame_share) + max(0.0, hidden - high)
        worst = max([worst, *fractions])
        if excess > best_miss:
            return None
        frames.append((layers, visible, fractions))
    low = 0.0 if config.occlusion_range is None else config.occlusion_range[0]
    miss = excess + max(0.0, low - float(np.float32(worst)))
    if miss > best_miss:
        return None
    return miss, placements, trajectories, frames


def _video_cap(config: BuildConfig, video: VideoConfig) -> tuple[int, int]:
    # Cut-outs are prepared at the largest height they can grow to, so that growth never upsamples.
    grown = min(2.0, config.scale_max * (1 + video.scale_drift))
    return prepared_cap(dataclasses.replace(config, scale_max=max(grown, config.scale_min)))


@dataclass
class RenderedClip:
    """A clip before encoding: per frame the composite, the background window, the layers (back to front, one per
    person, possibly empty) and their 8-bit visible mattes (crops over each layer's box), and the hidden fractions."""

    images: list[np.ndarray]
    backgrounds: list[np.ndarray]
    layers: list[list[Layer]]
    visible: list[list[np.ndarray]]
    occlusion: list[list[float]]
    labels: list[str]
    bg_label: str
    problems: list[str]
    asked: int
    dropped: dict[str, int]
    in_range: bool
    seconds: dict[str, float]


def render_clip(
    config: VideoConfig,
    split: str,
    index: int,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
    bad: dict | None = None,
) -> RenderedClip:
    """Clip ``index`` of ``split`` as arrays (see :class:`RenderedClip`); :func:`synthesize_clip` encodes it."""
    build = config.build
    bad = {} if bad is None else bad
    rng = clip_rng(config, split, index)
    problems: list[str] = []
    seconds = {"decode": 0.0, "composite": 0.0, "encode": 0.0}
    tic = time.perf_counter()
    cap, embedded_height = _video_cap(build, config), procedural_height(build)
    seed = clip_seed(config, split, index)

    def load(ref: ForegroundRef) -> Cutout:
        if ref.kind == VIDEO_KIND:
            return drawable_cutout(_load_video_cutout(ref, config.frames, seed, cap), ref, build)
        return drawable_cutout(load_foreground(ref, cap, embedded_height), ref, build)

    # Bad video cut-outs are remembered for this clip only: whether one loads depends on the frames the clip draws,
    # so remembering it for later clips would make them depend on which clips a worker made before.
    memory = dict(bad)
    picked = pick_foregrounds(build, rng, fg_refs, load, memory, problems)
    bad.update({ref: problem for ref, problem in memory.items() if ref.kind != VIDEO_KIND})
    pan_px = round(config.pan * build.width * rng.uniform(0, 1))
    bg_ref, background = pick_source(
        bg_refs, rng, lambda r: load_background(r, build.height, build.width + pan_px, rng), bad, problems,
        "background",
    )
    pan_left = bool(rng.random() < 0.5)
    seconds["decode"] += time.perf_counter() - tic

    tic = time.perf_counter()
    cutouts = [cut for _, cut in picked]
    # Colour jitter per person, drawn before placement as for images; fixed over the clip.
    matrices = jitter_matrices(cutouts, build, rng)
    best = None
    for factor in _TRY_MOTION:
        found = _try_clip(config, cutouts, matrices, rng, factor, math.inf if best is None else best[0])
        if found is not None:
            best = found
            if found[0] == 0:
                break
    miss, placements, _, frames = best
    images, windows = [], []
    for t, (layers, visible, _) in enumerate(frames):
        offset = round(pan_px * t / max(config.frames - 1, 1))
        x0 = pan_px - offset if pan_left else offset
        window = np.ascontiguousarray(background[:, x0 : x0 + build.width])
        windows.append(window)
        images.append(composite_crops(window, layers, visible))
    unplaced = DROP_NO_PLACEMENT if build.occlusion_range is None else DROP_NO_PLACEMENT_IN_RANGE
    dropped = {unplaced: len(cutouts) - len(placements)} if len(cutouts) > len(placements) else {}
    seconds["composite"] += time.perf_counter() - tic
    return RenderedClip(
        images, windows, [f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames],
        [picked[p.source][0].label for p in placements], bg_ref.label, problems, len(picked), dropped, miss == 0,
        seconds,
    )


def synthesize_clip(
    config: VideoConfig,
    split: str,
    index: int,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
    bad: dict | None = None,
) -> ClipResult:
    """Make clip ``index`` of ``split``: the encoded shard row (see :mod:`himbench.video_shards`), problems met,
    time per stage, and whether the occlusion rules held."""
    clip = render_clip(config, split, index, fg_refs, bg_refs, bad)
    build = config.build
    tic = time.perf_counter()
    canvas_hw = (build.height, build.width)
    frames, people = range(config.frames), range(len(clip.labels))
    row = {
        "id": clip_id(split, index),
        "seed": clip_seed(config, split, index),
        "frames": [encode_composite(image, build) for image in clip.images],
        "alphas": [[_encode_matte(clip.layers[t][k], clip.visible[t][k], canvas_hw, build.png_compression)
                    for t in frames] for k in people],
        "boxes": [[_matte_box(clip.layers[t][k], clip.visible[t][k]) for t in frames] for k in people],
        "occlusion": [[float(clip.occlusion[t][k]) for t in frames] for k in people],
        "depth_order": list(people),
        "fg_sources": clip.labels,
        "bg_source": clip.bg_label,
        "width": build.width,
        "height": build.height,
        "num_frames": config.frames,
        "num_instances": len(clip.labels),
    }
    seconds = {**clip.seconds, "encode": time.perf_counter() - tic}
    return ClipResult(row, clip.problems, seconds, clip.asked, clip.dropped, clip.in_range)


def _matte_box(layer: Layer, vis: np.ndarray) -> list[int]:
    """[x0, y0, x1, y1) of the visible matte > 0 on the canvas; [0, 0, 0, 0] when it is empty in this frame."""
    box = tight_box(vis)
    if box is None:
        return [0, 0, 0, 0]
    return list(box.translate(layer.x0, layer.y0).as_tuple())


def _encode_matte(layer: Layer, vis: np.ndarray, canvas_hw: tuple[int, int], compression: int) -> bytes:
    canvas = np.zeros(canvas_hw, np.uint8)
    if vis.size:
        canvas[layer.box.slices] = vis
    return encode_png(canvas, compression)


# ------------------------------------------------------------------------------------------- video cut-outs
VIDEO_KIND = "video"  # ForegroundRef.kind of a clip of a VideoMatte240K-style folder
# A pha frame stored as colour JPEG (VideoMatte240K's are JPEG) is read as its luma when its channels differ by at
# most this much (chroma noise of a grey picture); more is a colour image, refused.
_PHA_CHROMA_TOLERANCE = 16


def is_video_folder(spec: str) -> bool:
    """True for a folder laid out as VideoMatte240K: ``fgr/<clip>/<frame>`` + ``pha/<clip>/<frame>``."""
    if spec == "embedded":
        return False
    root = Path(spec)
    return all((root / sub).is_dir() and not (root / sub).is_symlink() for sub in ("fgr", "pha"))


def scan_video_cutouts(folder: str) -> tuple[list[ForegroundRef], list[str]]:
    """One ref per clip of a VideoMatte240K-style folder (its frames paired by stem, in stem order), and the
    problems met listing it (a clip with no pha/ folder, a frame with no matte). Symbolic links are not followed."""
    from himbench.io import IMAGE_SUFFIXES

    root = Path(folder)
    label = "/".join(root.resolve().parts[-2:])
    refs, problems = [], []

    def frames_of(directory: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(directory.iterdir())
                if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES}

    for clip in sorted(p for p in (root / "fgr").iterdir() if p.is_dir() and not p.is_symlink()):
        mattes_dir = root / "pha" / clip.name
        if not mattes_dir.is_dir() or mattes_dir.is_symlink():
            problems.append(f"{clip}: no matching folder {mattes_dir} (clip skipped)")
            continue
        colours, mattes = frames_of(clip), frames_of(mattes_dir)
        missing = sorted(set(colours) ^ set(mattes))
        if missing:
            problems.append(f"{clip}: {len(missing)} frame(s) without a partner in fgr/ or pha/, e.g. "
                            f"{missing[0]!r} (those frames skipped)")
        stems = sorted(set(colours) & set(mattes))
        if stems:
            paths = tuple(str(path) for stem in stems for path in (colours[stem], mattes[stem]))
            refs.append(ForegroundRef(f"{label}:{clip.name}", VIDEO_KIND, paths))
    return refs, problems


def _read_pha(path: str, shape: tuple[int, int]) -> np.ndarray:
    from himbench.io import read_file_bytes
    from himbench.io.images import decode_raw

    raw, _ = decode_raw(read_file_bytes(path), path, shape, what="matte")
    if raw.ndim == 3:
        planes = raw[:, :, :3].astype(np.int16)
        if int(np.abs(planes - planes[:, :, :1]).max()) > _PHA_CHROMA_TOLERANCE:
            raise InputError(path, "expected a grey matte, got a colour image")
        raw = cv2.cvtColor(np.ascontiguousarray(raw[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if raw.dtype != np.uint8:
        raise InputError(path, f"expected an 8-bit matte, got {raw.dtype}")
    return raw.astype(np.float32) / np.float32(255.0)


class _ClipCutout(Cutout):
    """A person from a source video: one prepared cut-out per frame of the clip, all of one size (every frame is
    cropped to the union of the alpha boxes over the clip, as MaGGIe's script does, so the person's scale does not
    jump). Placement sees the middle frame's."""

    def __init__(self, frames: list[Cutout], cut_at_bottom: bool) -> None:
        reference = frames[len(frames) // 2]
        self.rgba16 = reference.rgba16
        self.cut_at_bottom = cut_at_bottom
        self._small = {}
        self.frames = frames


def _load_video_cutout(ref: ForegroundRef, frames: int, seed: int, cap: tuple[int, int]) -> _ClipCutout:
    """``frames`` consecutive frames of a source clip from a start drawn from ``seed`` (the clip's) and the ref,
    cropped to their union box and scaled down to ``cap``. InputError naming the file or folder otherwise."""
    from himbench.io import read_image
    from himbench.synthesis.sources import MIN_CUTOUT_SIDE

    pairs = list(zip(ref.paths[0::2], ref.paths[1::2], strict=True))
    folder = str(Path(ref.paths[0]).parent)
    if len(pairs) < frames:
        raise InputError(folder, f"video cut-out has {len(pairs)} frames; a clip needs {frames}")
    start = int(np.random.default_rng([seed, zlib.crc32(ref.label.encode())]).integers(len(pairs) - frames + 1))
    images, alphas = [], []
    for colour, matte in pairs[start : start + frames]:
        image = read_image(colour)
        images.append(image)
        alphas.append(_read_pha(matte, image.shape[:2]))  # the matte's size is checked before it is decoded
    if any(a.shape != alphas[0].shape for a in alphas):
        raise InputError(folder, "video cut-out frames differ in size")
    box = tight_box(np.maximum.reduce(alphas))
    if box is None or min(box.shape) < MIN_CUTOUT_SIDE:
        raise InputError(folder, f"video cut-out has no person of at least {MIN_CUTOUT_SIDE} px in frames "
                                 f"{start}-{start + frames - 1}")
    cut_at_bottom = any(bool((a[-1] > 0.5).mean() > 0.02) for a in alphas)
    prepared = []
    for image, alpha in zip(images, alphas, strict=True):
        fg, alpha = image[box.slices], alpha[box.slices]
        h, w = alpha.shape
        scale = min(cap[0] / h, cap[1] / w, 1.0)
        if scale < 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            fg, alpha = (cv2.resize(fg, size, interpolation=cv2.INTER_AREA),
                         cv2.resize(alpha, size, interpolation=cv2.INTER_AREA))
        prepared.append(Cutout(np.ascontiguousarray(fg), np.ascontiguousarray(alpha), cut_at_bottom))
    return _ClipCutout(prepared, cut_at_bottom)


# ------------------------------------------------------------------------------------------------- the build
_FINGERPRINT_KEY = "himbench_video_fingerprint"
_REPORT_FILE = "build_report.json"
_CARD_FILE = "README.md"


@dataclass(frozen=True)
class _ShardJob:
    config: dict  # VideoConfig.to_dict(), so the job pickles plainly
    split: str
    index: int
    total: int
    start: int
    stop: int
    path: str


def _plan(config: VideoConfig, data_dir: Path) -> list[_ShardJob]:
    from himbench.shards import shard_name

    jobs = []
    per = config.build.images_per_shard
    for split in sorted(config.build.splits):
        count, total = config.build.splits[split], config.build.num_shards(split)
        for k in range(total):
            path = data_dir / shard_name(split, k, total)
            jobs.append(_ShardJob(config.to_dict(), split, k, total, k * per, min(count, (k + 1) * per), str(path)))
    return jobs


def _shard_done(job: _ShardJob, fingerprint: str) -> bool:
    from himbench.shards import read_shard_metadata

    path = Path(job.path)
    if not path.is_file() or path.is_symlink():
        return False
    try:
        rows, meta = read_shard_metadata(path)
    except Exception:  # noqa: BLE001 - a half-written or foreign file is simply made again
        return False
    return rows == job.stop - job.start and meta.get(_FINGERPRINT_KEY) == fingerprint


def _make_shard(job: _ShardJob, fg_refs: list[ForegroundRef], bg_refs: list[BackgroundRef]) -> dict:
    """Make and atomically write one shard; returns its report. A pure function of its arguments and the sources."""
    from himbench.video_shards import write_video_shard

    config = VideoConfig.from_dict(job.config)
    bad: dict = {}
    rows, problems, out_of_range, dropped = [], [], 0, Counter()
    for index in range(job.start, job.stop):
        result = synthesize_clip(config, job.split, index, fg_refs, bg_refs, bad)
        rows.append(result.row)
        problems += [p for p in result.problems if p not in problems]
        out_of_range += not result.in_range
        dropped.update(result.dropped)
    write_video_shard(rows, job.path, {_FINGERPRINT_KEY: config.fingerprint()})
    return {"shard": Path(job.path).name, "clips": len(rows), "frames": len(rows) * config.frames,
            "problems": problems, "occlusion_out_of_range": out_of_range, "people_dropped": dict(dropped)}


def _remove_stale_shards(data_dir: Path, planned: set[str]) -> None:
    """Remove the shards an earlier video build wrote (shard names whose footer carries a video fingerprint) that
    this build does not plan, so an --overwrite build never leaves another configuration's splits behind. Files
    this project did not write are left alone."""
    from himbench.shards import is_shard_name, read_shard_metadata

    for path in sorted(data_dir.glob("*.parquet")):
        if path.name in planned or not is_shard_name(path.name) or path.is_symlink() or not path.is_file():
            continue
        try:
            ours = _FINGERPRINT_KEY in read_shard_metadata(path)[1]
        except Exception:  # noqa: BLE001 - unreadable: not provably ours, so kept
            ours = False
        if ours:
            path.unlink()


def _prepare_out(config: VideoConfig, out_dir: Path, overwrite: bool) -> None:
    """Refuse an --out that holds something else (files not written by a video build, or another configuration's
    build) unless ``overwrite``; then only the files a video build writes are replaced."""
    import json

    from himbench.io import read_json
    from himbench.video_shards import VIDEO_CONFIG_FILE

    for path in (out_dir, out_dir / "data"):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise InputError(path, "must be a folder (not a file or a symbolic link): a build writes only inside --out")
    config_path = out_dir / VIDEO_CONFIG_FILE
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        if not config_path.is_file():
            raise InputError(out_dir, "is not empty and holds no video build; choose another --out or pass "
                                      "--overwrite to write the build into it (only the files a build writes are "
                                      "replaced)")
        try:
            same = VideoConfig.from_dict(read_json(config_path)).fingerprint() == config.fingerprint()
        except (InputError, ValueError, TypeError, KeyError):
            same = False
        if not same:
            raise InputError(config_path, "holds a video build with a different configuration; choose another "
                                          "--out or pass --overwrite to replace it")
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    from himbench.io.atomic import atomic_write_text

    atomic_write_text(config_path, json.dumps(config.to_dict(), indent=2) + "\n")


def build_video_dataset(
    config: VideoConfig,
    out_dir: str | Path,
    workers: int | None = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Build the clips of ``config`` into ``out_dir`` (layout: :mod:`himbench.video_shards`); returns the report
    (also written to build_report.json). Shards are written atomically and carry the build's fingerprint: a rerun
    keeps finished shards and makes the rest. The bytes do not depend on ``workers``."""
    import json
    import os
    from concurrent.futures import ProcessPoolExecutor

    from himbench.io.atomic import atomic_write_text
    from himbench.synthesis.sources import scan_backgrounds, scan_foregrounds

    build = config.build
    if build.store_layers:
        raise ValueError("--store-layers is not supported with --video")
    stills = tuple(spec for spec in build.fg_sources if not is_video_folder(spec))
    fg_refs, listing_problems = scan_foregrounds(stills) if stills else ([], [])
    for spec in build.fg_sources:
        if is_video_folder(spec):
            refs, problems = scan_video_cutouts(spec)
            fg_refs, listing_problems = fg_refs + refs, listing_problems + problems
    bg_refs = scan_backgrounds(build.bg_sources)
    if not fg_refs or not bg_refs:
        raise InputError(", ".join(build.fg_sources if not fg_refs else build.bg_sources),
                         "no usable cut-outs" if not fg_refs else "no usable backgrounds")
    out_dir = Path(out_dir)
    _prepare_out(config, out_dir, overwrite)
    fingerprint = config.fingerprint()
    jobs = _plan(config, out_dir / "data")
    if overwrite:
        _remove_stale_shards(out_dir / "data", {Path(job.path).name for job in jobs})
    todo = [job for job in jobs if not _shard_done(job, fingerprint)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    reports = []
    tic = time.perf_counter()
    if workers == 1:
        reports = [_make_shard(job, fg_refs, bg_refs) for job in todo]
    else:
        with ProcessPoolExecutor(workers) as pool:
            reports = list(pool.map(_make_shard, todo, [fg_refs] * len(todo), [bg_refs] * len(todo)))
    problems = list(listing_problems)
    for shard in reports:
        problems += [p for p in shard["problems"] if p not in problems]
    report = {
        "fingerprint": fingerprint,
        "num_clips": sum(build.splits.values()),
        "num_frames": sum(build.splits.values()) * config.frames,
        "num_shards": len(jobs),
        "resumed_shards": len(jobs) - len(todo),
        "occlusion_out_of_range": sum(s["occlusion_out_of_range"] for s in reports),
        "people_dropped": dict(sum((Counter(s["people_dropped"]) for s in reports), Counter())),
        "problems": problems,
        "seconds": round(time.perf_counter() - tic, 3),
    }
    atomic_write_text(out_dir / _REPORT_FILE, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / _CARD_FILE, render_video_card(config))
    return report


def render_video_card(config: VideoConfig) -> str:
    """The dataset card: YAML ``configs:`` so ``datasets.load_dataset(DIR)`` finds the splits, and what the
    columns and the motion mean."""
    build = config.build
    files = "\n".join(f"  - split: {split}\n    path: data/{split}-*.parquet" for split in sorted(build.splits))
    occlusion = ("the min_visible rule (every person keeps "
                 f"{build.min_visible:.0%} of its in-frame alpha visible in every frame)"
                 if build.occlusion_range is None else
                 f"the most-hidden person's hidden fraction over the clip (its maximum over frames and people) in "
                 f"[{build.occlusion_range[0]:g}, {build.occlusion_range[1]:g}]")
    counts = ", ".join(f"{split}: {n} clips" for split, n in sorted(build.splits.items()))
    return f"""---
configs:
- config_name: default
  data_files:
{files}
tags:
- human-instance-matting
- video-matting
- synthetic
---

# Synthetic video human instance matting clips (himbench)

Made by `himbench build-dataset --video` ({counts}; {config.frames} frames of {build.width}x{build.height} px,
{build.min_instances}-{build.max_instances} people per clip, seed {build.seed}). One row per clip.

```python
from datasets import load_dataset
clips = load_dataset("parquet", data_files="data/*.parquet", streaming=True)
```

- `frames`: the composites; `alphas[k][t]`: person k's 8-bit visible matte in frame t (person k is the same person in
  every frame, back to front); `boxes[k][t]`, `occlusion[k][t]` (hidden fraction of its own in-frame alpha).
- Every frame's composite equals `sum_k F_k a_k + B (1 - sum_k a_k)` with the stored 8-bit mattes, to rounding
  ({'lossless PNG' if build.image_format == 'png' else f'JPEG quality {build.jpeg_quality}: lossy'}).
- Motion per person: drift up to {config.motion:g} of the width over the clip, height change up to
  {config.scale_drift:g}, rotation up to {config.rotation_degrees:g} degrees, lower-body sway up to
  {config.gait:g} of the height; background pan up to {config.pan:g} of the width.
- Occlusion rule: {occlusion}.

Configuration: `video_config.json`; what the build did: `build_report.json`. See docs/video.md in himbench.
"""
