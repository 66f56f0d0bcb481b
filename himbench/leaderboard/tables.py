r"""Measured leaderboard tables: column sets, best-value marking, row grouping, Markdown and LaTeX rendering.

Every cell is escaped for its format (``markdown_escape``, ``latex_escape``): a method name is data from a
stranger's CSV, so a ``|`` must not move numbers under the wrong header and ``\input`` must not reach LaTeX.

Large CSVs: best values come from one pass over the rows (:func:`best_by_column`), and a table of more than
``max_rows`` rows shows only the best ``max_rows`` by :data:`RANK_METRIC` plus each column's best row
(:func:`shown_indices`), saying how many it left out; everything is linear (or n log k) in the number of rows.

Intervals: a row whose CSV has ``<metric>_lo`` and ``<metric>_hi`` (``himbench bench --bootstrap``: the 95% bootstrap
interval over images) shows ``value ± half-width`` in that column, and a value whose interval overlaps the interval
of the column's best value is marked ``‡`` (the intervals do not separate it from the best;
:func:`unseparated_by_column`, vectorised like :func:`best_by_column`). Rows without the two columns (published
numbers, older rows) are shown as before.

The cell helpers :func:`parse_number`, :func:`column_values`, :func:`is_trained`, :func:`format_with_interval`,
:func:`has_intervals` and :func:`latex_escape` are public: the HTML page, the plots and the published-comparison
tables (sibling modules of :mod:`himbench.leaderboard`) read and write cells through them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from himbench.metrics.table import HEADLINE_METRIC, metric_key
from himbench.metrics.table import direction as _table_direction
from himbench.metrics.table import resolve as resolve_metric

__all__ = [
    "ACCURACY_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "INSTANCE_COLUMNS",
    "RANK_METRIC",
    "TableView",
    "best_by_column",
    "best_indices",
    "column_values",
    "format_with_interval",
    "group_rows",
    "has_intervals",
    "is_trained",
    "latex_escape",
    "markdown_code",
    "markdown_escape",
    "method_spec",
    "metric_direction",
    "page_rows",
    "parse_number",
    "rank_rows",
    "render_latex",
    "render_markdown",
    "shown_indices",
    "table_views",
    "unseparated_by_column",
]

UNSEPARATED_MARK = "‡"
# {lo} / {hi}: the column names, as code (Markdown, HTML) or plain escaped text (LaTeX)
UNSEPARATED_NOTE = ("± is half the width of the 95% bootstrap interval over images (its bounds are in results.csv, "
                    "e.g. {lo} and {hi}). ‡: the value's interval overlaps the interval of the column's best value, "
                    "so the two are not separated (not shown to differ). Rows without intervals (published numbers, "
                    "older rows) are shown without ±.")

# (CSV column, header) of the two tables; the instance-error table follows MaGGIe's per-instance convention.
ACCURACY_COLUMNS: tuple[tuple[str, str], ...] = (
    (metric_key("IMQ", "mad", 0.5), "IMQ-mad"),
    (metric_key("IMQ", "mse", 0.5), "IMQ-mse"),
    (metric_key("IMQ", "grad", 0.5), "IMQ-grad"),
    (metric_key("IMQ", "conn", 0.5), "IMQ-conn"),
    (metric_key("RQ", threshold=0.5), "RQ"),
    (metric_key("MQ", "mad", 0.5), "MQ-mad"),
    (metric_key("IMQ", "mad", 0.75), "IMQ-mad@.75"),
    (metric_key("RQ", threshold=0.75), "RQ@.75"),
    ("params", "Params (M)"),
    ("latency_ms", "ms / image"),
    (metric_key("latency_ms_n", n=6), "ms @ 6 people"),
    ("peak_mem_mb", "Peak MiB"),
)
INSTANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    (metric_key("inst", "SAD"), "SAD"),
    (metric_key("inst", "MSE"), "MSE"),
    (metric_key("inst", "MAD"), "MAD"),
    (metric_key("inst", "Grad"), "Grad"),
    (metric_key("inst", "Conn"), "Conn"),
    ("inst_count", "matched"),
)
# Rows per table a page shows at most (far above any real leaderboard; a 100,000-row CSV is not a page), and the
# metric that picks them.
DEFAULT_MAX_ROWS = 500
RANK_METRIC = HEADLINE_METRIC


def _is_cost(column: str) -> bool:
    """Whether ``column`` is a cost (time, memory, size), which an untrained method may hold the best value of, as
    the table of metrics declares its ``kind``."""
    metric = resolve_metric(column)
    return metric is not None and metric.kind == "cost"


def metric_direction(column: str) -> str | None:
    """``"max"`` (higher is better), ``"min"`` (lower is better) or ``None`` (a count, text, or a column the table
    of metrics does not describe): as :data:`himbench.metrics.METRICS` declares it, not guessed from the name."""
    return _table_direction(column)


def parse_number(value: Any) -> float | None:
    """A results cell as a finite float, or None (empty, text, NaN or infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_trained(row: dict) -> bool:
    """False when the row says its method ran with random weights (``trained`` false/0/no); True otherwise."""
    return str(row.get("trained", "True")).lower() not in ("false", "0", "no")


def column_values(rows: Sequence[dict], column: str) -> np.ndarray:
    """``column`` of every row as float64, NaN where :func:`parse_number` gives None (missing, text, not finite). One
    vectorised conversion per column: a 100,000-row column costs tens of milliseconds, not a Python loop per cell."""
    raw = [row.get(column) for row in rows]
    try:  # the common case, every cell a number: float() in C, no Python-level loop
        values = np.fromiter(map(float, raw), dtype=np.float64, count=len(raw))
    except (TypeError, ValueError, OverflowError):  # an empty, text or odd cell: parse cell by cell
        values = np.array([math.nan if (n := parse_number(v)) is None else n for v in raw], dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def _trained_mask(rows: Sequence[dict]) -> np.ndarray:
    return np.fromiter((is_trained(row) for row in rows), dtype=bool, count=len(rows))


def rank_rows(rows: Sequence[dict], metric: str = RANK_METRIC, limit: int | None = None) -> list[int]:
    """Indices of the ``limit`` best rows by ``metric`` (all rows when ``limit`` is None), best first: trained rows
    with a value, then untrained rows with a value, then rows without one; ties in CSV order. One sort of numbers."""
    values = column_values(rows, metric)
    missing = np.isnan(values)
    tier = np.where(missing, 2, np.where(_trained_mask(rows), 0, 1))
    signed = np.where(missing, 0.0, -values if (metric_direction(metric) or "max") == "max" else values)
    order = np.lexsort((np.arange(len(rows)), signed, tier))  # last key is the primary one
    return order[: max(limit, 0) if limit is not None else None].tolist()


def best_by_column(rows: Sequence[dict], columns: Sequence[str]) -> dict[str, set[int]]:
    """:func:`best_indices` for every column at once, without rescanning rows per row: each column is converted to
    numbers once (:func:`column_values`), its best found with one reduction and its ties (``math.isclose``, relative
    1e-9) with one comparison. Linear in the number of cells."""
    result: dict[str, set[int]] = {column: set() for column in columns}
    directed = [(c, d) for c in result if (d := metric_direction(c)) is not None]
    if not directed or not rows:
        return result
    trained = _trained_mask(rows)
    for column, direction in directed:
        values = column_values(rows, column)
        if not _is_cost(column):  # accuracy of an untrained method is never best
            values[~trained] = np.nan
        if np.isnan(values).all():
            continue
        top = np.nanmax(values) if direction == "max" else np.nanmin(values)
        # math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12), vectorised; NaN compares False
        close = np.abs(values - top) <= np.maximum(1e-9 * np.maximum(np.abs(values), abs(top)), 1e-12)
        result[column] = set(np.flatnonzero(close).tolist())
    return result


def unseparated_by_column(
    rows: Sequence[dict], columns: Sequence[str], best: dict[str, set[int]] | None = None
) -> dict[str, set[int]]:
    """For every column, the rows (other than its best rows) whose ``<column>_lo``..``<column>_hi`` interval
    overlaps the interval of the best value (the hull of the best rows' intervals, when they have one): values the
    intervals do not separate from the best. Empty for a column whose best rows have no interval; rows without an
    interval, and untrained rows in accuracy columns (never best), are never marked. A few array operations per
    column; columns without ``_lo``/``_hi`` in any row cost one membership test each."""
    best = best_by_column(rows, columns) if best is None else best
    result: dict[str, set[int]] = {column: set() for column in columns}
    if not rows:
        return result
    keys = set(rows[0])  # CSV rows share one header: the first row's keys usually settle it
    trained = None
    for column in columns:
        top = best.get(column)
        if not top or metric_direction(column) is None:
            continue
        low_key, high_key = f"{column}_lo", f"{column}_hi"
        if low_key not in keys and not any(low_key in row for row in rows):
            continue
        low, high = column_values(rows, low_key), column_values(rows, high_key)
        top_index = np.fromiter(top, dtype=np.int64, count=len(top))
        top_low, top_high = low[top_index], high[top_index]
        has = ~(np.isnan(top_low) | np.isnan(top_high))
        if not has.any():
            continue
        overlap = (low <= top_high[has].max()) & (high >= top_low[has].min())  # NaN compares False
        if not _is_cost(column):
            if trained is None:
                trained = _trained_mask(rows)
            overlap &= trained
        overlap[top_index] = False
        result[column] = set(np.flatnonzero(overlap).tolist())
    return result


def best_indices(rows: Sequence[dict], column: str) -> set[int]:
    """Indices of the rows holding the best value of ``column`` (all of them on a tie); empty if no direction.
    Accuracy columns ignore untrained rows."""
    return best_by_column(rows, [column])[column]


def shown_indices(
    rows: Sequence[dict],
    max_rows: int | None = DEFAULT_MAX_ROWS,
    best: dict[str, set[int]] | None = None,
    metric: str = RANK_METRIC,
) -> list[int]:
    """The rows of one table that a page shows, in CSV order: every row when there are at most ``max_rows`` (None
    or 0: no limit), else the ``max_rows`` best by ``metric`` plus, for each column whose best rows all fell outside
    them, the first row holding that best, so every bold value is on the page. ``best``: from
    :func:`best_by_column` over both tables' columns (computed when not given)."""
    if not max_rows or len(rows) <= max_rows:
        return list(range(len(rows)))
    if best is None:
        best = best_by_column(rows, [c for c, _ in (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS)])
    chosen = set(rank_rows(rows, metric, max_rows))
    for indices in best.values():
        if indices and not indices & chosen:
            chosen.add(min(indices))
    return sorted(chosen)


@dataclass(frozen=True)
class TableView:
    """What a page shows of one (data, split, environment) group: its ``rows`` (CSV order), the ``best`` rows of
    every column (:func:`best_by_column`, over all of them) and the indices ``shown`` (:func:`shown_indices`)."""

    key: tuple[str, str, str]
    rows: list[dict]
    best: dict[str, set[int]]
    shown: list[int]
    max_rows: int | None
    near: dict[str, set[int]] = field(default_factory=dict)  # :func:`unseparated_by_column`: marked ``‡``


def table_views(rows: Sequence[dict], max_rows: int | None = DEFAULT_MAX_ROWS) -> list[TableView]:
    """One :class:`TableView` per group, in first-seen order. The renderers compute this themselves; a caller that
    renders the same rows several times (Markdown, LaTeX, HTML) computes it once and passes ``views=``."""
    views = []
    for key, group in group_rows(rows).items():
        columns = [c for c, _ in (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS)]
        best = best_by_column(group, columns)
        views.append(TableView(key, group, best, shown_indices(group, max_rows, best), max_rows,
                               unseparated_by_column(group, columns, best)))
    return views


def page_rows(
    rows: Sequence[dict], max_rows: int | None = DEFAULT_MAX_ROWS, views: Sequence[TableView] | None = None
) -> list[dict]:
    """The rows any measured table shows (:func:`shown_indices` per (data, split, environment) group), in CSV
    order: what the comparison tables need, without the rows a page leaves out. ``views``: from
    :func:`table_views` of the same rows, if already computed."""
    if views is None:
        if not max_rows or len(rows) <= max_rows:
            return list(rows)
        views = table_views(rows, max_rows)
    if all(len(view.shown) == len(view.rows) for view in views):
        return list(rows)
    keep = {id(view.rows[i]) for view in views for i in view.shown}
    return [row for row in rows if id(row) in keep]


def _group_key(row: dict) -> tuple[str, str, str]:
    return (row.get("data", ""), row.get("split", ""), row.get("environment", ""))


def group_rows(rows: Sequence[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Rows by (data, split, environment), in first-seen order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault(_group_key(row), []).append(row)
    return groups


def method_spec(row: dict) -> dict[str, Any]:
    """The ``create_method`` keyword arguments recorded in a row's ``spec`` column (``{}`` if absent)."""
    try:
        return dict(json.loads(row.get("spec") or "{}"))
    except ValueError:
        return {}


def _half_width(row: dict, column: str) -> float | None:
    """Half the width of the row's ``<column>_lo``..``_hi`` interval, or None when it has no (finite) interval."""
    low, high = parse_number(row.get(f"{column}_lo")), parse_number(row.get(f"{column}_hi"))
    return None if low is None or high is None or high < low else (high - low) / 2.0


def format_with_interval(column: str, row: dict) -> str:
    """The cell text: the value, then `` ± half-width`` where the row has an interval for ``column``."""
    text = _format(column, row.get(column))
    half = _half_width(row, column) if parse_number(row.get(column)) is not None else None
    return text if half is None else f"{text} ± {_format(column, half)}"


def has_intervals(rows: Sequence[dict], indices: Sequence[int], columns: Sequence[tuple[str, str]]) -> bool:
    """Whether any of the rows at ``indices`` has an interval (``<column>_lo``/``_hi``) for any of ``columns``."""
    return any(_half_width(rows[i], c) is not None for i in indices for c, _ in columns)


def _format(column: str, value: Any) -> str:
    number = parse_number(value)
    if number is None:
        return "–" if value in (None, "") else str(value)
    if column == "params":
        return f"{number / 1e6:.2f}"
    if column.startswith(("latency", "peak_mem")):
        return f"{number:.1f}"
    if column == "inst_count":
        return f"{number:.0f}"
    return f"{number:.2f}"


# Every line break str.splitlines knows: one in a cell would end a Markdown table row or a LaTeX line early.
_LINE_BREAKS = {ord(c): " " for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
# GFM splits a table row at every unescaped "|", so "|" and "\" (which could escape the escape) are escaped; "<"
# (raw HTML), "[" (links, images) and "`" (a code span across cells) are escaped so a name cannot become markup.
_MARKDOWN = {**_LINE_BREAKS, **{ord(c): "\\" + c for c in "\\|<[`"}}
_LATEX = {
    **_LINE_BREAKS,
    **{ord(c): "\\" + c for c in "&%$#_{}"},
    ord("\\"): r"\textbackslash{}",
    ord("~"): r"\textasciitilde{}",
    ord("^"): r"\textasciicircum{}",
    # not special, but the default OT1 font encoding prints them as other glyphs (an em dash, inverted marks)
    ord("|"): r"\textbar{}",
    ord("<"): r"\textless{}",
    ord(">"): r"\textgreater{}",
    ord("†"): r"$^\dagger$",
    ord("‡"): r"$^\ddagger$",
    ord("±"): r"$\pm$",
}


def markdown_escape(text: Any) -> str:
    """A Markdown table cell (or heading text) that stays one cell: see ``_MARKDOWN``."""
    return str(text).translate(_MARKDOWN)


def markdown_code(text: Any) -> str:
    """``text`` as one Markdown code span on one line: fenced by more backticks than its longest run of them."""
    text = str(text).translate(_LINE_BREAKS)
    longest = 0
    run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def latex_escape(text: Any) -> str:
    r"""LaTeX text with every special character (``& % $ # _ { } ~ ^ \``) escaped in one pass, so an inserted
    ``\textbackslash{}`` is never escaped again, and line breaks made spaces."""
    return str(text).translate(_LATEX)


def _cells(
    rows: Sequence[dict],
    indices: Sequence[int],
    columns: Sequence[tuple[str, str]],
    best: dict[str, set[int]],
    escape,
    bold,
    near: dict[str, set[int]] | None = None,
) -> list[list[str]]:
    """Escaped cells of the rows at ``indices``; ``bold`` wraps an escaped best value (so markup is never escaped
    and text never escapes it); a value in ``near`` (not separated from the best) gets the ``‡`` mark."""
    near = near or {}
    table = []
    for i in indices:
        row = rows[i]
        cells = [escape(str(row.get("method", "?")) + ("" if is_trained(row) else " †"))]
        for column, _ in columns:
            mark = UNSEPARATED_MARK if i in near.get(column, ()) else ""
            text = escape(format_with_interval(column, row) + mark)
            cells.append(bold(text) if i in best[column] else text)
        table.append(cells)
    return table


def _omitted_note(shown: int, total: int, max_rows: int | None) -> str:
    return (f"Showing {shown} of {total} rows: the best {max_rows} by {RANK_METRIC}, plus the first row holding each "
            "column's best (bold is the best over all rows; every row is in results.csv).")


def _markdown_table(rows: Sequence[dict], indices: Sequence[int], columns: Sequence[tuple[str, str]],
                    best: dict[str, set[int]], near: dict[str, set[int]] | None = None) -> str:
    header = ["Method", *(title for _, title in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(columns)) + "|"]
    lines += ["| " + " | ".join(cells) + " |"
              for cells in _cells(rows, indices, columns, best, markdown_escape, lambda t: f"**{t}**", near)]
    return "\n".join(lines)


def render_markdown(
    rows: Sequence[dict], max_rows: int | None = DEFAULT_MAX_ROWS, views: Sequence[TableView] | None = None
) -> str:
    """Markdown tables (accuracy + cost, then per-instance errors), one pair per (data, split, environment).
    A group of more than ``max_rows`` rows shows only the rows :func:`shown_indices` picks, and says so.
    ``views``: :func:`table_views` of the same rows and ``max_rows``, if already computed."""
    if not rows:
        return "_No results yet: run `himbench bench`._\n"
    parts = []
    for view in table_views(rows, max_rows) if views is None else views:
        (data, split, env), group, best, shown, max_rows = view.key, view.rows, view.best, view.shown, view.max_rows
        parts.append(f"### {markdown_escape(data)} / {markdown_escape(split)} on {markdown_code(env)}\n")
        if len(shown) < len(group):
            parts.append(_omitted_note(len(shown), len(group), max_rows) + "\n")
        parts.append(
            "Instance-aware quality (x100, IoU 0.5 unless marked; higher is better) and cost (lower is better). "
            "Bold: best in column.\n"
        )
        parts.append(_markdown_table(group, shown, ACCURACY_COLUMNS, best, view.near) + "\n")
        parts.append("Per-instance errors of matched instances (whole image; SAD/1000, MSE x1000, MAD x1000, "
                     "Grad/1000, Conn/1000; lower is better).\n")
        parts.append(_markdown_table(group, shown, INSTANCE_COLUMNS, best, view.near) + "\n")
        if has_intervals(group, shown, (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS)):
            parts.append(UNSEPARATED_NOTE.format(lo=f"`{RANK_METRIC}_lo`", hi=f"`{RANK_METRIC}_hi`") + "\n")
        if any(group[i].get("guidance") for i in shown):
            parts.append(
                "Mask-guided rows (guidance not empty) are handed masks made from the ground truth (`gt`: binarised "
                "at 0.5; `gt+erode` etc.: perturbed, see `himbench bench --help`): an oracle first stage, so they "
                "bound a two-stage system from above. `seg-refine` is the full two-stage pipeline with a learned "
                "segmenter.\n"
            )
        if any(not is_trained(group[i]) for i in shown):
            parts.append("† ran with random weights (no checkpoint): accuracy not meaningful, never marked best.\n")
    return "\n".join(parts)


def _latex_table(rows: Sequence[dict], indices: Sequence[int], columns: Sequence[tuple[str, str]],
                 best: dict[str, set[int]], caption: str, near: dict[str, set[int]] | None = None) -> str:
    header = " & ".join(["Method", *(latex_escape(title) for _, title in columns)]) + r" \\"
    body = [" & ".join(cells) + r" \\"
            for cells in _cells(rows, indices, columns, best, latex_escape, lambda t: rf"\textbf{{{t}}}", near)]
    if has_intervals(rows, indices, columns):
        caption += " " + UNSEPARATED_NOTE.format(lo=f"{RANK_METRIC}_lo", hi=f"{RANK_METRIC}_hi")
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(caption)}}}",
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


def render_latex(
    rows: Sequence[dict], max_rows: int | None = DEFAULT_MAX_ROWS, views: Sequence[TableView] | None = None
) -> str:
    """LaTeX (booktabs) tables, same content, row selection and bold marking as :func:`render_markdown`."""
    parts = ["% Generated by `himbench leaderboard` from leaderboard/results.csv; needs \\usepackage{booktabs}."]
    for view in table_views(rows, max_rows) if views is None else views:
        (data, split, env), group, best, shown = view.key, view.rows, view.best, view.shown
        where = f"{data} / {split}, {env}"
        if len(shown) < len(group):
            where += f"; {len(shown)} of {len(group)} rows shown, all in results.csv"
        parts.append(_latex_table(group, shown, ACCURACY_COLUMNS, best,
                                  f"Instance matting quality and cost ({where}).", view.near))
        parts.append(_latex_table(group, shown, INSTANCE_COLUMNS, best,
                                  f"Per-instance errors of matched instances ({where}).", view.near))
    return "\n\n".join(parts) + "\n"
