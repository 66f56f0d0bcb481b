"""Scoring a prediction folder against ground truth, one image per task, in parallel across cores.

Functional core: :func:`evaluate_image` is pure given its inputs (ground-truth item, prediction folder, config) and
returns data; :func:`evaluate_folder` maps it over the split in worker processes, keeps the ground-truth order
(results are deterministic whatever the number of workers), and sums the per-image stats in that order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from himbench.evaluation.ground_truth import (
    FolderItem,
    GroundTruth,
    Problem,
    ShardItem,
    available_splits,
    open_ground_truth,
)
from himbench.evaluation.predictions import read_prediction_folder
from himbench.io import InputError
from himbench.metrics import DEFAULT_THRESHOLDS, IMQ_ERRORS, INSTANCE_ERRORS, ImageInstanceStats, IMQAccumulator
from himbench.metrics.imq import evaluate_instances

__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "ImageOutcome",
    "evaluate_folder",
    "evaluate_image",
    "resolve_split",
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
    spec: str = "SPEC s.2-4 (IMQ as InstMatt CVPR 2022; images without a prediction folder count as all FN)"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = list(self.thresholds)
        return data


@dataclass(frozen=True)
class ImageOutcome:
    """One image's result: a flat record for tables, its instance stats (None when the ground truth is bad)."""

    stem: str
    record: dict[str, Any]
    stats: ImageInstanceStats | None
    problems: tuple[Problem, ...]


@dataclass
class EvaluationResult:
    config: EvaluationConfig
    records: list[dict[str, Any]]  # one per ground-truth image, in ground-truth order
    summary: dict[str, float]
    problems: list[Problem]
    accumulator: IMQAccumulator
    stats: dict[str, ImageInstanceStats] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- per image
def _record(stem: str, status: str, stats: ImageInstanceStats | None, files: tuple[str, ...], thresholds) -> dict:
    record: dict[str, Any] = {"stem": stem, "status": status}
    if stats is None:
        return record
    summary = stats.summary(thresholds)
    record["num_gt"] = stats.num_gt
    record["num_pred"] = stats.num_pred
    for threshold in thresholds:
        tag = f"{threshold:g}"
        for key in ("TP", "FP", "FN", "RQ", *(f"IMQ_{n}" for n in IMQ_ERRORS)):
            record[f"{key}@{tag}"] = summary[f"{key}@{tag}"]
    record["mean_iou"] = sum(p.iou for p in stats.pairs) / len(stats.pairs) if stats.pairs else 0.0
    for name in INSTANCE_ERRORS:
        record[f"inst_{name}"] = summary[f"inst_{name}"]
    record["matches"] = [
        {"pred": files[p.pred_index], "gt_index": p.gt_index, "iou": p.iou}
        | {n: getattr(p, n) for n in INSTANCE_ERRORS}
        for p in stats.pairs
    ]
    return record


def evaluate_image(item: ShardItem | FolderItem, pred_folder: str | None, config: EvaluationConfig) -> ImageOutcome:
    """Score one image; every problem is returned, none is raised."""
    gt_alphas, problems = item.load()
    if gt_alphas is None:
        return ImageOutcome(item.stem, _record(item.stem, "bad_ground_truth", None, (), config.thresholds), None,
                            tuple(problems))
    shape = gt_alphas.shape[1:]
    status = "ok"
    files: tuple[str, ...] = ()
    if pred_folder is None or not Path(pred_folder).is_dir():
        missing = pred_folder or item.stem
        problems.append(Problem(missing, "missing prediction folder; all ground-truth instances count as missed"))
        pred_alphas = gt_alphas[:0]
        status = "missing"
    else:
        folder = read_prediction_folder(Path(pred_folder), shape, config.min_score)
        pred_alphas, files = folder.alphas, folder.files
        problems.extend(folder.problems)
        if folder.problems:
            status = "problems"
    stats = evaluate_instances(
        pred_alphas, gt_alphas, sigma=config.grad_sigma, conn_step=config.conn_step, conn_theta=config.conn_theta
    )
    return ImageOutcome(item.stem, _record(item.stem, status, stats, files, config.thresholds), stats, tuple(problems))


def _evaluate_task(task: tuple[ShardItem | FolderItem, str | None, EvaluationConfig]) -> ImageOutcome:
    return evaluate_image(*task)


# ------------------------------------------------------------------------------------------------- parallel map
def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one image per process; threads inside would oversubscribe the cores


def _pool_context() -> multiprocessing.context.BaseContext:
    # Never plain fork: a parent that already ran OpenCV/BLAS holds thread pools whose locks a forked child
    # inherits in a locked state, which deadlocks the child. forkserver forks from a clean single-threaded server
    # (cheap per worker once it has imported himbench); spawn where forkserver does not exist.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["himbench.evaluation.runner"])
        return context
    return multiprocessing.get_context("spawn")


def ordered_map(fn: Callable[[Any], Any], tasks: Iterable[Any], workers: int, window: int | None = None) -> Iterator:
    """``map(fn, tasks)`` over ``workers`` processes, results in task order, at most ``window`` tasks in flight
    (so a large split is never all in memory)."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    window = window or 4 * workers
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker) as pool:
        pending: deque[Future] = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def in_task_order(indexed: Iterable[tuple[int, Any]]) -> Iterator[Any]:
    """The results of ``himbench.engines.map_tasks`` (yielded as they finish) in task order."""
    waiting: dict[int, Any] = {}
    next_index = 0
    for index, result in indexed:
        waiting[index] = result
        while next_index in waiting:
            yield waiting.pop(next_index)
            next_index += 1


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
    address: str | None = None,
) -> EvaluationResult:
    """Score the predictions in ``pred_dir`` (``<split>/<stem>/<k>.png``) against ``gt`` (shards or HIM-2K layout).

    ``workers``: processes (default: all cores; 1 runs in this process). Workers start with ``forkserver`` (or
    ``spawn``), so a script calling this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    Bad files are reported in
    ``result.problems`` and never stop the run; an empty or missing prediction folder scores every image as missed.
    Raises :class:`himbench.io.InputError` only when the ground truth itself cannot be opened.
    """
    from tqdm.auto import tqdm

    pred_dir = Path(pred_dir)
    _, gt_splits = available_splits(gt)
    split = resolve_split(pred_dir, gt_splits, split)
    truth: GroundTruth = open_ground_truth(gt, split)
    stem_set = set(truth.stems)
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
    )
    problems: list[Problem] = list(truth.problems)
    if not pred_split.is_dir():
        problems.append(Problem(str(pred_split), f"no prediction folder for split {split!r}; every image is missed"))
    for entry in sorted(os.scandir(pred_split), key=lambda e: e.name) if pred_split.is_dir() else []:
        if entry.is_dir() and entry.name not in stem_set:
            problems.append(Problem(entry.path, "extra prediction folder with no ground-truth image; ignored"))
        elif not entry.is_dir() and entry.name != "scores.json":
            problems.append(Problem(entry.path, "unexpected file (expected one folder per image); ignored"))

    def tasks() -> Iterator:
        for item in truth.items():
            yield item, str(pred_split / item.stem), config

    accumulator = IMQAccumulator(config.thresholds)
    records, stats = [], {}
    bar = tqdm(total=len(truth.stems), desc=f"evaluate {split}", unit="img", disable=not progress)
    with bar:
        if engine == "local":
            outcomes = ordered_map(_evaluate_task, tasks(), workers)
        else:  # another engine (Ray): the same pure per-image calls, results put back in ground-truth order
            from himbench.engines import map_tasks

            outcomes = in_task_order(map_tasks(evaluate_image, list(tasks()), engine, workers, address))
        for outcome in outcomes:
            records.append(outcome.record)
            problems.extend(outcome.problems)
            if outcome.stats is not None:
                accumulator += outcome.stats
                stats[outcome.stem] = outcome.stats
            bar.update(1)
    scored = {record["stem"] for record in records}
    for stem in truth.stems:
        if stem not in scored:  # a shard that listed its ids but failed while reading the mattes
            problems.append(Problem(f"{truth.root}#{stem}", "ground truth: row could not be read; image not scored"))
    return EvaluationResult(
        config=config,
        records=records,
        summary=accumulator.summary(),
        problems=problems,
        accumulator=accumulator,
        stats=stats,
    )
