"""Leaderboard figures: accuracy versus latency, latency versus number of instances, and the qualitative grid.

matplotlib is imported inside each function (through :mod:`himbench.plotting`) so rendering tables stays light.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from himbench.bench.results import LATENCY_COUNTS
from himbench.leaderboard.tables import _number, _trained

__all__ = ["colourise", "plot_accuracy_vs_latency", "plot_latency_vs_instances", "plot_qualitative"]


def _save(fig, path: str | Path) -> Path:
    from himbench.plotting import save_figure

    return save_figure(fig, path, dpi=120)


def plot_accuracy_vs_latency(rows: Sequence[dict], path: str | Path, metric: str = "IMQ_mad@0.5") -> Path:
    """Scatter of ``metric`` against mean latency per image, one point per row, labelled by method and
    environment; latency on a log axis."""
    from himbench.plotting import new_figure

    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    for row in rows:
        x, y = _number(row.get("latency_ms")), _number(row.get(metric))
        if x is None or y is None or x <= 0:
            continue
        marker = "o" if _trained(row) else "x"
        ax.scatter([x], [y], marker=marker)
        ax.annotate(row.get("method", "?"), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("mean latency per image (ms, log scale)")
    ax.set_ylabel(f"{metric} (higher is better)")
    ax.set_title("Accuracy versus latency (x: untrained)")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_latency_vs_instances(rows: Sequence[dict], path: str | Path) -> Path:
    """Latency against the number of people in a synthetic probe image, one line per row (method + environment)."""
    from himbench.plotting import new_figure

    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    environments = {row.get("environment", "") for row in rows}
    for row in rows:
        points = [(n, _number(row.get(f"latency_ms_n{n}"))) for n in LATENCY_COUNTS]
        points = [(n, v) for n, v in points if v is not None]
        if not points:
            continue
        label = row.get("method", "?") + (f" ({row.get('environment')})" if len(environments) > 1 else "")
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel("people in the image (synthetic 640 x 640 probe)")
    ax.set_ylabel("latency (ms, best of repeats)")
    ax.set_yscale("log")
    ax.set_xticks(list(LATENCY_COUNTS))
    ax.set_title("Latency versus number of instances")
    ax.grid(True, alpha=0.3)
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
