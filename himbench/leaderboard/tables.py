"""Measured leaderboard tables: column sets, best-value marking, row grouping, Markdown and LaTeX rendering.

The helpers ``_number``, ``_trained``, ``_format`` and ``_latex_escape`` are shared with the sibling modules of
:mod:`himbench.leaderboard` (package-internal, not part of the public API).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ACCURACY_COLUMNS",
    "INSTANCE_COLUMNS",
    "best_indices",
    "group_rows",
    "method_spec",
    "metric_direction",
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


def method_spec(row: dict) -> dict[str, Any]:
    """The ``create_method`` keyword arguments recorded in a row's ``spec`` column (``{}`` if absent)."""
    try:
        return dict(json.loads(row.get("spec") or "{}"))
    except ValueError:
        return {}


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
