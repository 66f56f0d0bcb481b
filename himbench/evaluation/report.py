"""Evaluation output: JSON and CSV files (atomic writes) and the plain-text tables the CLI prints.

Files written by :func:`write_report` into ``out_dir``:

- ``summary.json``: the dataset metrics, the raw sums (to merge sharded runs with ``IMQAccumulator.from_dict``),
  the number of problems, and the config; with ``--bootstrap`` also ``intervals`` ({key: {low, high}}) and
  ``bootstrap`` ({resamples, seed, level}); with ``--breakdown`` also ``breakdown``
  (:mod:`himbench.evaluation.breakdown`).
- ``summary.csv``: the dataset metrics as one row.
- ``per_image.json`` / ``per_image.csv``: one record per ground-truth image (the JSON adds each image's matches).
- ``problems.csv``: every bad input, ``file,message``.
- ``evaluation_config.json``: the resolved :class:`~himbench.evaluation.runner.EvaluationConfig`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from himbench.evaluation.runner import EvaluationResult
from himbench.io import atomic_write_text
from himbench.io.csvcells import escape_cell
from himbench.metrics import IMQ_ERRORS, INSTANCE_ERRORS, metric_key, metric_label

__all__ = [
    "format_breakdown",
    "format_classic_table",
    "format_instance_table",
    "format_problems",
    "format_summary_table",
    "write_report",
]


_LIST_FIELDS = {"matches", "gt_area", "gt_occlusion"}


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # text cells that a spreadsheet would run as a formula get a leading quote (himbench.io.csvcells)
        writer.writerow({k: escape_cell(row.get(k, "")) for k in columns})
    return buffer.getvalue()


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_report(
    result: EvaluationResult, out_dir: str | os.PathLike, provenance: dict | None = None
) -> dict[str, Path]:
    """Write every result file (see module docstring) atomically; returns {name: path}. ``provenance`` (what made
    the predictions: model, checkpoint hash, options, from ``predictions.json``) is recorded in summary.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the CSV holds the scalar fields; per-person lists (matches, gt_area, gt_occlusion) are in per_image.json
    flat_records = [{k: v for k, v in r.items() if k not in _LIST_FIELDS} for r in result.records]
    columns: list[str] = []
    for record in flat_records:
        columns.extend(k for k in record if k not in columns)
    paths = {
        "summary_json": out / "summary.json",
        "summary_csv": out / "summary.csv",
        "per_image_json": out / "per_image.json",
        "per_image_csv": out / "per_image.csv",
        "problems_csv": out / "problems.csv",
        "config_json": out / "evaluation_config.json",
    }
    summary_doc = {
        "summary": result.summary,
        "sums": result.accumulator.to_dict(),
        "num_problems": len(result.problems),
        "config": result.config.to_dict(),
    }
    if result.intervals is not None:  # 95% bootstrap intervals over images of every summary number
        summary_doc["intervals"] = result.intervals
        summary_doc["bootstrap"] = result.bootstrap
    if result.breakdown is not None:
        summary_doc["breakdown"] = result.breakdown
    if result.units is not None:  # a single-matte benchmark: its own errors, in its evaluator's units
        summary_doc["convention"] = result.config.convention
        summary_doc["units"] = result.units
    if provenance is not None:
        summary_doc["provenance"] = provenance
    atomic_write_text(paths["summary_json"], _json_text(summary_doc))
    atomic_write_text(paths["summary_csv"], _csv_text([result.summary], list(result.summary)))
    atomic_write_text(paths["per_image_json"], _json_text(result.records))
    atomic_write_text(paths["per_image_csv"], _csv_text(flat_records, columns))
    problems = [{"file": p.file, "message": p.message} for p in result.problems]
    atomic_write_text(paths["problems_csv"], _csv_text(problems, ["file", "message"]))
    atomic_write_text(paths["config_json"], _json_text(result.config.to_dict()))
    return paths


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # first column left-aligned (labels), numbers right-aligned
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


def format_summary_table(summary: dict[str, float], thresholds: tuple[float, ...]) -> str:
    """IMQ / RQ / MQ table, one row per IoU threshold (all x 100)."""
    header = ["IoU", *(metric_label("IMQ", n) for n in IMQ_ERRORS), metric_label("RQ"),
              *(metric_label("MQ", n) for n in IMQ_ERRORS), "TP", "FP", "FN"]
    rows = []
    for threshold in thresholds:
        tag = f"{threshold:g}"
        row = [tag]
        row += [f"{summary[metric_key('IMQ', n, tag)]:.2f}" for n in IMQ_ERRORS]
        row.append(f"{summary[metric_key('RQ', threshold=tag)]:.2f}")
        row += [f"{summary[metric_key('MQ', n, tag)]:.2f}" for n in IMQ_ERRORS]
        row += [str(int(summary[metric_key(k, threshold=tag)])) for k in ("TP", "FP", "FN")]
        rows.append(row)
    return _table(header, rows)


def format_instance_table(summary: dict[str, float]) -> str:
    """MaGGIe-style per-instance errors: mean over matched instances, whole image, SPEC s.2 units."""
    header = ["instances", "SAD/1e3", "MSE x1e3", "MAD x1e3", "Grad/1e3", "Conn/1e3"]
    row = [str(int(summary["inst_count"]))] + [f"{summary[metric_key('inst', n)]:.4f}" for n in INSTANCE_ERRORS]
    return _table(header, [row])


def format_classic_table(summary: dict[str, float], units: dict[str, str]) -> str:
    """The benchmark's own errors (single-matte layouts): whole image, then trimap region when it has trimaps."""
    names = ("SAD", "MSE", "MAD", "Grad", "Conn")
    header = ["region", *names]  # the units (long: each convention's own definition) are in summary.json
    rows = [["whole image", *(f"{summary[n]:.4f}" if n in summary else "-" for n in names)]]
    if any(f"{n}_trimap" in summary for n in names):
        rows.append(["trimap", *(f"{summary[f'{n}_trimap']:.4f}" if f"{n}_trimap" in summary else "-"
                                 for n in names)])
    return _table(header, rows)


def format_problems(problems: list, limit: int = 20) -> str:
    lines = [f"{p.file}: {p.message}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more (all listed in problems.csv)")
    return "\n".join(lines)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    return str(int(value)) if key.startswith("num_") or key == "matched" else f"{value:.2f}"


def format_breakdown(breakdown: dict[str, Any]) -> str:
    """The breakdown (:mod:`himbench.evaluation.breakdown`) as one small table per stratum."""
    blocks = []
    for stratum, data in breakdown.items():
        if not data.get("available"):
            blocks.append(f"{stratum}: not available ({data.get('reason', 'no data')})")
            continue
        buckets = data["buckets"]
        if stratum == "people":
            tag = next((k.split("@")[1] for k in buckets[0] if k.startswith("RQ@")), "0.5")
            keys = ["num_images", "num_gt", metric_key("IMQ", "mad", tag), metric_key("RQ", threshold=tag),
                    metric_key("MQ", "mad", tag)]
        else:
            keys = ["num_gt", *(metric_key("recall", threshold=t) for t in (0.5, 0.75)), "matched", "MAD", "MSE",
                    "Grad", "Conn"]
        header = [f"{stratum}", *keys]
        rows = [[b["label"], *(_cell(k, b.get(k)) for k in keys)] for b in buckets]
        blocks.append(_table(header, rows))
    return "\n\n".join(blocks)
