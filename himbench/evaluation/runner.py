"""Scoring a prediction folder against ground truth, one image per task, in parallel across cores.

Functional core: :func:`evaluate_image` is pure given its inputs (ground-truth item, prediction folder, config) and
returns data; :func:`evaluate_folder` maps it over the split in worker processes, keeps the ground-truth order
(results are deterministic whatever the number of workers), and sums the per-image stats in that order.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from himbench.engines import map_tasks
from himbench.evaluation.ground_truth import (
    FolderItem,
    GroundTruth,
    Problem,
    ShardItem,
    available_splits,
    open_ground_truth,
)
from himbench.io import InputError, is_inside
from himbench.io import max_pixels as default_max_pixels
from himbench.layouts import SingleMatteItem
from himbench.metrics import DEFAULT_THRESHOLDS, IMQ_ERRORS, INSTANCE_ERRORS, ImageInstanceStats, IMQAccumulator
from himbench.metrics.imq import evaluate_instances, similarity
from himbench.metrics.table import metric_key
from himbench.predictions.reader import (
    merge_instances,
    outside_link_problem,
    read_prediction_folder,
    read_single_prediction,
    single_prediction_files,
)

__all__ = [
    "EvaluationConfig",
    "check_scoring_options",
    "EvaluationResult",
    "ImageOutcome",
    "evaluate_folder",
    "evaluate_image",
    "resolve_split",
    "unreadable_ground_truth",
]


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything that determines the numbers; saved as ``evaluation_config.json`` beside every report."""

    pred_dir: str
    gt: str
    gt_kind: str
    split: str
    pred_split_dir: str
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    min_score: float | None = None
    grad_sigma: float = 1.4
    conn_step: float = 0.1
    conn_theta: float = 0.15
    workers: int = 1
    follow_symlinks: bool = False  # read links in the prediction folder that resolve outside it
    max_pixels: int = 100_000_000  # images and mattes over this many pixels are refused before decoding
    spec: str = "SPEC s.2-4 (IMQ as InstMatt CVPR 2022; images without a prediction folder count as all FN)"
    # Single-matte benchmarks (himbench.layouts): the layout and the error convention of its own evaluator
    layout: str = ""
    convention: str = ""

    def __post_init__(self) -> None:
        check_scoring_options(self.thresholds, self.min_score)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = list(self.thresholds)
        return data


def check_scoring_options(thresholds: tuple[float, ...], min_score: float | None) -> None:
    """Raise :class:`InputError` for an IoU threshold outside (0, 1] or a ``min_score`` that is not a finite number
    (NaN compares false with everything: it would drop every prediction, or none, without a word)."""
    if not thresholds:
        raise InputError("evaluation config", "no IoU threshold given")
    for threshold in thresholds:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold <= 1:
            raise InputError("evaluation config", f"IoU threshold {threshold!r} must be a number in (0, 1]")
    if min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, numbers.Real) or not math.isfinite(min_score)
    ):
        raise InputError("evaluation config", f"min_score {min_score!r} must be a finite number")


@dataclass(frozen=True)
class ImageOutcome:
    """One image's result: a flat record for tables, its instance stats (None when the ground truth is bad)."""

    stem: str
    record: dict[str, Any]
    stats: ImageInstanceStats | None
    problems: tuple[Problem, ...]
    classic: dict[str, float] | None = None  # single-matte benchmarks: the benchmark's own errors of this image


@dataclass
class EvaluationResult:
    config: EvaluationConfig
    records: list[dict[str, Any]]  # one per ground-truth image, in ground-truth order
    summary: dict[str, float]
    problems: list[Problem]
    accumulator: IMQAccumulator
    stats: dict[str, ImageInstanceStats] = field(default_factory=dict)
    units: dict[str, str] | None = None  # single-matte benchmarks: unit of each classic error in ``summary``
    # filled in by himbench.evaluation.breakdown.add_statistics (evaluate --breakdown / --bootstrap)
    breakdown: dict[str, Any] | None = None
    intervals: dict[str, dict[str, float]] | None = None
    bootstrap: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------- per image
def per_image_record(stem: str, status: str, stats: ImageInstanceStats | None, files: tuple[str, ...], thresholds,
                     gt_alphas: np.ndarray | None = None, occlusion: tuple[float, ...] | None = None) -> dict:
    """One image's record of ``per_image.json``: its stem and status and, when scored (``stats``), its IMQ terms per
    threshold, its matches (predictions named by ``files``) and, given ``gt_alphas``/``occlusion``, what the
    breakdowns need. Shared with :func:`himbench.evaluation.breakdown.image_record` (images scored by bench)."""
    record: dict[str, Any] = {"stem": stem, "status": status}
    if stats is None:
        return record
    summary = stats.summary(thresholds)
    record["num_gt"] = stats.num_gt
    record["num_pred"] = stats.num_pred
    for threshold in thresholds:
        tag = f"{threshold:g}"
        for key in (*(metric_key(f, threshold=tag) for f in ("TP", "FP", "FN", "RQ")),
                    *(metric_key("IMQ", n, tag) for n in IMQ_ERRORS)):
            record[key] = summary[key]
        # the similarity sums themselves, so that resampling (himbench.metrics.bootstrap) needs no division back
        positives = stats.true_positives(threshold)
        for name in IMQ_ERRORS:
            record[f"sim_{name}@{tag}"] = sum(similarity(p.imq_error(name)) for p in positives)
    record["mean_iou"] = sum(p.iou for p in stats.pairs) / len(stats.pairs) if stats.pairs else 0.0
    for name in INSTANCE_ERRORS:
        record[metric_key("inst", name)] = summary[metric_key("inst", name)]
    record["matches"] = [
        {"pred": files[p.pred_index], "gt_index": p.gt_index, "iou": p.iou}
        | {n: getattr(p, n) for n in INSTANCE_ERRORS}
        for p in stats.pairs
    ]
    # per ground-truth person, for the breakdowns (himbench.evaluation.breakdown): its share of the image (alpha > 0,
    # as matching counts it) and how hidden it is (None where the ground truth does not record it)
    if gt_alphas is not None and len(gt_alphas) == stats.num_gt:
        pixels = max(1, stats.height * stats.width)
        areas = np.count_nonzero(gt_alphas > 0, axis=(1, 2)) / pixels if len(gt_alphas) else []
        record["gt_area"] = [float(a) for a in areas]
        fits = occlusion is not None and len(occlusion) == stats.num_gt
        record["gt_occlusion"] = [float(o) for o in occlusion] if fits else None
    return record


def _evaluate_single(item: SingleMatteItem, pred_path: str | None, config: EvaluationConfig) -> ImageOutcome:
    """Score one image of a single-matte benchmark: the prediction (a ``<stem>.png`` file, or an instance folder
    merged as the clipped sum of its mattes) against the one ground-truth matte, with the benchmark's own errors
    (:func:`himbench.metrics.classic.classic_errors`) and, as for every layout, the instance stats. A missing or bad
    prediction is reported and scored as an empty (all-zero) matte, as a missing folder counts all people missed."""
    from himbench.metrics.classic import classic_errors

    gt_alphas, problems = item.load(config.max_pixels)
    if gt_alphas is None:
        record = per_image_record(item.stem, "bad_ground_truth", None, (), config.thresholds)
        return ImageOutcome(item.stem, record, None, tuple(problems))
    shape = gt_alphas.shape[1:]
    trimap, trimap_problems = item.load_trimap(shape, config.max_pixels)
    problems.extend(trimap_problems)
    root = Path(config.pred_dir)
    path = Path(pred_path) if pred_path else None
    status, files = "ok", ()
    if path is None or not (path.is_file() or path.is_dir()):
        problems.append(Problem(pred_path or item.stem, "missing prediction; scored as an empty matte"))
        pred_alphas, status = gt_alphas[:0], "missing"
    else:
        if path.is_dir():
            folder = read_prediction_folder(path, shape, config.min_score, root, config.follow_symlinks,
                                            config.max_pixels)
        else:
            folder = read_single_prediction(path, shape, root, config.follow_symlinks, config.max_pixels)
        pred_alphas, files = folder.alphas, folder.files
        problems.extend(folder.problems)
        if folder.problems:
            status = "problems"
    merged = merge_instances(pred_alphas, shape)
    classic = classic_errors(merged, gt_alphas[0], trimap, convention=config.convention or item.convention)
    single = merged[None] if merged.any() else merged[None][:0]
    stats = evaluate_instances(
        single, gt_alphas, sigma=config.grad_sigma, conn_step=config.conn_step, conn_theta=config.conn_theta
    )
    # the one (merged) prediction is named by its file, or by its folder when instances were merged
    name = files[0] if len(files) == 1 and path is not None and path.is_file() else f"{item.stem}/ (merged)"
    record = per_image_record(item.stem, status, stats, (name,) * len(single), config.thresholds, gt_alphas)
    record.update(classic)
    return ImageOutcome(item.stem, record, stats, tuple(problems), classic)


def evaluate_image(item: ShardItem | FolderItem, pred_folder: str | None, config: EvaluationConfig) -> ImageOutcome:
    """Score one image; every problem is returned, none is raised."""
    if isinstance(item, SingleMatteItem):
        return _evaluate_single(item, pred_folder, config)
    gt_alphas, problems = item.load(config.max_pixels)
    if gt_alphas is None:
        record = per_image_record(item.stem, "bad_ground_truth", None, (), config.thresholds)
        return ImageOutcome(item.stem, record, None, tuple(problems))
    shape = gt_alphas.shape[1:]
    status = "ok"
    files: tuple[str, ...] = ()
    root = Path(config.pred_dir)
    outside = (
        pred_folder is not None
        and not config.follow_symlinks
        and Path(pred_folder).is_dir()
        and not is_inside(root, pred_folder)
    )
    if pred_folder is None or not Path(pred_folder).is_dir() or outside:
        missing = pred_folder or item.stem
        if outside:
            problems.append(outside_link_problem(Path(missing), root))
        problems.append(Problem(missing, "missing prediction folder; all ground-truth instances count as missed"))
        pred_alphas = gt_alphas[:0]
        status = "missing"
    else:
        folder = read_prediction_folder(
            Path(pred_folder), shape, config.min_score, root, config.follow_symlinks, config.max_pixels
        )
        pred_alphas, files = folder.alphas, folder.files
        problems.extend(folder.problems)
        if folder.problems:
            status = "problems"
    stats = evaluate_instances(
        pred_alphas, gt_alphas, sigma=config.grad_sigma, conn_step=config.conn_step, conn_theta=config.conn_theta
    )
    record = per_image_record(item.stem, status, stats, files, config.thresholds, gt_alphas,
                              getattr(item, "occlusion", None))
    return ImageOutcome(item.stem, record, stats, tuple(problems))


def failed_outcome(item: ShardItem | FolderItem, pred_folder: str | None, config: EvaluationConfig,
                   message: str) -> ImageOutcome:
    """The outcome of an image whose scoring failed outright (a crash, not a bad file): reported, not scored."""
    problem = Problem(pred_folder or item.stem, message)
    return ImageOutcome(item.stem, per_image_record(item.stem, "failed", None, (), config.thresholds), None, (problem,))


def _evaluate_task(item: ShardItem | FolderItem, pred_folder: str | None, config: EvaluationConfig) -> ImageOutcome:
    try:
        return evaluate_image(item, pred_folder, config)
    except Exception as err:  # a bug or an exhausted resource on one image must not end the run
        return failed_outcome(item, pred_folder, config, f"scoring failed ({type(err).__name__}: {err}); image not "
                                                         "scored")


def _worker_died(item: ShardItem | FolderItem, pred_folder: str | None, config: EvaluationConfig) -> ImageOutcome:
    return failed_outcome(item, pred_folder, config, "the worker process died while scoring this image (out of "
                                                     "memory?), also when retried alone in a fresh process; image "
                                                     "not scored")


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one image per process; threads inside would oversubscribe the cores


# ----------------------------------------------------------------------------------------------------- folder
def _subfolders(path: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(path) if entry.is_dir()) if path.is_dir() else []


def resolve_split(pred_dir: Path, gt_splits: list[str], split: str | None) -> str:
    """The split to score: ``split`` if given; else the one split present in both the predictions and the ground
    truth; else the ground truth's only split; else ``test``. Raises InputError when it stays ambiguous."""
    if split is not None:
        return split
    common = [s for s in _subfolders(pred_dir) if s in gt_splits]
    if len(common) == 1:
        return common[0]
    if pred_dir.name in gt_splits and not common:
        return pred_dir.name
    if len(gt_splits) == 1:
        return gt_splits[0]
    if "test" in gt_splits and not common:
        return "test"
    raise InputError(pred_dir, f"cannot tell which split to score (ground truth has {', '.join(gt_splits)}); "
                               "pass --split")


def _prediction_split_dir(pred_dir: Path, split: str, stems: set[str]) -> Path:
    """``pred_dir/<split>``; ``pred_dir`` itself when it already is the split folder (named so, or holding the
    image folders directly)."""
    candidate = pred_dir / split
    if candidate.is_dir():
        return candidate
    if pred_dir.name == split or set(_subfolders(pred_dir)) & stems:
        return pred_dir
    return candidate


def _visible_entries(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".")) if folder.is_dir() else []


def _check_predictions_match(pred_dir: Path, pred_split: Path, split: str, stems: set[str]) -> None:
    """Refuse a prediction folder that holds something but nothing that matches a ground-truth image."""
    if not stems or not _visible_entries(pred_dir):
        return  # an empty prediction folder is a valid (all-miss) submission
    if not pred_split.is_dir():
        found = ", ".join(_subfolders(pred_dir)[:5]) or "no folders"
        raise InputError(pred_dir, f"no prediction folder for split {split!r} (expected {pred_split}; found: "
                                   f"{found}); check PRED_DIR and --split")
    entries = _visible_entries(pred_split)
    if entries and not any(name in stems for name in entries):
        example = sorted(stems)[0]
        raise InputError(pred_split, f"none of its {len(entries)} entries (e.g. {entries[0]!r}) matches a "
                                     f"ground-truth image of split {split!r} (e.g. {example!r}); check PRED_DIR "
                                     "and --split")


def unreadable_ground_truth(result: EvaluationResult) -> str | None:
    """Why no image of ``result`` could be scored, when the ground truth of every one was bad (each row null,
    mistyped or over the pixel limit: the run has no number to report), as one line naming the first few files and
    problems; None when at least one image was scored (or reached scoring and failed)."""
    if any(record["status"] != "bad_ground_truth" for record in result.records):
        return None
    bad = [p for p in result.problems if p.message.startswith("ground truth")]
    return (f"none of the {len(result.records)} ground-truth image(s) of split {result.config.split!r} could be "
            f"read{_reasons(bad)}")


def _reasons(problems: list[Problem], limit: int = 3) -> str:
    """The first few problems as one line (``: file: message; ...``), or nothing."""
    if not problems:
        return ""
    text = "; ".join(" ".join(f"{p.file}: {p.message}".split()) for p in problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return f": {text}{more}"


def evaluate_folder(
    pred_dir: str | os.PathLike,
    gt: str | os.PathLike,
    split: str | None = None,
    workers: int | None = None,
    *,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    min_score: float | None = None,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    follow_symlinks: bool = False,
    max_pixels: int | None = None,
    layout: str | None = None,
) -> EvaluationResult:
    """Score the predictions in ``pred_dir`` (``<split>/<stem>/<k>.png``) against ``gt`` (shards or HIM-2K layout).

    ``workers``: processes (default: all cores; 1 runs in this process). Workers start with ``forkserver`` (or
    ``spawn``), so a script calling this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    Bad files are reported in
    ``result.problems`` and never stop the run; an empty prediction folder scores every image as missed.
    A worker process that dies is replaced and its image retried once, then reported (finished images are kept).
    ``engine``/``ray_address``: ``"local"`` processes or ``"ray"`` on the Ray cluster at ``ray_address`` (default: a
    local Ray with ``workers`` CPUs), streamed either way (:func:`himbench.engines.map_tasks`); same numbers.
    ``follow_symlinks``: also read links that resolve outside ``pred_dir`` (refused and reported by default).
    ``max_pixels``: refuse images and mattes over this many pixels before decoding (default
    :func:`himbench.io.max_pixels`, ``$HIMBENCH_MAX_PIXELS`` or 100 MP).
    ``layout``: force the ground truth's layout (:mod:`himbench.layouts`; default: detected). On a single-matte
    benchmark (P3M-500, AIM-500, PPM-100, Composition-1k) the predictions are ``PRED_DIR/<stem>.png`` (or instance
    folders, merged), and the summary adds the benchmark's own errors (``result.units`` says their units).

    Raises :class:`himbench.io.InputError` when a threshold is outside (0, 1] or ``min_score`` is not finite, when
    the ground truth itself cannot be opened or lists no image (every shard unreadable: a 0.00 summary would read as
    a result; :func:`unreadable_ground_truth` tells when every listed image turned out bad), when ``pred_dir`` does
    not exist, and when ``pred_dir`` holds entries but none of them matches a ground-truth image (a misspelt path or
    split would otherwise score as all misses).
    """
    from tqdm.auto import tqdm

    check_scoring_options(tuple(thresholds), min_score)  # before any file is read
    pred_dir = Path(pred_dir)
    _, gt_splits = available_splits(gt, layout)
    split = resolve_split(pred_dir, gt_splits, split)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "no such prediction folder")
    truth: GroundTruth = open_ground_truth(gt, split, layout)
    if not truth.stems:  # nothing to score: a 0.00 summary would read as a result (and skip the PRED_DIR check)
        raise InputError(truth.root, f"no ground-truth image found in split {split!r}{_reasons(truth.problems)}")
    stem_set = set(truth.stems)
    single = truth.single_items is not None
    singles, single_problems = single_prediction_files(pred_dir, stem_set) if single else ({}, [])
    pred_split = _prediction_split_dir(pred_dir, split, stem_set)
    workers = max(1, int(workers if workers is not None else (os.cpu_count() or 1)))
    workers = min(workers, max(1, len(truth.stems)))
    config = EvaluationConfig(
        pred_dir=str(pred_dir),
        gt=str(gt),
        gt_kind=truth.kind,
        split=split,
        pred_split_dir=str(pred_split),
        thresholds=tuple(float(t) for t in thresholds),
        min_score=min_score,
        workers=workers,
        follow_symlinks=follow_symlinks,
        max_pixels=int(max_pixels) if max_pixels is not None else default_max_pixels(),
        layout=truth.kind if single else "",
        convention=_convention(truth) if single else "",
    )
    if not singles:
        _check_predictions_match(pred_dir, pred_split, split, stem_set)
    problems: list[Problem] = [*truth.problems, *single_problems]
    # single-matte benchmarks: <stem>.png at the top of PRED_DIR; instance folders fill in the stems they lack
    if not pred_split.is_dir() and not single:
        problems.append(Problem(str(pred_split), f"no prediction folder for split {split!r}; every image is missed"))
    for entry in sorted(os.scandir(pred_split), key=lambda e: e.name) if pred_split.is_dir() else []:
        if single and pred_split == pred_dir and not entry.is_dir():
            continue  # the single mattes' own folder: its files were checked by single_prediction_files
        if entry.is_dir() and entry.name not in stem_set:
            problems.append(Problem(entry.path, "extra prediction folder with no ground-truth image; ignored"))
        elif not entry.is_dir() and entry.name != "scores.json":
            problems.append(Problem(entry.path, "unexpected file (expected one folder per image); ignored"))

    def tasks() -> Iterator:
        for item in truth.items():
            if single and item.stem in singles:
                yield item, str(singles[item.stem]), config
                continue
            yield item, str(pred_split / item.stem), config

    accumulator = IMQAccumulator(config.thresholds)
    classic_stat = _classic_stat() if single else None
    records, stats = [], {}
    bar = tqdm(total=len(truth.stems), desc=f"evaluate {split}", unit="img", disable=not progress)
    with bar:
        outcomes = map_tasks(_evaluate_task, tasks(), workers=workers, ordered=True, initializer=_init_worker,
                             on_crash=_worker_died, engine=engine, ray_address=ray_address)
        for _, outcome in outcomes:
            records.append(outcome.record)
            problems.extend(outcome.problems)
            if outcome.stats is not None:
                accumulator += outcome.stats
                stats[outcome.stem] = outcome.stats
            if classic_stat is not None and outcome.classic is not None:
                classic_stat.update(outcome.classic)
            bar.update(1)
    scored = {record["stem"] for record in records}
    for stem in truth.stems:
        if stem not in scored:  # a safety net: every listed id gets an item, a bad row one that reports why
            problems.append(Problem(f"{truth.root}#{stem}", "ground truth: row could not be read; image not scored"))
    summary = accumulator.summary()
    units = None
    if classic_stat is not None:
        from himbench.metrics.classic import UNITS

        means = classic_stat.result()
        summary.update({("classic_images" if k == "images" else k): v for k, v in means.items()})
        units = dict(UNITS[config.convention])
    return EvaluationResult(
        config=config,
        records=records,
        summary=summary,
        problems=problems,
        accumulator=accumulator,
        stats=stats,
        units=units,
    )


def _convention(truth: GroundTruth) -> str:
    from himbench.layouts import get_layout

    return get_layout(truth.kind).convention or "p3m"


def _classic_stat():
    from himbench.metrics.classic import ClassicStat

    return ClassicStat()
