"""Bootstrap intervals over images for every dataset number, and a paired bootstrap for two methods.

Method: the nonparametric percentile bootstrap (see e.g. Efron & Tibshirani, *An Introduction to the Bootstrap*,
Chapman & Hall, 1993). The images of an evaluation are the sampling unit. One resample draws ``n`` images with
replacement from the ``n`` scored images (an image drawn twice counts twice); the statistic is recomputed on every
resample, and the interval at level ``L`` is the ``(1 - L) / 2`` and ``(1 + L) / 2`` quantiles of those values
(``numpy.quantile``, linear interpolation between order statistics). Draws come from
``numpy.random.default_rng(seed)``, so a seed gives the same interval on any machine.

IMQ, RQ, MQ and PQ are ratios of sums over images (``sum s / (TP + FP/2 + FN/2)``), not means of per-image
values, so each resample recomputes them from the summed per-image *sufficient statistics*, exactly as
:class:`~himbench.metrics.imq.IMQAccumulator` does over the same multiset of images. The per-instance errors
(``inst_SAD`` ...) are means over matched instances, also a ratio of sums (error sums / instance count). Any other
numeric per-image field (``mean_iou``) gets the plain mean over images.

All of it is vectorised: one ``(resamples, n)`` index matrix, turned into per-resample image counts with
``np.bincount``, and the resampled sums of every sufficient statistic are one matrix product
``counts @ per_image``; no Python loop runs over resamples.

Paired comparison (:func:`paired_bootstrap`): two methods scored on the same images are resampled *jointly* (the
same drawn images for both), and the statistic of the difference ``A - B`` is recomputed on each resample. The
interval is its percentile interval. The two-sided p-value is twice the share of resampled differences on the
other side of 0 from the observed difference (ties at 0 count as the other side), capped at 1; an observed
difference of exactly 0 (identical inputs) has p = 1. Its resolution is ``1 / resamples``: p = 0 means "below
that", not zero.

Where the sufficient statistics come from: the records of ``per_image.json`` as
:func:`himbench.evaluation.runner.evaluate_folder` writes them. Per image and threshold ``t`` they hold ``TP@t``,
``FP@t``, ``FN@t``, the per-image ``IMQ_<err>@t = 100 * S / D`` with ``D = TP + FP/2 + FN/2``, and (evaluations
since the breakdowns) the similarity sum ``S`` itself as ``sim_<err>@t``, used as is. Older records lack it, so
there ``S`` is recovered as ``IMQ * D / 100`` (exact up to float rounding; ``S = 0`` when ``D = 0``). PQ's IoU sum
is the sum of the ``TP@t`` largest IoUs in ``matches`` (a pair is a TP exactly when its IoU reaches ``t``), and
the per-instance error sums come from ``matches`` too. Records without ``num_gt`` (an image whose ground truth was
bad or whose scoring failed) were not scored and are left out, as the accumulator leaves them out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from himbench.io import InputError
from himbench.metrics.table import HEADLINE_METRIC, IMQ_ERRORS, INSTANCE_ERRORS, metric_key, parse_key

__all__ = [
    "ImageTable",
    "Interval",
    "Statistic",
    "bootstrap_distribution",
    "bootstrap_interval",
    "image_table",
    "paired_bootstrap",
    "resample_counts",
    "resample_indices",
    "summary_intervals",
    "summary_keys",
    "summary_statistic",
]

# A statistic maps {column name: resampled column sums, shape (R,)} to its value per resample, shape (R,).
Statistic = Callable[[Mapping[str, np.ndarray]], np.ndarray]

_TP_KEY = re.compile(r"^TP@(.+)$")
_COUNT_FIELDS = ("num_gt", "num_pred")
# Per-image fields that are inputs to the sufficient statistics (or not numbers), never plain means of their own.
_NON_MEAN_FIELDS = {"stem", "status", "matches"}
_CHUNK_ELEMENTS = 4_000_000  # resamples x images per counts block: bounds memory at ~32 MB whatever the size


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float
    level: float = 0.95
    resamples: int = 1000

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class ImageTable:
    """Per-image sufficient statistics: ``matrix[i, j]`` is column ``columns[j]`` of image ``stems[i]``."""

    stems: tuple[str, ...]
    columns: tuple[str, ...]
    matrix: np.ndarray  # (n_images, n_columns) float64
    thresholds: tuple[str, ...]  # IoU threshold tags as the records spell them ("0.5", "0.75")
    mean_fields: tuple[str, ...]  # other numeric per-image fields, reported as plain means over images
    source: str = "<records>"

    def __len__(self) -> int:
        return len(self.stems)

    def column_map(self) -> dict[str, np.ndarray]:
        return {name: self.matrix[:, j] for j, name in enumerate(self.columns)}

    def reordered(self, stems: Sequence[str]) -> ImageTable:
        """The same table with its rows in the order of ``stems`` (which must be exactly this table's images)."""
        position = {stem: i for i, stem in enumerate(self.stems)}
        order = np.fromiter((position[s] for s in stems), dtype=np.int64, count=len(stems))
        return ImageTable(tuple(stems), self.columns, self.matrix[order], self.thresholds, self.mean_fields,
                          self.source)


# ------------------------------------------------------------------------------------------ records -> table
def _number(record: dict, key: str, source: str, stem: str | None = None) -> float:
    """``record[key]`` as a float; InputError naming the file, the image (``stem`` or the record's) and the field."""
    value = record.get(key)
    # bool is an int subclass; a JSON true where a count belongs is a malformed record, not 1
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        stem = record.get("stem", "?") if stem is None else stem
        problem = "missing" if key not in record else f"not a finite number ({value!r})"
        raise InputError(source, f"image {stem!r}: per-image field {key!r} is {problem}")
    return float(value)


def _scored(records: Iterable[Any], source: str) -> list[dict]:
    if not isinstance(records, list):
        raise InputError(source, f"expected a list of per-image records, got {type(records).__name__}")
    scored, seen = [], set()
    for position, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("stem"), str):
            raise InputError(source, f"record {position} is not an object with a string 'stem'")
        if record["stem"] in seen:
            raise InputError(source, f"image {record['stem']!r} appears twice")
        seen.add(record["stem"])
        if "num_gt" in record:  # records of images that were not scored carry only stem and status
            scored.append(record)
    return scored


def image_table(records: Sequence[dict], source: str = "<records>") -> ImageTable:
    """Per-image sufficient statistics from ``per_image.json`` records (see the module docstring).

    Raises :class:`~himbench.io.InputError` (naming ``source``, the image and the field) when a scored record lacks
    a field the statistics need or holds a non-number there, and when no image was scored.
    """
    scored = _scored(records, source)
    if not scored:
        raise InputError(source, "no scored image (every record lacks 'num_gt'); nothing to resample")
    tags = tuple(m.group(1) for key in scored[0] if (m := _TP_KEY.match(key)))
    columns: list[str] = ["images", *_COUNT_FIELDS]
    for tag in tags:
        columns += [f"TP@{tag}", f"FP@{tag}", f"FN@{tag}", *(f"sim_{n}@{tag}" for n in IMQ_ERRORS), f"iou@{tag}"]
    columns += ["inst_count", *(f"inst_sum_{n}" for n in INSTANCE_ERRORS)]
    derived = {metric_key("RQ", threshold=t) for t in tags}
    derived |= {metric_key("IMQ", n, t) for t in tags for n in IMQ_ERRORS}
    derived |= {metric_key("inst", n) for n in INSTANCE_ERRORS} | {f"sim_{n}@{t}" for t in tags for n in IMQ_ERRORS}
    mean_fields = tuple(
        key for key, value in scored[0].items()
        if key not in _NON_MEAN_FIELDS and key not in derived and key not in columns
        and isinstance(value, int | float) and not isinstance(value, bool)
    )
    columns += [f"value:{key}" for key in mean_fields]

    matrix = np.zeros((len(scored), len(columns)), dtype=np.float64)
    index = {name: j for j, name in enumerate(columns)}
    for i, record in enumerate(scored):
        row = matrix[i]
        row[index["images"]] = 1.0
        for key in _COUNT_FIELDS:
            row[index[key]] = _number(record, key, source)
        matches = record.get("matches")
        if not isinstance(matches, list) or not all(isinstance(m, dict) for m in matches):
            raise InputError(source, f"image {record['stem']!r}: per-image field 'matches' is missing or not a list "
                                     "of objects")
        ious = sorted((_number(m, "iou", source, record["stem"]) for m in matches), reverse=True)
        for tag in tags:
            tp, fp, fn = (_number(record, metric_key(k, threshold=tag), source) for k in ("TP", "FP", "FN"))
            if tp > len(ious):
                raise InputError(source, f"image {record['stem']!r}: TP@{tag} = {tp:g} but only {len(ious)} matches")
            row[index[f"TP@{tag}"]], row[index[f"FP@{tag}"]], row[index[f"FN@{tag}"]] = tp, fp, fn
            denominator = tp + 0.5 * fp + 0.5 * fn
            for name in IMQ_ERRORS:
                if f"sim_{name}@{tag}" in record:  # stored by newer evaluations: exact
                    row[index[f"sim_{name}@{tag}"]] = _number(record, f"sim_{name}@{tag}", source)
                    continue
                imq = _number(record, metric_key("IMQ", name, tag), source)
                # per-image IMQ = 100 * S / D, so S = IMQ * D / 100 (the record does not store S itself)
                row[index[f"sim_{name}@{tag}"]] = imq * denominator / 100.0 if denominator else 0.0
            row[index[f"iou@{tag}"]] = sum(ious[: int(tp)])  # the TP pairs are exactly the TP largest IoUs
        row[index["inst_count"]] = len(matches)
        for name in INSTANCE_ERRORS:
            row[index[f"inst_sum_{name}"]] = sum(_number(m, name, source, record["stem"]) for m in matches)
        for key in mean_fields:
            row[index[f"value:{key}"]] = _number(record, key, source)
    return ImageTable(tuple(r["stem"] for r in scored), tuple(columns), matrix, tags, mean_fields, source)


# ------------------------------------------------------------------------------------------ statistics
def _ratio(numerator: np.ndarray, denominator: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``scale * numerator / denominator``, 0 where the denominator is 0 (as the accumulator reports it)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(scale * numerator, denominator, out=out, where=denominator != 0)
    return out


def summary_keys(table: ImageTable) -> tuple[str, ...]:
    """Every number :func:`summary_statistic` can recompute for ``table``: the keys of
    :meth:`IMQAccumulator.summary` in its order, then the plain means of the other per-image fields."""
    keys = ["num_images", *_COUNT_FIELDS]
    for tag in table.thresholds:
        keys += [*(metric_key("IMQ", n, tag) for n in IMQ_ERRORS), metric_key("RQ", threshold=tag),
                 *(metric_key("MQ", n, tag) for n in IMQ_ERRORS),
                 *(metric_key(family, threshold=tag) for family in ("PQ", "TP", "FP", "FN"))]
    keys += [*(metric_key("inst", n) for n in INSTANCE_ERRORS), "inst_count", *table.mean_fields]
    return tuple(keys)


def summary_statistic(key: str, table: ImageTable) -> Statistic:
    """The statistic behind summary key ``key`` (``IMQ_mad@0.5``, ``RQ@0.75``, ``inst_SAD``, ``mean_iou`` ...) as
    a function of resampled column sums. Raises :class:`~himbench.io.InputError` naming the table's source when
    its records cannot give ``key``."""
    if key not in summary_keys(table):
        first = table.thresholds[0] if table.thresholds else ""
        shown = ", ".join(k for k in summary_keys(table) if "@" not in k or k.endswith(f"@{first}"))
        raise InputError(table.source, f"no per-image data for {key!r} (IoU thresholds in the records: "
                                       f"{', '.join(table.thresholds) or 'none'}; numbers, at the first: {shown})")
    if key == "num_images":
        return lambda s: s["images"]
    if key in _COUNT_FIELDS or key == "inst_count":
        return lambda s: s[key]
    parsed = parse_key(key)
    family, fields = parsed if parsed else (None, {})
    if family is not None and family.name == "inst":
        name = fields["err"]
        return lambda s: _ratio(s[f"inst_sum_{name}"], s["inst_count"])
    if family is None or "tag" not in fields:  # a plain per-image field
        return lambda s: _ratio(s[f"value:{key}"], s["images"])
    kind, tag, err = family.name, fields["tag"], fields.get("err")

    def denominator(s: Mapping[str, np.ndarray]) -> np.ndarray:
        return s[f"TP@{tag}"] + 0.5 * s[f"FP@{tag}"] + 0.5 * s[f"FN@{tag}"]

    if kind == "IMQ":
        return lambda s: _ratio(s[f"sim_{err}@{tag}"], denominator(s), 100.0)
    if kind == "MQ":
        return lambda s: _ratio(s[f"sim_{err}@{tag}"], s[f"TP@{tag}"], 100.0)
    if kind == "RQ":
        return lambda s: _ratio(s[f"TP@{tag}"], denominator(s), 100.0)
    if kind == "PQ":
        return lambda s: _ratio(s[f"iou@{tag}"], denominator(s), 100.0)
    return lambda s: s[key]  # TP, FP, FN


# ------------------------------------------------------------------------------------------ resampling
def resample_indices(n_images: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The ``(resamples, n_images)`` matrix of drawn image indices (with replacement) for ``seed``."""
    if n_images < 1:
        raise ValueError("the bootstrap needs at least one image")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    return np.random.default_rng(seed).integers(0, n_images, size=(resamples, n_images))


def resample_counts(indices: np.ndarray, n_images: int) -> np.ndarray:
    """How often each image was drawn in each resample: ``(resamples, n_images)`` float64 (rows sum to n)."""
    rows = indices.shape[0]
    flat = (indices + np.arange(rows, dtype=np.int64)[:, None] * n_images).ravel()
    return np.bincount(flat, minlength=rows * n_images).reshape(rows, n_images).astype(np.float64)


def _resampled_sums(matrix: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(resamples, n_columns)`` sums of every column over each resample's drawn images."""
    n_images = matrix.shape[0]
    step = max(1, _CHUNK_ELEMENTS // max(n_images, 1))
    blocks = [resample_counts(indices[i:i + step], n_images) @ matrix for i in range(0, len(indices), step)]
    return np.concatenate(blocks, axis=0)


def _as_columns(per_image_stats: ImageTable | Mapping[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    if isinstance(per_image_stats, ImageTable):
        return per_image_stats.columns, per_image_stats.matrix
    names = tuple(per_image_stats)
    arrays = [np.asarray(per_image_stats[name], dtype=np.float64) for name in names]
    if not arrays or any(a.ndim != 1 or len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("per-image statistics must be equal-length 1-D arrays, one per name")
    return names, np.stack(arrays, axis=1)


def _evaluate(statistic: Statistic, names: Sequence[str], sums: np.ndarray) -> np.ndarray:
    values = np.asarray(statistic({name: sums[:, j] for j, name in enumerate(names)}), dtype=np.float64)
    return np.broadcast_to(values, (sums.shape[0],))


def _check_level(level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


def bootstrap_distribution(
    per_image_stats: ImageTable | Mapping[str, Any], statistic: Statistic, resamples: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """(point estimate on all images, the statistic on each of ``resamples`` resamples)."""
    names, matrix = _as_columns(per_image_stats)
    indices = resample_indices(matrix.shape[0], resamples, seed)
    point = float(_evaluate(statistic, names, matrix.sum(axis=0, keepdims=True))[0])
    return point, _evaluate(statistic, names, _resampled_sums(matrix, indices))


def bootstrap_interval(
    per_image_stats: ImageTable | Mapping[str, Any],
    statistic: Statistic,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over images.

    ``per_image_stats``: an :class:`ImageTable` or ``{name: per-image values}`` (equal-length 1-D arrays), the
    sufficient statistics that ``statistic`` sums. ``statistic`` gets ``{name: summed values}`` with arrays of
    shape ``(R,)`` and returns ``(R,)`` values (write it with numpy operations, as for one set of sums).
    """
    q_low, q_high = _check_level(level)
    point, values = bootstrap_distribution(per_image_stats, statistic, resamples, seed)
    low, high = np.quantile(values, [q_low, q_high])
    return Interval(point, float(low), float(high), level, resamples)


def summary_intervals(
    records: Sequence[dict] | ImageTable,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    keys: Sequence[str] | None = None,
    source: str = "<records>",
) -> dict[str, dict[str, float]]:
    """``{key: {"value", "low", "high"}}`` for every number of an evaluation summary (:func:`summary_keys`, or
    ``keys``), all from the same resamples. ``value`` equals the evaluation's own summary number (up to float
    rounding), because the sums are the accumulator's."""
    q_low, q_high = _check_level(level)
    table = records if isinstance(records, ImageTable) else image_table(records, source)
    keys = tuple(keys) if keys is not None else summary_keys(table)
    statistics = [summary_statistic(key, table) for key in keys]
    indices = resample_indices(len(table), resamples, seed)
    totals = table.matrix.sum(axis=0, keepdims=True)
    sums = _resampled_sums(table.matrix, indices)
    values = np.stack([_evaluate(stat, table.columns, sums) for stat in statistics], axis=1)
    bounds = np.quantile(values, [q_low, q_high], axis=0)
    out = {}
    for k, (key, stat) in enumerate(zip(keys, statistics, strict=True)):
        point = float(_evaluate(stat, table.columns, totals)[0])
        out[key] = {"value": point, "low": float(bounds[0, k]), "high": float(bounds[1, k])}
    return out


# ------------------------------------------------------------------------------------------ paired
def _examples(stems: set[str], limit: int = 3) -> str:
    shown = ", ".join(repr(s) for s in sorted(stems)[:limit])
    return shown + (", ..." if len(stems) > limit else "")


def _aligned(a: ImageTable, b: ImageTable) -> ImageTable:
    """``b`` with its rows in ``a``'s image order; InputError naming both when their scored images differ."""
    only_a, only_b = set(a.stems) - set(b.stems), set(b.stems) - set(a.stems)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} scored only in {a.source} ({_examples(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} scored only in {b.source} ({_examples(only_b)})")
        raise InputError(f"{a.source} vs {b.source}", "the two evaluations do not score the same images: "
                                                      + "; ".join(parts) + " (a paired comparison needs the same set)")
    return b.reordered(a.stems)


def paired_bootstrap(
    a_records: Sequence[dict] | ImageTable,
    b_records: Sequence[dict] | ImageTable,
    key: str = HEADLINE_METRIC,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    *,
    a_source: str = "A",
    b_source: str = "B",
) -> dict[str, Any]:
    """Paired percentile bootstrap of ``key(A) - key(B)`` for two methods scored on the same images.

    Images are matched by stem and resampled jointly. Returns ``difference`` (on all images), ``low``, ``high``
    (the interval at ``level``), ``p_value`` (two-sided, see the module docstring), the two methods' values and
    the settings. Raises :class:`~himbench.io.InputError` when the scored image sets differ (naming images found
    in only one) or when a record set cannot give ``key``.
    """
    q_low, q_high = _check_level(level)
    a = a_records if isinstance(a_records, ImageTable) else image_table(a_records, a_source)
    b = b_records if isinstance(b_records, ImageTable) else image_table(b_records, b_source)
    b = _aligned(a, b)
    stat_a, stat_b = summary_statistic(key, a), summary_statistic(key, b)
    indices = resample_indices(len(a), resamples, seed)
    value_a = float(_evaluate(stat_a, a.columns, a.matrix.sum(axis=0, keepdims=True))[0])
    value_b = float(_evaluate(stat_b, b.columns, b.matrix.sum(axis=0, keepdims=True))[0])
    differences = _evaluate(stat_a, a.columns, _resampled_sums(a.matrix, indices)) - _evaluate(
        stat_b, b.columns, _resampled_sums(b.matrix, indices)
    )
    difference = value_a - value_b
    if difference == 0.0:
        p_value = 1.0
    else:
        other_side = differences <= 0.0 if difference > 0.0 else differences >= 0.0
        p_value = min(1.0, 2.0 * float(np.mean(other_side)))
    low, high = np.quantile(differences, [q_low, q_high])
    return {
        "key": key,
        "value_a": value_a,
        "value_b": value_b,
        "difference": difference,
        "low": float(low),
        "high": float(high),
        "p_value": p_value,
        "num_images": len(a),
        "resamples": int(resamples),
        "seed": int(seed),
        "level": float(level),
    }
