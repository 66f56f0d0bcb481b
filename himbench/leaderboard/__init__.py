"""Render the leaderboard CSV (``leaderboard/results.csv``, written by ``himbench bench``) as Markdown, LaTeX and plots.

Tables are grouped by (data, split, environment): accuracy is comparable across rows of the same data and split, and
cost only within one environment. In each table the best value of every column is bold, the direction coming from
the metric (:func:`metric_direction`: IMQ, RQ, MQ, PQ higher is better; errors, latency, memory and parameter count
lower is better), found in one pass over the rows. A table of more than ``max_rows`` rows (default
:data:`DEFAULT_MAX_ROWS`) shows the best of them by :data:`RANK_METRIC` plus each column's best row and says how
many it left out, so a 100,000-row CSV renders in seconds; every cell is escaped for its format. Accuracy of a
learned method that ran with random weights (``trained`` False) is shown but never
marked best, and such rows carry a dagger.

Plots: accuracy versus mean latency (one point per method), latency versus number of instances (one line per method,
from the synthetic 1..10-person probe), and a qualitative grid of one real photograph through every method.

Published numbers (``leaderboard/published.csv``, :func:`read_published`) are never mixed into those tables. They get
their own "Compare with the papers" tables, one per paper table (metric set), where every row is marked
``published`` or ``measured`` and says its benchmark or data, protocol (masks, image size) and environment; measured
rows appear there in the paper's units (:mod:`himbench.metrics.paper_units`), and only metric sets that have a
documented mapping get measured rows. :func:`render_html` puts all of it in one self-contained web page.

Modules: :mod:`~himbench.leaderboard.tables` (column sets, best-value marking, Markdown and LaTeX),
:mod:`~himbench.leaderboard.published` (published.csv and the comparison tables), :mod:`~himbench.leaderboard.html`
(the web page), :mod:`~himbench.leaderboard.plots` (figures), :mod:`~himbench.leaderboard.qualitative` (the grid of
one photo through every method) and :mod:`~himbench.leaderboard.page` (the whole folder ``himbench leaderboard``
writes); every public name is re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from himbench.bench.results import read_results
from himbench.leaderboard.html import render_html
from himbench.leaderboard.page import DATA_NOTES, render_tables, with_data_notes, write_leaderboard
from himbench.leaderboard.plots import (
    DEFAULT_PLOT_ROWS,
    colourise,
    plot_accuracy_vs_latency,
    plot_latency_vs_instances,
    plot_qualitative,
)
from himbench.leaderboard.published import (
    PUBLISHED_COLUMNS,
    PUBLISHED_REQUIRED,
    comparison_groups,
    read_published,
    render_comparison_latex,
    render_comparison_markdown,
)
from himbench.leaderboard.qualitative import default_photo, qualitative_panels, render_qualitative
from himbench.leaderboard.tables import (
    ACCURACY_COLUMNS,
    DEFAULT_MAX_ROWS,
    INSTANCE_COLUMNS,
    RANK_METRIC,
    TableView,
    best_by_column,
    best_indices,
    group_rows,
    method_spec,
    metric_direction,
    page_rows,
    rank_rows,
    render_latex,
    render_markdown,
    shown_indices,
    table_views,
)

__all__ = [
    "ACCURACY_COLUMNS",
    "DATA_NOTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_PLOT_ROWS",
    "INSTANCE_COLUMNS",
    "PUBLISHED_COLUMNS",
    "PUBLISHED_REQUIRED",
    "RANK_METRIC",
    "TableView",
    "best_by_column",
    "best_indices",
    "comparison_groups",
    "colourise",
    "default_photo",
    "group_rows",
    "method_spec",
    "metric_direction",
    "page_rows",
    "plot_accuracy_vs_latency",
    "plot_latency_vs_instances",
    "plot_qualitative",
    "qualitative_panels",
    "rank_rows",
    "render",
    "render_latex",
    "render_comparison_latex",
    "render_comparison_markdown",
    "render_html",
    "render_markdown",
    "render_qualitative",
    "render_tables",
    "read_published",
    "shown_indices",
    "table_views",
    "with_data_notes",
    "write_leaderboard",
]


def render(
    csv_path: str | Path,
    fmt: str = "markdown",
    published: str | Path | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
) -> str:
    """Read the leaderboard CSV (and ``published``, the published-numbers CSV, if given) and render it as
    ``"markdown"``, ``"latex"`` or ``"html"`` (the self-contained page, without plots). A table of more than
    ``max_rows`` rows (None or 0: no limit) shows the rows :func:`shown_indices` picks; the comparison tables take
    the measured rows the page shows (:func:`page_rows`)."""
    rows = read_results(csv_path)
    paper_rows = read_published(published) if published else []
    if fmt not in ("markdown", "latex", "html"):
        raise ValueError(f"unknown format {fmt!r}; use 'markdown', 'latex' or 'html'")
    if fmt == "html":
        return render_html(rows, paper_rows, max_rows=max_rows, views=table_views(rows, max_rows))
    return render_tables(rows, fmt, paper_rows, max_rows)
