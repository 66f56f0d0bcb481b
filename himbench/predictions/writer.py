"""Writing one image's predictions into a prediction folder (SPEC s.4), as ``himbench predict`` does.

Layout written under the folder ``OUT``::

    OUT/<split>/<stem>/00.png, 01.png, ...     8-bit PNG mattes, one per predicted instance
    OUT/<split>/<stem>/scores.json             {"00": 0.93, "01": 0.71, ...}: each matte's confidence
    OUT/<stem>.png                             only for a single-matte benchmark: the instances merged (clipped sum)

:mod:`himbench.predictions.reader` reads exactly this; :mod:`himbench.predictions.manifest` writes the folder's
``predictions.json``.

Writing again into a folder replaces an image's earlier mattes: the ``<k>.png`` an earlier run listed in its
``scores.json`` are deleted first (a run that finds fewer people must not leave the extra mattes of the earlier one
behind). Nothing else in the folder is touched: a user's own files, or a ``scores.json`` that is not ours, stay.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from himbench.io import InputError, read_json, resolve_inside, write_alpha_png
from himbench.io.atomic import atomic_write_text
from himbench.predictions.reader import MAX_SCORES_BYTES, SCORES_FILE, merge_instances

__all__ = ["write_prediction"]


def _earlier_mattes(folder: Path) -> list[Path]:
    """The mattes an earlier run wrote here: the ``<k>.png`` its ``scores.json`` lists. Anything else in the folder (a
    user's own files, or a ``scores.json`` that is not ours) is left alone: only what was written here is deleted."""
    scores_path = folder / SCORES_FILE
    try:
        scores = read_json(scores_path, max_bytes=MAX_SCORES_BYTES) if scores_path.is_file() else {}
    except InputError:
        return []
    if not isinstance(scores, dict):
        return []
    names = [f"{key}.png" for key in scores if isinstance(key, str) and key.isdigit() and len(key) <= 4]
    return [folder / name for name in names if (folder / name).is_file() and not (folder / name).is_symlink()]


def write_prediction(
    out: str | os.PathLike,
    split: str,
    stem: str,
    alphas: Sequence[np.ndarray] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    single_matte_shape: tuple[int, int] | None = None,
) -> Path:
    """Write one image's instance mattes ``alphas`` (each HxW in [0, 1]) and their ``scores`` to
    ``out/<split>/<stem>/``, replacing the mattes an earlier run wrote there; returns that folder.

    ``single_matte_shape``: (H, W) of an image of a single-matte benchmark; then ``out/<stem>.png``, the instances
    merged into one matte, is written too. Raises :class:`InputError` (before anything is written) when ``split`` or
    ``stem`` is not a plain name or a path resolves outside ``out``: sample ids from shards are names, never paths."""
    folder = resolve_inside(out, split, stem)
    merged_path = resolve_inside(out, f"{stem}.png") if single_matte_shape is not None else None
    folder.mkdir(parents=True, exist_ok=True)
    for stale in _earlier_mattes(folder):  # a re-run must not leave mattes of an earlier run behind
        stale.unlink()
    for k, alpha in enumerate(alphas):
        write_alpha_png(folder / f"{k:02d}.png", alpha)
    scores_map = {f"{k:02d}": float(s) for k, s in enumerate(np.asarray(scores, dtype=np.float64))}
    atomic_write_text(folder / SCORES_FILE, json.dumps(scores_map, indent=1) + "\n")
    if merged_path is not None:
        merged = merge_instances(np.asarray(alphas, dtype=np.float32).reshape(-1, *single_matte_shape),
                                 single_matte_shape)
        write_alpha_png(merged_path, merged)
    return folder
