"""The self-contained leaderboard web page (:func:`render_html`): CSS, JS and images inline, tables sortable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from himbench.leaderboard.published import comparison_groups
from himbench.leaderboard.tables import (
    ACCURACY_COLUMNS,
    DEFAULT_MAX_ROWS,
    INSTANCE_COLUMNS,
    RANK_METRIC,
    UNSEPARATED_MARK,
    UNSEPARATED_NOTE,
    TableView,
    format_with_interval,
    has_intervals,
    is_trained,
    method_spec,
    page_rows,
    parse_number,
    table_views,
)

__all__ = ["render_html"]

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
    import html  # absolute import: the standard library's module, not this one

    return html.escape("" if text is None else str(text), quote=True)


def _safe_url(url: str) -> str:
    """``url`` when it is a web address; empty otherwise, so a ``javascript:`` or ``data:`` link from a CSV never
    becomes something a click runs."""
    from urllib.parse import urlsplit

    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""
    return url.strip() if scheme in ("http", "https") else ""


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
    max_rows: int | None = DEFAULT_MAX_ROWS,
    views: Sequence[TableView] | None = None,
) -> str:
    """One self-contained HTML page (no external resource: CSS, JS and images inline): the measured tables per
    (data, split, environment), the "Compare with the papers" tables with every row marked published or measured,
    the plots and qualitative grid from ``images`` (name -> PNG bytes, embedded as base64 data URIs), and the command
    that produced each measured row (the method name links to it). Every table sorts by clicking a column header.
    A measured table of more than ``max_rows`` rows shows the rows :func:`~himbench.leaderboard.shown_indices`
    picks and says so; the comparison tables take the measured rows the page shows. Every text is escaped.
    ``views``: :func:`~himbench.leaderboard.table_views` of ``measured`` and ``max_rows``, if already computed."""
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
    views = table_views(measured, max_rows) if views is None else views
    for g, view in enumerate(views):
        (data, split, env), group, best, shown, max_rows = view.key, view.rows, view.best, view.shown, view.max_rows
        parts.append(f"<h3>{_esc(data)} / {_esc(split)} on <code>{_esc(env)}</code></h3>")
        if len(shown) < len(group):
            parts.append(f'<p class="note">Showing {len(shown)} of {len(group)} rows: the best {max_rows} by '
                         f"{_esc(RANK_METRIC)}, plus the first row holding each column's best (bold is the best over "
                         "all rows; every row is in <code>results.csv</code>).</p>")
        for t, (columns, caption) in enumerate(((ACCURACY_COLUMNS, "Instance-aware quality (x100) and cost"),
                                                (INSTANCE_COLUMNS, "Per-instance errors of matched instances"))):
            headers = [("Kind", True), ("Method", True), ("Protocol", True),
                       *((header, False) for _, header in columns)]
            rows = []
            for i in shown:
                row = group[i]
                name = str(row.get("method", "?")) + ("" if is_trained(row) else " †")
                masks = row.get("mask_set") or row.get("guidance")
                protocol = (f"masks: {masks}; " if masks else "") + f"size: {row.get('size_protocol') or 'native'}"
                cells: list[tuple] = [('<span class="kind">measured</span>', None, True, False),
                                      (command_link(row, name), None, True, False), (_esc(protocol), None, True, False)]
                for column, _ in columns:
                    value = parse_number(row.get(column))
                    mark = UNSEPARATED_MARK if i in view.near.get(column, ()) else ""
                    cells.append((_esc(format_with_interval(column, row) + mark), value, False, i in best[column]))
                rows.append(("measured", cells))
            parts.append(f"<p class=\"note\">{_esc(caption)}.</p>")
            parts.append(_html_table(f"measured-{g}-{t}", headers, rows))
            if has_intervals(group, shown, columns):
                note = _esc(UNSEPARATED_NOTE).format(lo=f"<code>{_esc(RANK_METRIC)}_lo</code>",
                                                     hi=f"<code>{_esc(RANK_METRIC)}_hi</code>")
                parts.append(f'<p class="note">{note}</p>')
    if published:
        parts.append("<h2>Compare with the papers</h2>")
        parts.append('<p class="note">Published rows are numbers printed in papers, with their source; measured rows '
                     "come from <code>himbench bench</code>, converted to the paper's units. They are comparable only "
                     "when benchmark, subset and protocol match.</p>")
        for g, group in enumerate(comparison_groups(published, page_rows(measured, max_rows, views))):
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
                url = _safe_url(row["url"] or "")
                source = f'<a href="{_esc(url)}">{_esc(row["source"])}</a>' if url else _esc(row["source"])
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
