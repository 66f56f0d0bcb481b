"""Published numbers (``leaderboard/published.csv``) and the "Compare with the papers" tables.

Published rows are never mixed into the measured tables: each metric set (paper table) gets its own table where every
row is marked ``published`` or ``measured``, measured rows in the paper's units (:mod:`himbench.metrics.paper_units`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from himbench.bench.results import read_csv_rows
from himbench.leaderboard.tables import is_trained, latex_escape, parse_number
from himbench.metrics.table import metric_key

__all__ = [
    "CLASSIC_MEASURED_COLUMNS",
    "PUBLISHED_COLUMNS",
    "PUBLISHED_REQUIRED",
    "comparison_groups",
    "read_published",
    "render_comparison_latex",
    "render_comparison_markdown",
]

# Columns of published.csv that every row must fill: where the number comes from and how it was measured.
PUBLISHED_REQUIRED: tuple[str, ...] = (
    "method", "benchmark", "metric_set", "paper", "arxiv_id", "table", "source_url", "hand", "protocol_masks",
    "protocol_size", "weights_licence",
)
# results.csv columns that hold measured values in the classic benchmarks' own conventions (issue 20), by convention
# and summary.json metric name; prefixed like ``maggie_*`` so a whole-image SAD in P3M's units is never read as one
# in DIM's. The bench writer must use exactly these names for measured rows to join the tables below.
CLASSIC_MEASURED_COLUMNS: dict[str, dict[str, str]] = {
    "p3m-code": {m: metric_key("p3m", m) for m in
                 ("SAD", "MSE", "MAD", "Grad", "Conn", "SAD_trimap", "MSE_trimap", "MAD_trimap")},
    "dim-matlab": {m: metric_key("dim", m) for m in ("SAD", "MSE", "Grad", "Conn")},
}
_P3M = CLASSIC_MEASURED_COLUMNS["p3m-code"]
_DIM = CLASSIC_MEASURED_COLUMNS["dim-matlab"]
_P3M_UNITS = (
    "Units of P3M's and AIM's released evaluator (core/evaluate.py, the same code in both): SAD = sum |p - g| / 1000; "
    "MSE and MAD are per-pixel means of alpha in [0, 1], not scaled (0.0026 means 2.6e-3; a table 'x1e3' would print "
    "2.6); Grad = "
    "sum of squared Gaussian-gradient differences / 10; Conn / 1000; lower is better."
)
# A measured row with this column is a video row (himbench.bench.video): it joins only the video tables.
_VIDEO_MARKER = metric_key("maggie_dtSSD")
# Per metric set: (title, [(published column, measured column or None, header)], note).
PUBLISHED_COLUMNS: dict[str, tuple[str, list[tuple[str, str | None, str]], str]] = {
    "maggie-table5": (
        "MaGGIe Table 5 (HIM2K + M-HIM2K), in MaGGIe's units",
        [*((m, metric_key("maggie", m), m) for m in ("MAD", "MSE", "Grad", "Conn")), ("MADf", None, "MADf"),
         ("MADu", None, "MADu")],
        "Units of MaGGIe's released evaluation code (maggie/utils/metric.py): MAD and MSE are per-pixel means x 1e10 "
        "/ (H*W) of the original image, Grad and Conn sums / 1000, Grad min-max normalised over all instances of an "
        "image together; lower is better. Published values are the mean over the ten M-HIM2K mask sets, (std) over "
        "sets. Measured rows use the same formulas (himbench.metrics.paper_units) on the data named in the row: "
        "they are comparable with a published row only when benchmark, subset and protocol match. MADf/MADu are "
        "not reproduced.",
    ),
    "maggie-table7": (
        "MaGGIe Table 7 (V-HIM60 easy / medium / hard, video), in MaGGIe's units",
        [*((m, metric_key("maggie", m), m) for m in ("MAD", "Grad", "Conn")),
         *((m, metric_key(f"maggie_{m}"), m) for m in ("dtSSD", "MESSDdt"))],
        "Units of MaGGIe's released evaluation code (maggie/utils/metric.py, maggie/engine/test.py): MAD, Grad and "
        "Conn as in Table 5; dtSSD = 0.1 x the per-pair root of summed squared derivative differences and "
        "MESSDdt = 1e4 x the per-pair warped squared-error change / (H*W + 1), both over the whole frame, pooled over "
        "every (frame pair, instance) of the split, with MaGGIe's transposed warp (docs/temporal_metrics.md). Masks: "
        "XMem on every frame, or a first-frame trimap for OTVM and FTP-VM. The text read does not mark the gray "
        "(public-weights) rows, so the two OTVM and two FTP-VM rows are named by print order. Measured rows come from "
        "`himbench bench` on clips (leaderboard/video.csv): MAD, Grad and Conn are MaGGIe's per-frame image metrics "
        "pooled over every frame of the split, each person against the track its clip's matching gave it. These units "
        "depend on the frame size: MAD divides a per-pixel mean by H*W once more (x 1e10) and Grad and Conn are sums, "
        "so the same per-pixel error on a 320 x 320 clip reads about 20x larger in MAD, and about 20x smaller in Grad "
        "and Conn, than on a 1920 x 1080 one. Measured rows on himbench's synthetic clips compare with each other, "
        "not with the published V-HIM60 rows.",
    ),
    "e2ehim-readme": (
        "E2E-HIM README (HIM-100K)",
        [("EMSE", None, "EMSE"), ("EMAD", None, "EMAD")],
        "EMSE and EMAD are printed by the authors without a definition and no code computes them: no measured row "
        "can be put in these units.",
    ),
    "p3m-readme-table1": (
        "P3M README Table 1: trimap-based methods on P3M-500-P, in P3M's units",
        [("SAD", None, "SAD"), ("MSE", None, "MSE")],
        _P3M_UNITS + " Settings train:test, B = face-blurred, N = normal images; the released P3M-500-P is the "
        "blurred test set, so only rows with subset 'face-blurred' can be reproduced. The README does not say "
        "whether these SAD/MSE are over the whole image or the trimap's unknown region (MSE about 4x the trimap-free "
        "methods' suggests the unknown region), nor which trimaps were used: no measured row is put here.",
    ),
    "p3m-readme-table2": (
        "P3M README Table 2: trimap-free methods on P3M-500-P, in P3M's units",
        [("SAD", _P3M["SAD"], "SAD"), ("MSE", _P3M["MSE"], "MSE")],
        _P3M_UNITS + " Whole-image SAD and MSE (what P3M's core/test.py prints as SAD and MSE). Settings train:test, "
        "B = face-blurred, N = normal images; the released P3M-500-P is the blurred test set, so only rows with "
        "subset 'face-blurred' are comparable with a measured row on it.",
    ),
    "aim-readme": (
        "AIM README results on AIM-500, in AIM's (= P3M's) units",
        [("SAD", _P3M["SAD"], "SAD"), ("MSE", _P3M["MSE"], "MSE"), ("MAD", _P3M["MAD"], "MAD"),
         ("Conn", _P3M["Conn"], "Conn"), ("Grad", _P3M["Grad"], "Grad"),
         ("SAD_trimap", _P3M["SAD_trimap"], "SAD (trimap)"), ("SAD_human", None, "SAD (Human)")],
        _P3M_UNITS + " Whole image except SAD (trimap): the README's 'Tran.' SAD, which AIM's core/test.py prints as "
        "'SAD TRIMAP' (prediction set to the trimap's known values, summed over the whole image). SAD (Human) is the "
        "README's per-category SAD over AIM-500's 100 portraits; it is not reproduced.",
    ),
    "dim-comp1k": (
        "Composition-1k test (DIM convention)",
        [("SAD", _DIM["SAD"], "SAD"), ("MSE", _DIM["MSE"], "MSE"), ("Grad", _DIM["Grad"], "Grad"),
         ("Conn", _DIM["Conn"], "Conn")],
        "Deep Image Matting / Composition-1k MATLAB convention (SPEC s.2): over the trimap's unknown region; SAD, "
        "Grad and Conn / 1000, MSE a per-pixel mean of alpha in [0, 1]; lower is better. Published rows: DIM's "
        "numbers as mmagic's README reports them from the paper (the paper's own table, with closed-form matting, "
        "was not read here).",
    ),
}


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
    """A published cell exactly as printed in its source (reformatting 0.0026 as 0.00 would lose the number)."""
    if parse_number(row.get(column)) is None:
        return "–"
    std = (row.get(f"{column}_std") or "").strip()
    return row[column].strip() + (f" ({std})" if parse_number(std) is not None else "")


def _decimals(text: str | None) -> int:
    text = (text or "").strip()
    return len(text.split(".", 1)[1]) if "." in text and parse_number(text) is not None else 0


def _column_decimals(rows: Sequence[dict], column: str) -> int:
    """Decimals a measured value gets in a published column: as many as the source prints (at least 2)."""
    return max([2, *(_decimals(r.get(column)) for r in rows)])


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
        in_set = [r for r in published if r.get("metric_set", "") == metric_set]
        decimals = {column: _column_decimals(in_set, column) for column, _, _ in columns}
        for row in in_set:
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
                "values": [parse_number(row.get(column)) for column, _, _ in columns],
            })
        video_set = any(m == _VIDEO_MARKER for _, m, _ in columns)
        for row in measured:
            if not any(m and parse_number(row.get(m)) is not None for _, m, _ in columns):
                continue
            if (parse_number(row.get(_VIDEO_MARKER)) is not None) != video_set:
                continue  # a video row's per-frame MAD is not an image table's MAD, nor the reverse
            protocol = []
            if row.get("mask_set") or row.get("guidance"):
                protocol.append(f"masks: {row.get('mask_set') or row.get('guidance')}")
            protocol.append(f"size: {row.get('size_protocol') or 'native'}")
            cells, values = [], []
            for column, mapped, _ in columns:
                value = parse_number(row.get(mapped)) if mapped else None
                std = parse_number(row.get(f"{mapped}_std")) if mapped else None
                values.append(value)
                cell = "–" if value is None else f"{value:.{decimals[column]}f}"
                cells.append(cell + (f" ({std:.1f})" if value is not None and std is not None else ""))
            table_rows.append({
                "kind": "measured", "method": row.get("method", "?") + ("" if is_trained(row) else " †"),
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
        header = " & ".join(["Kind", "Method", "Data", "Subset", "Protocol", *map(latex_escape, group["headers"])])
        body = [
            " & ".join(latex_escape(c) for c in [row["kind"], row["method"], row["benchmark"], row["subset"] or "-",
                                                  row["protocol"], *row["cells"]]) + r" \\"
            for row in group["rows"]
        ]
        parts.append("\n".join([
            r"\begin{table}[t]", r"\centering",
            rf"\caption{{{latex_escape(group['title'])}: published and measured rows (marked).}}",
            r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{lllll" + "r" * columns + "}", r"\toprule",
            header + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}}", r"\end{table}",
        ]))
    return "\n\n".join(parts) + ("\n" if parts else "")

