"""Render the leaderboard CSV (``leaderboard/results.csv``, written by ``himbench bench``) as Markdown, LaTeX and plots.

Tables are grouped by (data, split, environment): accuracy is comparable across rows of the same data and split, and
cost only within one environment. In each table the best value of every column is bold, the direction coming from
the metric (:func:`metric_direction`: IMQ, RQ, MQ, PQ higher is better; errors, latency, memory and parameter count
lower is better). Accuracy of a learned method that ran with random weights (``trained`` False) is shown but never
marked best, and such rows carry a dagger.

Plots: accuracy versus mean latency (one point per method), latency versus number of instances (one line per method,
from the synthetic 1..10-person probe), and a qualitative grid of one real photograph through every method.

Published numbers (``leaderboard/published.csv``, :func:`read_published`) are never mixed into those tables. They get
their own "Compare with the papers" tables, one per paper table (metric set), where every row is marked
``published`` or ``measured`` and says its benchmark or data, protocol (masks, image size) and environment; measured
rows appear there in the paper's units (:mod:`himbench.metrics.paper_units`), and only metric sets that have a
documented mapping get measured rows. :func:`render_html` puts all of it in one self-contained web page.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from himbench.bench.results import LATENCY_COUNTS, read_csv_rows, read_results

__all__ = [
    "ACCURACY_COLUMNS",
    "INSTANCE_COLUMNS",
    "PUBLISHED_COLUMNS",
    "PUBLISHED_REQUIRED",
    "best_indices",
    "comparison_groups",
    "colourise",
    "group_rows",
    "method_spec",
    "metric_direction",
    "plot_accuracy_vs_latency",
    "plot_latency_vs_instances",
    "plot_qualitative",
    "render",
    "render_latex",
    "render_comparison_latex",
    "render_comparison_markdown",
    "render_html",
    "render_markdown",
    "read_published",
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


def render(csv_path: str | Path, fmt: str = "markdown", published: str | Path | None = None) -> str:
    """Read the leaderboard CSV (and ``published``, the published-numbers CSV, if given) and render it as
    ``"markdown"``, ``"latex"`` or ``"html"`` (the self-contained page, without plots)."""
    rows = read_results(csv_path)
    paper_rows = read_published(published) if published else []
    if fmt == "markdown":
        return render_markdown(rows) + (("\n" + render_comparison_markdown(paper_rows, rows)) if paper_rows else "")
    if fmt == "latex":
        return render_latex(rows) + (("\n" + render_comparison_latex(paper_rows, rows)) if paper_rows else "")
    if fmt == "html":
        return render_html(rows, paper_rows)
    raise ValueError(f"unknown format {fmt!r}; use 'markdown', 'latex' or 'html'")


# -------------------------------------------------------------------------------------------- published vs measured
# Columns of published.csv that every row must fill: where the number comes from and how it was measured.
PUBLISHED_REQUIRED: tuple[str, ...] = (
    "method", "benchmark", "metric_set", "paper", "arxiv_id", "table", "source_url", "hand", "protocol_masks",
    "protocol_size", "weights_licence",
)
# Per metric set: (title, [(published column, measured column or None, header)], note).
PUBLISHED_COLUMNS: dict[str, tuple[str, list[tuple[str, str | None, str]], str]] = {
    "maggie-table5": (
        "MaGGIe Table 5 (HIM2K + M-HIM2K), in MaGGIe's units",
        [("MAD", "maggie_MAD", "MAD"), ("MSE", "maggie_MSE", "MSE"), ("Grad", "maggie_Grad", "Grad"),
         ("Conn", "maggie_Conn", "Conn"), ("MADf", None, "MADf"), ("MADu", None, "MADu")],
        "Units of MaGGIe's released evaluation code (maggie/utils/metric.py): MAD and MSE are per-pixel means x 1e10 "
        "/ (H*W) of the original image, Grad and Conn sums / 1000, Grad min-max normalised over all instances of an "
        "image together; lower is better. Published values are the mean over the ten M-HIM2K mask sets, (std) over "
        "sets. Measured rows use the same formulas (himbench.metrics.paper_units) on the data named in the row: "
        "they are comparable with a published row only when benchmark, subset and protocol match. MADf/MADu are "
        "not reproduced.",
    ),
    "e2ehim-readme": (
        "E2E-HIM README (HIM-100K)",
        [("EMSE", None, "EMSE"), ("EMAD", None, "EMAD")],
        "EMSE and EMAD are printed by the authors without a definition and no code computes them: no measured row "
        "can be put in these units.",
    ),
}
_KIND_MARK = {"published": "published", "measured": "measured"}


def read_published(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``published.csv`` (``#`` lines are comments); raises ValueError when a row lacks a source or protocol
    column of :data:`PUBLISHED_REQUIRED` (a published number without its source is not shown)."""
    rows = read_csv_rows(path, comments=True)
    for index, row in enumerate(rows, start=1):
        missing = [c for c in PUBLISHED_REQUIRED if not (row.get(c) or "").strip()]
        if missing:
            raise ValueError(f"{path}: data row {index} ({row.get('method', '?')}) lacks {', '.join(missing)}")
    return rows


def _with_std(row: dict, column: str) -> str:
    value = _number(row.get(column))
    if value is None:
        return "–"
    std = _number(row.get(f"{column}_std"))
    return f"{value:.2f}" + (f" ({std:.1f})" if std is not None else "")


def comparison_groups(published: Sequence[dict], measured: Sequence[dict]) -> list[dict[str, Any]]:
    """One group per metric set with published rows: ``{"metric_set", "title", "note", "headers", "rows"}``, rows
    as dicts with ``kind`` ("published" / "measured"), ``method``, ``benchmark``, ``subset``, ``protocol``,
    ``environment``, ``source``, ``command`` and one formatted cell per metric (published first, then measured rows
    that have values in these units)."""
    groups = []
    for metric_set in dict.fromkeys(r.get("metric_set", "") for r in published):
        title, columns, note = PUBLISHED_COLUMNS.get(
            metric_set, (metric_set, [], "No mapping from himbench's metrics to this table is documented."))
        if not columns:  # unknown metric set: show every numeric column the rows fill
            numeric = [c for c in (published[0].keys() if published else []) if c.isupper() and not c.endswith("_std")]
            columns = [(c, None, c) for c in numeric]
        table_rows = []
        for row in (r for r in published if r.get("metric_set", "") == metric_set):
            source = f"{row.get('paper', '')}, arXiv {row.get('arxiv_id', '')}, {row.get('table', '')}"
            if row.get("hand") == "reported" and row.get("reported_by"):
                source += f" (reported by {row['reported_by']})"
            table_rows.append({
                "kind": "published",
                "method": f"{row.get('method', '?')} ({row.get('variant', '')})".replace(" ()", ""),
                "benchmark": row.get("benchmark", ""), "subset": row.get("subset", ""),
                "protocol": f"{row.get('protocol_masks', '')}; {row.get('protocol_size', '')}",
                "environment": "paper", "source": source, "url": row.get("source_url", ""),
                "command": "", "cells": [_with_std(row, column) for column, _, _ in columns],
                "values": [_number(row.get(column)) for column, _, _ in columns],
            })
        for row in measured:
            if not any(m and _number(row.get(m)) is not None for _, m, _ in columns):
                continue
            protocol = []
            if row.get("mask_set") or row.get("guidance"):
                protocol.append(f"masks: {row.get('mask_set') or row.get('guidance')}")
            protocol.append(f"size: {row.get('size_protocol') or 'native'}")
            cells, values = [], []
            for _column, mapped, _ in columns:
                value = _number(row.get(mapped)) if mapped else None
                std = _number(row.get(f"{mapped}_std")) if mapped else None
                values.append(value)
                cells.append("–" if value is None else f"{value:.2f}" + (f" ({std:.1f})" if std is not None else ""))
            table_rows.append({
                "kind": "measured", "method": row.get("method", "?") + ("" if _trained(row) else " †"),
                "benchmark": row.get("data", ""), "subset": row.get("split", ""), "protocol": "; ".join(protocol),
                "environment": row.get("environment", ""), "source": "himbench bench", "url": "",
                "command": row.get("command", ""), "cells": cells, "values": values,
            })
        groups.append({"metric_set": metric_set, "title": title, "note": note,
                       "headers": [header for _, _, header in columns], "rows": table_rows})
    return groups


def render_comparison_markdown(published: Sequence[dict], measured: Sequence[dict]) -> str:
    """Markdown "Compare with the papers" tables: published and measured rows, each marked, never bolded against
    each other (they come from different data unless benchmark, subset and protocol match)."""
    if not published:
        return ""
    parts = ["## Compare with the papers\n",
             "Rows marked **published** are numbers printed in papers (`leaderboard/published.csv`, with their "
             "source); rows marked **measured** were produced by `himbench bench` and converted to the paper's "
             "units.\n"]
    for group in comparison_groups(published, measured):
        parts.append(f"### {group['title']}\n")
        parts.append(group["note"] + "\n")
        header = ["Kind", "Method", "Benchmark / data", "Subset / split", "Protocol", "Environment",
                  *group["headers"], "Source"]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join([" --- "] * 6 + [" ---: "] * len(group["headers"]) + [" --- "]) + "|"]
        for row in group["rows"]:
            kind = f"**{row['kind']}**"
            source = f"[{row['source']}]({row['url']})" if row["url"] else row["source"]
            cells = [kind, row["method"], row["benchmark"], row["subset"] or "–", row["protocol"],
                     row["environment"], *row["cells"], source]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def render_comparison_latex(published: Sequence[dict], measured: Sequence[dict]) -> str:
    """LaTeX version of :func:`render_comparison_markdown` (one booktabs table per metric set)."""
    parts = []
    for group in comparison_groups(published, measured):
        columns = len(group["headers"])
        header = " & ".join(["Kind", "Method", "Data", "Subset", "Protocol", *map(_latex_escape, group["headers"])])
        body = [
            " & ".join(_latex_escape(c) for c in [row["kind"], row["method"], row["benchmark"], row["subset"] or "-",
                                                  row["protocol"], *row["cells"]]) + r" \\"
            for row in group["rows"]
        ]
        parts.append("\n".join([
            r"\begin{table}[t]", r"\centering",
            rf"\caption{{{_latex_escape(group['title'])}: published and measured rows (marked).}}",
            r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{lllll" + "r" * columns + "}", r"\toprule",
            header + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}}", r"\end{table}",
        ]))
    return "\n\n".join(parts) + ("\n" if parts else "")


# ------------------------------------------------------------------------------------------------------------ plots
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


def method_spec(row: dict) -> dict[str, Any]:
    """The ``create_method`` keyword arguments recorded in a row's ``spec`` column (``{}`` if absent)."""
    try:
        return dict(json.loads(row.get("spec") or "{}"))
    except ValueError:
        return {}



# ------------------------------------------------------------------------------------------------------------- HTML
_HTML_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;
padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f2f2;cursor:pointer;user-select:none}th.text,td.text{text-align:left}
td.text{white-space:normal;max-width:26em}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.published td{background:#fff8e1}tr.measured td{background:#eef6ff}
.kind{font-weight:600;text-transform:uppercase;font-size:11px}
tr.published .kind{color:#8a5a00}tr.measured .kind{color:#0b4f8a}
.best{font-weight:700}.note{color:#555;max-width:1100px}code{background:#f4f4f4;padding:1px 4px;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.legend span{display:inline-block;padding:2px 8px;margin-right:8px}
"""

_HTML_SCRIPT = """
(function(){
  function key(cell){
    var v = cell.getAttribute('data-value');
    if (v !== null && v !== '' && !isNaN(parseFloat(v))) return {num: true, v: parseFloat(v)};
    return {num: false, v: cell.textContent.trim().toLowerCase()};
  }
  function sortBy(th){
    var table = th.closest('table'), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    Array.prototype.forEach.call(th.parentNode.children, function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (x.num !== y.num) return x.num ? -1 : 1;  /* missing values last */
      var c = x.num ? x.v - y.v : (x.v < y.v ? -1 : x.v > y.v ? 1 : 0);
      return ascending ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable th').forEach(function(th){
    th.addEventListener('click', function(){ sortBy(th); });
  });
})();
"""


def _esc(text: Any) -> str:
    import html

    return html.escape("" if text is None else str(text), quote=True)


def _html_table(table_id: str, headers: Sequence[tuple[str, bool]], rows: Sequence[tuple[str, Sequence[tuple]]]) -> str:
    """A sortable table: ``headers`` = (title, is_text); each row = (css class, cells (html, sort value, is_text))."""
    head = "".join(f'<th class="{"text" if text else "num"}">{_esc(title)}</th>' for title, text in headers)
    body = []
    for css, cells in rows:
        tds = "".join(
            f'<td class="{"text" if text else "num"}{" best" if best else ""}"'
            f'{"" if value is None else f" data-value={chr(34)}{value}{chr(34)}"}>{content}</td>'
            for content, value, text, best in cells
        )
        body.append(f'<tr class="{css}">{tds}</tr>')
    return (f'<table class="sortable" id="{_esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _command_of(row: dict) -> str:
    if row.get("command"):
        return row["command"]
    spec = method_spec(row)
    return f"(not recorded: the row predates command recording; method spec {json.dumps(spec, sort_keys=True)})"


def render_html(
    measured: Sequence[dict],
    published: Sequence[dict] = (),
    images: dict[str, bytes] | None = None,
    title: str = "himbench leaderboard",
) -> str:
    """One self-contained HTML page (no external resource: CSS, JS and images inline): the measured tables per
    (data, split, environment), the "Compare with the papers" tables with every row marked published or measured,
    the plots and qualitative grid from ``images`` (name -> PNG bytes, embedded as base64 data URIs), and the command
    that produced each measured row (the method name links to it). Every table sorts by clicking a column header."""
    import base64

    images = images or {}
    commands: list[str] = []
    command_ids: dict[str, int] = {}

    def command_link(row: dict, text: str) -> str:
        command = _command_of(row)
        if command not in command_ids:
            command_ids[command] = len(commands)
            commands.append(command)
        return f'<a href="#cmd-{command_ids[command]}">{_esc(text)}</a>'

    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        '<p class="note">Generated by <code>himbench leaderboard --html</code> from '
        "<code>leaderboard/results.csv</code> (measured here) and <code>leaderboard/published.csv</code> "
        "(printed in papers). Click a column header to "
        "sort. Bold: best measured value of a column within its table.</p>",
        '<p class="legend"><span class="kind" style="background:#eef6ff;color:#0b4f8a">measured</span>'
        '<span class="kind" style="background:#fff8e1;color:#8a5a00">published</span></p>',
        "<h2>Measured</h2>",
    ]
    if not measured:
        parts.append("<p>No results yet: run <code>himbench bench</code>.</p>")
    for g, ((data, split, env), group) in enumerate(group_rows(measured).items()):
        parts.append(f"<h3>{_esc(data)} / {_esc(split)} on <code>{_esc(env)}</code></h3>")
        for t, (columns, caption) in enumerate(((ACCURACY_COLUMNS, "Instance-aware quality (x100) and cost"),
                                                (INSTANCE_COLUMNS, "Per-instance errors of matched instances"))):
            best = {column: best_indices(group, column) for column, _ in columns}
            headers = [("Kind", True), ("Method", True), ("Protocol", True),
                       *((header, False) for _, header in columns)]
            rows = []
            for i, row in enumerate(group):
                name = row.get("method", "?") + ("" if _trained(row) else " †")
                masks = row.get("mask_set") or row.get("guidance")
                protocol = (f"masks: {masks}; " if masks else "") + f"size: {row.get('size_protocol') or 'native'}"
                cells: list[tuple] = [('<span class="kind">measured</span>', None, True, False),
                                      (command_link(row, name), None, True, False), (_esc(protocol), None, True, False)]
                for column, _ in columns:
                    value = _number(row.get(column))
                    cells.append((_esc(_format(column, row.get(column))), value, False, i in best[column]))
                rows.append(("measured", cells))
            parts.append(f"<p class=\"note\">{_esc(caption)}.</p>")
            parts.append(_html_table(f"measured-{g}-{t}", headers, rows))
    if published:
        parts.append("<h2>Compare with the papers</h2>")
        parts.append('<p class="note">Published rows are numbers printed in papers, with their source; measured rows '
                     "come from <code>himbench bench</code>, converted to the paper's units. They are comparable only "
                     "when benchmark, subset and protocol match.</p>")
        for g, group in enumerate(comparison_groups(published, measured)):
            parts.append(f"<h3>{_esc(group['title'])}</h3><p class=\"note\">{_esc(group['note'])}</p>")
            headers = [("Kind", True), ("Method", True), ("Benchmark / data", True), ("Subset / split", True),
                       ("Protocol", True), ("Environment", True), *((h, False) for h in group["headers"]),
                       ("Source", True)]
            rows = []
            for row in group["rows"]:
                if row["kind"] == "measured":
                    method = command_link({"command": row["command"]}, row["method"]) if row["command"] else _esc(
                        row["method"])
                else:
                    method = _esc(row["method"])
                source = (f'<a href="{_esc(row["url"])}">{_esc(row["source"])}</a>' if row["url"]
                          else _esc(row["source"]))
                cells = [(f'<span class="kind">{_esc(row["kind"])}</span>', None, True, False),
                         (method, None, True, False), (_esc(row["benchmark"]), None, True, False),
                         (_esc(row["subset"] or "–"), None, True, False), (_esc(row["protocol"]), None, True, False),
                         (_esc(row["environment"]), None, True, False),
                         *((_esc(c), v, False, False) for c, v in zip(row["cells"], row["values"], strict=True)),
                         (source, None, True, False)]
                rows.append((row["kind"], cells))
            parts.append(_html_table(f"compare-{g}", headers, rows))
    shown = [(name, caption) for name, caption in (
        ("accuracy_vs_latency.png", "Accuracy versus latency"),
        ("latency_vs_instances.png", "Latency versus number of instances"),
        ("qualitative.png", "Qualitative grid: one real photograph through every method")) if name in images]
    if shown:
        parts.append("<h2>Plots</h2>")
        for name, caption in shown:
            data = base64.b64encode(images[name]).decode("ascii")
            parts.append(f"<h3>{_esc(caption)}</h3>"
                         f'<img alt="{_esc(caption)}" src="data:image/png;base64,{data}">')
    if commands:
        parts.append("<h2>Commands</h2><p class=\"note\">The command that produced each measured row.</p><ol>")
        parts.extend(f'<li id="cmd-{i}"><code>{_esc(c)}</code></li>' for i, c in enumerate(commands))
        parts.append("</ol>")
    parts.append(f"<script>{_HTML_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
