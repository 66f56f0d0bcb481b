"""The one table of reported metrics: every number himbench reports, its key, units and which way is better.

Each entry of :data:`METRICS` is one *family* of keys: ``IMQ`` stands for ``IMQ_mad@0.5``, ``IMQ_conn@0.75`` and
the rest. A key format has up to three fields: ``{err}`` (one of the entry's ``errors``), ``{tag}`` (an IoU
threshold as ``f"{t:g}"`` writes it: ``0.5``, ``0.75``) and ``{n}`` (a people count). Keys are built with
:func:`metric_key` and read back with :func:`parse_key`, so a key is spelled in one place; whether higher is
better is declared on the entry (as torchmetrics declares ``higher_is_better`` on a metric) and read with
:func:`higher_is_better` / :func:`direction`, never guessed from a name.

Where the numbers come from: :meth:`himbench.metrics.IMQAccumulator.summary` (IMQ, RQ, MQ, PQ, counts, ``inst_*``),
:class:`himbench.metrics.paper_units.MaggieAccumulator` (``maggie_*``), the classic single-matte errors
(:mod:`himbench.metrics.classic`; bare in an evaluation summary, ``p3m_*`` / ``dim_*`` in results.csv),
``himbench bench``'s cost columns (:mod:`himbench.bench.results`) and the breakdown buckets
(:mod:`himbench.evaluation.breakdown`). A key ending in ``_lo`` / ``_hi`` (the bounds of a bootstrap interval)
resolves to its metric's entry.

To add a metric: add its entry here, build its keys with :func:`metric_key` where it is computed, and
``tests/test_metrics_table.py`` checks that every key a real evaluation reports is described.

This module imports only the standard library: the leaderboard reads directions from it without loading the
metric code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "CLASSIC_ERRORS",
    "HEADLINE_METRIC",
    "IMQ_ERRORS",
    "INSTANCE_ERRORS",
    "MAGGIE_COLUMNS",
    "METRICS",
    "Metric",
    "direction",
    "higher_is_better",
    "metric_key",
    "metric_label",
    "metric_units",
    "parse_key",
    "resolve",
]

# The error names each family takes as ``{err}`` (their definitions: himbench.metrics.imq, .paper_units, .classic).
IMQ_ERRORS: tuple[str, ...] = ("mad", "mse", "grad", "conn")
INSTANCE_ERRORS: tuple[str, ...] = ("SAD", "MSE", "MAD", "Grad", "Conn")
MAGGIE_COLUMNS: tuple[str, ...] = ("MAD", "MSE", "Grad", "Conn", "SAD")
CLASSIC_ERRORS: tuple[str, ...] = (
    *INSTANCE_ERRORS, "SAD_trimap", "MSE_trimap", "MAD_trimap", "Grad_trimap", "Conn_trimap", "SAD_fg", "SAD_bg",
)

_INSTANCE_UNITS = "SAD / 1000, MSE x 1000, MAD x 1000 (over H*W), Grad / 1000, Conn / 1000 (SPEC s.2)"
_CLASSIC_UNITS = "the benchmark's own convention: himbench.metrics.classic.UNITS[convention][err]"

Kind = Literal["accuracy", "cost", "count"]


@dataclass(frozen=True)
class Metric:
    """One family of reported keys.

    ``higher_is_better`` is None for counts (numbers of images, instances, TPs): they are not scores and no value
    of them is "best". ``kind`` says what the number measures: ``accuracy`` (an untrained method's is never best
    on the leaderboard), ``cost`` (time, memory, size) or ``count``."""

    name: str
    key: str
    units: str
    higher_is_better: bool | None
    kind: Kind
    description: str
    errors: tuple[str, ...] = ()

    def fields(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.key))


METRICS: tuple[Metric, ...] = (
    # ---- instance-aware quality (himbench.metrics.imq, SPEC s.3), at each IoU threshold
    Metric("IMQ", "IMQ_{err}@{tag}", "x 100", True, "accuracy",
           "Instance matting quality: sum of the TPs' similarities / (TP + FP/2 + FN/2) (InstMatt).", IMQ_ERRORS),
    Metric("RQ", "RQ@{tag}", "x 100", True, "accuracy", "Recognition quality: TP / (TP + FP/2 + FN/2)."),
    Metric("MQ", "MQ_{err}@{tag}", "x 100", True, "accuracy",
           "Matting quality of the matched instances: sum of similarities / TP (0 when TP = 0).", IMQ_ERRORS),
    Metric("PQ", "PQ@{tag}", "x 100", True, "accuracy", "Sum of the TPs' IoUs / (TP + FP/2 + FN/2)."),
    Metric("TP", "TP@{tag}", "instances", None, "count", "Predicted instances matched with IoU >= the threshold."),
    Metric("FP", "FP@{tag}", "instances", None, "count", "Predicted instances that are not true positives."),
    Metric("FN", "FN@{tag}", "instances", None, "count", "Ground-truth instances that are not true positives."),
    # ---- per-instance errors (MaGGIe-style table, SPEC units), mean over Hungarian pairs with IoU > 0
    Metric("inst", "inst_{err}", _INSTANCE_UNITS, False, "accuracy",
           "Mean whole-image error of the matched instances (IoU > 0), SPEC s.2 units.", INSTANCE_ERRORS),
    Metric("inst_count", "inst_count", "instances", None, "count", "Matched instances (IoU > 0) behind inst_*."),
    # ---- MaGGIe's own units (himbench.metrics.paper_units), bench rows
    Metric("maggie", "maggie_{err}", "MaGGIe's code: MAD, MSE mean x 1e10 / (H*W); SAD, Grad, Conn sum / 1000",
           False, "accuracy", "MaGGIe Table 5's errors as its released code computes them.", MAGGIE_COLUMNS),
    Metric("maggie_count", "maggie_count", "instances", None, "count", "Instances behind maggie_*."),
    # ---- classic single-matte benchmarks (himbench.metrics.classic)
    Metric("p3m", "p3m_{err}", _CLASSIC_UNITS, False, "accuracy",
           "Mean error in P3M's / AIM's evaluator's convention (bench rows on a P3M or AIM folder).", CLASSIC_ERRORS),
    Metric("dim", "dim_{err}", _CLASSIC_UNITS, False, "accuracy",
           "Mean error in the Composition-1k (DIM MATLAB) convention (bench rows on such a folder).", CLASSIC_ERRORS),
    Metric("error", "{err}", f"{_CLASSIC_UNITS}; in a breakdown bucket: {_INSTANCE_UNITS}", False, "accuracy",
           "A bare error name: in a single-matte evaluation summary, the benchmark's own error (result.units gives "
           "the unit); in a breakdown bucket, the mean per-instance error of its matched people.", CLASSIC_ERRORS),
    Metric("classic_images", "classic_images", "images", None, "count", "Images behind the classic errors."),
    # ---- counts of an evaluation
    Metric("num_images", "num_images", "images", None, "count", "Scored images."),
    Metric("num_gt", "num_gt", "instances", None, "count", "Ground-truth instances."),
    Metric("num_pred", "num_pred", "instances", None, "count", "Predicted instances."),
    Metric("mean_iou", "mean_iou", "IoU in [0, 1]", True, "accuracy",
           "Per image: mean IoU of its Hungarian pairs; in a summary or comparison, the mean over images."),
    # ---- video (himbench.evaluation.video, himbench.metrics.temporal, himbench.metrics.clip_matching)
    Metric("dtSSD", "dtSSD", "alpha in [0, 1], unscaled", False, "accuracy",
           "Temporal change error (Erofeev et al., BMVC 2015): mean over frame pairs, then over person-clips."),
    Metric("MESSDdt", "MESSDdt", "alpha in [0, 1], unscaled", False, "accuracy",
           "Motion-aware squared-error change (Erofeev et al.), correct warp: mean over pairs, then person-clips."),
    Metric("maggie_dtSSD", "maggie_dtSSD", "MaGGIe's code: 0.1 x dtSSD", False, "accuracy",
           "dtSSD as MaGGIe's code prints it, pooled over every (frame pair, person) of the split."),
    Metric("maggie_MESSDdt", "maggie_MESSDdt", "MaGGIe's code: 1e4 x MESSDdt / (H*W + 1)", False, "accuracy",
           "MESSDdt as MaGGIe's code prints it (warp as configured), pooled over every (frame pair, person)."),
    Metric("id_switches", "id_switches", "switches", False, "accuracy",
           "Changes of the prediction tracking a person between its tracked frames (clip_matching), summed."),
    Metric("switched_frames", "switched_frames", "frames", False, "accuracy",
           "Frames where a person is tracked by a prediction other than its clip-level partner, summed."),
    Metric("clip_mean_iou", "clip_mean_iou", "IoU in [0, 1]", True, "accuracy",
           "Mean over people of the clip-level pair's mean per-frame IoU (0 when unmatched), mean over clips."),
    Metric("num_clips", "num_clips", "clips", None, "count", "Scored clips."),
    Metric("num_frames", "num_frames", "frames", None, "count", "Scored frames."),
    Metric("scored_frames", "scored_frames", "frames", None, "count", "Frames with a true or predicted person."),
    Metric("temporal_people", "temporal_people", "person-clips", None, "count", "Person-clips behind dtSSD."),
    Metric("clips_without_prediction", "clips_without_prediction", "clips", None, "count",
           "Clips with no prediction folder (every person scored as missed)."),
    # ---- breakdown buckets (himbench.evaluation.breakdown)
    Metric("recall", "recall@{tag}", "x 100", True, "accuracy",
           "Share of a bucket's people whose Hungarian match has IoU >= the threshold."),
    Metric("matched", "matched", "instances", None, "count", "A bucket's people with any match (IoU > 0)."),
    # ---- cost (himbench bench, himbench.bench.results)
    Metric("params", "params", "learned parameters", False, "cost", "Learned parameters of the method."),
    Metric("latency_ms", "latency_ms", "ms / image", False, "cost", "Mean milliseconds of predict per image."),
    Metric("latency_ms_n", "latency_ms_n{n}", "ms / image", False, "cost",
           "Fastest ms of the repeats on a synthetic 640 x 640 probe with n people."),
    Metric("peak_mem_mb", "peak_mem_mb", "MiB", False, "cost", "Peak memory, measured as peak_mem_kind says."),
    Metric("n_images", "n_images", "images", None, "count", "Images a bench row scored."),
    Metric("failures", "failures", "images", None, "count", "Images whose prediction failed in a bench row."),
)

_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
_INTERVAL_SUFFIXES = ("_lo", "_hi")


@lru_cache(maxsize=4096)  # called per image and threshold while scoring: build each key once
def metric_key(family: str, err: str | None = None, threshold: float | str | None = None,
               n: int | None = None) -> str:
    """The key of ``family`` (an entry's ``name``) for error ``err``, IoU ``threshold`` (a number, written as
    ``f"{t:g}"``, or a tag string as records spell it) and people count ``n``:
    ``metric_key("IMQ", "mad", 0.5) == "IMQ_mad@0.5"``. Raises KeyError for an unknown family and ValueError when
    a field the format needs is missing, one it lacks is given, or ``err`` is not one of the family's errors."""
    metric = _BY_NAME[family]
    given = {"err": err, "tag": threshold, "n": n}
    needed = metric.fields()
    wrong = [f for f, v in given.items() if (v is None) == (f in needed)]
    if wrong:
        raise ValueError(f"metric {family!r} ({metric.key}) takes {', '.join(needed) or 'no field'}; "
                         f"got {', '.join(f'{f}={v!r}' for f, v in given.items() if v is not None) or 'none'}")
    if err is not None and err not in metric.errors:
        raise ValueError(f"metric {family!r} has no error {err!r} (choose from {', '.join(metric.errors)})")
    tag = threshold if threshold is None or isinstance(threshold, str) else f"{threshold:g}"
    return metric.key.format(err=err, tag=tag, n=n)


def metric_label(family: str, err: str | None = None) -> str:
    """The key without its IoU threshold, for a table column that has one row per threshold:
    ``metric_label("IMQ", "mad") == "IMQ_mad"``."""
    metric = _BY_NAME[family]
    fmt = metric.key.split("@{tag}")[0]
    return fmt.format(err=err, n=None) if "{err}" in fmt else fmt


def _pattern(metric: Metric) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"({\w+})", metric.key):
        if piece == "{err}":
            parts.append("(?P<err>" + "|".join(re.escape(e) for e in metric.errors) + ")")
        elif piece == "{tag}":
            parts.append(r"(?P<tag>[0-9][0-9.eE+-]*)")
        elif piece == "{n}":
            parts.append(r"(?P<n>[0-9]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


_PATTERNS: tuple[tuple[Metric, re.Pattern[str]], ...] = tuple((m, _pattern(m)) for m in METRICS)


@lru_cache(maxsize=4096)  # the leaderboard asks once per column, bootstrap once per key: parse each key once
def _parse(key: str) -> tuple[Metric, tuple[tuple[str, str], ...]] | None:
    for metric, pattern in _PATTERNS:
        match = pattern.fullmatch(key)
        if match:
            return metric, tuple((k, v) for k, v in match.groupdict().items() if v is not None)
    if key.endswith(_INTERVAL_SUFFIXES):
        return _parse(key[:-3])
    return None


def parse_key(key: str) -> tuple[Metric, dict[str, str]] | None:
    """``(entry, fields)`` of a reported key (``"IMQ_mad@0.5"`` -> IMQ, ``{"err": "mad", "tag": "0.5"}``); a
    ``<key>_lo`` / ``<key>_hi`` bound resolves as ``<key>``. None for a key the table does not describe."""
    parsed = _parse(key)
    return (parsed[0], dict(parsed[1])) if parsed else None


def resolve(key: str) -> Metric | None:
    """The :data:`METRICS` entry describing ``key`` (None when none does)."""
    parsed = _parse(key)
    return parsed[0] if parsed else None


def higher_is_better(key: str) -> bool | None:
    """True / False as the table declares for ``key``'s family; None for a count or a key the table lacks."""
    metric = resolve(key)
    return metric.higher_is_better if metric else None


def direction(key: str) -> Literal["max", "min"] | None:
    """``"max"`` (higher is better), ``"min"`` (lower is better) or None (a count, or not a metric)."""
    better = higher_is_better(key)
    return None if better is None else ("max" if better else "min")


def metric_units(key: str) -> str | None:
    """The units of ``key`` as the table states them (None when the table lacks the key)."""
    metric = resolve(key)
    return metric.units if metric else None


# The number the leaderboard ranks by, the scatter plot draws and comparisons default to.
HEADLINE_METRIC: str = "IMQ_mad@0.5"
