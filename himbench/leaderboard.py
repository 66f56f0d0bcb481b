"""Render the leaderboard CSV (``leaderboard/results.csv``, written by ``himbench bench``) as Markdown, LaTeX and plots.

Tables are grouped by (data, split, environment): accuracy is comparable across rows of the same data and split, and
cost only within one environment. In each table the best value of every column is bold, the direction coming from
the metric (:func:`metric_direction`: IMQ, RQ, MQ, PQ higher is better; errors, latency, memory and parameter count
lower is better). Accuracy of a learned method that ran with random weights (``trained`` False) is shown but never
marked best, and such rows carry a dagger.

Plots: accuracy versus mean latency (one point per method), latency versus number of instances (one line per method,
from the synthetic 1..10-person probe), and a qualitative grid of one real photograph through every method.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from himbench.bench.results import LATENCY_COUNTS, read_results

__all__ = [
    "ACCURACY_COLUMNS",
    "INSTANCE_COLUMNS",
    "best_indices",
    "colourise",
    "group_rows",
    "method_spec",
    "metric_direction",
    "plot_accuracy_vs_latency",
    "plot_latency_vs_instances",
    "plot_qualitative",
    "render",
    "render_latex",
    "render_markdown",
]

# (CSV column, header) of the two tables; the instance-error table follows MaGGIe's per-instance convention.
ACCURACY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("IMQ_mad@0.5", "IMQ-mad"),
    ("IMQ_mse@0.5", "IMQ-mse"),
    ("IMQ_grad@0.5", "IMQ-grad"),
    ("IMQ_conn@0.5", "IMQ-conn"),
    ("RQ@0.5", "RQ"),
    ("MQ_mad@0.5", "MQ-mad"),
    ("IMQ_mad@0.75", "IMQ-mad@.75"),
    ("RQ@0.75", "RQ@.75"),
    ("params", "Params (M)"),
    ("latency_ms", "ms / image"),
    ("latency_ms_n6", "ms @ 6 people"),
    ("peak_mem_mb", "Peak MiB"),
)
INSTANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("inst_SAD", "SAD"),
    ("inst_MSE", "MSE"),
    ("inst_MAD", "MAD"),
    ("inst_Grad", "Grad"),
    ("inst_Conn", "Conn"),
    ("inst_count", "matched"),
)
_COST = ("latency", "peak_mem", "params")


def metric_direction(column: str) -> str | None:
    """``"max"`` (higher is better), ``"min"`` (lower is better) or ``None`` (a count, not a score)."""
    name = column.lower()
    if name.startswith(("imq", "rq", "mq", "pq")):
        return "max"
    if name.startswith("inst_") and name != "inst_count":
        return "min"
    if name.startswith(_COST) or name in {"sad", "mse", "mad", "grad", "conn"}:
        return "min"
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _trained(row: dict) -> bool:
    return str(row.get("trained", "True")).lower() not in ("false", "0", "no")


def best_indices(rows: Sequence[dict], column: str) -> set[int]:
    """Indices of the rows holding the best value of ``column`` (all of them on a tie); empty if no direction.
    Accuracy columns ignore untrained rows."""
    direction = metric_direction(column)
    if direction is None:
        return set()
    is_cost = column.startswith(_COST)
    values = {
        i: v for i, row in enumerate(rows) if (v := _number(row.get(column))) is not None and (is_cost or _trained(row))
    }
    if not values:
        return set()
    best = max(values.values()) if direction == "max" else min(values.values())
    return {i for i, v in values.items() if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}


def group_rows(rows: Sequence[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Rows by (data, split, environment), in first-seen order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("data", ""), row.get("split", ""), row.get("environment", "")), []).append(row)
    return groups


def _format(column: str, value: Any) -> str:
    number = _number(value)
    if number is None:
        return "–" if value in (None, "") else str(value)
    if column == "params":
        return f"{number / 1e6:.2f}"
    if column.startswith(("latency", "peak_mem")):
        return f"{number:.1f}"
    if column == "inst_count":
        return f"{number:.0f}"
    return f"{number:.2f}"


def _cells(rows: Sequence[dict], columns: Sequence[tuple[str, str]], bold) -> list[list[str]]:
    best = {column: best_indices(rows, column) for column, _ in columns}
    table = []
    for i, row in enumerate(rows):
        name = row.get("method", "?") + ("" if _trained(row) else " †")
        cells = [name]
        for column, _ in columns:
            text = _format(column, row.get(column))
            cells.append(bold(text) if i in best[column] else text)
        table.append(cells)
    return table


def _markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    header = ["Method", *(title for _, title in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(columns)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows, columns, lambda t: f"**{t}**")]
    return "\n".join(lines)


def render_markdown(rows: Sequence[dict]) -> str:
    """Markdown tables (accuracy + cost, then per-instance errors), one pair per (data, split, environment)."""
    if not rows:
        return "_No results yet: run `himbench bench`._\n"
    parts = []
    for (data, split, env), group in group_rows(rows).items():
        parts.append(f"### {data} / {split} on `{env}`\n")
        parts.append(
            "Instance-aware quality (x100, IoU 0.5 unless marked; higher is better) and cost (lower is better). "
            "Bold: best in column.\n"
        )
        parts.append(_markdown_table(group, ACCURACY_COLUMNS) + "\n")
        parts.append("Per-instance errors of matched instances (whole image; SAD/1000, MSE x1000, MAD x1000, "
                     "Grad/1000, Conn/1000; lower is better).\n")
        parts.append(_markdown_table(group, INSTANCE_COLUMNS) + "\n")
        if any(r.get("guidance") for r in group):
            parts.append(
                "Mask-guided rows (guidance not empty) are handed masks made from the ground truth (`gt`: binarised "
                "at 0.5; `gt+erode` etc.: perturbed, see `himbench bench --help`): an oracle first stage, so they "
                "bound a two-stage system from above. `seg-refine` is the full two-stage pipeline with a learned "
                "segmenter.\n"
            )
        if any(not _trained(r) for r in group):
            parts.append("† ran with random weights (no checkpoint): accuracy not meaningful, never marked best.\n")
    return "\n".join(parts)


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("†", r"$^\dagger$")):
        text = text.replace(char, escaped)
    return text


def _latex_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]], caption: str) -> str:
    header = " & ".join(["Method", *(_latex_escape(title) for _, title in columns)]) + r" \\"
    body = [
        " & ".join(_latex_escape(c) if not c.startswith(r"\textbf") else c for c in cells) + r" \\"
        for cells in _cells(rows, columns, lambda t: rf"\textbf{{{t}}}")
    ]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_escape(caption)}}}",
            r"\resizebox{\linewidth}{!}{%",
            r"\begin{tabular}{l" + "r" * len(columns) + "}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}}",
            r"\end{table}",
        ]
    )


def render_latex(rows: Sequence[dict]) -> str:
    """LaTeX (booktabs) tables, same content and bold marking as :func:`render_markdown`."""
    parts = ["% Generated by `himbench leaderboard` from leaderboard/results.csv; needs \\usepackage{booktabs}."]
    for (data, split, env), group in group_rows(rows).items():
        where = f"{data} / {split}, {env}"
        parts.append(_latex_table(group, ACCURACY_COLUMNS, f"Instance matting quality and cost ({where})."))
        parts.append(_latex_table(group, INSTANCE_COLUMNS, f"Per-instance errors of matched instances ({where})."))
    return "\n\n".join(parts) + "\n"


def render(csv_path: str | Path, fmt: str = "markdown") -> str:
    """Read the leaderboard CSV and render it as ``"markdown"`` or ``"latex"``."""
    rows = read_results(csv_path)
    if fmt == "markdown":
        return render_markdown(rows)
    if fmt == "latex":
        return render_latex(rows)
    raise ValueError(f"unknown format {fmt!r}; use 'markdown' or 'latex'")


# ------------------------------------------------------------------------------------------------------------ plots
def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    import io

    from himbench.io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _figure().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_accuracy_vs_latency(rows: Sequence[dict], path: str | Path, metric: str = "IMQ_mad@0.5") -> Path:
    """Scatter of ``metric`` against mean latency per image, one point per row, labelled by method and
    environment; latency on a log axis."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
    plt = _figure()
    count = len(panels) + 1
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows * image.shape[0] / image.shape[1] + 0.4))
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


def method_spec(row: dict) -> dict[str, Any]:
    """The ``create_method`` keyword arguments recorded in a row's ``spec`` column (``{}`` if absent)."""
    try:
        return dict(json.loads(row.get("spec") or "{}"))
    except ValueError:
        return {}

