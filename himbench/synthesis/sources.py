"""Where foreground cut-outs and backgrounds come from.

Foreground source specs (``BuildConfig.fg_sources``):

* ``"embedded"``: the procedural human figures of :mod:`himbench.synthesis.procedural` (offline, no download).
* a folder with ``fg/`` + ``alpha/`` paired by file stem (Adobe Composition-1k, Distinctions-646, AM-2K style): the
  foreground colours are given.
* a folder with ``original/`` + ``alpha/`` (P3M style), or any photo + matte layout of :mod:`himbench.layouts`
  (P3M-500-NP's ``original_image/`` + ``mask/``, AIM-500, PPM-100): photo + alpha; foreground colours are estimated with
  pymatting's ``estimate_foreground_ml`` so no halo of the old background leaks into composites. The estimate is
  made at the resolution the build can draw the person at (its ``cap``) and kept in the on-disk, content-addressed
  cache of :mod:`himbench.synthesis.fgcache`, shared by all workers and builds.
* a folder of RGBA PNG cut-outs (colour + alpha channel in one file; PNG, WebP or TIFF: a JPEG or BMP there is
  reported and skipped).

Two files with one stem in a foreground folder (``fg/a.jpg`` + ``fg/a.png``, ``alpha/a.jpg`` + ``alpha/a.png``, or two
cut-outs) are a listing problem naming both, and neither is used: which one was meant cannot be told.

Background source specs (``BuildConfig.bg_sources``): ``"embedded"`` (scikit-image photos without people and
procedural textures) or any folder of photos (COCO / BG-20K style, searched recursively).

Scanning only lists files (cheap, in the main process); decoding happens lazily in the workers and a bad file raises
:class:`~himbench.io.InputError`, which the builder reports and skips. Every cut-out is cropped to its alpha's box
first and then scaled down (never up) to the largest size the build can draw it at, once per process.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from himbench.io import (
    ALPHA_CHANNEL_SUFFIXES,
    IMAGE_SUFFIXES,
    InputError,
    decode_alpha,
    decode_image,
    decode_raw,
    read_alpha,
    read_file_bytes,
    read_image,
)
from himbench.io.atomic import atomic_write_bytes
from himbench.layouts import find_layout
from himbench.synthesis import fgcache

__all__ = [
    "BackgroundRef",
    "Cutout",
    "ForegroundRef",
    "MIN_CUTOUT_SIDE",
    "fg_cache_entry",
    "load_background",
    "load_foreground",
    "scan_backgrounds",
    "scan_foregrounds",
]

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
    # Folder of the estimated-foreground cache for "image_alpha" refs ("" = none). Set by the build, not by
    # scanning; it never changes what is made, only whether the estimate is computed or read back.
    fg_cache: str = ""


@dataclass(frozen=True)
class BackgroundRef:
    label: str
    kind: str  # "embedded" | "file"
    path: str = ""


class Cutout:
    """A prepared foreground: colours and alpha cropped tightly to alpha > 0, packed in one read-only array.

    ``rgba16`` is (h, w, 4) uint16: the RGB colours x 257 (exact) and the alpha x 65535 (rounded, 1.5e-5 steps). One
    4-channel 16-bit array is what OpenCV's area resampling is fastest on (about half the time of resizing uint8 RGB
    and a float alpha separately), and it costs 8 bytes per pixel, as colour + float alpha would. Cut-outs are shared
    through the per-process cache, so every use makes new arrays."""

    def __init__(self, fg: np.ndarray, alpha: np.ndarray, cut_at_bottom: bool = False) -> None:
        from himbench.synthesis.compose import pack_rgba16

        if np.shape(fg) != (*np.shape(alpha), 3):
            raise ValueError(f"cut-out colours {np.shape(fg)} do not match its alpha {np.shape(alpha)}")
        packed = pack_rgba16(fg, alpha)
        packed.setflags(write=False)
        self.rgba16 = packed
        # The person is cut by the bottom edge of its source photo (a portrait): it must be placed with that edge at
        # or below the bottom of the canvas, or a straight horizontal cut would float in the image.
        self.cut_at_bottom = bool(cut_at_bottom)
        self._small: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgba16.shape[:2]

    @property
    def fg(self) -> np.ndarray:
        """uint8 (h, w, 3) colours, defined wherever alpha > 0."""
        return (self.rgba16[:, :, :3] // 257).astype(np.uint8)

    @property
    def alpha(self) -> np.ndarray:
        """float32 (h, w) in [0, 1]."""
        return self.rgba16[:, :, 3].astype(np.float32) / np.float32(65535.0)

    @functools.cached_property
    def mean_colour(self) -> tuple[float, float, float]:
        """Mean RGB over the whole cut-out (the centre of the colour jitter's contrast change)."""
        return tuple(float(v) / 257.0 for v in cv2.mean(self.rgba16)[:3])

    def small_alpha(self, step: int) -> np.ndarray:
        """The alpha scaled by 1/``step`` (area average), for placement decisions at low resolution."""
        small = self._small.get(step)
        if small is None:
            h, w = self.shape
            size = (max(1, -(-w // step)), max(1, -(-h // step)))
            small = cv2.resize(self.alpha, size, interpolation=cv2.INTER_AREA) if step > 1 else self.alpha
            small.setflags(write=False)
            self._small[step] = small
        return small


def _source_label(folder: Path) -> str:
    # Two trailing parts ("demo/imgs", "P3M-500-NP/train") name a set without leaking a machine's absolute path.
    return "/".join(folder.resolve().parts[-2:])


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _by_stem(files: list[Path], what: str) -> tuple[dict[str, Path], dict[str, list[Path]], list[str]]:
    """Files keyed by stem, the stems held by more than one file (``a.jpg`` + ``a.png``), and one problem naming
    all the files of each such stem: which one was meant cannot be told, and the label a cut-out gets in the shards
    (``<set>:<stem>``) must name one file, so none of them is used."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    unique = {stem: paths[0] for stem, paths in groups.items() if len(paths) == 1}
    clashes = {stem: paths for stem, paths in groups.items() if len(paths) > 1}
    problems = [
        f"{' and '.join(str(p) for p in paths)}: {len(paths)} {what} files share the stem {stem!r}; rename all but "
        "one (none of them is used)"
        for stem, paths in clashes.items()
    ]
    return unique, clashes, problems


def _paired(colour_dir: Path, alpha_dir: Path, kind: str, label: str) -> tuple[list[ForegroundRef], list[str]]:
    images, image_clashes, problems = _by_stem(_images_in(colour_dir), "image")
    alphas, alpha_clashes, alpha_problems = _by_stem(_images_in(alpha_dir), "alpha")
    problems += alpha_problems
    refs = []
    for stem, image in images.items():
        alpha = alphas.pop(stem, None)
        if alpha is None:
            if stem not in alpha_clashes:  # already reported, naming the alphas
                problems.append(f"{image}: no alpha with the same name in {alpha_dir}")
            continue
        refs.append(ForegroundRef(f"{label}:{stem}", kind, (str(image), str(alpha))))
    problems += [
        f"{path}: alpha has no image with the same name in {colour_dir}"
        for stem, path in alphas.items()
        if stem not in image_clashes
    ]
    return refs, problems


def _rgba_cutouts(folder: Path, label: str) -> tuple[list[ForegroundRef], list[str]]:
    """RGBA cut-outs of a folder without fg/ or alpha/; a JPEG or BMP there is reported (it has no alpha channel to
    cut out with) instead of being passed over in silence."""
    files = _images_in(folder)
    cutouts = [p for p in files if p.suffix.lower() in ALPHA_CHANNEL_SUFFIXES]
    problems = [
        f"{p}: a {p.suffix.lower()[1:].upper()} file has no alpha channel; RGBA cut-outs must be PNG, WebP or TIFF "
        "(skipped)"
        for p in files
        if p.suffix.lower() not in ALPHA_CHANNEL_SUFFIXES
    ]
    unique, _, clash_problems = _by_stem(cutouts, "cut-out")
    refs = [ForegroundRef(f"{label}:{stem}", "rgba", (str(path),)) for stem, path in unique.items()]
    return refs, problems + clash_problems


def scan_foregrounds(specs: tuple[str, ...] | list[str],
                     labels: dict[str, str] | None = None) -> tuple[list[ForegroundRef], list[str]]:
    """List foreground cut-outs of every spec, in a deterministic order, plus problems found while listing.
    ``labels``: the label of a spec's folder where it is not its own two last parts (a URL's local copy)."""
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
        label = (labels or {}).get(spec) or _source_label(folder)
        layout = find_layout(folder, "foreground")  # fg/+alpha/, or a photo+matte layout (himbench.layouts)
        if layout is not None:
            kind = "fg_alpha" if layout.name == "fg-alpha" else "image_alpha"
            found, bad = _paired(folder / layout.image_dir, layout.alpha_dir(folder), kind, label)
        else:
            found, bad = _rgba_cutouts(folder, label)
        if not found:
            raise InputError(
                folder,
                "no foregrounds found: expected fg/+alpha/, original/+alpha/, a photo+matte benchmark layout "
                "(paired by name) or RGBA PNG cut-outs",
            )
        refs += found
        problems += bad
    return refs, problems


def scan_backgrounds(specs: tuple[str, ...] | list[str], labels: dict[str, str] | None = None) -> list[BackgroundRef]:
    """List backgrounds of every spec in a deterministic order (``labels`` as :func:`scan_foregrounds`).

    Backgrounds are named by their path relative to the folder, suffix included, so ``a.jpg`` and ``a.png`` are two
    backgrounds with two labels (both used): unlike a cut-out and its alpha, nothing is paired by stem."""
    refs: list[BackgroundRef] = []
    for spec in specs:
        if spec == "embedded":
            from himbench.synthesis.embedded_backgrounds import embedded_backgrounds

            refs += [BackgroundRef(f"embedded:{name}", "embedded", name) for name in embedded_backgrounds()]
            continue
        folder = Path(spec)
        if not folder.is_dir():
            raise InputError(spec, "background source is neither 'embedded' nor an existing folder")
        label = (labels or {}).get(spec) or _source_label(folder)
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


def _limit_size(fg: np.ndarray, alpha: np.ndarray, cap: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scale a cropped cut-out down (never up, aspect kept) so it fits ``cap`` = (max height, max width)."""
    h, w = alpha.shape
    scale = min(cap[0] / h, cap[1] / w)
    if scale >= 1:
        return fg, alpha
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(fg, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def _estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(image.astype(np.float64) / 255.0, alpha.astype(np.float64), **fgcache.ESTIMATE_PARAMS)
    return np.clip(np.rint(fg * 255.0), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _procedural_version() -> str:
    # The cache key includes the generator's source (every module of the package), so editing it never serves
    # stale people.
    from himbench.synthesis import procedural

    digest = hashlib.sha256()
    for path in sorted(Path(procedural.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _cached_procedural_person(index: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural person, from the on-disk cache when another worker or run already made it (exact arrays)."""
    from himbench.synthesis.procedural import procedural_person

    path = fgcache.cache_root() / "procedural" / _procedural_version() / f"{index:05d}_{height}.npz"
    try:
        with np.load(path, allow_pickle=False) as cached:
            fg, alpha = cached["fg"], cached["alpha"]
        if fg.dtype == np.uint8 and alpha.dtype == np.float32 and fg.shape == (*alpha.shape, 3):
            return fg, alpha
    except Exception:  # absent or damaged (truncated, bad CRC-32, not a zip): make it again
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


def _checked_pair(image: np.ndarray, alpha: np.ndarray, colour_path: str, alpha_path: str) -> None:
    if alpha.shape != image.shape[:2]:
        raise InputError(
            alpha_path,
            f"alpha size {alpha.shape[1]}x{alpha.shape[0]} does not match image {colour_path} "
            f"({image.shape[1]}x{image.shape[0]})",
        )


def fg_cache_entry(ref: ForegroundRef, cap: tuple[int, int]) -> Path | None:
    """Where the estimate of an ``image_alpha`` ref prepared within ``cap`` is cached (reads and hashes both files);
    None when the ref has no cache. Raises InputError for an unreadable file."""
    if ref.kind != "image_alpha" or not ref.fg_cache:
        return None
    colour_path, alpha_path = ref.paths
    key = fgcache.entry_key(read_file_bytes(colour_path), read_file_bytes(alpha_path), cap)
    return fgcache.entry_path(ref.fg_cache, key)


def _estimated_cutout(ref: ForegroundRef, cap: tuple[int, int]) -> Cutout:
    """Photo + alpha -> cut-out with estimated colours, from the on-disk cache when it holds a valid entry."""
    colour_path, alpha_path = ref.paths
    image_bytes, alpha_bytes = read_file_bytes(colour_path), read_file_bytes(alpha_path)
    path = None
    if ref.fg_cache:
        path = fgcache.entry_path(ref.fg_cache, fgcache.entry_key(image_bytes, alpha_bytes, cap))
        cached = fgcache.read_entry(path, cap)
        if cached is not None:
            return Cutout(*cached)
    image = decode_image(image_bytes, colour_path)
    alpha = decode_alpha(alpha_bytes, alpha_path)
    _checked_pair(image, alpha, colour_path, alpha_path)
    cut = _cut_at_bottom(alpha)
    image, alpha = _crop_to_alpha(image, alpha, alpha_path)
    image, alpha = _limit_size(image, alpha, cap)
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
    fg = _estimate_foreground(image, alpha)
    if path is not None:
        fgcache.write_entry(path, fg, alpha, cut)
    return Cutout(fg, alpha, cut)


def prepare_estimates(refs: list[ForegroundRef], cap: tuple[int, int]) -> list[str]:
    """Compute (and cache) the estimates of ``refs``; returns the problems met (the build reports them when the
    shards draw those refs, so here they are only counted)."""
    problems = []
    for ref in refs:
        try:
            _estimated_cutout(ref, cap)
        except InputError as err:
            problems.append(str(err))
    return problems


@functools.lru_cache(maxsize=64)
def load_foreground(ref: ForegroundRef, cap: tuple[int, int], embedded_height: int) -> Cutout:
    """Decode and prepare one cut-out (cached per process): cropped to its alpha's box, then scaled down to fit
    ``cap`` = (max height, max width), the largest size the build draws a person at. Raises InputError naming the
    bad file."""
    if ref.kind == "embedded":
        fg, alpha = _cached_procedural_person(ref.index, embedded_height)
        cut = _cut_at_bottom(alpha)
        fg, alpha = _crop_to_alpha(np.asarray(fg, np.uint8), alpha, ref.label)
        return Cutout(*_limit_size(fg, alpha, cap), cut)
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
        return Cutout(*_limit_size(fg, alpha, cap), cut)
    if ref.kind == "image_alpha":
        return _estimated_cutout(ref, cap)
    colour_path, alpha_path = ref.paths
    image = read_image(colour_path)
    alpha = read_alpha(alpha_path)
    _checked_pair(image, alpha, colour_path, alpha_path)
    cut = _cut_at_bottom(alpha)
    image, alpha = _crop_to_alpha(image, alpha, alpha_path)
    image, alpha = _limit_size(image, alpha, cap)
    return Cutout(image, np.clip(alpha, 0.0, 1.0).astype(np.float32), cut)


@functools.lru_cache(maxsize=16)
def _decoded_background(path: str) -> np.ndarray:
    return read_image(path)


@functools.lru_cache(maxsize=32)
def _embedded_background(name: str, height: int, width: int) -> np.ndarray:
    from himbench.synthesis.embedded_backgrounds import embedded_background

    return embedded_background(name, (height, width))


def load_background(ref: BackgroundRef, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 (height, width, 3) background: scaled to cover the canvas, randomly cropped and flipped."""
    base = _embedded_background(ref.path, height, width) if ref.kind == "embedded" else _decoded_background(ref.path)
    h, w = base.shape[:2]
    scale = max(height / h, width / w) * rng.uniform(1.0, 1.3)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_h, new_w) != (h, w):
        base = cv2.resize(base, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0 = int(rng.integers(0, new_h - height + 1))
    x0 = int(rng.integers(0, new_w - width + 1))
    out = base[y0 : y0 + height, x0 : x0 + width]
    if rng.random() < 0.5:
        return cv2.flip(out, 1)  # a new contiguous array, 10x faster than copying out[:, ::-1]
    return out.copy()  # never a view of the per-process cache
