"""Running an image method on video, frame by frame, into a video prediction folder (issue 23).

:func:`predict_video` reads clips from a ``build-dataset --video`` folder (clip Parquet shards,
:mod:`himbench.video_shards`) or from MaGGIe's V-HIM layout (:mod:`himbench.video_layout`), runs ``method.predict``
on every frame, and writes ``OUT/<split>/<video>/<frame>/<k>.png`` (8-bit PNG, k the same person in every frame), the
format :mod:`himbench.video_predictions` reads, plus ``OUT/predictions.json`` (:mod:`himbench.predictions.manifest`)
with the resolved configuration.

Frame names: a V-HIM folder's own (``fgr/<video>/<frame>.jpg``); for a clip build, ``00000``, ``00001``, ... (five
digits, more for longer clips), the names ``export-vhim`` gives the same clip.

Identity across frames:

* **Automatic methods** (``method.guidance is None``): one call per frame; each frame's instances are matched to the
  tracks so far by a Hungarian assignment on the IoU of the binarised mattes (>= 0.5) with each track's last seen
  matte, so k stays the same person while people do not cross. An instance that overlaps no track (IoU 0) starts a
  new track; a track with no instance in a frame gets an empty matte there.
* **Mask-guided methods**: the guidance masks are per track already. ``guidance="first-frame"``: the first frame's
  ground truth binarised at 0.5 (with the method's own guidance perturbation applied, seeded by the video name),
  carried through the clip by :mod:`himbench.mask_tracking`; ``guidance="disk:<mask_dir>"``: a V-HIM folder's
  ``<split>/<mask_dir>/<video>/<frame>/<k>.png`` (e.g. ``xmem``), binarised at 0.5. A method that returns as many
  mattes as it was given non-empty masks keeps their order; otherwise its mattes are matched to the masks by IoU.

``smoothing`` > 0 applies :func:`himbench.temporal_smoothing.smooth_alphas` (flow-compensated on the frames) to each
clip before it is written.

Writes never leave ``OUT``: every name is checked with :func:`himbench.io.safe_name` and resolved inside ``OUT``; a
clip is written into a temporary folder inside ``OUT/<split>/`` and renamed into place, so a reader never sees half a
clip; a video folder that already holds files is refused (nothing is ever deleted that this call did not write).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from himbench.io import InputError, encode_alpha_png, require_empty_folder, resolve_inside, safe_name
from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "GUIDANCE_SOURCES",
    "VideoInput",
    "clip_frame_names",
    "is_video_input",
    "iter_video_inputs",
    "match_to_tracks",
    "predict_clip",
    "predict_video",
    "resolve_guidance",
]

GUIDANCE_SOURCES = ("first-frame", "disk:<mask_dir>", "none")
_MATTE_THRESHOLD = 0.5  # a matte counts as the person from this value on, for matching instances to tracks


@dataclass
class VideoInput:
    """One clip to predict: ``frames`` (T, H, W, 3) uint8 RGB; ``gt_alphas`` (N, T, H, W) float32 (the first-frame
    seed of mask-guided methods); ``masks`` (N, T, H, W) float32 guidance from disk, or None."""

    split: str
    video: str
    frame_names: tuple[str, ...]
    frames: np.ndarray
    gt_alphas: np.ndarray
    masks: np.ndarray | None = None


def clip_frame_names(length: int) -> tuple[str, ...]:
    """Frame names of a clip build's clip of ``length`` frames: ``00000``, ``00001``, ... widened beyond 99999 so
    that name order stays number order (as ``export-vhim`` names them)."""
    width = max(5, len(str(max(length - 1, 0))))
    return tuple(f"{t:0{width}d}" for t in range(length))


# ---------------------------------------------------------------------------------------------------- inputs
def _is_clip_build(path: Path) -> bool:
    from himbench.shards import ShardFolder
    from himbench.video_shards import VIDEO_CONFIG_FILE

    return ShardFolder.is_shard_folder(path) and (path / VIDEO_CONFIG_FILE).is_file()


def is_video_input(path: str | os.PathLike) -> bool:
    """True when ``path`` is a ``build-dataset --video`` folder or a V-HIM folder (one holding split folders with
    ``fgr/`` and ``pha/``)."""
    from himbench.video_layout import is_vhim_split

    path = Path(path)
    if not path.is_dir():
        return False
    if _is_clip_build(path):
        return True
    return any(entry.is_dir() and is_vhim_split(entry.path) for entry in os.scandir(path))


def resolve_guidance(guidance: str | None, mask_guided: bool) -> str:
    """The guidance source a run uses: ``None`` means ``first-frame`` for a mask-guided method and ``none``
    otherwise; ``xmem`` is short for ``disk:xmem``. ValueError for a source the method cannot use."""
    if guidance is None:
        return "first-frame" if mask_guided else "none"
    guidance = str(guidance)
    if guidance == "xmem":
        guidance = "disk:xmem"
    if guidance not in ("first-frame", "none") and not (guidance.startswith("disk:") and len(guidance) > 5):
        raise ValueError(f"unknown video guidance {guidance!r}; choose from first-frame, xmem, disk:<mask_dir>, none")
    if mask_guided and guidance == "none":
        raise ValueError("this method is mask-guided: video guidance must be first-frame or disk:<mask_dir> (xmem)")
    if not mask_guided and guidance != "none":
        raise ValueError(f"this method finds people itself and takes no guidance masks; guidance {guidance!r} does "
                         "not apply (use none)")
    return guidance


def _mask_dir(guidance: str, data: Path, split: str) -> str | None:
    if not guidance.startswith("disk:"):
        return None
    from himbench.video_layout import ALPHA_DIR, FRAME_DIR

    name = safe_name(guidance[5:], data / split / guidance[5:], "mask folder name")
    folder = data / split / name
    if name in (ALPHA_DIR, FRAME_DIR):
        raise InputError(folder, f"the guidance mask folder cannot be {FRAME_DIR}/ or {ALPHA_DIR}/")
    if not folder.is_dir():
        raise InputError(folder, "guidance mask folder missing: expected <split>/<mask_dir>/<video>/<frame>/<k>.png")
    return name


def _vhim_inputs(data: Path, split: str | None, guidance: str) -> Iterator[VideoInput]:
    from himbench.video_layout import list_splits, list_videos, load_clip

    splits = list_splits(data)
    if split is not None:
        if split not in splits:
            raise InputError(data / split, f"no such V-HIM split; splits: {', '.join(splits)}")
        splits = [split]
    for name in splits:
        mask_dir = _mask_dir(guidance, data, name)
        videos, _ = list_videos(data, name)  # problems of the ground truth are the evaluator's to report
        for video in videos:
            clip = load_clip(data, name, video, mask_dir=mask_dir)
            # A frame the method cannot see, or a guidance mask it cannot have, would make a silent wrong
            # prediction: refuse, naming the file. (Missing ground-truth mattes only matter for frame 0's seed.)
            for problem in clip.problems:
                if "frame:" in problem.message or "guidance mask" in problem.message:
                    message = problem.message.split("; scored as")[0].split("; left black")[0]
                    raise InputError(problem.file, f"{message}; the method cannot run on this clip without it")
            yield VideoInput(name, clip.video, clip.frame_names, clip.frames, clip.alphas, clip.masks)


def _clip_build_inputs(data: Path, split: str | None, guidance: str) -> Iterator[VideoInput]:
    from himbench.shards import ShardFolder
    from himbench.video_shards import read_video_split

    if guidance.startswith("disk:"):
        raise InputError(data, "guidance masks on disk need a V-HIM folder (<split>/<mask_dir>/...): export this "
                               "build with `himbench export-vhim` and give that folder")
    splits = ShardFolder(data).splits()
    if split is not None:
        if split not in splits:
            raise InputError(data, f"no clips of split {split!r}; splits: {', '.join(splits) or 'none'}")
        splits = [split]
    for name in splits:
        for sample in read_video_split(data, name):
            yield VideoInput(name, sample.id, clip_frame_names(sample.num_frames), sample.frames, sample.alphas)


def iter_video_inputs(data: str | os.PathLike, split: str | None = None, guidance: str = "none"
                      ) -> Iterator[VideoInput]:
    """Every clip of a clip build or V-HIM folder ``data`` (of ``split`` when given), with the disk masks of
    ``guidance`` (``disk:<mask_dir>``) loaded; InputError naming the file for anything that cannot be read."""
    data = Path(data)
    if _is_clip_build(data):
        yield from _clip_build_inputs(data, split, guidance)
    elif data.is_dir():
        yield from _vhim_inputs(data, split, guidance)
    else:
        raise InputError(data, "not a folder: give a `build-dataset --video` folder or a V-HIM folder")


# ---------------------------------------------------------------------------------------------------- matching
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of boolean (K, H, W) stacks; 0 where both are empty."""
    a = a.reshape(len(a), -1).astype(np.float32)
    b = b.reshape(len(b), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_to_tracks(instances: np.ndarray, tracks: np.ndarray) -> list[int]:
    """For each of ``instances`` (K, H, W) bool, the index of the track in ``tracks`` (M, H, W) bool it continues,
    or -1: a Hungarian assignment maximising the summed IoU; pairs with IoU 0 are not matches."""
    if len(instances) == 0:
        return []
    result = [-1] * len(instances)
    if len(tracks) == 0:
        return result
    iou = _iou(instances, tracks)
    rows, cols = linear_sum_assignment(-iou)
    for row, col in zip(rows, cols, strict=True):
        if iou[row, col] > 0:
            result[int(row)] = int(col)
    return result


# ---------------------------------------------------------------------------------------------------- predicting
def _automatic(method, clip: VideoInput) -> np.ndarray:
    length, height, width = clip.frames.shape[:3]
    tracks: list[np.ndarray] = []  # per track: (T, H, W) float32
    last_seen: list[np.ndarray] = []  # per track: its latest non-empty binarised matte
    for t in range(length):
        alphas = method.predict(clip.frames[t]).alphas
        found = alphas >= _MATTE_THRESHOLD
        keep = found.reshape(len(found), -1).any(axis=1)  # an instance with no pixel >= 0.5 cannot be tracked
        matched = match_to_tracks(found[keep], np.asarray(last_seen) if last_seen else np.zeros((0, height, width)))
        for alpha, mask, track in zip(alphas[keep], found[keep], matched, strict=True):
            if track < 0:
                tracks.append(np.zeros((length, height, width), dtype=np.float32))
                last_seen.append(mask)
                track = len(tracks) - 1
            tracks[track][t] = alpha
            last_seen[track] = mask
    if not tracks:
        return np.zeros((0, length, height, width), dtype=np.float32)
    return np.stack(tracks)


def _guided_frame(method, frame: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The method's mattes (N, H, W) for guidance ``masks`` (N, H, W) bool, in the masks' order (empty where a
    mask is empty or the method returned nothing for it)."""
    out = np.zeros(masks.shape, dtype=np.float32)
    given = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
    if len(given) == 0:
        return out
    alphas = method.predict(frame, masks[given]).alphas
    if len(alphas) == len(given):
        out[given] = alphas
        return out
    # the method dropped or merged masks: give each matte to the mask it overlaps most
    for index, track in enumerate(match_to_tracks(alphas >= _MATTE_THRESHOLD, masks[given])):
        if track >= 0:
            out[given[track]] = alphas[index]
    return out


def _guided(method, clip: VideoInput, guidance: str, reanchor: bool) -> np.ndarray:
    from himbench.guidance import masks_from_alphas, perturb_masks
    from himbench.mask_tracking import track_step

    length = len(clip.frames)
    if guidance.startswith("disk:"):
        disk = masks_from_alphas(clip.masks)  # (N, T, H, W)
        return np.stack([_guided_frame(method, clip.frames[t], disk[:, t]) for t in range(length)], axis=1) \
            if len(disk) else np.zeros((0, length, *clip.frames.shape[1:3]), dtype=np.float32)
    seed = masks_from_alphas(clip.gt_alphas[:, 0]) if length else np.zeros((0, 0, 0), dtype=bool)
    if method.guidance is not None and method.guidance.steps:
        seed = perturb_masks(seed, method.guidance, f"{clip.split}/{clip.video}")
    out = np.zeros((len(seed), length, *clip.frames.shape[1:3]), dtype=np.float32)
    masks = seed
    for t in range(length):
        if t > 0:
            carried = out[:, t - 1] if reanchor else masks
            masks = track_step(clip.frames[t - 1], clip.frames[t], carried)
        out[:, t] = _guided_frame(method, clip.frames[t], masks)
    return out


def predict_clip(method, clip: VideoInput, *, guidance: str, smoothing: float = 0.0, reanchor: bool = False
                 ) -> np.ndarray:
    """The mattes (K, T, H, W) float32 of one clip, track k the same person in every frame (see the module doc).
    ``guidance`` as resolved by :func:`resolve_guidance`."""
    from himbench.temporal_smoothing import smooth_alphas

    if guidance == "none":
        alphas = _automatic(method, clip)
    else:
        alphas = _guided(method, clip, guidance, reanchor)
    if smoothing > 0 and len(alphas):
        alphas = smooth_alphas(alphas.transpose(1, 0, 2, 3), smoothing, frames=clip.frames).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(alphas, dtype=np.float32)


def _target(out: Path, clip: VideoInput) -> Path:
    """``out/<split>/<video>``, checked before any work: plain names, inside ``out``, absent or empty."""
    target = resolve_inside(out, clip.split, clip.video)
    for frame in clip.frame_names:
        safe_name(frame, target / str(frame), "frame name")
    require_empty_folder(target, "already holds files; predict into a new folder (nothing was overwritten)")
    return target


def _write_clip(target: Path, clip: VideoInput, alphas: np.ndarray) -> int:
    """Write one clip's mattes into ``target`` through a temporary folder beside it; returns mattes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{clip.video}.", suffix=".tmp", dir=target.parent))
    written = 0
    width = max(2, len(str(max(len(alphas) - 1, 0))))  # name order stays number order past 100 tracks
    try:
        for t, frame in enumerate(clip.frame_names):
            (staging / frame).mkdir()
            for k in range(len(alphas)):
                atomic_write_bytes(staging / frame / f"{k:0{width}d}.png",
                                   encode_alpha_png(alphas[k, t], compression=3))
                written += 1
        if target.is_dir():
            target.rmdir()  # checked empty above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only the temporary folder this call made
        raise
    return written


def _source_record(data: Path, out: Path) -> dict[str, Any]:
    from himbench.predictions.manifest import shard_source

    if _is_clip_build(data):
        return {**shard_source(data, out), "video": True}
    return {"kind": "vhim", "path": os.path.relpath(data.resolve(), out.resolve()), "video": True}


def predict_video(
    method,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    guidance: str | None = None,
    smoothing: float = 0.0,
    reanchor: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``method`` (a :class:`himbench.methods.Method`) frame by frame over every clip of ``data`` (a clip build
    or a V-HIM folder) into ``out_dir``; returns a summary (clips, frames, mattes written, the resolved config).

    ``guidance``: ``first-frame`` (default for mask-guided methods; an oracle seed), ``disk:<mask_dir>`` or ``xmem``
    (V-HIM folders), ``none`` (default, and the only choice, for automatic methods). ``smoothing``: strength in
    [0, 1) of the flow-compensated moving average. ``reanchor``: mask-guided methods' tracker warps the method's own
    previous mattes instead of the previous masks. Raises :class:`InputError` naming the file for bad input, and
    ValueError for options that do not fit the method; nothing is written before the options are checked."""
    from tqdm import tqdm

    from himbench.predictions.manifest import merged_manifest, new_manifest, write_manifest

    data, out = Path(data), Path(out_dir)
    guidance = resolve_guidance(guidance, method.needs_masks)
    if not 0.0 <= float(smoothing) < 1.0:
        raise ValueError(f"smoothing strength must be in [0, 1), got {smoothing}")
    if split is not None:
        split = safe_name(split, data / str(split), "split name")
    if not data.is_dir():
        raise InputError(data, "not a folder: give a `build-dataset --video` folder or a V-HIM folder")
    config = {
        "video": True,
        "method": dict(getattr(method, "spec", {"name": method.name})),
        "guidance": guidance,
        "guidance_oracle": guidance == "first-frame",  # the first frame's masks come from the ground truth scored
        "smoothing": float(smoothing),
        "smoothing_flow": bool(smoothing > 0),
        "reanchor": bool(reanchor) if guidance == "first-frame" else False,
        "seed": method.guidance.seed if method.guidance is not None else None,
        "split": split,
    }
    checkpoint = next((str(c) for c in getattr(method, "checkpoints_used", {}).values() if c), f"method:{method.name}")
    manifest = new_manifest(_source_record(data, out), [], method.name, checkpoint, config)
    merged_manifest(out, manifest)  # a folder of another model's predictions is refused before any work
    counts = {"clips": 0, "frames": 0, "mattes": 0, "tracks": 0}
    splits: set[str] = set()
    clips = iter_video_inputs(data, split, guidance)
    for clip in tqdm(clips, desc="predict-video", unit="clip", disable=not progress):
        target = _target(out, clip)
        alphas = predict_clip(method, clip, guidance=guidance, smoothing=float(smoothing),
                              reanchor=config["reanchor"])
        counts["mattes"] += _write_clip(target, clip, alphas)
        counts["clips"] += 1
        counts["frames"] += len(clip.frame_names)
        counts["tracks"] += len(alphas)
        splits.add(clip.split)
    if counts["clips"]:
        manifest.splits = sorted(splits)
        write_manifest(out, manifest)
    return {**counts, "out": str(out), "splits": sorted(splits), "config": config}
