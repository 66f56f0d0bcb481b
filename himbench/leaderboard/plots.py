"""Leaderboard figures: accuracy versus latency, latency versus number of instances, and the qualitative grid.

matplotlib is imported inside each function (through :mod:`himbench.plotting`) so rendering tables stays light.
Each figure draws at most :data:`DEFAULT_PLOT_ROWS` labelled points or lines (the best by the accuracy metric), so
its cost does not grow with the CSV: matplotlib lays out every label and legend entry, which made a 1,000-row CSV
take half a minute.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from himbench.bench.results import LATENCY_COUNTS
from himbench.leaderboard.tables import RANK_METRIC, column_values, is_trained, parse_number, rank_rows
from himbench.metrics.table import higher_is_better, metric_key

__all__ = [
    "DEFAULT_PLOT_ROWS",
    "colourise",
    "plot_accuracy_vs_latency",
    "plot_latency_vs_instances",
    "plot_qualitative",
]

# Rows a figure labels (scatter) or draws as lines: a legend of thousands is neither readable nor fast to lay out.
DEFAULT_PLOT_ROWS = 15


def _save(fig, path: str | Path) -> Path:
    from himbench.plotting import save_figure

    return save_figure(fig, path, dpi=120)


def plot_accuracy_vs_latency(
    rows: Sequence[dict], path: str | Path, metric: str = RANK_METRIC, limit: int = DEFAULT_PLOT_ROWS
) -> Path:
    """Scatter of ``metric`` against mean latency per image, labelled by method; latency on a log axis. The best
    ``limit`` rows by ``metric`` (:func:`~himbench.leaderboard.rank_rows`) get their own colour and label; any
    others are drawn together as one grey, unlabelled layer, so the figure's cost stays bounded however long the
    CSV is."""
    from himbench.plotting import new_figure

    latency, accuracy = column_values(rows, "latency_ms"), column_values(rows, metric)
    usable = np.flatnonzero(~np.isnan(accuracy) & (latency > 0))  # NaN > 0 is False
    labelled = sorted(usable[rank_rows([rows[i] for i in usable], metric, limit)].tolist())
    others = np.setdiff1d(usable, labelled)
    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    if len(others):
        # one collection for all of them: matplotlib's cost is per artist, not per point
        ax.scatter(latency[others], accuracy[others], s=6, color="0.7", marker=".")
    for i in labelled:
        x, y = float(latency[i]), float(accuracy[i])
        ax.scatter([x], [y], marker="o" if is_trained(rows[i]) else "x")
        ax.annotate(rows[i].get("method", "?"), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("mean latency per image (ms, log scale)")
    better = {True: " (higher is better)", False: " (lower is better)"}.get(higher_is_better(metric), "")
    ax.set_ylabel(f"{metric}{better}")
    shown = "" if not len(others) else f"; labelled: best {len(labelled)} of {len(usable)}"
    ax.set_title(f"Accuracy versus latency (x: untrained{shown})")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_latency_vs_instances(
    rows: Sequence[dict], path: str | Path, metric: str = RANK_METRIC, limit: int = DEFAULT_PLOT_ROWS
) -> Path:
    """Latency against the number of people in a synthetic probe image, one line per row (method + environment),
    for at most ``limit`` rows: the best by ``metric`` among those with probe latencies (one line and one legend
    entry each, so more would be unreadable and slow)."""
    from himbench.plotting import new_figure

    def probe(row: dict) -> list[tuple[int, float]]:
        points = [(n, parse_number(row.get(metric_key("latency_ms_n", n=n)))) for n in LATENCY_COUNTS]
        return [(n, v) for n, v in points if v is not None]

    # walk the rows best first and stop at ``limit`` with probe points: the rest are never parsed
    chosen, available = [], 0
    for i in rank_rows(rows, metric):
        if len(chosen) == limit:
            break
        if points := probe(rows[i]):
            chosen.append((i, points))
    if len(chosen) == limit:
        available = sum(1 for row in rows
                        if any(row.get(metric_key("latency_ms_n", n=n)) not in (None, "") for n in LATENCY_COUNTS))
    chosen.sort()
    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    environments = {row.get("environment", "") for row in rows}
    for i, points in chosen:
        row = rows[i]
        label = str(row.get("method", "?")) + (f" ({row.get('environment')})" if len(environments) > 1 else "")
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel("people in the image (synthetic 640 x 640 probe)")
    ax.set_ylabel("latency (ms, best of repeats)")
    ax.set_yscale("log")
    ax.set_xticks(list(LATENCY_COUNTS))
    more = f" (best {len(chosen)} of {available} by {metric})" if available > len(chosen) else ""
    ax.set_title("Latency versus number of instances" + more)
    ax.grid(True, alpha=0.3)
    if chosen:
        ax.legend(fontsize=8)
    return _save(fig, path)


_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
     [210, 245, 60], [250, 190, 190], [0, 128, 128]],
    dtype=np.float32,
)


def colourise(image: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The photo dimmed, with each instance's matte painted in its own colour (uint8 HxWx3)."""
    base = image.astype(np.float32) * 0.35
    for k, alpha in enumerate(alphas):
        colour = _PALETTE[k % len(_PALETTE)]
        base = base * (1 - 0.65 * alpha[..., None]) + 0.65 * alpha[..., None] * colour
    return np.clip(base, 0, 255).astype(np.uint8)


def plot_qualitative(image: np.ndarray, panels: Sequence[tuple[str, np.ndarray | None, str]], path: str | Path) -> Path:
    """Grid: the photo, then one panel per method: ``(title, alphas (N,H,W) or None, note)``; None shows the note
    (e.g. why the method could not run)."""
    from himbench.plotting import new_figure

    count = len(panels) + 1
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = new_figure((3.2 * cols, 3.2 * rows * image.shape[0] / image.shape[1] + 0.4))
    axes = fig.subplots(rows, cols)
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    for ax, (title, alphas, note) in zip(axes[1:], panels, strict=False):
        if alphas is None:
            ax.imshow(np.full_like(image, 255))
            ax.text(0.5, 0.5, textwrap.fill(note, 28), ha="center", va="center", fontsize=8, transform=ax.transAxes)
        else:
            ax.imshow(colourise(image, alphas))
        ax.set_title(f"{title}\n{note}" if alphas is not None and note else title, fontsize=9)
    for ax in axes:
        ax.axis("off")
    return _save(fig, path)
