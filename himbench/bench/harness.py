"""Run methods on the same data and record accuracy and cost (``himbench bench``).

Accuracy is scored in memory: every prediction is rounded to 8 bits (as saving it in the HIM-2K PNG layout would),
then goes straight to :func:`himbench.metrics.evaluate_instances` against the shard's ground truth and into an
:class:`~himbench.metrics.IMQAccumulator`. No prediction files are written; the numbers are those
``himbench evaluate`` gives for the same predictions saved as PNGs. A method that raises on an image is reported
and the image counts as an empty prediction (all its people missed); the run carries on.

Mask-guided methods get their masks from :func:`baselines.guidance.guidance_masks` using the method's own guidance
config (same seed -> the same masks for every method). Cost: see :mod:`himbench.bench.cost`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from himbench.bench.cost import MemoryProbe, latency_vs_instances, timed
from himbench.bench.environment import Environment, detect_environment
from himbench.bench.results import LATENCY_COUNTS

__all__ = [
    "BenchConfig",
    "MethodResult",
    "bench_method",
    "method_label",
    "quantise_8bit",
    "result_row",
    "run_bench",
]


@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark run depends on (saved as JSON beside its results)."""

    data: str
    methods: tuple[str, ...]
    split: str = "test"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method name -> create_method kwargs
    limit: int | None = None  # score only the first N images of the split
    device: str | None = None  # None: cuda when available
    latency_counts: tuple[int, ...] = LATENCY_COUNTS
    latency_size: int = 640
    latency_repeats: int = 3
    warmup: int = 1
    seed: int = 0


@dataclass
class MethodResult:
    """One method's benchmark outcome, as data (formatting happens in the CLI / leaderboard)."""

    label: str
    description: dict[str, Any]
    metrics: dict[str, float]
    n_images: int
    failures: list[str]
    latency_s: list[float]
    latency_vs_instances: dict[int, float]
    peak_mem_mb: float
    peak_mem_kind: str
    probe_error: str = ""  # why the latency-versus-instances curve is missing, if it is

    @property
    def mean_latency_ms(self) -> float:
        return 1000.0 * float(np.mean(self.latency_s)) if self.latency_s else float("nan")


def quantise_8bit(alphas: np.ndarray) -> np.ndarray:
    """Round mattes to the 8-bit levels a PNG stores (so values below 0.5/255 become exactly 0)."""
    return (np.rint(np.clip(alphas, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def method_label(name: str, guidance_label: str) -> str:
    """``mask-cf`` for unperturbed ground-truth guidance, ``mask-cf@gt+erode`` otherwise."""
    if guidance_label and guidance_label != "gt":
        return f"{name}@{guidance_label}"
    return name


def bench_method(
    build: Callable[[], Any],
    samples: Iterable[Any],
    config: BenchConfig,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> MethodResult:
    """Build one method (inside the memory probe), score it on ``samples`` (HIMSample-like: id, image, alphas),
    then probe its latency versus instance count."""
    from baselines.guidance import guidance_masks
    from himbench.metrics import IMQAccumulator, evaluate_instances

    device = config.device or "cpu"
    gc.collect()
    import torch

    torch.manual_seed(config.seed)  # untrained weights and any sampling are the same on every run
    memory = MemoryProbe(device).start()
    method = build()
    device = method.device
    accumulator = IMQAccumulator()
    latencies: list[float] = []
    failures: list[str] = []
    count = 0
    iterator = progress(samples, method.name) if progress else samples
    warmed = False
    for sample in iterator:
        count += 1
        empty = np.zeros((0, *sample.image.shape[:2]), dtype=np.float32)
        try:
            masks = (
                guidance_masks(method.guidance, sample.id, sample.alphas, config.split) if method.needs_masks else None
            )
            if not warmed:  # first call pays one-off costs (JIT, cuDNN autotune): keep it out of the mean
                for _ in range(config.warmup):
                    method.predict(sample.image, masks)
                warmed = True
            prediction, seconds = timed(partial(method.predict, sample.image, masks), device)
            latencies.append(seconds)
            pred_alphas = quantise_8bit(prediction.alphas)
        except Exception as err:  # one bad image must not end the benchmark
            message = f"{sample.id}: {method.name} failed ({type(err).__name__}: {err})"
            failures.append(message)
            if on_error:
                on_error(message)
            pred_alphas = empty
        accumulator += evaluate_instances(pred_alphas, sample.alphas)
    try:
        curve = latency_vs_instances(
            method.predict_for_timing,
            config.latency_counts,
            config.latency_size,
            config.latency_repeats,
            config.warmup,
            device,
            config.seed,
        )
    except Exception as err:  # the accuracy numbers still stand without the latency curve
        probe_error = f"latency probe: {method.name} failed ({type(err).__name__}: {err})"
        if on_error:
            on_error(probe_error)
        curve = {}
    else:
        probe_error = ""
    peak = memory.peak_mb()
    description = method.describe()
    del method
    gc.collect()
    return MethodResult(
        label=method_label(description["name"], description["guidance"]),
        description=description,
        metrics=accumulator.summary(),
        n_images=count,
        failures=failures,
        latency_s=latencies,
        latency_vs_instances=curve,
        peak_mem_mb=peak,
        peak_mem_kind=memory.kind,
        probe_error=probe_error,
    )


def result_row(result: MethodResult, config: BenchConfig, env: Environment, date: str) -> dict[str, Any]:
    """The leaderboard CSV row of one method result (columns: :mod:`himbench.bench.results`)."""
    row: dict[str, Any] = {
        "method": result.label,
        "data": Path(config.data).resolve().name,
        "split": config.split,
        "environment": env.slug,
        "guidance": result.description["guidance"],
        "trained": result.description["trained"],
        "params": result.description["params"],
        "n_images": result.n_images,
        "failures": len(result.failures),
        "latency_ms": result.mean_latency_ms,
        "peak_mem_mb": result.peak_mem_mb,
        "peak_mem_kind": result.peak_mem_kind,
        "device_name": env.device_name,
        "torch_version": env.torch_version,
        "date": date,
        "spec": json.dumps(result.description["spec"], sort_keys=True),
    }
    for n, seconds in result.latency_vs_instances.items():
        row[f"latency_ms_n{n}"] = 1000.0 * seconds
    row.update(result.metrics)
    return row


def _samples(config: BenchConfig) -> Iterable[Any]:
    from itertools import islice

    from himbench.shards import read_split

    return islice(read_split(config.data, config.split), config.limit)


def run_bench(
    config: BenchConfig,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> tuple[Environment, list[MethodResult], list[dict[str, Any]]]:
    """Benchmark every method of ``config`` on the same images; returns the environment, results and CSV rows.

    With ``on_error`` given, a method that cannot be built (unknown name, bad checkpoint, bad option) is reported
    there and skipped; without it, the error propagates."""
    from himbench.io import InputError
    from himbench.methods import create_method, resolve_device

    device = resolve_device(config.device)
    config = dataclasses.replace(config, device=device)
    env = detect_environment(device)
    date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    results = []
    for name in config.methods:
        options = {"device": device, **config.method_options.get(name, {})}
        try:
            create = partial(create_method, name, **options)
            results.append(bench_method(create, _samples(config), config, progress, on_error))
        except (InputError, KeyError, TypeError, ValueError, OSError) as err:  # e.g. a bad checkpoint: skip it
            if on_error is None:
                raise
            on_error(f"{name}: not benchmarked ({type(err).__name__}: {err})")
    rows = [result_row(result, config, env, date) for result in results]
    return env, results, rows
