"""Optional evaluation plots (``himbench evaluate --plot``): the error distribution and the worst images.

Drawn with :mod:`himbench.plotting` (matplotlib's object API on an Agg canvas: no global backend, no windows).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from himbench.evaluation.ground_truth import GroundTruth, open_ground_truth
from himbench.evaluation.runner import EvaluationResult
from himbench.metrics.table import metric_key
from himbench.plotting import new_figure, save_figure
from himbench.predictions.reader import read_prediction_folder

__all__ = ["instance_colour_map", "write_plots"]

_PALETTE = np.array(
    [
        [0.12, 0.47, 0.71],
        [1.00, 0.50, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
        [0.74, 0.74, 0.13],
        [0.09, 0.75, 0.81],
    ]
)
_UNMATCHED = np.array([0.6, 0.6, 0.6])


def instance_colour_map(alphas: np.ndarray, colour_index: list[int | None]) -> np.ndarray:
    """RGB float image: each matte painted in its palette colour (None: grey), weighted by alpha, on black."""
    canvas = np.zeros((*alphas.shape[1:], 3), dtype=np.float32)
    for alpha, index in zip(alphas, colour_index, strict=True):
        colour = _UNMATCHED if index is None else _PALETTE[index % len(_PALETTE)]
        canvas += alpha[:, :, None] * colour[None, None, :].astype(np.float32)
    return np.clip(canvas, 0, 1)


def _save(figure, path: Path) -> Path:
    return save_figure(figure, path, dpi=100)


def _error_distribution(result: EvaluationResult, path: Path) -> Path:
    tag = f"{result.config.thresholds[0]:g}"
    key = metric_key("IMQ", "mad", tag)
    per_image = [r[key] for r in result.records if key in r]
    per_instance = [p.MAD for stats in result.stats.values() for p in stats.pairs]
    figure = new_figure((11, 4))
    left, right = figure.subplots(1, 2)
    left.hist(per_image, bins=20, range=(0, 100), color="#1f77b4")
    left.set_xlabel(f"per-image IMQ_mad @ IoU {tag} (x100)")
    left.set_ylabel("images")
    left.set_title(f"{len(per_image)} images")
    right.hist(per_instance, bins=30, color="#ff7f0e")
    right.set_xlabel("per-instance MAD, whole image (x1000)")
    right.set_ylabel("matched instances")
    right.set_title(f"{len(per_instance)} matched instances")
    return _save(figure, path)


def _worst_images(result: EvaluationResult, truth: GroundTruth, path: Path, count: int) -> Path | None:
    key = metric_key("IMQ", "mad", result.config.thresholds[0])
    scored = [r for r in result.records if key in r and r.get("num_gt", 0) + r.get("num_pred", 0)]
    worst = sorted(scored, key=lambda r: (r[key], r["stem"]))[:count]
    if not worst:
        return None
    figure = new_figure((12, 3.2 * len(worst)))
    axes = np.atleast_2d(figure.subplots(len(worst), 3))
    pred_split = Path(result.config.pred_split_dir)
    for row, record in zip(axes, worst, strict=True):
        stem = record["stem"]
        item = truth.item(stem)
        gt_alphas, _ = item.load() if item is not None else (None, [])
        if gt_alphas is None:
            continue
        shape = gt_alphas.shape[1:]
        folder = pred_split / stem
        pred_alphas = read_prediction_folder(folder, shape).alphas if folder.is_dir() else gt_alphas[:0]
        stats = result.stats.get(stem)
        matched = {p.pred_index: p.gt_index for p in stats.pairs} if stats else {}
        if len(pred_alphas) != (stats.num_pred if stats else 0):
            matched = {}  # folder changed since scoring: show without colour matching
        photo = truth.image(stem)
        row[0].imshow(photo if photo is not None else np.zeros((*shape, 3)))
        row[0].set_title(f"{stem}: IMQ_mad {record[key]:.1f}", fontsize=9)
        row[1].imshow(instance_colour_map(gt_alphas, list(range(len(gt_alphas)))))
        row[1].set_title(f"ground truth ({len(gt_alphas)})", fontsize=9)
        row[2].imshow(instance_colour_map(pred_alphas, [matched.get(i) for i in range(len(pred_alphas))]))
        row[2].set_title(f"prediction ({len(pred_alphas)}; grey = unmatched)", fontsize=9)
        for axis in row:
            axis.axis("off")
    return _save(figure, path)


def _bars(axis, buckets: list[dict], keys: list[str], title: str, ylabel: str) -> None:
    """Grouped bars of ``keys`` per bucket, with the bootstrap intervals as error bars where there are any."""
    x = np.arange(len(buckets))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        values = np.array([b.get(key) if b.get(key) is not None else np.nan for b in buckets], dtype=float)
        low = np.array([b.get("intervals", {}).get(key, {}).get("low", v) for b, v in zip(buckets, values,
                                                                                         strict=True)], dtype=float)
        high = np.array([b.get("intervals", {}).get(key, {}).get("high", v) for b, v in zip(buckets, values,
                                                                                           strict=True)], dtype=float)
        errors = np.nan_to_num(np.stack([values - low, high - values]), nan=0.0).clip(min=0)
        axis.bar(x + (k - (len(keys) - 1) / 2) * width, np.nan_to_num(values), width, yerr=errors, capsize=3,
                 label=key, color=_PALETTE[k % len(_PALETTE)])
    axis.set_xticks(x)
    axis.set_xticklabels([b["label"] for b in buckets], fontsize=8)
    axis.set_ylim(0, 105)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)


def _breakdown_plot(breakdown: dict, path: Path) -> Path | None:
    """One panel per available stratum: recall by occlusion and by size, IMQ/RQ by crowd size (x100)."""
    panels = [(name, data) for name, data in breakdown.items() if data.get("available") and data.get("buckets")]
    if not panels:
        return None
    figure = new_figure((5 * len(panels), 3.8))
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for axis, (name, data) in zip(axes, panels, strict=True):
        buckets = data["buckets"]
        counts = ", ".join(str(b.get("num_gt", 0)) for b in buckets)
        if name == "people":
            tag = next((k.split("@")[1] for k in buckets[0] if k.startswith("RQ@")), "0.5")
            _bars(axis, buckets, [metric_key("IMQ", "mad", tag), metric_key("RQ", threshold=tag)],
                  f"by people per image (GT people: {counts})", "x100")
            axis.set_xlabel("ground-truth people in the image")
        else:
            recall = [metric_key("recall", threshold=t) for t in (0.5, 0.75)]
            _bars(axis, buckets, recall, f"by {name} (GT people: {counts})", "recall (%)")
            axis.set_xlabel("hidden fraction" if name == "occlusion" else "share of the image")
    return _save(figure, path)


def write_plots(
    result: EvaluationResult, out_dir: str | os.PathLike, *, worst: int = 8, truth: GroundTruth | None = None
) -> dict[str, Path]:
    """Write ``error_distribution.png`` and ``worst_images.png`` (the ``worst`` lowest per-image IMQ_mad), and
    ``breakdown.png`` when the result has a breakdown (with its intervals as error bars)."""
    out = Path(out_dir)
    truth = truth or open_ground_truth(result.config.gt, result.config.split)
    paths = {"error_distribution": _error_distribution(result, out / "error_distribution.png")}
    worst_path = _worst_images(result, truth, out / "worst_images.png", worst)
    if worst_path is not None:
        paths["worst_images"] = worst_path
    if result.breakdown:
        breakdown_path = _breakdown_plot(result.breakdown, out / "breakdown.png")
        if breakdown_path is not None:
            paths["breakdown"] = breakdown_path
    return paths
