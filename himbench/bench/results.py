"""The leaderboard CSV (``leaderboard/results.csv``): the single source of every published number.

One row per (method, data, split, environment); re-running a benchmark replaces its rows and leaves the others.
Columns, in file order:

``method``          method label: its name, plus ``@<guidance>`` for mask-guided methods whose guidance is not the
                    unperturbed ground truth (e.g. ``mask-cf@gt+erode``)
``data``            name of the shard folder scored (its base name)
``split``           split scored
``environment``     device, torch threads and torch version (:class:`~himbench.bench.environment.Environment` slug)
``guidance``        where a mask-guided method's masks came from (``gt``, ``gt+erode``, ``disk`` ...), empty otherwise
``trained``         False when a learned method ran with random weights (its accuracy is meaningless)
``params``          learned parameters
``n_images``        images scored; ``failures`` images whose prediction raised (scored as empty predictions)
``latency_ms``      mean milliseconds of ``predict`` per image over the scored images
``latency_ms_n1`` .. ``latency_ms_n10``   fastest ms of the repeats on a synthetic 640 x 640 probe with 1..10 people
``peak_mem_mb``     peak memory in MiB, measured as ``peak_mem_kind`` says (see :mod:`himbench.bench.cost`)
``device_name``, ``torch_version``, ``date`` (UTC ISO), ``spec`` (JSON: ``create_method(**spec)`` rebuilds the method)
then every accuracy key of :meth:`himbench.metrics.IMQAccumulator.summary` (IMQ/RQ/MQ at both IoU thresholds and
the MaGGIe-style per-instance errors), in the order the accumulator reports them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from himbench.io import atomic_write_text

__all__ = [
    "FIXED_COLUMNS",
    "KEY_COLUMNS",
    "LATENCY_COUNTS",
    "merge_rows",
    "read_results",
    "row_key",
    "update_results",
    "write_results",
]

KEY_COLUMNS = ("method", "data", "split", "environment")
LATENCY_COUNTS = tuple(range(1, 11))
FIXED_COLUMNS = (
    *KEY_COLUMNS,
    "guidance",
    "trained",
    "params",
    "n_images",
    "failures",
    "latency_ms",
    *(f"latency_ms_n{n}" for n in LATENCY_COUNTS),
    "peak_mem_mb",
    "peak_mem_kind",
    "device_name",
    "torch_version",
    "date",
    "spec",
)


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row.get(column, "")) for column in KEY_COLUMNS)


def read_results(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings; a missing file is an empty leaderboard."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _columns(rows: Iterable[dict]) -> list[str]:
    extra: list[str] = []
    for row in rows:
        extra.extend(c for c in row if c not in FIXED_COLUMNS and c not in extra)
    return [*FIXED_COLUMNS, *extra]


def merge_rows(existing: list[dict], new: list[dict]) -> list[dict]:
    """``existing`` with rows of the same key replaced by ``new`` (in place), other new rows appended."""
    replacement = {row_key(row): row for row in new}
    merged, seen = [], set()
    for row in existing:
        key = row_key(row)
        if key in replacement:
            if key not in seen:
                merged.append(replacement[key])
                seen.add(key)
        else:
            merged.append(row)
    merged.extend(row for row in new if row_key(row) not in seen)
    return merged


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def write_results(path: str | Path, rows: list[dict]) -> Path:
    """Write rows atomically with the documented column order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(v) for k, v in row.items()})
    return atomic_write_text(path, buffer.getvalue())


def update_results(path: str | Path, new_rows: list[dict]) -> Path:
    """Merge ``new_rows`` into the CSV at ``path`` (created if missing)."""
    return write_results(path, merge_rows(read_results(path), new_rows))

