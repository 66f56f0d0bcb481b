"""Reading one video's predictions: ``PRED_DIR/<split>/<video>/<frame>/<k>.png``, k the same person in every frame.

``<frame>`` is the ground-truth frame name (``00000`` for ``fgr/<video>/00000.jpg``); ``<k>`` names a predicted
person (track) and must name the same person in every frame, because a clip is matched once (see
:mod:`himbench.metrics.clip_matching`). The tracks of a video are the union of the matte stems over its frames, ordered
by number when every stem is an integer (``2`` before ``10``) and by name otherwise; the result is a (K, T, H, W)
float32 array in that order.

Every gap is a counted :class:`~himbench.evaluation.ground_truth.Problem` naming the file or folder, and the rest is
still scored: a missing video folder (K = 0: every person missed), a missing frame folder (no prediction in that
frame), a track missing from some frame, an unreadable, wrongly sized or oversized matte (sizes are checked before
decoding), a file that resolves outside ``PRED_DIR`` (a submission made of links to the ground truth must not score
100), and frame folders or files that are not part of the ground truth (ignored). A missing or bad matte is scored as
an empty one (all 0).

A video with more than :data:`MAX_TRACKS` tracks (thousands of matte files) is one problem naming the video folder;
only its first ``MAX_TRACKS`` tracks in track order are read, so memory stays bounded by the ground truth's size
(K x T x H x W) and the other clips are untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import MATTE_SUFFIXES, InputError, Problem, is_inside, read_alpha, safe_name

__all__ = ["MAX_TRACKS", "VideoPrediction", "read_video_prediction"]

# More predicted people per clip than any benchmark holds (V-HIM has at most a handful; builds at most 20): a
# bound on the (K, T, H, W) array a hostile folder of thousands of matte files could otherwise make us allocate.
MAX_TRACKS = 100


@dataclass
class VideoPrediction:
    """One video's predictions: ``alphas`` (K, T, H, W) float32 in the order of ``track_names``; ``present`` (K, T)
    says which files were read; ``problems`` lists every gap."""

    track_names: tuple[str, ...]
    alphas: np.ndarray
    present: np.ndarray
    problems: list[Problem] = field(default_factory=list)


def _track_order(stems: set[str]) -> list[str]:
    if stems and all(stem.isdigit() for stem in stems):
        return sorted(stems, key=lambda stem: (int(stem), stem))
    return sorted(stems)


def _matte_files(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    """Stem -> path of the matte files of one frame folder; other files and duplicate stems are problems."""
    files: dict[str, Path] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        suffix = path.suffix.lower()
        if entry.name.startswith(".") or suffix == ".json":
            continue  # hidden files and a scores.json sidecar are not mattes
        if suffix not in MATTE_SUFFIXES or not entry.is_file():
            problems.append(Problem(str(path), f"prediction: not a matte file ({', '.join(MATTE_SUFFIXES)}); "
                                               "ignored"))
            continue
        if path.stem in files:
            problems.append(Problem(str(path), f"prediction: another matte of track {path.stem!r} is in the same "
                                               "frame; the first is used"))
            continue
        files[path.stem] = path
    return files


def read_video_prediction(
    pred_dir: str | os.PathLike,
    split: str,
    video: str,
    frame_names: tuple[str, ...] | list[str],
    shape: tuple[int, int],
) -> VideoPrediction:
    """Read ``PRED_DIR/<split>/<video>/`` for a ground-truth clip of ``frame_names`` and size ``shape`` (H, W).

    ``pred_dir`` is the scored tree: a file resolving outside it is refused. Never raises for a bad submission;
    every gap is a problem in the result (see the module docstring). Raises :class:`InputError` only for an unsafe
    ``split`` or ``video`` name (those come from the ground truth, not the submission).
    """
    root = Path(pred_dir)
    split = safe_name(split, root / str(split), "split name")
    video = safe_name(video, root / split / str(video), "video name")
    height, width = int(shape[0]), int(shape[1])
    length = len(frame_names)
    problems: list[Problem] = []
    folder = root / split / video
    empty = VideoPrediction((), np.zeros((0, length, height, width), dtype=np.float32),
                            np.zeros((0, length), dtype=bool), problems)
    if not folder.is_dir():
        problems.append(Problem(str(folder), "prediction: video folder missing; every person of the clip is "
                                             "scored as missed"))
        return empty
    if not is_inside(root, folder):
        problems.append(Problem(str(folder), f"prediction: video folder resolves outside {root}; every person of "
                                             "the clip is scored as missed"))
        return empty

    wanted = set(frame_names)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and entry.name not in wanted:
            problems.append(Problem(entry.path, "prediction: frame folder not in the ground truth; ignored"))
    per_frame: list[dict[str, Path] | None] = []
    for frame in frame_names:
        frame_folder = folder / frame
        if not frame_folder.is_dir():
            problems.append(Problem(str(frame_folder), "prediction: frame folder missing; no prediction in this "
                                                       "frame"))
            per_frame.append(None)
        elif not is_inside(root, frame_folder):
            problems.append(Problem(str(frame_folder), f"prediction: frame folder resolves outside {root}; no "
                                                       "prediction in this frame"))
            per_frame.append(None)
        else:
            per_frame.append(_matte_files(frame_folder, problems))
    tracks = _track_order({stem for files in per_frame if files for stem in files})
    if len(tracks) > MAX_TRACKS:
        problems.append(Problem(str(folder), f"prediction: {len(tracks)} tracks, over the limit of {MAX_TRACKS} per "
                                             f"video; only the first {MAX_TRACKS} in track order are scored"))
        tracks = tracks[:MAX_TRACKS]
    alphas = np.zeros((len(tracks), length, height, width), dtype=np.float32)
    present = np.zeros((len(tracks), length), dtype=bool)
    for t, files in enumerate(per_frame):
        if files is None:
            continue  # the whole frame is missing: reported once above
        for k, track in enumerate(tracks):
            path = files.get(track)
            if path is None:
                problems.append(Problem(str(folder / frame_names[t] / f"{track}.png"),
                                        f"prediction: track {track!r} has no matte in this frame; scored as empty"))
                continue
            if not is_inside(root, path):
                problems.append(Problem(str(path), f"prediction: file resolves outside {root}; scored as empty"))
                continue
            try:
                alphas[k, t] = read_alpha(path, (height, width))
                present[k, t] = True
            except InputError as err:
                problems.append(Problem(str(err.source), f"prediction: {err.problem}; scored as empty"))
    return VideoPrediction(tuple(tracks), alphas, present, problems)
