"""The typed build configuration, saved as ``build_config.json`` beside the shards it produced, and the limits of
the shard format it declares.

A core module (standard library only): :class:`himbench.shards.ShardFolder` reads ``build_config.json`` into a
:class:`BuildConfig`, :mod:`himbench.synthesis` builds from one, and importing it loads no image library.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields

__all__ = [
    "ENGINE_VERSION",
    "IMAGE_FORMATS",
    "MAX_INSTANCES",
    "MAX_SHARDS_PER_SPLIT",
    "MAX_SIDE",
    "MAX_SPLIT_IMAGES",
    "OCCLUSION_PRESETS",
    "BuildConfig",
]

# A canvas side above this is a typo (a 100000 px canvas would allocate tens of GB per image).
MAX_SIDE = 8192
# People per image: E2E-HIM predicts at most 20 (its instance queries), and placement under min_visible rarely fits
# more than about ten people in one frame (each extra person costs up to max_attempts occlusion checks).
MAX_INSTANCES = 20
# Images per split: a hundred times HIM-100K. A count above it is a typo, and the shard plan (one small record per
# shard) and the progress bar grow with it before any image is made.
MAX_SPLIT_IMAGES = 10_000_000
# Shards per split: names widen past five digits (``train-100000-of-123456.parquet``, himbench.shards.shard_name), so
# this only bounds the files of one split's folder; a million shards is a typo in --images-per-shard or the count.
MAX_SHARDS_PER_SPLIT = 1_000_000
# Version of the synthesis engine, part of every build's fingerprint: bumped whenever the same config makes other
# bytes, so a build folder made by an older engine is never resumed into a mix of old and new shards.
# 2: placement decided at 1/4 resolution, cut-outs prepared at their largest drawn size, crop-based compositing.
ENGINE_VERSION = 2
# How the composite is stored: "png" lossless (the compositing equation holds exactly; the default), "jpg" as
# I-HIM50K and HIM-2K ship their images (lossy, smaller, faster to write). Mattes are always 8-bit PNG.
IMAGE_FORMATS = ("png", "jpg")
# Occlusion presets: the range of the hidden fraction of the most-hidden person of each image, as MaGGIe's paper
# (arXiv 2404.16035) defines its video benchmark's levels: easy = no overlap, medium = 5-50%, hard = 50-85%. (Its
# released script tools/synthesize_video_him.py keeps medium clips at 5-30% and hard ones at 50-85%.) "none" is no
# range: I-HIM50K's rule (every person keeps min_visible of its area), as builds always were.
OCCLUSION_PRESETS: dict[str, tuple[float, float] | None] = {
    "none": None,
    "easy": (0.0, 0.0),
    "medium": (0.05, 0.5),
    "hard": (0.5, 0.85),
}


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines the bytes of a build. Same config + same sources = byte-identical shards.

    ``splits`` maps a split name to its number of images. ``fg_sources``/``bg_sources`` hold ``"embedded"`` or folder
    paths (see :mod:`himbench.synthesis.sources`). Scales are person heights as a share of the canvas height.
    """

    splits: dict[str, int] = field(default_factory=lambda: {"train": 64, "test": 16})
    width: int = 1024
    height: int = 1024
    seed: int = 0
    images_per_shard: int = 32
    min_instances: int = 2
    max_instances: int = 5
    # Optional weights over min..max instances (None = uniform), e.g. (0.4, 0.3, 0.2, 0.1) for 2..5.
    instance_weights: tuple[float, ...] | None = None
    scale_min: float = 0.45
    scale_max: float = 0.95
    flip_prob: float = 0.5
    # Colour jitter amplitudes: brightness/contrast/saturation as relative factors, hue in degrees.
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.2
    hue_degrees: float = 8.0
    # An instance must keep at least this share of its own (in-frame) area visible after occlusion.
    min_visible: float = 0.7
    # An instance must keep at least this share of its cut-out inside the frame.
    min_in_frame: float = 0.6
    max_attempts: int = 40
    fg_sources: tuple[str, ...] = ("embedded",)
    bg_sources: tuple[str, ...] = ("embedded",)
    # Longest side a foreground cut-out is prepared at. Cut-outs are also never prepared larger than the largest size
    # they can be drawn at in this build (scale_max of the height, 95% of the width: sampler.prepared_cap), which is
    # the resolution foreground colours are estimated at.
    fg_max_side: int = 1280
    store_layers: bool = False
    png_compression: int = 1
    # Format of the composite ("png" or "jpg", see IMAGE_FORMATS) and the JPEG quality used when it is "jpg".
    image_format: str = "png"
    jpeg_quality: int = 95
    # (LO, HI): the most-hidden person of each image has a hidden fraction in [LO, HI] (so every person keeps at
    # least 1 - HI of its in-frame alpha), replacing min_visible; placement seeks the overlap (sampler.place_people).
    # None: the min_visible rule. See OCCLUSION_PRESETS.
    occlusion_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # Everything is checked here, before a build writes anything to its folder: a config refused later (in a
        # worker) would leave a build_config.json behind that refuses the corrected rerun.
        problems = _type_problems(self)
        if problems:  # the range checks below would fail on the wrong types with Python's own messages
            raise ValueError("invalid build config: " + "; ".join(problems))
        if not isinstance(self.splits, dict) or not self.splits:
            problems.append("splits must map split names to non-negative image counts")
        else:
            problems += _split_problems(self.splits, self.images_per_shard)
        if not 1 <= self.min_instances <= self.max_instances:
            problems.append("need 1 <= min_instances <= max_instances")
        if self.max_instances > MAX_INSTANCES:
            problems.append(f"max_instances {self.max_instances} is over {MAX_INSTANCES} people per image")
        if (
            self.instance_weights is not None
            and len(self.instance_weights) != self.max_instances - self.min_instances + 1
        ):
            problems.append("instance_weights needs one weight per instance count in min..max")
        elif self.instance_weights is not None and (
            not all(math.isfinite(w) and w >= 0 for w in self.instance_weights) or not sum(self.instance_weights) > 0
        ):
            problems.append(f"instance_weights must be finite, non-negative and not all zero "
                            f"(got {', '.join(repr(w) for w in self.instance_weights)})")
        if not 0 < self.scale_min <= self.scale_max:
            problems.append("need 0 < scale_min <= scale_max")
        if not 0 <= self.min_visible <= 1 or not 0 <= self.min_in_frame <= 1:
            problems.append("min_visible and min_in_frame are shares in [0, 1]")
        if not (32 <= self.width <= MAX_SIDE and 32 <= self.height <= MAX_SIDE):
            problems.append(f"width and height must be 32 to {MAX_SIDE} px (got {self.width}x{self.height})")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if self.images_per_shard < 1:
            problems.append("images_per_shard must be >= 1")
        if self.max_attempts < 1:
            problems.append("max_attempts must be >= 1")
        if self.fg_max_side < 16:
            problems.append("fg_max_side must be >= 16 px")
        if not self.fg_sources or not self.bg_sources:
            problems.append("need at least one foreground and one background source")
        if not 0 <= self.flip_prob <= 1:
            problems.append(f"flip_prob is a probability in [0, 1] (got {self.flip_prob!r})")
        jitter = (self.brightness, self.contrast, self.saturation)
        if not all(0 <= v <= 1 for v in jitter) or not 0 <= self.hue_degrees <= 180:
            problems.append(f"colour jitter needs brightness, contrast and saturation in [0, 1] and hue_degrees in "
                            f"[0, 180] (got {', '.join(repr(v) for v in (*jitter, self.hue_degrees))})")
        if not 0 <= self.png_compression <= 9:
            problems.append(f"png_compression is a zlib level 0 to 9 (got {self.png_compression!r})")
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"image_format must be one of {', '.join(IMAGE_FORMATS)} (got {self.image_format!r})")
        quality = self.jpeg_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            problems.append(f"jpeg_quality must be an integer from 1 to 100 (got {self.jpeg_quality!r})")
        occlusion = self.occlusion_range
        if occlusion is not None and not 0 <= occlusion[0] <= occlusion[1] <= 1:
            problems.append(f"occlusion_range needs 0 <= LO <= HI <= 1 (got {', '.join(map(repr, occlusion))})")
        if problems:
            raise ValueError("invalid build config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fg_sources"] = list(self.fg_sources)
        data["bg_sources"] = list(self.bg_sources)
        data["instance_weights"] = None if self.instance_weights is None else list(self.instance_weights)
        data["occlusion_range"] = None if self.occlusion_range is None else list(self.occlusion_range)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> BuildConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown build config keys: {sorted(unknown)}")
        data = dict(data)
        for key in ("fg_sources", "bg_sources"):
            if key in data:
                data[key] = tuple(data[key])
        for key in ("instance_weights", "occlusion_range"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    def fingerprinted(self) -> dict:
        """The fields :meth:`fingerprint` hashes: :meth:`to_dict` less the settings that cannot change the bytes.

        ``image_format``/``jpeg_quality`` came after builds were published, and a png build never reads the JPEG
        quality: for a png build both are left out, so its fingerprint is exactly the one it had before these
        fields existed (finished shards still resume, a Hub copy still matches its build_config.json) and no
        ENGINE_VERSION bump is needed. A jpg build hashes both (the quality changes every byte of the composite).
        ``occlusion_range`` came later too and is left out when None (the min_visible rule, which places people as
        before), so default builds keep their fingerprint; when set, it replaces min_visible, which is left out."""
        data = self.to_dict()
        if self.image_format == "png":
            del data["image_format"], data["jpeg_quality"]
        if self.occlusion_range is None:
            del data["occlusion_range"]
        else:
            del data["min_visible"]
        return data

    def fingerprint(self) -> str:
        """Hash of everything that affects shard bytes (the config and the engine's version); a resumed build must
        have the same fingerprint. Where the foreground cache lives is not part of it: it never changes the bytes."""
        data = {**self.fingerprinted(), "engine_version": ENGINE_VERSION}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def num_shards(self, split: str) -> int:
        count = int(self.splits[split])
        return max(1, -(-count // self.images_per_shard)) if count else 0


_INT_FIELDS = ("width", "height", "seed", "images_per_shard", "min_instances", "max_instances", "max_attempts",
               "fg_max_side", "png_compression")
_FLOAT_FIELDS = ("scale_min", "scale_max", "flip_prob", "brightness", "contrast", "saturation", "hue_degrees",
                 "min_visible", "min_in_frame")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_problems(config: BuildConfig) -> list[str]:
    """Fields of the wrong type (a config may come from a hand-edited build_config.json); NaN and infinities count
    as wrong: every comparison with NaN is False, so a range check alone would let it through."""
    problems = [f"{name} must be an integer (got {getattr(config, name)!r})"
                for name in _INT_FIELDS if not _is_int(getattr(config, name))]
    for name in _FLOAT_FIELDS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{name} must be a finite number (got {value!r})")
    weights = config.instance_weights
    if weights is not None and (
        not isinstance(weights, tuple | list)
        or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
    ):
        problems.append(f"instance_weights must be a list of numbers (got {weights!r})")
    for name in ("fg_sources", "bg_sources"):
        value = getattr(config, name)
        if not isinstance(value, tuple | list) or not all(isinstance(v, str) and v for v in value):
            problems.append(f"{name} must be a list of source names or folders (got {value!r})")
    occlusion = config.occlusion_range
    if occlusion is not None and (
        not isinstance(occlusion, tuple | list)
        or len(occlusion) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in occlusion)
    ):
        problems.append(f"occlusion_range must be two finite numbers [LO, HI] or null (got {occlusion!r})")
    if not isinstance(config.store_layers, bool):
        problems.append(f"store_layers must be true or false (got {config.store_layers!r})")
    return problems


def _split_problems(splits: dict, images_per_shard: int) -> list[str]:
    """Problems of the split names and counts: each count is bounded (MAX_SPLIT_IMAGES, MAX_SHARDS_PER_SPLIT) so
    that nothing sized by it (the shard plan, shard names) is made for a typo such as 99999999999999999999."""
    problems = []
    for name, count in splits.items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or not name.isascii():
            problems.append(f"split name {name!r} must be alphanumeric (underscores allowed)")
        if not _is_int(count) or count < 0:
            problems.append(f"split {name!r}: the image count must be a non-negative integer (got {count!r})")
        elif count > MAX_SPLIT_IMAGES:
            problems.append(f"split {name!r}: {count} images is over the limit of {MAX_SPLIT_IMAGES:,} per split")
        elif images_per_shard >= 1 and -(-count // images_per_shard) > MAX_SHARDS_PER_SPLIT:
            problems.append(f"split {name!r}: {count} images at {images_per_shard} per shard make "
                            f"{-(-count // images_per_shard)} shards, over {MAX_SHARDS_PER_SPLIT} per split; "
                            "raise --images-per-shard")
    return problems
