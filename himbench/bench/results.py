"""The leaderboard CSV (``leaderboard/results.csv``): the single source of every published number.

One row per (method, data, split, environment); re-running a benchmark replaces its rows and leaves the others.
Columns, in file order:

``method``          method label: its name, plus ``@<guidance>`` for mask-guided methods whose guidance is not the
                    unperturbed ground truth (e.g. ``mask-cf@gt+erode``)
``data``            name of the shard folder scored (its base name)
``split``           split scored
``environment``     device, torch threads and torch version (:class:`~himbench.bench.environment.Environment` slug)
``guidance``        where a mask-guided method's masks came from (``gt``, ``gt+erode``, ``disk`` ...), empty otherwise
``mask_set``        the M-HIM2K mask set (``r50_c4_3x`` ...; ``mean of 10 sets`` on the mean/std row), empty otherwise
``size_protocol``   the paper's image-size protocol the images were resized by (``maggie``, ``instmatt``); empty =
                    native size. Part of the row key.
``trained``         False when a learned method ran with random weights (its accuracy is meaningless)
``params``          learned parameters
``n_images``        images scored; ``failures`` images whose prediction raised (scored as empty predictions)
``latency_ms``      mean milliseconds of ``predict`` per image over the scored images
``latency_ms_n1`` .. ``latency_ms_n10``   fastest ms of the repeats on a synthetic 640 x 640 probe with 1..10 people
``peak_mem_mb``     peak memory in MiB, measured as ``peak_mem_kind`` says (see :mod:`himbench.bench.cost`)
``device_name``, ``torch_version``, ``date`` (UTC ISO), ``spec`` (JSON: ``create_method(**spec)`` rebuilds the method)
then every accuracy key of :meth:`himbench.metrics.IMQAccumulator.summary` (IMQ/RQ/MQ at both IoU thresholds and
the MaGGIe-style per-instance errors), in the order the accumulator reports them, the ``maggie_*`` columns (MaGGIe's
own units, :mod:`himbench.metrics.paper_units`) and, on a mean row, ``<metric>_std``. With ``himbench bench
--bootstrap N`` each headline metric is followed by ``<metric>_lo`` and ``<metric>_hi``, its 95% percentile bootstrap
interval over images (:func:`himbench.evaluation.breakdown.interval_columns`); the leaderboard shows them as ±.

Concurrency and safety: :func:`update_results` holds an exclusive ``fcntl.flock`` on the sidecar ``<csv>.lock`` for
the whole read-merge-write, and writes through a temporary file renamed over the CSV, so two benchmarks finishing
at once both land and a reader never sees half a file. A malformed CSV (an unbalanced quote, a row with more or
fewer fields than the header) is refused with its line number (:class:`MalformedResultsError`), never rendered or
written back.

Spreadsheets: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or CR (a method label, a command) is
written with a leading single quote so no spreadsheet runs it as a formula; numbers, negative ones included, are
written as they are. :func:`read_results` removes that quote, so labels read back exactly as they were given
(:mod:`himbench.io.csvcells`). Another program reading the file sees the quote.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

from himbench.io import atomic_write_text
from himbench.io.csvcells import escape_cell, unescape_row
from himbench.metrics.table import metric_key

__all__ = [
    "FIXED_COLUMNS",
    "KEY_COLUMNS",
    "LATENCY_COUNTS",
    "MalformedResultsError",
    "merge_rows",
    "read_csv_rows",
    "read_results",
    "results_lock",
    "row_key",
    "update_results",
    "write_results",
]

KEY_COLUMNS = ("method", "data", "split", "environment", "size_protocol")
LATENCY_COUNTS = tuple(range(1, 11))
FIXED_COLUMNS = (
    *KEY_COLUMNS,
    "guidance",
    "mask_set",
    "trained",
    "params",
    "n_images",
    "failures",
    "latency_ms",
    *(metric_key("latency_ms_n", n=n) for n in LATENCY_COUNTS),
    "peak_mem_mb",
    "peak_mem_kind",
    "device_name",
    "torch_version",
    "date",
    "spec",
)


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row.get(column, "")) for column in KEY_COLUMNS)


class MalformedResultsError(ValueError):
    """A results CSV that cannot be read safely; ``line`` is the 1-based line where the bad record starts."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}; fix or remove that line (nothing was rendered or written)")
        self.path, self.line, self.problem = str(path), line, problem


def read_csv_rows(path: str | Path, comments: bool = False) -> list[dict[str, str]]:
    """Rows of a CSV as dicts of strings, parsed strictly: an unbalanced quote or a row whose field count differs
    from the header raises :class:`MalformedResultsError` with the line number. ``comments``: lines starting with
    ``#`` (before or between rows) are skipped. A missing file has no rows."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if comments:
        lines = text.splitlines(keepends=True)
        text = "".join("" if line.lstrip().startswith("#") else line for line in lines)
    reader = csv.reader(io.StringIO(text), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problem = "unbalanced quote: the quoted field opened here never closes" if "end of data" in str(err) \
                else f"malformed quoting ({err})"
            raise MalformedResultsError(path, start, problem) from err
        if not record:  # a blank (or comment) line
            continue
        if header is None:
            header = record
            if len(set(header)) != len(header):
                raise MalformedResultsError(path, start, "duplicate column names in the header")
            continue
        if len(record) != len(header):
            raise MalformedResultsError(path, start, f"{len(record)} fields where the header has {len(header)}")
        rows.append(dict(zip(header, record, strict=True)))
    return rows


def read_results(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings; a missing file is an empty leaderboard; a malformed one raises
    :class:`MalformedResultsError` naming the line. Cells :func:`write_results` quoted against formula injection
    (:mod:`himbench.io.csvcells`) come back as they were given, e.g. a method named ``=x`` (stored ``'=x``)."""
    rows = read_csv_rows(path)
    # only a cell that starts with a quote can need unescaping: one C-speed search per row finds the few that do
    return [unescape_row(row) if "\0'" in "\0" + "\0".join(row.values()) else row for row in rows]


@contextlib.contextmanager
def results_lock(path: str | Path) -> Iterator[Path]:
    """Exclusive lock on ``<path>.lock`` (``fcntl.flock``; blocks until free), for a read-merge-write of ``path``.
    On systems without ``fcntl`` the block runs unlocked."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield lock_path
        return
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield lock_path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _columns(rows: Iterable[dict]) -> list[str]:
    # a dict keeps first-seen order with O(1) membership: linear in the number of cells, not rows x columns
    extra: dict[str, None] = {}
    for row in rows:
        extra.update(dict.fromkeys(row))
    columns = [*FIXED_COLUMNS, *(c for c in extra if c not in FIXED_COLUMNS)]
    # an interval column (<metric>_lo, <metric>_hi) goes right after its metric
    bounds = {c for c in columns if c.endswith(("_lo", "_hi")) and c[:-3] in extra}
    ordered = []
    for column in columns:
        if column in bounds:
            continue
        ordered.append(column)
        ordered.extend(b for b in (f"{column}_lo", f"{column}_hi") if b in bounds)
    return ordered


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
    # a text cell (method label, data name, command ...) never starts a spreadsheet formula; numbers are unchanged
    return escape_cell(value)


def write_results(path: str | Path, rows: list[dict]) -> Path:
    """Write rows atomically with the documented column order. Text cells that a spreadsheet would run as a
    formula (``=``, ``+``, ``-``, ``@``, tab, CR first) get a leading quote; :func:`read_results` removes it."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(v) for k, v in row.items()})
    return atomic_write_text(path, buffer.getvalue())


def update_results(path: str | Path, new_rows: list[dict]) -> Path:
    """Merge ``new_rows`` into the CSV at ``path`` (created if missing), under :func:`results_lock`, written
    atomically. A malformed existing CSV raises :class:`MalformedResultsError` and is left untouched."""
    with results_lock(path):
        return write_results(path, merge_rows(read_results(path), new_rows))

