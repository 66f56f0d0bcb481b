"""Scoring a video prediction folder against video ground truth (issue 23): the workflow behind ``himbench evaluate``
when ``--gt`` is a clip build or a V-HIM folder.

>>> ev = evaluate_video_folder("preds", "data/vhim-clips", split="test")   # doctest: +SKIP
>>> write_video_evaluation(ev, "preds-eval/test")                          # doctest: +SKIP

Ground truth is one of (detected, :func:`detect_video_ground_truth`):

* a ``himbench build-dataset --video`` folder (``video_config.json`` and ``data/<split>-*.parquet``, one row per
  clip; :mod:`himbench.video_shards`), videos named by the clip ``id``;
* MaGGIe's V-HIM layout (``<split>/fgr/`` and ``<split>/pha/``; :mod:`himbench.video_layout`), or one split folder
  of it.

Frames are named ``{t:05d}`` in both (as ``himbench export-vhim`` writes them), so one prediction folder
``PRED_DIR/<split>/<video>/<frame>/<k>.png`` (:mod:`himbench.video_predictions`) scores against either.

Per clip (:func:`himbench.metrics.clip_matching.evaluate_clip`): one Hungarian matching on the clip's summed IoU,
identity switches, the image metrics and IMQ per frame with those pairs, averaged over the clip's frames. Per
ground-truth person, its clip-level partner track (all zeros when it has none: a missed person) is scored with
:func:`himbench.metrics.temporal.clip_temporal`: dtSSD and MESSDdt in Erofeev et al.'s convention (unscaled, mean
over the clip's frame pairs, correct warp) and in MaGGIe's (``maggie_dtSSD`` = 0.1 x dtSSD, ``maggie_MESSDdt`` =
1e4 x MESSDdt / (H*W + 1), with the warp chosen by ``warp``: ``"correct"`` by default, ``"maggie-transposed"`` to
reproduce the numbers MaGGIe's code prints). Predicted tracks that match nobody count as false positives in IMQ and
have no temporal value (temporal metrics compare a prediction with a ground-truth matte).

Dataset numbers (``summary``): every per-clip quality number is averaged over clips (each clip weighs the same, as
each frame weighs the same within a clip); counts (TP/FP/FN, people, frames, identity switches) are summed;
``dtSSD``/``MESSDdt`` are the mean over ground-truth person-clips, ``maggie_*`` MaGGIe's pooled mean over every
(frame pair, person) of the split (:class:`himbench.metrics.temporal.TemporalStat`).

Bad inputs never abort the run: a missing or bad prediction file or folder is a counted :class:`Problem` naming it
and scored as an empty matte (a clip with no folder: every person missed), so the other clips score exactly as in a
clean run. A V-HIM clip that cannot be loaded at all, or a clip row of a build that lies about its frame count,
sizes or people, is a problem naming it and left out; when no clip of the split is left, that is an
:class:`InputError`. A folder that is neither kind of
video ground truth is an :class:`InputError` naming it and what it holds.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from himbench.io import InputError, Problem, atomic_write_text, is_inside, safe_name
from himbench.metrics.clip_matching import evaluate_clip
from himbench.metrics.imq import DEFAULT_THRESHOLDS, IMQ_ERRORS, INSTANCE_ERRORS
from himbench.metrics.paper_units import MaggieAccumulator
from himbench.metrics.table import metric_key
from himbench.metrics.temporal import WARPS, TemporalStat, clip_temporal

__all__ = [
    "TEMPORAL_UNITS",
    "VIDEO_GT_KINDS",
    "VideoEvaluation",
    "detect_video_ground_truth",
    "evaluate_video_folder",
    "format_video_summary",
    "is_video_ground_truth",
    "write_video_evaluation",
]

VIDEO_GT_KINDS: tuple[str, ...] = ("video-shards", "vhim")

# What each temporal number is (summary.json's "units" and "convention").
TEMPORAL_UNITS: dict[str, str] = {
    "dtSSD": "alpha in [0, 1], unscaled: mean over frame pairs of sqrt(sum of squared change differences), mean over "
             "ground-truth person-clips (Erofeev et al., BMVC 2015)",
    "MESSDdt": "alpha in [0, 1], unscaled: mean over frame pairs of sum |E_t - warp(E_t+1)|, E = squared error, "
               "correct warp, mean over ground-truth person-clips (Erofeev et al., BMVC 2015)",
    "maggie_dtSSD": "MaGGIe's code: 0.1 x dtSSD per (frame pair, person), pooled mean over the split",
    "maggie_MESSDdt": "MaGGIe's code: 1e4 x MESSDdt / (H*W + 1) per (frame pair, person), pooled mean over the split",
    "IMQ/RQ/MQ/PQ": "x 100, per frame with the clip's matching, averaged per clip, then over clips",
    "inst_*": "SPEC s.2 units (SAD / 1000, MSE x 1000, MAD x 1000, Grad / 1000, Conn / 1000), per frame, averaged per "
              "clip, then over clips",
    "id_switches": "count, summed over clips",
}

_COUNT_PREFIXES = ("TP@", "FP@", "FN@", "num_")
_COUNT_KEYS = ("inst_count", "id_switches", "switched_frames", "scored_frames")
_TEMPORAL_KEYS = ("dtSSD", "MESSDdt", "maggie_dtSSD", "maggie_MESSDdt")


@dataclass
class VideoEvaluation:
    """The result of :func:`evaluate_video_folder`: ``clips`` one record per ground-truth clip (plain numbers and
    strings), ``summary`` the dataset numbers, ``problems`` every bad input, ``config`` the resolved settings."""

    clips: list[dict[str, Any]]
    summary: dict[str, float]
    problems: list[Problem] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- ground truth
def is_video_ground_truth(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like video ground truth (a clip build, a V-HIM folder or one V-HIM split), without
    reading any clip. The image evaluation's ground truth never does."""
    try:
        detect_video_ground_truth(path)
    except InputError:
        return False
    return True


def _entries(root: Path) -> list[os.DirEntry]:
    try:
        return sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as err:  # unreadable: one named input error, not a traceback
        raise InputError(root, f"cannot be listed ({err.strerror or err})") from err


def _vhim_splits(root: Path) -> list[str]:
    from himbench.video_layout import is_vhim_split

    if not root.is_dir():
        return []
    return [entry.name for entry in _entries(root)
            if entry.is_dir(follow_symlinks=False) and is_vhim_split(entry.path)]


def detect_video_ground_truth(path: str | os.PathLike) -> tuple[str, Path, list[str]]:
    """``(kind, root, splits)`` of video ground truth: kind ``"video-shards"`` (root = the build folder) or
    ``"vhim"`` (root = the folder above the splits; a split folder itself is accepted). Raises
    :class:`InputError` naming ``path`` and what was found there otherwise."""
    from himbench.shards import ShardFolder
    from himbench.video_layout import is_vhim_split
    from himbench.video_shards import VIDEO_CONFIG_FILE

    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    if (root / VIDEO_CONFIG_FILE).is_file() and ShardFolder.is_shard_folder(root):
        splits = ShardFolder(root).splits()
        if not splits:
            raise InputError(root, f"a video build ({VIDEO_CONFIG_FILE}) with no clip shards in data/")
        return "video-shards", root, splits
    if is_vhim_split(root):
        return "vhim", root.parent, [root.name]
    splits = _vhim_splits(root)
    if splits:
        return "vhim", root, splits
    found = [entry.name + ("/" if entry.is_dir() else "") for entry in _entries(root)]
    shown = ", ".join(found[:8]) + (f", ... ({len(found)} entries)" if len(found) > 8 else "") or "nothing"
    raise InputError(root, f"not video ground truth: expected a `build-dataset --video` folder ({VIDEO_CONFIG_FILE} "
                           "and data/*.parquet) or a V-HIM folder (<split>/fgr/ and <split>/pha/); found "
                           f"{shown}")


def _frame_names(count: int) -> tuple[str, ...]:
    # export_vhim's names: {t:05d}, widened past 100000 frames so that name order stays number order
    width = max(5, len(str(max(count - 1, 0))))
    return tuple(f"{t:0{width}d}" for t in range(count))


def _gt_clips(kind: str, root: Path, split: str, problems: list[Problem]
              ) -> Iterator[tuple[str, tuple[str, ...], np.ndarray]]:
    """``(video, frame names, alphas (N, T, H, W) float32)`` for every ground-truth clip of ``split``."""
    if kind == "video-shards":
        from himbench.shards import ShardFolder
        from himbench.video_shards import read_video_shard

        seen: set[str] = set()
        for path in ShardFolder(root).shards(split, required=True):
            # a row that lies (num_frames, sizes, counts) costs its clip only, as a bad image row does
            for sample in read_video_shard(path, problems):
                if sample.id in seen:
                    problems.append(Problem(str(path), f"ground truth: clip id {sample.id!r} appears twice; the "
                                                       "second is left out"))
                    continue
                seen.add(sample.id)
                yield sample.id, _frame_names(sample.num_frames), sample.alphas
        return
    from himbench.video_layout import list_videos, load_clip

    videos, found = list_videos(root, split)
    problems.extend(found)
    for video in videos:
        try:
            clip = load_clip(root, split, video, load_frames=False)
        except InputError as err:
            problems.append(Problem(str(err.source), f"ground truth: {err.problem}; clip left out"))
            continue
        problems.extend(clip.problems)
        yield video, clip.frame_names, clip.alphas


# ------------------------------------------------------------------------------------------------- scoring
def _temporal(pred: np.ndarray, gt: np.ndarray, partner: np.ndarray, warp: str, video: str,
              problems: list[Problem]) -> TemporalStat:
    """Both conventions for every ground-truth person of one clip; its partner track, or zeros when unmatched."""
    stat = TemporalStat()
    if gt.shape[1] < 2:
        return stat  # one frame has no frame pair: no temporal value (said in the record's temporal_people = 0)
    for g in range(len(gt)):
        track = pred[partner[g]] if partner[g] >= 0 else np.zeros_like(gt[g])
        try:
            stat.update(clip_temporal(track, gt[g], warp="correct", maggie_warp=warp))
        except ValueError as err:  # never dropped in silence (MaGGIe's MESSDdt prints and skips)
            problems.append(Problem(video, f"temporal metrics of person {g}: {err}; left out"))
    return stat


def _record(video: str, split: str, result, stat: TemporalStat, num_tracks: int, status: str,
            problems: int) -> dict[str, Any]:
    record: dict[str, Any] = {"video": video, "split": split, "prediction": status, "num_tracks": num_tracks,
                              "problems": problems}
    record.update({k: (int(v) if k.startswith(_COUNT_PREFIXES) or k in _COUNT_KEYS else float(v))
                   for k, v in result.summary.items()})
    values = stat.result()
    for key in _TEMPORAL_KEYS:
        if key in values:
            record[key] = float(values[key])
    record["temporal_people"] = int(stat.clips)
    return record


def _summarise(records: list[dict[str, Any]], temporal: TemporalStat) -> dict[str, float]:
    summary: dict[str, float] = {"num_clips": len(records)}
    if not records:
        return summary
    keys: list[str] = []
    for record in records:
        keys.extend(k for k, v in record.items() if k not in keys and isinstance(v, int | float)
                    and k not in ("num_tracks", "problems", "temporal_people", *_TEMPORAL_KEYS))
    for key in keys:
        values = [r[key] for r in records if key in r]
        if key.startswith(_COUNT_PREFIXES) or key in _COUNT_KEYS:
            summary[key] = int(sum(values))
        else:
            summary[key] = float(np.mean(values))
    values = temporal.result()
    for key in _TEMPORAL_KEYS:
        if key in values:
            summary[key] = float(values[key])
    summary["temporal_people"] = int(temporal.clips)
    summary["clips_without_prediction"] = sum(r["prediction"] == "missing" for r in records)
    return summary


def evaluate_video_folder(
    pred_dir: str | os.PathLike,
    gt: str | os.PathLike,
    *,
    split: str | None = None,
    warp: str = "correct",
    progress: bool = False,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    switch_threshold: float = 0.5,
) -> VideoEvaluation:
    """Score ``pred_dir`` (``<split>/<video>/<frame>/<k>.png``) against video ground truth ``gt`` (see the module
    docstring). ``split``: default the ground truth's only split, else the one split also in ``pred_dir``.
    ``warp``: the MESSDdt warp of MaGGIe's convention, ``"correct"`` or ``"maggie-transposed"`` (MaGGIe's code).
    Raises :class:`InputError` for a ``gt`` that is not video ground truth, an unknown split, an unreadable clip
    shard, or a split none of whose clips can be read (one bad clip is a problem); never for a bad prediction."""
    from himbench.video_predictions import read_video_prediction

    if warp not in WARPS:
        raise ValueError(f"warp must be one of {WARPS}, got {warp!r}")
    thresholds = tuple(sorted(set(float(t) for t in thresholds)))
    pred_dir = Path(pred_dir)
    kind, root, splits = detect_video_ground_truth(gt)
    if split is None:
        common = [s for s in splits if (pred_dir / s).is_dir()]
        if len(splits) == 1:
            split = splits[0]
        elif len(common) == 1:
            split = common[0]
        else:
            raise InputError(pred_dir, f"cannot tell which split to score (ground truth has {', '.join(splits)}); "
                                       "pass --split")
    split = safe_name(split, root / str(split), "split name")
    if split not in splits:
        raise InputError(root, f"no split {split!r} in the video ground truth (found: {', '.join(splits)})")

    from tqdm import tqdm

    problems: list[Problem] = []
    records: list[dict[str, Any]] = []
    temporal = TemporalStat()
    paper = MaggieAccumulator()
    split_dir = pred_dir / split
    bar = tqdm(desc=f"evaluate {split}", unit="clip", disable=not progress)
    for video, frame_names, gt_alphas in _gt_clips(kind, root, split, problems):
        shape = gt_alphas.shape[2:]
        prediction = read_video_prediction(pred_dir, split, video, frame_names, shape)
        problems.extend(prediction.problems)
        folder = split_dir / video
        status = "read" if folder.is_dir() and is_inside(pred_dir, folder) else "missing"
        result = evaluate_clip(prediction.alphas, gt_alphas, thresholds=thresholds,
                               switch_threshold=switch_threshold)
        partner = result.matching.partner_of_gt()
        stat = _temporal(prediction.alphas, gt_alphas, partner, warp, str(folder), problems)
        _add_paper_units(paper, prediction.alphas, gt_alphas, partner)
        temporal += stat
        records.append(_record(video, split, result, stat, len(prediction.track_names), status,
                               len(prediction.problems)))
        bar.update(1)
    bar.close()
    if not records and problems:  # every clip was bad ground truth: nothing was scored, which is no result
        first = problems[0]
        raise InputError(root, f"no clip of split {split!r} could be read ({len(problems)} problems; first: "
                               f"{first.file}: {first.message})")
    known = {record["video"] for record in records}
    if split_dir.is_dir():
        for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if entry.name not in known and not entry.name.startswith("."):
                problems.append(Problem(entry.path, "prediction: not a video of the ground truth; ignored"))
    config = {
        "pred_dir": str(pred_dir), "gt": str(root), "gt_kind": kind, "split": split, "warp": warp,
        "thresholds": list(thresholds), "switch_threshold": float(switch_threshold),
    }
    summary = _summarise(records, temporal)
    if records:
        summary.update(paper.summary())
    return VideoEvaluation(records, summary, problems, config)


def _add_paper_units(paper: MaggieAccumulator, pred: np.ndarray, gt: np.ndarray, partner: np.ndarray) -> None:
    """MaGGIe's MAD/MSE/Grad/Conn (maggie_* columns, the units of its Table 7) of every frame: each ground-truth
    person against the track the clip's matching gave it (zeros when unmatched), all people of a frame together, as
    MaGGIe's test loop hands a frame's instances to its metrics."""
    if not len(gt):
        return
    for t in range(gt.shape[1]):
        paired = np.stack([pred[p, t] if p >= 0 else np.zeros_like(gt[g, t]) for g, p in enumerate(partner)])
        paper.add(paired, gt[:, t])


# ------------------------------------------------------------------------------------------------- writing
def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def write_video_evaluation(ev: VideoEvaluation, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``summary.json`` (summary, units, convention, problem count, config), ``per_clip.jsonl`` (one record per
    clip), ``problems.csv`` and ``evaluation_config.json`` into ``out_dir``, each atomically; returns {name: path}."""
    from himbench.io.csvcells import escape_cell

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary_json": out / "summary.json",
        "per_clip_jsonl": out / "per_clip.jsonl",
        "problems_csv": out / "problems.csv",
        "config_json": out / "evaluation_config.json",
    }
    convention = {
        "dtSSD": "Erofeev et al. (BMVC 2015): whole frame, unscaled, mean over pairs, then over person-clips",
        "MESSDdt": "Erofeev et al. (BMVC 2015), correct warp, Farneback flow on the ground truth",
        "maggie": f"MaGGIe (arXiv 2404.16035) maggie/utils/metric.py units, warp {ev.config.get('warp')!r}",
        "matching": "one Hungarian matching per clip on summed per-frame IoU (alpha > 0)",
    }
    doc = {"summary": ev.summary, "units": TEMPORAL_UNITS, "convention": convention,
           "num_problems": len(ev.problems), "config": ev.config}
    atomic_write_text(paths["summary_json"], _json_text(doc))
    atomic_write_text(paths["per_clip_jsonl"],
                      "".join(json.dumps(r, allow_nan=False) + "\n" for r in ev.clips))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "message"])
    # text cells that a spreadsheet would run as a formula get a leading quote (himbench.io.csvcells)
    writer.writerows([escape_cell(p.file), escape_cell(p.message)] for p in ev.problems)
    atomic_write_text(paths["problems_csv"], buffer.getvalue())
    atomic_write_text(paths["config_json"], _json_text(ev.config))
    return paths


def format_video_summary(summary: dict[str, float]) -> str:
    """A plain-text table: per IoU threshold IMQ/RQ/TP/FP/FN; then the per-instance errors, the temporal metrics
    in both conventions and the identity switches."""
    tags = sorted({k.split("@", 1)[1] for k in summary if k.startswith("RQ@")}, key=float)
    header = ["IoU", *(f"IMQ_{e}" for e in IMQ_ERRORS), "RQ", "TP", "FP", "FN"]
    rows = [[tag, *(f"{summary.get(metric_key('IMQ', e, tag), 0.0):.2f}" for e in IMQ_ERRORS),
             f"{summary.get(metric_key('RQ', threshold=tag), 0.0):.2f}",
             *(str(int(summary.get(metric_key(c, threshold=tag), 0))) for c in ("TP", "FP", "FN"))]
            for tag in tags]
    second_header = [*(f"inst_{e}" for e in INSTANCE_ERRORS), *_TEMPORAL_KEYS, "id_switches"]
    second = [*(f"{summary.get(f'inst_{e}', 0.0):.3f}" for e in INSTANCE_ERRORS),
              *(f"{summary[k]:.4f}" if k in summary else "-" for k in _TEMPORAL_KEYS),
              str(int(summary.get("id_switches", 0)))]
    return "\n".join([_table(header, rows), "", _table(second_header, [second])])


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
