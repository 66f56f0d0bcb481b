"""Matting metrics (SPEC s.2-3): per-matte errors, instance matching, and the instance-aware IMQ/RQ/MQ.

Reported units: :func:`sad` / 1000, :func:`mse` x 1000, :func:`mad` x 1000, :func:`grad` / 1000, :func:`conn` / 1000
(the ``*_sum`` functions give the raw sums). IMQ, RQ, MQ and PQ are x 100. See :mod:`himbench.metrics.errors` and
:mod:`himbench.metrics.imq` for the exact definitions and every deviation from the reference implementations.
:func:`classic_errors` gives the per-matte errors in the classic benchmarks' own conventions (P3M/AIM,
Composition-1k): :mod:`himbench.metrics.classic`. Every reported key, its units and whether higher is better:
:data:`METRICS` (:mod:`himbench.metrics.table`); build keys with :func:`metric_key`.
"""

from himbench.metrics.classic import CONVENTIONS, UNITS, ClassicStat, classic_errors
from himbench.metrics.errors import (
    abs_error_sum,
    conn,
    connectivity_error_sum,
    grad,
    gradient_error_sum,
    mad,
    mse,
    sad,
    squared_error_sum,
    unknown_region,
)
from himbench.metrics.imq import (
    DEFAULT_THRESHOLDS,
    IMQ_ERRORS,
    INSTANCE_ERRORS,
    ImageInstanceStats,
    IMQAccumulator,
    PairErrors,
    evaluate_instances,
    similarity,
)
from himbench.metrics.kernels import gaussian_derivative_kernel
from himbench.metrics.matching import Matching, iou_matrix, match_instances
from himbench.metrics.table import (
    HEADLINE_METRIC,
    METRICS,
    Metric,
    direction,
    higher_is_better,
    metric_key,
    metric_label,
    metric_units,
    parse_key,
    resolve,
)
from himbench.metrics.temporal import TemporalStat, clip_temporal, maggie_temporal, temporal_errors

__all__ = [
    "CONVENTIONS",
    "UNITS",
    "ClassicStat",
    "classic_errors",
    "DEFAULT_THRESHOLDS",
    "HEADLINE_METRIC",
    "METRICS",
    "Metric",
    "direction",
    "higher_is_better",
    "metric_key",
    "metric_label",
    "metric_units",
    "parse_key",
    "resolve",
    "IMQ_ERRORS",
    "INSTANCE_ERRORS",
    "IMQAccumulator",
    "ImageInstanceStats",
    "Matching",
    "PairErrors",
    "abs_error_sum",
    "conn",
    "connectivity_error_sum",
    "evaluate_instances",
    "gaussian_derivative_kernel",
    "grad",
    "gradient_error_sum",
    "iou_matrix",
    "mad",
    "match_instances",
    "mse",
    "sad",
    "similarity",
    "squared_error_sum",
    "unknown_region",
    "TemporalStat",
    "clip_temporal",
    "maggie_temporal",
    "temporal_errors",
]
