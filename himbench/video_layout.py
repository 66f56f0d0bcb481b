"""MaGGIe's released V-HIM layout (V-HIM2K5 training, V-HIM60 test), read and written.

The layout is the one MaGGIe's video loader reads (``maggie/dataloader/vim.py``, class ``VIMDataset``) and its
synthesis script writes (``tools/synthesize_video_him.py``), both in github.com/hmchuong/MaGGIe; see
``docs/video_layout.md``::

    <root>/<split>/fgr/<video>/<frame>.jpg                  the composited frames
    <root>/<split>/pha/<video>/<frame>/<instance>.png       one 8-bit matte per person per frame
    <root>/<split>/<mask_dir>/<video>/<frame>/<instance>.png  optional guidance masks (e.g. ``xmem``), the same names

* The V-HIM60 test splits are ``comp_easy``, ``comp_medium`` and ``comp_hard`` (MaGGIe's README runs
  ``dataset.test.split comp_$SUBSET``; its configs name ``comp_medium``). The training set is one split, ``train``
  in the script.
* Videos are the sub-folders of ``pha/`` (the loader lists ``alpha_dir_name``, not ``fgr/``); frames are the sorted
  ``.jpg`` names of ``fgr/<video>/``, and a frame's matte folder is its name without ``.jpg``.
* A frame's instances are its ``*.png`` files sorted by name (the loader's ``sorted(glob(...))``), so instance k is
  the k-th name. The script writes ``{frame:05d}.jpg`` and ``{instance:02d}.png``, so name order is number order and
  person k keeps index k in every frame. :func:`export_vhim` widens the numbers when a clip has more than 100 people
  or 100000 frames, so that name order stays number order.
* A mask folder holds the same file names as ``pha/`` (the loader swaps ``/pha/`` for ``/<mask_dir>/`` in each path).

Reading is guarded as everywhere in himbench: sizes are checked before any decode (:func:`himbench.io.read_file_bytes`,
:func:`himbench.io.decode_raw`), a file that resolves outside the split folder is refused, and a bad or missing file
is a counted :class:`~himbench.evaluation.ground_truth.Problem` naming it, its pixels left at 0, while the rest of the
clip still loads. Structural errors (no ``fgr/``/``pha/``, an unsafe name) raise :class:`himbench.io.InputError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import (
    InputError,
    Problem,
    atomic_write_bytes,
    check_header,
    decode_alpha,
    decode_image,
    encode_alpha_png,
    encode_jpeg,
    is_inside,
    probe_image,
    read_file_bytes,
    read_image_size,
    require_empty_folder,
    safe_name,
)

__all__ = [
    "ALPHA_DIR",
    "FRAME_DIR",
    "FRAME_SUFFIX",
    "MATTE_SUFFIX",
    "VHIM60_SPLITS",
    "ClipData",
    "VideoClip",
    "export_vhim",
    "is_vhim_split",
    "list_frames",
    "list_splits",
    "list_videos",
    "load_clip",
]

FRAME_DIR = "fgr"
ALPHA_DIR = "pha"
FRAME_SUFFIX = ".jpg"  # the loader derives the matte folder with frame_name.replace(".jpg", "")
MATTE_SUFFIX = ".png"
VHIM60_SPLITS: tuple[str, ...] = ("comp_easy", "comp_medium", "comp_hard")
_RESERVED = (FRAME_DIR, ALPHA_DIR)


# ------------------------------------------------------------------------------------------------------- listing
def is_vhim_split(path: str | os.PathLike) -> bool:
    """True when ``path`` holds both ``fgr/`` and ``pha/`` folders (one split of the layout)."""
    path = Path(path)
    return (path / FRAME_DIR).is_dir() and (path / ALPHA_DIR).is_dir()


def list_splits(root: str | os.PathLike) -> list[str]:
    """Sorted names of the splits under ``root`` (sub-folders that are V-HIM splits); raises :class:`InputError`
    when there is none, naming what was looked for."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    if is_vhim_split(root):
        raise InputError(root, f"is one split of a V-HIM folder (it holds {FRAME_DIR}/ and {ALPHA_DIR}/); "
                               "give the folder above it")
    splits = sorted(
        entry.name for entry in os.scandir(root)
        if entry.is_dir() and is_inside(root, entry.path) and is_vhim_split(entry.path)
    )
    if not splits:
        raise InputError(root, f"no V-HIM split found: expected <split>/{FRAME_DIR}/<video>/<frame>{FRAME_SUFFIX} "
                               f"and <split>/{ALPHA_DIR}/<video>/<frame>/<instance>{MATTE_SUFFIX}")
    return splits


def _split_dir(root: str | os.PathLike, split: str) -> Path:
    split_dir = Path(root) / safe_name(split, Path(root) / str(split), "split name")
    if not is_inside(root, split_dir):
        raise InputError(split_dir, "resolves outside the V-HIM folder")
    if not is_vhim_split(split_dir):
        raise InputError(split_dir, f"not a V-HIM split: it needs both {FRAME_DIR}/ and {ALPHA_DIR}/ folders")
    return split_dir


def list_videos(root: str | os.PathLike, split: str) -> tuple[list[str], list[Problem]]:
    """Sorted video names of ``split`` (the sub-folders of ``pha/``, as MaGGIe's loader lists them) and problems:
    a video folder that resolves outside the split, or a ``fgr/`` video without mattes."""
    split_dir = _split_dir(root, split)
    videos, problems = [], []
    for entry in sorted(os.scandir(split_dir / ALPHA_DIR), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        if not is_inside(split_dir, entry.path):
            problems.append(Problem(entry.path, "ground truth: video folder resolves outside the split; left out"))
            continue
        videos.append(entry.name)
    known = set(videos)
    for entry in sorted(os.scandir(split_dir / FRAME_DIR), key=lambda e: e.name):
        if entry.is_dir() and entry.name not in known and is_inside(split_dir, entry.path):
            problems.append(Problem(entry.path, f"ground truth: video has frames but no {ALPHA_DIR}/ folder; "
                                                "left out"))
    return videos, problems


def list_frames(root: str | os.PathLike, split: str, video: str) -> list[str]:
    """Sorted frame names (without ``.jpg``) of one video, from ``fgr/<video>/``; raises :class:`InputError` when
    the video has no frame folder or no frame."""
    split_dir = _split_dir(root, split)
    folder = split_dir / FRAME_DIR / safe_name(video, split_dir / FRAME_DIR / str(video), "video name")
    if not folder.is_dir():
        raise InputError(folder, "video has no frame folder")
    names = sorted(name for name, _ in _frame_entries(folder) if name is not None)
    if not names:
        raise InputError(folder, f"video has no {FRAME_SUFFIX} frame")
    return names


def _frame_entries(folder: Path) -> list[tuple[str | None, str]]:
    """(frame name or None, file path) of every ``.jpg`` of a video's frame folder: None for a name that is not a
    plain file name once ``.jpg`` is cut (``..jpg`` would make the frame's matte folder ``pha/<video>/.``), which
    must never be joined into a path."""
    entries = []
    for entry in os.scandir(folder):
        if not entry.name.endswith(FRAME_SUFFIX) or len(entry.name) <= len(FRAME_SUFFIX):
            continue
        try:
            entries.append((safe_name(entry.name[: -len(FRAME_SUFFIX)], entry.path, "frame name"), entry.path))
        except InputError:
            entries.append((None, entry.path))
    return entries


# ------------------------------------------------------------------------------------------------------- loading
@dataclass
class VideoClip:
    """One video of a split, loaded. ``alphas`` (N, T, H, W) float32; ``present`` (N, T) says which matte files were
    read (a missing or bad one is 0 and False); ``frames`` (T, H, W, 3) uint8 or None when not loaded; ``masks``
    (N, T, H, W) float32 or None when no mask folder was asked for."""

    split: str
    video: str
    frame_names: tuple[str, ...]
    instance_names: tuple[str, ...]
    alphas: np.ndarray
    present: np.ndarray
    frames: np.ndarray | None = None
    masks: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.alphas.shape[2]), int(self.alphas.shape[3])


def _matte_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.name.lower().endswith(MATTE_SUFFIX) and len(entry.name) > len(MATTE_SUFFIX))


def _read_matte(
    path: Path, inside: Path, shape: tuple[int, int], what: str
) -> tuple[np.ndarray | None, Problem | None]:
    if not path.exists():
        return None, Problem(str(path), f"{what}: file missing; scored as an empty matte")
    if not is_inside(inside, path):
        return None, Problem(str(path), f"{what}: file resolves outside {inside}; scored as an empty matte")
    try:
        # read_file_bytes refuses an oversized file before reading; decode_alpha checks the header (size, pixel
        # limit) before decoding any pixel.
        return decode_alpha(read_file_bytes(path), str(path), shape), None
    except InputError as err:
        return None, Problem(str(err.source), f"{what}: {err.problem}; scored as an empty matte")


def _clip_shape(frame_paths: list[Path], split_dir: Path) -> tuple[int, int]:
    errors = []
    for path in frame_paths:
        try:
            if not is_inside(split_dir, path):
                raise InputError(path, "resolves outside the split folder")
            return read_image_size(path)
        except InputError as err:
            errors.append(err)
    first = errors[0]
    raise InputError(first.source, f"no frame of the video is readable ({first.problem})")


def load_clip(
    root: str | os.PathLike,
    split: str,
    video: str,
    *,
    mask_dir: str | None = None,
    load_frames: bool = True,
) -> VideoClip:
    """Load one video: frames, every instance's matte in every frame, and the masks of ``mask_dir`` when given.

    The clip's size is the first readable frame's (header only); every other file must have that size. The
    instances are the union of the matte names over all frames, in name order; a name missing from some frame is a
    problem for that frame. Raises :class:`InputError` only when the video cannot be loaded at all (no frames, no
    readable frame, no matte anywhere); anything else becomes a counted problem.
    """
    split_dir = _split_dir(root, split)
    video = safe_name(video, split_dir / ALPHA_DIR / str(video), "video name")
    if mask_dir is not None:
        safe_name(mask_dir, split_dir / str(mask_dir), "mask folder name")
        if mask_dir in _RESERVED:
            raise InputError(split_dir / mask_dir, f"mask folder cannot be {FRAME_DIR}/ or {ALPHA_DIR}/")
    frame_names = list_frames(root, split, video)
    frame_paths = [split_dir / FRAME_DIR / video / f"{name}{FRAME_SUFFIX}" for name in frame_names]
    alpha_root = split_dir / ALPHA_DIR / video
    problems: list[Problem] = [
        Problem(path, "ground truth: frame file name is not a plain name once .jpg is cut; ignored")
        for name, path in sorted(_frame_entries(split_dir / FRAME_DIR / video), key=lambda e: e[1]) if name is None
    ]

    per_frame = [_matte_names(alpha_root / name) for name in frame_names]
    instance_names = sorted({name for names in per_frame for name in names})
    if not instance_names:
        raise InputError(alpha_root, f"no {MATTE_SUFFIX} matte in any frame folder of the video")
    for name in frame_names:
        if not (alpha_root / name).is_dir():
            problems.append(Problem(str(alpha_root / name), "ground truth: frame has no matte folder; its "
                                                            "instances are scored as empty"))
    known = set(frame_names)
    for entry in sorted(os.scandir(alpha_root), key=lambda e: e.name):
        if entry.is_dir() and entry.name not in known:
            problems.append(Problem(entry.path, f"ground truth: matte folder without a {FRAME_SUFFIX} frame in "
                                                f"{FRAME_DIR}/; ignored"))
    height, width = _clip_shape(frame_paths, split_dir)
    count, length = len(instance_names), len(frame_names)
    alphas = np.zeros((count, length, height, width), dtype=np.float32)
    present = np.zeros((count, length), dtype=bool)
    masks = None if mask_dir is None else np.zeros_like(alphas)
    for t, frame in enumerate(frame_names):
        frame_folder = alpha_root / frame
        if not frame_folder.is_dir():
            continue  # reported above, once per frame rather than once per instance
        for k, instance in enumerate(instance_names):
            matte, problem = _read_matte(frame_folder / instance, split_dir, (height, width), "ground truth")
            if problem is not None:
                problems.append(problem)
            else:
                alphas[k, t] = matte
                present[k, t] = True
            if masks is not None:
                mask_path = split_dir / mask_dir / video / frame / instance
                matte, problem = _read_matte(mask_path, split_dir, (height, width), "guidance mask")
                if problem is not None:
                    problems.append(problem)
                else:
                    masks[k, t] = matte

    frames = None
    if load_frames:
        frames = np.zeros((length, height, width, 3), dtype=np.uint8)
        for t, path in enumerate(frame_paths):
            try:
                if not is_inside(split_dir, path):
                    raise InputError(path, "resolves outside the split folder")
                data = read_file_bytes(path)
                # header only (no pixel decoded): the pixel limit and the clip's size are checked first
                check_header(probe_image(data, str(path)), str(path), (height, width), what="frame")
                frames[t] = decode_image(data, str(path))
            except InputError as err:
                problems.append(Problem(str(err.source), f"ground truth frame: {err.problem}; left black"))
    return VideoClip(split=split, video=video, frame_names=tuple(frame_names), instance_names=tuple(instance_names),
                     alphas=alphas, present=present, frames=frames, masks=masks, problems=problems)


# ------------------------------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class ClipData:
    """A clip to export: ``frames`` (T, H, W, 3) uint8 (or a sequence of T such arrays), ``alphas`` (N, T, H, W)
    float in [0, 1] or uint8, optional ``masks`` of the same shape as ``alphas``."""

    id: str
    frames: np.ndarray | Sequence[np.ndarray]
    alphas: np.ndarray
    masks: np.ndarray | None = None


def _as_clip(item: ClipData | Sequence) -> ClipData:
    if isinstance(item, ClipData):
        return item
    return ClipData(*item)


def _check_mattes(array: np.ndarray, source: str, shape: tuple[int, int, int, int]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise InputError(source, f"expected shape {shape} (N, T, H, W), got {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype.kind != "f":
            raise InputError(source, f"expected float mattes in [0, 1] or uint8, got dtype {array.dtype}")
        if array.size and not (float(array.min()) >= 0.0 and float(array.max()) <= 1.0):  # NaN fails both
            raise InputError(source, "mattes must be finite and in [0, 1]")
    return array


def _validated(clips: Sequence[ClipData | Sequence]) -> list[tuple[ClipData, np.ndarray]]:
    checked, seen = [], set()
    for index, item in enumerate(clips):
        clip = _as_clip(item)
        source = f"clip {index}"
        safe_name(clip.id, source, "clip id")
        if clip.id in seen:
            raise InputError(source, f"duplicate clip id {clip.id!r}")
        seen.add(clip.id)
        frames = np.asarray(clip.frames) if not isinstance(clip.frames, np.ndarray) else clip.frames
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise InputError(f"{source} ({clip.id})", f"frames must be uint8 (T, H, W, 3) with T >= 1, got "
                                                      f"{frames.dtype} {frames.shape}")
        length, height, width = frames.shape[:3]
        alphas = np.asarray(clip.alphas)
        if alphas.ndim != 4 or alphas.shape[0] < 1:
            raise InputError(f"{source} ({clip.id})", f"alphas must be (N, T, H, W) with N >= 1, got {alphas.shape}")
        shape = (alphas.shape[0], length, height, width)
        _check_mattes(alphas, f"{source} ({clip.id}) alphas", shape)
        if clip.masks is not None:
            _check_mattes(clip.masks, f"{source} ({clip.id}) masks", shape)
        checked.append((clip, frames))
    return checked


def _width(count: int, minimum: int) -> int:
    return max(minimum, len(str(max(count - 1, 0))))


def export_vhim(
    clips: Sequence[ClipData | Sequence],
    out_dir: str | os.PathLike,
    split: str,
    *,
    mask_dir: str | None = None,
    jpeg_quality: int = 95,
) -> dict[str, int]:
    """Write ``clips`` as ``<out_dir>/<split>/`` in MaGGIe's V-HIM layout; returns counts of what was written.

    ``clips``: :class:`ClipData` or ``(id, frames, alphas[, masks])`` tuples. Every id, the split and ``mask_dir``
    must be plain names (:func:`himbench.io.safe_name`); everything is checked before the first byte is written.
    ``<out_dir>/<split>`` must be absent or empty: the split is written into a temporary folder inside ``out_dir``
    and renamed into place at the end, so a reader never sees half a split and a failed export leaves nothing
    behind (only the temporary folder this call made is ever deleted). Frames are JPEG (lossy, as released);
    mattes and masks are 8-bit PNG (exact to 1/255). Names: ``{t:05d}.jpg`` and ``{k:02d}.png`` as MaGGIe's script
    writes them, widened when needed so that name order is number order.
    """
    split = safe_name(split, Path(out_dir) / str(split), "split name")
    if mask_dir is not None:
        safe_name(mask_dir, Path(out_dir) / split / str(mask_dir), "mask folder name")
        if mask_dir in _RESERVED:
            raise InputError(Path(out_dir) / split / mask_dir, f"mask folder cannot be {FRAME_DIR}/ or {ALPHA_DIR}/")
    checked = _validated(clips)
    if mask_dir is None and any(clip.masks is not None for clip, _ in checked):
        raise ValueError("clips carry guidance masks but no mask_dir was given to write them to")
    out_dir = Path(out_dir)
    target = out_dir / split
    require_empty_folder(target, "already exists and is not empty; export-vhim never writes over a split")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=out_dir))
    counts = {"clips": 0, "frames": 0, "mattes": 0, "masks": 0}
    try:
        for clip, frames in checked:
            length = len(frames)
            frame_width, instance_width = _width(length, 5), _width(len(clip.alphas), 2)
            for t in range(length):
                frame = f"{t:0{frame_width}d}"
                atomic_write_bytes(staging / FRAME_DIR / clip.id / f"{frame}{FRAME_SUFFIX}",
                                   encode_jpeg(np.ascontiguousarray(frames[t]), quality=jpeg_quality))
                counts["frames"] += 1
                for k in range(len(clip.alphas)):
                    name = f"{k:0{instance_width}d}{MATTE_SUFFIX}"
                    atomic_write_bytes(staging / ALPHA_DIR / clip.id / frame / name,
                                       encode_alpha_png(np.asarray(clip.alphas[k, t]), compression=3))
                    counts["mattes"] += 1
                    if clip.masks is not None:
                        atomic_write_bytes(staging / mask_dir / clip.id / frame / name,
                                           encode_alpha_png(np.asarray(clip.masks[k, t]), compression=3))
                        counts["masks"] += 1
            counts["clips"] += 1
        (staging / FRAME_DIR).mkdir(exist_ok=True)
        (staging / ALPHA_DIR).mkdir(exist_ok=True)
        if target.is_dir():
            target.rmdir()  # checked empty above; rename(2) cannot replace a folder on every system
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # our own temporary folder, nothing else
        raise
    return counts
