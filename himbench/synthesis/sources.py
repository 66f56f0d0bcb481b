"""Where foreground cut-outs and backgrounds come from.

Foreground source specs (``BuildConfig.fg_sources``):

* ``"embedded"``: the procedural human figures of :mod:`himbench.synthesis.procedural` (offline, no download).
* a folder with ``fg/`` + ``alpha/`` paired by file stem (Adobe Composition-1k, Distinctions-646, AM-2K style): the
  foreground colours are given.
* a folder with ``original/`` + ``alpha/`` (P3M style): photo + alpha; foreground colours are estimated with
  pymatting's ``estimate_foreground_ml`` so no halo of the old background leaks into composites.
* a folder of RGBA PNG cut-outs (colour + alpha channel in one file).

Background source specs (``BuildConfig.bg_sources``): ``"embedded"`` (scikit-image photos without people and
procedural textures) or any folder of photos (COCO / BG-20K style, searched recursively).

Scanning only lists files (cheap, in the main process); decoding happens lazily in the workers and a bad file raises
:class:`~himbench.io.InputError`, which the builder reports and skips.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from himbench.io import InputError, decode_raw, read_alpha, read_file_bytes, read_image
from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "BackgroundRef",
    "Cutout",
    "ForegroundRef",
    "IMAGE_SUFFIXES",
    "MIN_CUTOUT_SIDE",
    "load_background",
    "load_foreground",
    "scan_backgrounds",
    "scan_foregrounds",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# A cut-out smaller than this (after cropping to alpha > 0) on either side is refused: scaled up to a person's height
# a 1x1 or 3x40 cut-out would become a solid rectangle "person" with a full matte.
MIN_CUTOUT_SIDE = 16


@dataclass(frozen=True)
class ForegroundRef:
    """A foreground cut-out before decoding. ``label`` is what the shards record (no absolute paths)."""

    label: str
    kind: str  # "embedded" | "fg_alpha" | "image_alpha" | "rgba"
    paths: tuple[str, ...] = ()
    index: int = 0


@dataclass(frozen=True)
class BackgroundRef:
    label: str
    kind: str  # "embedded" | "file"
    path: str = ""


@dataclass
class Cutout:
    """A prepared foreground: colours and alpha cropped tightly to alpha > 0."""

    fg: np.ndarray  # uint8 (h, w, 3), defined wherever alpha > 0
    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    # The person is cut by the bottom edge of its source photo (a portrait): it must be placed with that edge at or
    # below the bottom of the canvas, or a straight horizontal cut would float in the image.
    cut_at_bottom: bool = False


def _source_label(folder: Path) -> str:
    # Two trailing parts ("demo/imgs", "P3M-500-NP/train") name a set without leaking a machine's absolute path.
    return "/".join(folder.resolve().parts[-2:])


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _paired(colour_dir: Path, alpha_dir: Path, kind: str, label: str) -> tuple[list[ForegroundRef], list[str]]:
    alphas = {p.stem: p for p in _images_in(alpha_dir)}
    refs, problems = [], []
    for image in _images_in(colour_dir):
        alpha = alphas.pop(image.stem, None)
        if alpha is None:
            problems.append(f"{image}: no alpha with the same name in {alpha_dir}")
            continue
        refs.append(ForegroundRef(f"{label}:{image.stem}", kind, (str(image), str(alpha))))
    problems += [f"{path}: alpha has no image with the same name in {colour_dir}" for path in alphas.values()]
    return refs, problems


def scan_foregrounds(specs: tuple[str, ...] | list[str]) -> tuple[list[ForegroundRef], list[str]]:
    """List foreground cut-outs of every spec, in a deterministic order, plus problems found while listing."""
    refs: list[ForegroundRef] = []
    problems: list[str] = []
    for spec in specs:
        if spec == "embedded":
            from himbench.synthesis.procedural import procedural_person_count

            refs += [
                ForegroundRef(f"embedded:person_{i:04d}", "embedded", (), i) for i in range(procedural_person_count())
            ]
            continue
        folder = Path(spec)
        if not folder.is_dir():
            raise InputError(spec, "foreground source is neither 'embedded' nor an existing folder")
        label = _source_label(folder)
        if (folder / "alpha").is_dir() and (folder / "fg").is_dir():
            found, bad = _paired(folder / "fg", folder / "alpha", "fg_alpha", label)
        elif (folder / "alpha").is_dir() and (folder / "original").is_dir():
            found, bad = _paired(folder / "original", folder / "alpha", "image_alpha", label)
        else:
            found = [
                ForegroundRef(f"{label}:{p.stem}", "rgba", (str(p),))
                for p in _images_in(folder)
                if p.suffix.lower() in (".png", ".webp", ".tif", ".tiff")
            ]
            bad = []
        if not found:
            raise InputError(
                folder,
                "no foregrounds found: expected fg/+alpha/, original/+alpha/ (paired by name) or RGBA PNG cut-outs",
            )
        refs += found
        problems += bad
    return refs, problems


def scan_backgrounds(specs: tuple[str, ...] | list[str]) -> list[BackgroundRef]:
    """List backgrounds of every spec in a deterministic order."""
    refs: list[BackgroundRef] = []
    for spec in specs:
        if spec == "embedded":
            from himbench.synthesis.embedded_backgrounds import embedded_backgrounds

            refs += [BackgroundRef(f"embedded:{name}", "embedded", name) for name in embedded_backgrounds()]
            continue
        folder = Path(spec)
        if not folder.is_dir():
            raise InputError(spec, "background source is neither 'embedded' nor an existing folder")
        label = _source_label(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(folder, "no background images found (looked for jpg/png/webp/bmp/tif, recursively)")
        refs += [BackgroundRef(f"{label}:{p.relative_to(folder).as_posix()}", "file", str(p)) for p in files]
    return refs


def _cut_at_bottom(alpha: np.ndarray) -> bool:
    return bool((alpha[-1] > 0.5).mean() > 0.02)


def _crop_to_alpha(fg: np.ndarray, alpha: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        raise InputError(source, "alpha is empty (no foreground pixels)")
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    fg, alpha = fg[box], alpha[box]
    if min(alpha.shape) < MIN_CUTOUT_SIDE:
        raise InputError(
            source,
            f"cut-out is only {alpha.shape[1]}x{alpha.shape[0]} px where alpha > 0 (minimum {MIN_CUTOUT_SIDE} px "
            "on each side); too small to be a person",
        )
    return fg, alpha


def _limit_size(fg: np.ndarray, alpha: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    longest = max(alpha.shape)
    if longest <= max_side:
        return fg, alpha
    scale = max_side / longest
    size = (max(1, round(alpha.shape[1] * scale)), max(1, round(alpha.shape[0] * scale)))
    return cv2.resize(fg, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def _estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(image.astype(np.float64) / 255.0, alpha.astype(np.float64))
    return np.clip(np.rint(fg * 255.0), 0, 255).astype(np.uint8)


def _cache_dir() -> Path:
    return Path(os.environ.get("HIMBENCH_CACHE", Path.home() / ".cache" / "himbench"))


@functools.lru_cache(maxsize=1)
def _procedural_version() -> str:
    # The cache key includes the generator's source, so editing procedural.py never serves stale people.
    from himbench.synthesis import procedural

    return hashlib.sha256(Path(procedural.__file__).read_bytes()).hexdigest()[:12]


def _cached_procedural_person(index: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural person, from the on-disk cache when another worker or run already made it (exact arrays)."""
    from himbench.synthesis.procedural import procedural_person

    path = _cache_dir() / "procedural" / _procedural_version() / f"{index:05d}_{height}.npz"
    try:
        with np.load(path) as cached:
            return cached["fg"], cached["alpha"]
    except (OSError, KeyError, ValueError):  # absent or damaged: make it again
        pass
    fg, alpha = procedural_person(index, height=height)
    fg, alpha = np.asarray(fg, np.uint8), np.asarray(alpha, np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, fg=fg, alpha=alpha)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:  # a read-only home is no reason to fail a build
        pass
    return fg, alpha


@functools.lru_cache(maxsize=256)
def load_foreground(ref: ForegroundRef, max_side: int, embedded_height: int) -> Cutout:
    """Decode and prepare one cut-out (cached per process). Raises InputError naming the bad file."""
    if ref.kind == "embedded":
        fg, alpha = _cached_procedural_person(ref.index, embedded_height)
        cut = _cut_at_bottom(alpha)
        fg, alpha = _crop_to_alpha(np.asarray(fg, np.uint8), alpha, ref.label)
        return Cutout(fg, alpha, cut)
    if ref.kind == "rgba":
        path = ref.paths[0]
        raw, _ = decode_raw(read_file_bytes(path), path)
        if raw.ndim != 3 or raw.shape[2] != 4:
            raise InputError(path, "expected an RGBA cut-out (4 channels) in a folder without fg/ or alpha/")
        if raw.dtype == np.uint16:
            raw = (raw.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        fg = np.ascontiguousarray(raw[:, :, 2::-1])
        alpha = raw[:, :, 3].astype(np.float32) / 255.0
        cut = _cut_at_bottom(alpha)
        fg, alpha = _crop_to_alpha(fg, alpha, path)
        return Cutout(*_limit_size(fg, alpha, max_side), cut)
    colour_path, alpha_path = ref.paths
    image = read_image(colour_path)
    alpha = read_alpha(alpha_path)
    if alpha.shape != image.shape[:2]:
        raise InputError(
            alpha_path,
            f"alpha size {alpha.shape[1]}x{alpha.shape[0]} does not match image {colour_path} "
            f"({image.shape[1]}x{image.shape[0]})",
        )
    cut = _cut_at_bottom(alpha)
    image, alpha = _crop_to_alpha(image, alpha, alpha_path)
    image, alpha = _limit_size(image, alpha, max_side)
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
    fg = _estimate_foreground(image, alpha) if ref.kind == "image_alpha" else image
    return Cutout(fg, alpha, cut)


@functools.lru_cache(maxsize=16)
def _decoded_background(path: str) -> np.ndarray:
    return read_image(path)


def load_background(ref: BackgroundRef, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 (height, width, 3) background: scaled to cover the canvas, randomly cropped and flipped."""
    if ref.kind == "embedded":
        from himbench.synthesis.embedded_backgrounds import embedded_background

        base = embedded_background(ref.path, (height, width))
    else:
        base = _decoded_background(ref.path)
    h, w = base.shape[:2]
    scale = max(height / h, width / w) * rng.uniform(1.0, 1.3)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(base, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0 = int(rng.integers(0, new_h - height + 1))
    x0 = int(rng.integers(0, new_w - width + 1))
    out = resized[y0 : y0 + height, x0 : x0 + width]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)
