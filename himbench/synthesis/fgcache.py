"""On-disk, content-addressed cache of estimated foreground colours, shared by every worker and every build.

Photo + alpha sources (P3M's ``original/`` + ``alpha/``) need their foreground colours estimated (pymatting's
``estimate_foreground_ml``, about 0.1 s per 1080 px portrait) before they can be composited without a halo of the old
background. The estimate depends only on the two files' bytes, the resolution it is made at and the estimator's
parameters, so it is stored once under a key made of exactly those:

    key = SHA-256(format version, estimator name + version + parameters, prepared-size cap,
                  SHA-256(image bytes), SHA-256(alpha bytes))

An entry (``<dir>/<key[:2]>/<key>.npz``, uncompressed) holds the prepared cut-out: the estimated colours (uint8
HxWx3), the alpha (float32 HxW, cropped to its box and scaled to the cap) and whether the person is cut by the
photo's bottom edge. It is written atomically (temporary file + rename), so concurrent workers never see half an
entry and need no lock: two processes that miss the same key both compute it and the last rename wins, with equal
bytes. An entry is loaded with ``allow_pickle=False`` and checked before use (zip CRC-32 of every array, the keys,
dtypes, shapes, the cap, values finite and in [0, 1]); anything else is recomputed and rewritten, never trusted.

Where the cache lives is not part of a build's configuration: a warm or a cold cache, or none, gives byte-identical
shards, and the build's fingerprint does not depend on it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "CACHE_FORMAT",
    "ESTIMATE_PARAMS",
    "cache_root",
    "default_fg_cache_dir",
    "entry_key",
    "entry_path",
    "read_entry",
    "write_entry",
]

CACHE_FORMAT = 1
# pymatting.estimate_foreground_ml's parameters, passed explicitly (so a change of its defaults cannot reuse entries).
ESTIMATE_PARAMS = {
    "regularization": 1e-5,
    "n_small_iterations": 10,
    "n_big_iterations": 2,
    "small_size": 32,
    "gradient_weight": 1.0,
}
_KEYS = {"fg", "alpha", "cut_at_bottom"}


def cache_root() -> Path:
    """himbench's per-user cache: ``$HIMBENCH_CACHE`` when that variable is set, else ``~/.cache/himbench``."""
    root = os.environ.get("HIMBENCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "himbench"


def default_fg_cache_dir() -> Path:
    """``$HIMBENCH_CACHE/fg`` when that variable is set, else ``~/.cache/himbench/fg``."""
    return cache_root() / "fg"


@functools.cache
def _estimator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pymatting {version('pymatting')} estimate_foreground_ml"
    except PackageNotFoundError:  # pragma: no cover - pymatting is a dependency
        return "pymatting unknown estimate_foreground_ml"


def entry_key(image_bytes: bytes, alpha_bytes: bytes, cap: tuple[int, int]) -> str:
    """The content address of the estimate of (image, alpha) prepared within ``cap`` = (max height, max width)."""
    head = {"format": CACHE_FORMAT, "estimator": _estimator(), "params": ESTIMATE_PARAMS, "cap": [int(c) for c in cap]}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    digest.update(hashlib.sha256(image_bytes).digest())
    digest.update(hashlib.sha256(alpha_bytes).digest())
    return digest.hexdigest()


def entry_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def read_entry(path: str | os.PathLike, cap: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(fg, alpha, cut_at_bottom) of a valid entry, or None when it is absent, damaged or not what it should be."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if set(getattr(archive, "files", ())) != _KEYS:
                return None
            fg, alpha, cut = archive["fg"], archive["alpha"], archive["cut_at_bottom"]
    except Exception:  # absent, truncated, bad CRC-32, not a zip, pickled objects, ...: recompute
        return None
    if fg.dtype != np.uint8 or fg.ndim != 3 or fg.shape[2] != 3 or alpha.dtype != np.float32:
        return None
    if alpha.shape != fg.shape[:2] or min(alpha.shape) < 1 or cut.dtype != np.bool_ or cut.shape != ():
        return None
    if alpha.shape[0] > cap[0] or alpha.shape[1] > cap[1]:
        return None
    low, high = float(alpha.min()), float(alpha.max())  # NaN fails both comparisons below
    if not (0.0 <= low and high <= 1.0 and high > 0.0):
        return None
    return fg, alpha, bool(cut)


def write_entry(path: str | os.PathLike, fg: np.ndarray, alpha: np.ndarray, cut_at_bottom: bool) -> bool:
    """Write an entry atomically; False (and no exception) when the cache folder is not writable."""
    buffer = io.BytesIO()
    np.savez(buffer, fg=np.ascontiguousarray(fg), alpha=np.ascontiguousarray(alpha),
             cut_at_bottom=np.bool_(cut_at_bottom))
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:  # a read-only or full cache is no reason to fail a build
        return False
    return True
