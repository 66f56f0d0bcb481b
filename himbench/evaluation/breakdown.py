"""Scores by stratum (``himbench evaluate --breakdown occlusion,people,size``) and bootstrap intervals on them.

Pure functions of the per-image records that :func:`himbench.evaluation.runner.evaluate_folder` returns (and
``per_image.json`` stores), so a saved evaluation can be broken down again without rescoring.

Strata:

- ``occlusion``: every ground-truth person by its hidden fraction (the shard's ``occlusion`` column, see
  docs/occlusion.md), in buckets ``[e0, e1), [e1, e2), ..., [e(k-1), ek]`` (default edges 0, 0.05, 0.3, 0.5, 1).
  HIM-2K folders carry no amodal mattes and older shards no column, so there it is reported as not available.
- ``size``: every ground-truth person by its share of the image (pixels with alpha > 0, as matching counts them,
  over all pixels), default edges 0, 0.01, 0.05, 0.2, 1 (under 1%, 1-5%, 5-20%, 20% and more).
- ``people``: every image by its number of ground-truth people: 1, 2-3, 4-6, 7 and more (and 0 when such images
  exist).

A person bucket reports ``num_gt``, ``recall@0.5`` and ``recall@0.75`` (x100: the share of its people whose
Hungarian match has an IoU of at least 0.5 / 0.75), ``matched`` (people with any match, IoU > 0) and the mean
per-instance errors of those matched people (``SAD``, ``MSE``, ``MAD``, ``Grad``, ``Conn``: the units of the
summary's ``inst_*``). An image bucket reports ``num_images``, ``num_gt``, ``num_pred`` and, at every IoU threshold of
the evaluation, ``IMQ_<err>``, ``RQ`` and ``MQ_<err>`` recomputed from the summed per-image statistics of its
images, exactly as :class:`~himbench.metrics.imq.IMQAccumulator` does over that subset. Ratios of an empty bucket
are ``None``.

Intervals: every bucket number is a ratio of sums over images, so it gets the same percentile bootstrap as the
summary (:mod:`himbench.metrics.bootstrap`): the same resampled images (one seeded index matrix for the whole
evaluation), the statistic recomputed on each resample's sums. A resample that drew nobody of a bucket gives its
ratios no value (rather than 0) and is left out of their quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from himbench.io import InputError
from himbench.metrics.bootstrap import (
    image_table,
    resample_counts,
    resample_indices,
    summary_intervals,
    summary_keys,
    summary_statistic,
)
from himbench.metrics.imq import IMQ_ERRORS, INSTANCE_ERRORS
from himbench.metrics.table import metric_key, resolve

__all__ = [
    "DEFAULT_OCCLUSION_EDGES",
    "DEFAULT_SIZE_EDGES",
    "PEOPLE_BUCKETS",
    "RECALL_THRESHOLDS",
    "STRATA",
    "add_statistics",
    "breakdown",
    "image_record",
    "interval_columns",
    "parse_edges",
    "parse_strata",
]

STRATA: tuple[str, ...] = ("occlusion", "people", "size")
DEFAULT_OCCLUSION_EDGES: tuple[float, ...] = (0.0, 0.05, 0.3, 0.5, 1.0)
DEFAULT_SIZE_EDGES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2, 1.0)
PEOPLE_BUCKETS: tuple[tuple[int, float], ...] = ((1, 1), (2, 3), (4, 6), (7, math.inf))
RECALL_THRESHOLDS: tuple[float, ...] = (0.5, 0.75)
_CHUNK_ELEMENTS = 4_000_000  # resamples x images per counts block, as in himbench.metrics.bootstrap
# the headline numbers that get a bootstrap interval in results.csv (himbench.metrics.table families)
_INTERVAL_FAMILIES = ("IMQ", "RQ", "MQ", "PQ", "inst")

Statistic = Callable[[Mapping[str, np.ndarray]], np.ndarray]


# ------------------------------------------------------------------------------------------------ parsing
def parse_strata(text: str, option: str = "--breakdown") -> tuple[str, ...]:
    """``"occlusion,people,size"`` (any subset, any order, or ``all``) -> the strata in :data:`STRATA` order.
    Raises :class:`InputError` naming ``option`` for an unknown or empty name."""
    names = [part.strip() for part in str(text).split(",")]
    if names == ["all"]:
        return STRATA
    unknown = [name for name in names if name not in STRATA]
    if unknown or not names:
        raise InputError(option, f"unknown stratum {unknown[0]!r} (choose from {', '.join(STRATA)}, or all)")
    return tuple(name for name in STRATA if name in names)


def parse_edges(text: str, option: str = "--occlusion-buckets") -> tuple[float, ...]:
    """``"0,0.05,0.3,0.5,1"`` -> bucket edges. They must be at least two finite numbers, strictly increasing, from 0
    to 1 (so that every person falls in exactly one bucket). Raises :class:`InputError` naming ``option``."""
    parts = [part.strip() for part in str(text).split(",")]
    edges = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise InputError(option, f"{part!r} is not a number (expected edges like 0,0.05,0.3,0.5,1)") from None
        if not math.isfinite(value):
            raise InputError(option, f"{part!r} is not a finite number")
        edges.append(value)
    if len(edges) < 2:
        raise InputError(option, "needs at least two edges (one bucket), e.g. 0,0.05,0.3,0.5,1")
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise InputError(option, f"edges must be strictly increasing, got {text}")
    if edges[0] != 0.0 or edges[-1] != 1.0:
        raise InputError(option, f"edges must start at 0 and end at 1 (every fraction in one bucket), got {text}")
    return tuple(edges)


# ------------------------------------------------------------------------------------------------ helpers
def _ratio(numerator: np.ndarray, denominator: np.ndarray, scale: float = 1.0) -> np.ndarray:
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(scale * numerator, denominator, out=out, where=denominator != 0)
    return out


def _label(low: float, high: float, last: bool) -> str:
    return f"[{low:g}, {high:g}{']' if last else ')'}"


def _bucket_of(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bucket index of each value: ``[e_i, e_i+1)``, the last bucket closed; -1 outside the edges."""
    index = np.searchsorted(np.asarray(edges), values, side="right") - 1
    index[values == edges[-1]] = len(edges) - 2
    index[(values < edges[0]) | (values > edges[-1])] = -1
    return index


def _scored(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if isinstance(r, dict) and "num_gt" in r]


def _person_values(record: dict, key: str, source: str) -> list[float]:
    values = record.get(key)
    if not isinstance(values, list) or len(values) != record["num_gt"]:
        raise InputError(source, f"image {record.get('stem')!r}: no per-person {key!r} with one value per "
                                 "ground-truth person (per_image.json written before the breakdowns? evaluate again)")
    return values


class _Numbers:
    """Per-image columns and the numbers (statistics of their sums) that the breakdown reports."""

    def __init__(self, n_images: int) -> None:
        self.n_images = n_images
        self.columns: dict[str, np.ndarray] = {}
        self.entries: list[tuple[dict, str, Statistic, str | None]] = []  # (bucket, key, statistic, denominator)

    def column(self, name: str, values: np.ndarray) -> None:
        self.columns[name] = np.asarray(values, dtype=np.float64)

    def add(self, bucket: dict, key: str, statistic: Statistic, denominator: str | None = None) -> None:
        self.entries.append((bucket, key, statistic, denominator))

    def fill(self, resamples: int, seed: int, level: float) -> None:
        names = list(self.columns)
        matrix = np.stack([self.columns[n] for n in names], axis=1) if names else np.zeros((self.n_images, 0))
        totals = matrix.sum(axis=0)
        total_map = {n: totals[j:j + 1] for j, n in enumerate(names)}
        resampled = None
        if resamples > 0 and self.n_images > 0:
            indices = resample_indices(self.n_images, resamples, seed)
            step = max(1, _CHUNK_ELEMENTS // self.n_images)
            blocks = [resample_counts(indices[i:i + step], self.n_images) @ matrix
                      for i in range(0, len(indices), step)]
            sums = np.concatenate(blocks, axis=0)
            resampled = {n: sums[:, j] for j, n in enumerate(names)}
        q = ((1.0 - level) / 2.0, (1.0 + level) / 2.0)
        for bucket, key, statistic, denominator in self.entries:
            if denominator is not None and total_map[denominator][0] == 0:
                bucket[key] = None  # a mean over nobody
                continue
            bucket[key] = float(statistic(total_map)[0])
            if resampled is not None:
                values = np.array(np.broadcast_to(statistic(resampled), (resamples,)), dtype=np.float64)
                if denominator is not None:
                    # a resample that drew nobody of the bucket has no value (not 0): it is left out
                    values[resampled[denominator] == 0] = np.nan
                if np.isnan(values).all():
                    continue
                low, high = np.nanquantile(values, q)
                bucket.setdefault("intervals", {})[key] = {"low": float(low), "high": float(high)}


# ------------------------------------------------------------------------------------------------ strata
def _person_stratum(numbers: _Numbers, scored: list[dict], name: str, values_key: str, edges: Sequence[float],
                    source: str) -> dict:
    n_buckets = len(edges) - 1
    shape = (len(scored), n_buckets)
    gt = np.zeros(shape)
    matched = np.zeros(shape)
    hits = {t: np.zeros(shape) for t in RECALL_THRESHOLDS}
    errors = {e: np.zeros(shape) for e in INSTANCE_ERRORS}
    for i, record in enumerate(scored):
        values = np.asarray(_person_values(record, values_key, source), dtype=np.float64)
        buckets = _bucket_of(values, edges)
        np.add.at(gt[i], buckets[buckets >= 0], 1.0)
        for match in record.get("matches") or []:
            k = match.get("gt_index")
            if not isinstance(k, int) or not 0 <= k < len(buckets) or buckets[k] < 0:
                continue
            b = buckets[k]
            matched[i, b] += 1.0
            for t in RECALL_THRESHOLDS:
                hits[t][i, b] += float(match["iou"] >= t)
            for e in INSTANCE_ERRORS:
                errors[e][i, b] += float(match[e])
    out = []
    for b in range(n_buckets):
        bucket: dict[str, Any] = {"label": _label(edges[b], edges[b + 1], b == n_buckets - 1),
                                  "low": float(edges[b]), "high": float(edges[b + 1])}
        prefix = f"{name}{b}:"
        numbers.column(prefix + "gt", gt[:, b])
        numbers.column(prefix + "matched", matched[:, b])
        numbers.add(bucket, "num_gt", lambda s, p=prefix: s[p + "gt"])
        for t in RECALL_THRESHOLDS:
            numbers.column(f"{prefix}tp{t:g}", hits[t][:, b])
            numbers.add(bucket, metric_key("recall", threshold=t),
                        lambda s, p=prefix, t=t: _ratio(s[f"{p}tp{t:g}"], s[p + "gt"], 100.0), prefix + "gt")
        numbers.add(bucket, "matched", lambda s, p=prefix: s[p + "matched"])
        for e in INSTANCE_ERRORS:
            numbers.column(prefix + e, errors[e][:, b])
            numbers.add(bucket, e, lambda s, p=prefix, e=e: _ratio(s[p + e], s[p + "matched"]), prefix + "matched")
        out.append(bucket)
    return {"available": True, "edges": [float(e) for e in edges], "buckets": out}


def _people_stratum(numbers: _Numbers, scored: list[dict], source: str) -> dict:
    table = image_table(scored, source)
    counts = np.asarray([r["num_gt"] for r in scored], dtype=np.float64)
    ranges = list(PEOPLE_BUCKETS)
    if np.any(counts == 0):
        ranges.insert(0, (0, 0))
    keys = ["num_images", "num_gt", "num_pred"]
    for tag in table.thresholds:
        keys += [*(metric_key("IMQ", n, tag) for n in IMQ_ERRORS), metric_key("RQ", threshold=tag),
                 *(metric_key("MQ", n, tag) for n in IMQ_ERRORS)]
    out = []
    for b, (low, high) in enumerate(ranges):
        label = str(low) if low == high else (f"{low}+" if math.isinf(high) else f"{low}-{int(high)}")
        bucket: dict[str, Any] = {"label": label, "low": low, "high": None if math.isinf(high) else int(high)}
        inside = ((counts >= low) & (counts <= high)).astype(np.float64)
        prefix = f"people{b}:"
        for j, column in enumerate(table.columns):
            numbers.column(prefix + column, table.matrix[:, j] * inside)
        for key in keys:
            statistic = summary_statistic(key, table)
            numbers.add(bucket, key,
                        lambda s, f=statistic, p=prefix: f({c: s[p + c] for c in table.columns}),
                        None if key.startswith("num_") else prefix + "images")
        out.append(bucket)
    return {"available": True, "buckets": out}


def _occlusion_unavailable(scored: list[dict], gt_kind: str) -> str | None:
    lacking = sum(1 for r in scored if not isinstance(r.get("gt_occlusion"), list))
    if not lacking:
        return None
    if gt_kind != "shards":
        return (f"the ground truth ({gt_kind}) records no per-person occlusion: it has no amodal mattes, so how much "
                "of each person is hidden cannot be known")
    return (f"{lacking} of {len(scored)} scored images have no per-person 'occlusion' in their shard row (shards "
            "built before the column; rebuild with himbench build-dataset to get it)")


def breakdown(
    records: Sequence[dict],
    strata: Sequence[str] = STRATA,
    *,
    occlusion_edges: Sequence[float] = DEFAULT_OCCLUSION_EDGES,
    size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
    gt_kind: str = "shards",
    resamples: int = 0,
    seed: int = 0,
    level: float = 0.95,
    source: str = "<records>",
) -> dict[str, Any]:
    """``{stratum: {"available", "buckets": [...]}}`` for each of ``strata`` (see the module docstring); a stratum
    that cannot be computed is ``{"available": False, "reason": ...}``. With ``resamples > 0`` every bucket number
    also gets ``intervals`` (percentile bootstrap over images at ``level``, seeded by ``seed``).

    Raises :class:`InputError` (naming ``source``) when a scored record lacks the per-person fields."""
    scored = _scored(records)
    numbers = _Numbers(len(scored))
    out: dict[str, Any] = {}
    for stratum in strata:
        if stratum not in STRATA:
            raise InputError(source, f"unknown stratum {stratum!r} (choose from {', '.join(STRATA)})")
        if not scored:
            out[stratum] = {"available": False, "reason": "no image was scored"}
        elif stratum == "occlusion":
            reason = _occlusion_unavailable(scored, gt_kind)
            out[stratum] = ({"available": False, "reason": reason} if reason else
                            _person_stratum(numbers, scored, "occ", "gt_occlusion", occlusion_edges, source))
        elif stratum == "size":
            out[stratum] = _person_stratum(numbers, scored, "size", "gt_area", size_edges, source)
        else:
            out[stratum] = _people_stratum(numbers, scored, source)
    numbers.fill(resamples, seed, level)
    return out


def add_statistics(
    result: Any,
    strata: Sequence[str] = (),
    *,
    occlusion_edges: Sequence[float] = DEFAULT_OCCLUSION_EDGES,
    size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Any:
    """Fill in ``result.breakdown`` (when ``strata``), ``result.intervals`` ({summary key: {low, high}}) and
    ``result.bootstrap`` ({resamples, seed, level}) of an :class:`~himbench.evaluation.runner.EvaluationResult`
    (``resamples = 0``: no intervals). Returns ``result``."""
    if resamples < 0:
        raise InputError("--bootstrap", f"resamples must be 0 (off) or more, got {resamples}")
    scored = _scored(result.records)
    if strata:
        result.breakdown = breakdown(result.records, strata, occlusion_edges=occlusion_edges, size_edges=size_edges,
                                     gt_kind=result.config.gt_kind, resamples=resamples, seed=seed, level=level)
    if resamples > 0 and scored:
        table = image_table(scored, "per-image records")
        keys = [key for key in summary_keys(table) if key in result.summary]
        intervals = summary_intervals(table, resamples, seed, level, keys=keys)
        result.intervals = {key: {"low": v["low"], "high": v["high"]} for key, v in intervals.items()}
        result.bootstrap = {"resamples": int(resamples), "seed": int(seed), "level": float(level),
                            "unit": "image", "method": "percentile bootstrap (himbench.metrics.bootstrap)"}
    return result


# ------------------------------------------------------------------------------------------------ bench
def image_record(stem: str, stats: Any, thresholds: Sequence[float], gt_alphas: np.ndarray,
                 occlusion: Sequence[float] | None = None) -> dict[str, Any]:
    """The per-image record of ``per_image.json`` (what the breakdowns and intervals need) for one image scored
    elsewhere (``himbench bench``): ``stats`` from :func:`~himbench.metrics.imq.evaluate_instances`. Matches are
    named by prediction index."""
    from himbench.evaluation.runner import per_image_record

    files = tuple(str(k) for k in range(stats.num_pred))
    occlusion = None if occlusion is None else tuple(float(v) for v in occlusion)
    return per_image_record(stem, "ok", stats, files, tuple(thresholds), gt_alphas, occlusion)


def interval_columns(records: Sequence[dict], resamples: int = 1000, seed: int = 0, level: float = 0.95,
                     keys: Sequence[str] | None = None) -> dict[str, float]:
    """``{"<key>_lo": low, "<key>_hi": high}`` for the headline numbers of ``records`` (IMQ, RQ, MQ, PQ at every
    threshold and the per-instance errors; or ``keys``): the columns ``himbench bench --bootstrap`` adds to
    results.csv, read by the leaderboard (``value ± half-width``). ``{}`` when ``resamples`` is 0 or nothing was
    scored."""
    scored = _scored(records)
    if resamples <= 0 or not scored:
        return {}
    table = image_table(scored, "bench records")
    if keys is None:
        keys = [k for k in summary_keys(table) if (m := resolve(k)) is not None and m.name in _INTERVAL_FAMILIES]
    intervals = summary_intervals(table, resamples, seed, level, keys=keys)
    out: dict[str, float] = {}
    for key, value in intervals.items():
        out[f"{key}_lo"], out[f"{key}_hi"] = value["low"], value["high"]
    return out
