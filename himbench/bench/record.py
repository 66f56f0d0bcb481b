"""The files one benchmark run leaves in its output folder, written by ``himbench bench`` and ``himbench demo``.

``OUT/bench_<data>_<split>_<environment>.json`` holds the environment, every run's config, the result rows (rows of
later runs on the same data and machine merge in by key, :func:`~himbench.bench.results.merge_rows`) and each
method's failures; ``.config.json`` beside it is this run's config, and ``.breakdown.json`` the per-stratum scores
when the run asked for them (:mod:`himbench.evaluation.breakdown`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from himbench.bench.environment import Environment
from himbench.bench.harness import BenchConfig, MethodResult
from himbench.bench.results import merge_rows
from himbench.io import atomic_write_text, read_json

__all__ = ["MAX_RESULT_BYTES", "result_stem", "write_run"]

MAX_RESULT_BYTES = 64 << 20  # an earlier result JSON read back to merge rows into


def result_stem(data: str | Path, split: str, env: Environment) -> str:
    """``bench_<data folder name>_<split>_<environment slug>``: one result file per data, split and machine."""
    return f"bench_{Path(data).resolve().name}_{split}_{env.slug}"


def write_run(config: BenchConfig, env: Environment, results: Sequence[MethodResult], rows: list[dict],
              out_dir: str | Path, data: str | Path, split: str) -> Path:
    """Write one run's result JSON (merged with an earlier one of the same stem), its config and, when asked for,
    its breakdown into ``out_dir``; returns the result JSON's path."""
    stem = result_stem(data, split, env)
    out = Path(out_dir)
    result_path = out / f"{stem}.json"
    # Several runs on the same data and machine (e.g. one per --guidance) share the file: rows merge by key.
    previous = read_json(result_path, max_bytes=MAX_RESULT_BYTES) if result_path.is_file() else {}
    failures = {r.label: r.failures + ([r.probe_error] if r.probe_error else []) for r in results}
    payload = {
        "environment": dataclasses.asdict(env) | {"slug": env.slug},
        "configs": [*previous.get("configs", []), dataclasses.asdict(config)],
        "rows": merge_rows(previous.get("rows", []), rows),
        "failures": previous.get("failures", {}) | failures,
    }
    atomic_write_text(result_path, json.dumps(payload, indent=2, default=str))
    atomic_write_text(out / f"{stem}.config.json", json.dumps(dataclasses.asdict(config), indent=2, default=str))
    if config.breakdown:  # beside the results: {method label: breakdown} (himbench.evaluation.breakdown)
        strata = {r.label: r.breakdown for r in results if r.breakdown is not None}
        atomic_write_text(out / f"{stem}.breakdown.json", json.dumps(strata, indent=2, allow_nan=False))
    return result_path
