"""A ``build-dataset --video`` folder written out in MaGGIe's V-HIM layout, one clip in memory at a time.

:func:`export_video_build` reads the clips of one split (:func:`himbench.video_shards.read_video_split`) and writes
each with :func:`himbench.video_layout.export_vhim` into a private staging folder inside ``out_dir``; the split is
renamed into place at the end, so a reader never sees half a split and a failed export leaves nothing behind (only
the staging folder this call made is ever deleted). Frame and instance names are export_vhim's (``{t:05d}.jpg``,
``{k:02d}.png``); video names are the clip ids.

``masks="gt"`` also writes **oracle guidance**: each person's ground-truth matte binarised at alpha > 0.5, in the
guidance-mask position ``<split>/xmem/<video>/<frame>/<k>.png`` that MaGGIe's loader reads for XMem masks. These
are exact masks, not a tracker's output: a method scored with them is given the ground truth's shapes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from himbench.io import InputError, require_empty_folder, safe_name
from himbench.shards import ShardFolder
from himbench.video_layout import ClipData, export_vhim
from himbench.video_shards import read_video_split

__all__ = ["GT_MASK_DIR", "MASK_SOURCES", "export_video_build", "oracle_masks"]

GT_MASK_DIR = "xmem"  # where MaGGIe's V-HIM60 ships its guidance masks
MASK_SOURCES: tuple[str, ...] = ("none", "gt")
ORACLE_THRESHOLD = 0.5


def oracle_masks(alphas: np.ndarray) -> np.ndarray:
    """Binary guidance masks (uint8 0/255) from ground-truth mattes (N, T, H, W): alpha > 0.5."""
    return np.where(np.asarray(alphas) > ORACLE_THRESHOLD, np.uint8(255), np.uint8(0))


def export_video_build(
    build_dir: str | os.PathLike, out_dir: str | os.PathLike, split: str, *, masks: str = "none",
    jpeg_quality: int = 95,
) -> dict[str, int]:
    """Write split ``split`` of the video build ``build_dir`` as ``out_dir/<split>/`` (V-HIM layout); returns counts
    (clips, frames, mattes, masks). ``out_dir/<split>`` must be absent or empty. Raises :class:`InputError` for a
    bad build, an unknown split or duplicate clip ids."""
    if masks not in MASK_SOURCES:
        raise ValueError(f"masks must be one of {MASK_SOURCES}, got {masks!r}")
    out_dir = Path(out_dir)
    split = safe_name(split, out_dir / str(split), "split name")
    target = out_dir / split
    ShardFolder(build_dir).shards(split, required=True)  # an unknown split is refused before anything is made
    require_empty_folder(target, "already exists and is not empty; export-vhim never writes over a split")
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_dir = GT_MASK_DIR if masks == "gt" else None
    staging = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".export", dir=out_dir))
    combined = staging / "split"
    totals = {"clips": 0, "frames": 0, "mattes": 0, "masks": 0}
    seen: set[str] = set()
    try:
        for index, sample in enumerate(read_video_split(build_dir, split)):
            if sample.id in seen:
                raise InputError(build_dir, f"split {split!r}: clip id {sample.id!r} appears twice")
            seen.add(sample.id)
            alphas = np.rint(sample.alphas * 255.0).astype(np.uint8)  # the stored 8-bit mattes, exactly
            clip = ClipData(sample.id, sample.frames, alphas, oracle_masks(alphas / 255.0) if mask_dir else None)
            part = staging / f"clip{index}"
            counts = export_vhim([clip], part, "s", mask_dir=mask_dir, jpeg_quality=jpeg_quality)
            for sub in sorted(os.listdir(part / "s")):
                (combined / sub).mkdir(parents=True, exist_ok=True)
                if (part / "s" / sub / sample.id).is_dir():
                    os.replace(part / "s" / sub / sample.id, combined / sub / sample.id)
            shutil.rmtree(part)  # this call's own temporary folder
            for key, value in counts.items():
                totals[key] += value
        if not seen:
            raise InputError(build_dir, f"no clip in split {split!r}")
        if target.is_dir():
            target.rmdir()  # checked empty above
        os.replace(combined, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging folder, nothing else
    return totals
