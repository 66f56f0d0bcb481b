"""The benchmark harness behind ``himbench bench``: the same data through every method's predict + evaluate, with
accuracy (all metrics of :mod:`himbench.metrics`) and cost (parameters, latency, latency versus instance count,
peak memory), and the leaderboard CSV those results update."""

from himbench.bench.cost import MemoryProbe, latency_vs_instances, synthetic_probe
from himbench.bench.environment import Environment, detect_environment
from himbench.bench.harness import BenchConfig, MethodResult, bench_method, method_label, result_row, run_bench
from himbench.bench.results import (
    FIXED_COLUMNS,
    KEY_COLUMNS,
    LATENCY_COUNTS,
    merge_rows,
    read_results,
    update_results,
    write_results,
)

__all__ = [
    "FIXED_COLUMNS",
    "KEY_COLUMNS",
    "LATENCY_COUNTS",
    "BenchConfig",
    "Environment",
    "MemoryProbe",
    "MethodResult",
    "bench_method",
    "detect_environment",
    "latency_vs_instances",
    "merge_rows",
    "method_label",
    "read_results",
    "result_row",
    "run_bench",
    "synthetic_probe",
    "update_results",
    "write_results",
]
