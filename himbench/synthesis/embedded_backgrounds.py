"""Embedded default backgrounds: scikit-image's bundled photographs without people, and procedural textures.

Nothing here touches the network: the photographs are read straight from the files that ship inside the installed
scikit-image package (no pooch fetch), and the textures are computed from a seed derived from their name. Each
background is made once per process at a fixed resolution and cached; a request for a size only resizes and
centre-crops that base to cover it, which takes a few milliseconds at 1024 x 1024.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import zlib
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

__all__ = ["embedded_background", "embedded_backgrounds"]

# scikit-image's bundled photos that show no person (astronaut, camera and the lfw faces are left out on purpose).
_PHOTOS = {
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "gravel": "gravel.png",
    "brick": "brick.png",
    "grass": "grass.png",
    "moon": "moon.png",
    "motorcycle": "motorcycle_left.png",
    "retina": "retina.jpg",
}

_TEXTURES = (
    "gradient_warm",
    "gradient_cool",
    "clouds_sky",
    "clouds_earth",
    "bokeh_night",
    "bokeh_day",
    "foliage",
    "wood",
    "brick_wall",
    "tiles",
)

_BASE = 1024  # side of the square procedural textures


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")  # locate the package without importing it (or pooch)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=1)
def _available_photos() -> dict[str, Path]:
    data = _skimage_data_dir()
    if data is None:
        return {}
    return {name: data / file for name, file in _PHOTOS.items() if (data / file).is_file()}


def embedded_backgrounds() -> list[str]:
    """Names of the embedded backgrounds: the bundled photos present in this install, then the procedural textures."""
    return [*_available_photos(), *_TEXTURES]


def _seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _noise(rng: np.random.Generator, size: int, cell: float, octaves: int, persistence: float = 0.5) -> np.ndarray:
    """Multi-octave value noise ('clouds') in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        n = max(int(size / cell) + 3, 3)
        grid = rng.random((n, n)).astype(np.float32)
        up = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        out += amp * up
        total += amp
        amp *= persistence
        cell = max(cell / 2.0, 1.0)
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _ramp(t: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """Map t in [0, 1] through a piecewise-linear colour ramp; float RGB."""
    stops = np.linspace(0.0, 1.0, len(colours))
    cols = np.asarray(colours, np.float32)
    return np.stack([np.interp(t, stops, cols[:, c]).astype(np.float32) for c in range(3)], -1)


def _gradient(rng: np.random.Generator, warm: bool) -> np.ndarray:
    s = _BASE
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) / s
    ang = rng.uniform(0, 2 * math.pi)
    t = np.clip((xs - 0.5) * math.cos(ang) + (ys - 0.5) * math.sin(ang) + 0.5, 0, 1)
    if warm:
        colours = [(250, 214, 165), (232, 140, 90), (150, 60, 70)]
    else:
        colours = [(210, 235, 245), (110, 160, 210), (40, 60, 110)]
    img = _ramp(t, colours)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    vignette = 1.0 - 0.35 * np.clip(np.hypot(xs - cx, ys - cy) / 0.8, 0, 1) ** 2
    img *= vignette[..., None]
    img += (rng.random((s, s, 1)).astype(np.float32) - 0.5) * 4.0  # dither against banding
    return img


def _clouds(rng: np.random.Generator, sky: bool) -> np.ndarray:
    n = _noise(rng, _BASE, 256, 6)
    if sky:
        return _ramp(n, [(70, 120, 190), (120, 170, 225), (215, 228, 240), (250, 250, 250)])
    return _ramp(n, [(60, 48, 30), (110, 95, 60), (90, 120, 60), (170, 160, 120), (210, 200, 170)])


def _bokeh(rng: np.random.Generator, night: bool) -> np.ndarray:
    s = _BASE
    base_noise = _noise(rng, s, 384, 3)
    if night:
        img = _ramp(base_noise, [(10, 12, 30), (30, 25, 50), (60, 40, 40)])
        palette = [(255, 200, 120), (255, 150, 80), (180, 210, 255), (255, 240, 200), (255, 110, 140)]
    else:
        img = _ramp(base_noise, [(120, 140, 100), (190, 200, 170), (235, 235, 220)])
        palette = [(255, 255, 240), (230, 245, 200), (255, 235, 190), (210, 230, 255)]
    for blur in (9, 3):  # a far, blurrier set of discs, then a nearer one
        lights = np.zeros((s, s, 3), np.float32)
        for _ in range(int(rng.integers(40, 90))):
            c = (int(rng.integers(0, s)) * 8, int(rng.integers(0, s)) * 8)
            r = int(rng.uniform(12, 70) * 8)
            col = np.asarray(palette[int(rng.integers(len(palette)))], np.float32) * rng.uniform(0.25, 0.6)
            disc = np.zeros((s, s), np.uint8)
            cv2.circle(disc, c, r, 255, -1, cv2.LINE_AA, 3)
            lights += disc[..., None].astype(np.float32) / 255.0 * col
        img += cv2.GaussianBlur(lights, (0, 0), blur)
    return img


def _foliage(rng: np.random.Generator) -> np.ndarray:
    s = _BASE
    img = _ramp(_noise(rng, s, 200, 4), [(20, 40, 15), (50, 85, 35), (90, 130, 55)])
    for blur, count in ((6.0, 500), (1.5, 700)):
        layer = np.zeros((s, s, 3), np.uint8)
        for _ in range(count):
            c = (int(rng.integers(0, s)), int(rng.integers(0, s)))
            axes = (int(rng.uniform(8, 28)), int(rng.uniform(3, 10)))
            g = rng.uniform(0.5, 1.2)
            col = (int(40 * g), int(min(110 * g + rng.uniform(0, 50), 255)), int(30 * g))
            cv2.ellipse(layer, c, axes, float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
        leaf = cv2.GaussianBlur(layer.astype(np.float32), (0, 0), blur)
        cover = np.clip(leaf.sum(-1, keepdims=True) / 60.0, 0, 1)
        img = img * (1 - cover) + leaf / np.maximum(cover, 1e-3) * cover
    return img


def _wood(rng: np.random.Generator) -> np.ndarray:
    """Vertical planks with wavy grain lines running along them."""
    s = _BASE
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    plank = s / int(rng.integers(4, 7))
    idx = np.floor(xs / plank)
    local = xs - idx * plank
    warp = _noise(rng, s, 400, 3) * 90.0 + idx * 37.0  # each plank's grain starts elsewhere
    period = float(rng.uniform(28, 48))
    grain = (0.5 + 0.5 * np.sin(2 * math.pi * (local + warp) / period)) ** 2
    # long thin streaks along the planks: random across x, smooth along y
    streaks = cv2.resize(rng.random((s // 32, s)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    streaks = cv2.GaussianBlur(streaks, (0, 0), 1.5)
    t = np.clip(grain * 0.5 + streaks * 0.35 + (idx % 3) * 0.07, 0, 1)
    img = _ramp(t, [(95, 55, 30), (150, 95, 55), (200, 145, 90)])
    seam = np.abs(local - plank / 2) > plank / 2 - 2.0
    img[seam] *= 0.45
    return img


def _bricks(rng: np.random.Generator, tiles: bool) -> np.ndarray:
    s = _BASE
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    if tiles:
        bw = bh = s / int(rng.integers(6, 11))
        shift = np.zeros_like(ys)
        mortar_col, colours = (215, 212, 205), [(235, 232, 225), (190, 205, 215), (120, 150, 170)]
    else:
        bw, bh = s / 8.0, s / 22.0
        shift = (np.floor(ys / bh) % 2) * bw / 2
        mortar_col, colours = (175, 170, 160), [(150, 60, 40), (175, 85, 55), (120, 50, 38)]
    gx = (xs + shift) / bw
    gy = ys / bh
    brick_id = (np.floor(gx) * 7919 + np.floor(gy) * 104729).astype(np.int64) % 997
    jitter = np.random.default_rng(int(rng.integers(2**31))).random(997).astype(np.float32)
    t = jitter[brick_id]
    img = _ramp(t, colours)
    img *= (0.85 + 0.3 * _noise(rng, s, 6, 3))[..., None]
    mortar = (np.minimum(gx % 1.0, 1 - gx % 1.0) * bw < 3.0) | (np.minimum(gy % 1.0, 1 - gy % 1.0) * bh < 3.0)
    img[mortar] = mortar_col
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def _make_texture(name: str) -> np.ndarray:
    rng = np.random.default_rng(_seed(name))
    if name.startswith("gradient"):
        img = _gradient(rng, warm=name.endswith("warm"))
    elif name.startswith("clouds"):
        img = _clouds(rng, sky=name.endswith("sky"))
    elif name.startswith("bokeh"):
        img = _bokeh(rng, night=name.endswith("night"))
    elif name == "foliage":
        img = _foliage(rng)
    elif name == "wood":
        img = _wood(rng)
    else:
        img = _bricks(rng, tiles=name == "tiles")
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _texture_version() -> str:
    # The on-disk cache key includes this file's source, so editing a generator never serves stale textures.
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _cached_texture(name: str) -> np.ndarray:
    """A procedural texture, from the per-user cache when another process or run already made it (exact array):
    making the ten textures takes seconds, which every new worker process would otherwise spend."""
    import io

    from himbench.io.atomic import atomic_write_bytes
    from himbench.synthesis.fgcache import cache_root

    path = cache_root() / "backgrounds" / _texture_version() / f"{name}.npy"
    try:
        img = np.load(path, allow_pickle=False)
        if img.dtype == np.uint8 and img.shape == (_BASE, _BASE, 3):
            return img
    except Exception:  # absent or damaged: make it again
        pass
    img = _make_texture(name)
    buffer = io.BytesIO()
    np.save(buffer, img, allow_pickle=False)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:  # a read-only home is no reason to fail a build
        pass
    return img


@cache
def _base(name: str) -> np.ndarray:
    photos = _available_photos()
    if name in photos:
        # Stored orientation, like every other reader (himbench.io.images): EXIF rotation is not applied.
        bgr = cv2.imread(str(photos[name]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            raise OSError(f"{photos[name]}: scikit-image's bundled photo could not be decoded")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    elif name in _TEXTURES:
        img = _cached_texture(name)
    else:
        raise KeyError(f"unknown embedded background {name!r}; known: {', '.join(embedded_backgrounds())}")
    img.setflags(write=False)  # shared by every caller through the cache
    return img


def embedded_background(name: str, size: tuple[int, int]) -> np.ndarray:
    """The embedded background `name` as RGB uint8 of shape (h, w, 3) for size = (h, w).

    The base picture is scaled to cover the size (aspect ratio kept) and centre-cropped. Deterministic from the name.
    """
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"background size must be positive, got {size}")
    base = _base(name)
    bh, bw = base.shape[:2]
    scale = max(h / bh, w / bw)
    nh, nw = max(h, int(math.ceil(bh * scale - 1e-9))), max(w, int(math.ceil(bw * scale - 1e-9)))
    if (nh, nw) == (bh, bw):
        resized = base
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(base, (nw, nh), interpolation=interp)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w]).copy()
