"""Reading one image's predictions: ``<pred_split>/<stem>/<k>.png`` plus an optional ``scores.json`` (SPEC s.4).

Accepted mattes: 8-bit grey PNG (value / 255), 16-bit PNG (value / 65535), grey stored as RGB, RGBA (alpha channel),
and float32 TIFF in [0, 1]; see :func:`himbench.io.read_alpha`. A bad file (unreadable, colour RGB, wrong size, NaN,
...) is reported and left out; the image's other predictions are still scored, so the ground-truth instance that
file was meant for counts as missed.

``scores.json`` may map file names or stems to confidences (``{"00.png": 0.9, "01": 0.7}``) or be a list in file
order. Scores only matter with ``min_score``: predictions below it are dropped before matching. It is read with a
size limit (1 MiB) and a nesting limit; a bad one is reported and its scores ignored.

Single-matte predictions (the classic benchmarks, :mod:`himbench.layouts`): ``PRED_DIR/<stem>.png``, one matte per
image, as portrait-matting repositories write it (:func:`read_single_prediction`). An instance-layout prediction
folder scored on a single-matte benchmark is merged into one matte: the sum of its instances clipped to [0, 1]
(:func:`merge_instances`); visible mattes of one image sum to at most 1 (SPEC s.1), so for valid predictions the clip
only guards against overlapping ones.

Symbolic links: a matte, ``scores.json`` or image folder that resolves outside the scored tree (``root``, the
prediction folder given to the evaluation) is reported and left out, unless ``follow_symlinks``: a submission made
of links to the ground truth must not score 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from himbench.evaluation.ground_truth import Problem
from himbench.io import MATTE_SUFFIXES, InputError, is_inside, read_alpha, read_json

__all__ = [
    "MAX_SCORES_BYTES",
    "PredictionFolder",
    "merge_instances",
    "outside_link_problem",
    "read_prediction_folder",
    "read_single_prediction",
    "single_prediction_files",
]

SCORES_FILE = "scores.json"
MAX_SCORES_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PredictionFolder:
    alphas: np.ndarray  # (P, H, W) float32
    files: tuple[str, ...]  # file name of each matte, in the order of `alphas`
    scores: tuple[float | None, ...]
    problems: tuple[Problem, ...]


def _read_scores(path: Path, files: list[str]) -> tuple[dict[str, float], list[Problem]]:
    try:
        data = read_json(path, max_bytes=MAX_SCORES_BYTES, max_depth=4)
    except InputError as err:
        return {}, [Problem(err.source, f"cannot read scores ({err.problem}); scores ignored")]
    if isinstance(data, list):
        if len(data) != len(files):
            return {}, [Problem(str(path), f"{len(data)} scores for {len(files)} mattes; scores ignored")]
        data = dict(zip(files, data, strict=True))
    if not isinstance(data, dict):
        return {}, [Problem(str(path), "scores must be an object {file: score} or a list; scores ignored")]
    scores, problems = {}, []
    by_stem = {Path(name).stem: name for name in files}
    for key, value in data.items():
        name = key if key in files else by_stem.get(str(key))
        if name is None:
            problems.append(Problem(str(path), f"score for {key!r}, which is not a matte in this folder; ignored"))
        elif not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
            problems.append(Problem(str(path), f"score for {key!r} is not a finite number ({value!r}); ignored"))
        else:
            scores[name] = float(value)
    return scores, problems


def outside_link_problem(path: Path, root: Path) -> Problem:
    """The problem reported for a path that resolves outside the scored tree ``root``."""
    return Problem(
        str(path),
        f"symbolic link to {path.resolve()}, outside the prediction folder {root.resolve()}; ignored "
        "(evaluate --follow-symlinks allows it)",
    )


def read_prediction_folder(
    folder: Path,
    shape: tuple[int, int],
    min_score: float | None = None,
    root: Path | None = None,
    follow_symlinks: bool = False,
    max_pixels: int | None = None,
) -> PredictionFolder:
    """Read every matte of one image's prediction folder, reporting (not raising) each bad file.

    ``root``: the scored tree; unless ``follow_symlinks``, entries that resolve outside it are reported and left out.
    ``max_pixels``: the pixel limit of :func:`himbench.io.read_alpha`."""
    problems: list[Problem] = []
    matte_files = []
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        problem = Problem(str(folder), f"cannot list the prediction folder ({err.strerror or err})")
        return PredictionFolder(np.zeros((0, *shape), dtype=np.float32), (), (), (problem,))
    guard = root is not None and not follow_symlinks
    for entry in entries:
        if guard and entry.is_symlink() and not is_inside(root, entry):
            problems.append(outside_link_problem(entry, root))
            continue
        if entry.is_file() and entry.suffix.lower() in MATTE_SUFFIXES:
            matte_files.append(entry)
        elif entry.name != SCORES_FILE:
            kind = "folder" if entry.is_dir() else "file"
            message = f"unexpected {kind} (expected <k>.png mattes and scores.json); ignored"
            problems.append(Problem(str(entry), message))
    names = [p.name for p in matte_files]
    scores: dict[str, float] = {}
    if (folder / SCORES_FILE).is_file() and not (guard and not is_inside(root, folder / SCORES_FILE)):
        scores, score_problems = _read_scores(folder / SCORES_FILE, names)
        problems.extend(score_problems)
    mattes, kept, kept_scores = [], [], []
    for path in matte_files:
        score = scores.get(path.name)
        if min_score is not None and score is not None and score < min_score:
            continue
        try:
            mattes.append(read_alpha(path, shape, max_pixels))
        except InputError as err:
            problems.append(Problem(err.source, err.problem + "; this prediction is left out"))
            continue
        kept.append(path.name)
        kept_scores.append(score)
    alphas = np.stack(mattes) if mattes else np.zeros((0, *shape), dtype=np.float32)
    return PredictionFolder(alphas=alphas, files=tuple(kept), scores=tuple(kept_scores), problems=tuple(problems))


# ---------------------------------------------------------------------------------------------- single mattes
def merge_instances(alphas: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One matte from instance mattes (P, H, W): their sum clipped to [0, 1], float32 (zeros when P = 0)."""
    alphas = np.asarray(alphas, dtype=np.float32)
    if len(alphas) == 0:
        return np.zeros(shape if shape is not None else alphas.shape[1:], dtype=np.float32)
    return np.clip(alphas.sum(axis=0, dtype=np.float32), 0.0, 1.0)


def single_prediction_files(pred_dir: Path, stems: set[str]) -> tuple[dict[str, Path], list[Problem]]:
    """{stem: file} of the single mattes ``PRED_DIR/<stem>.png`` (or .tif/.tiff) of ground-truth images, and a
    problem for each other matte file there (extra, or a second file for one stem)."""
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    if not pred_dir.is_dir():
        return found, problems
    for entry in sorted(pred_dir.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.suffix.lower() not in MATTE_SUFFIXES or entry.is_dir():
            continue
        if entry.stem not in stems:
            problems.append(Problem(str(entry), "extra prediction with no ground-truth image; ignored"))
        elif entry.stem in found:
            problems.append(Problem(str(entry), f"second prediction for {entry.stem!r} (also "
                                                f"{found[entry.stem].name}); ignored"))
        else:
            found[entry.stem] = entry
    return found, problems


def read_single_prediction(
    path: Path,
    shape: tuple[int, int],
    root: Path | None = None,
    follow_symlinks: bool = False,
    max_pixels: int | None = None,
) -> PredictionFolder:
    """Read one single-matte prediction file as a one-matte :class:`PredictionFolder` (no matte and a problem when
    the file is bad, or a link outside ``root`` unless ``follow_symlinks``)."""
    empty = np.zeros((0, *shape), dtype=np.float32)
    if root is not None and not follow_symlinks and path.is_symlink() and not is_inside(root, path):
        return PredictionFolder(empty, (), (), (outside_link_problem(path, root),))
    try:
        matte = read_alpha(path, shape, max_pixels)
    except InputError as err:
        return PredictionFolder(empty, (), (), (Problem(err.source, err.problem + "; scored as an empty matte"),))
    return PredictionFolder(matte[None], (path.name,), (None,), ())
