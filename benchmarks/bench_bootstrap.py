"""Speed of the vectorised bootstrap (himbench.metrics.bootstrap) against the straightforward loop, same draws.

Data: synthetic per-image instance stats (1-8 people per image, a prediction count off by up to one, matched IoUs
and errors drawn at random), turned into ``per_image.json`` records exactly as the evaluation writes them.

- vectorised: :func:`summary_intervals` on the records (building the per-image table included): one index matrix,
  per-resample counts by ``np.bincount``, all resampled sums as one matrix product.
- loop: for every resample, a fresh :class:`IMQAccumulator` fed the drawn images' stats one by one, then
  ``summary()``; percentiles of each key over the resamples.

Both use the same index matrix (:func:`resample_indices`), so every interval must agree to float rounding; that is
checked before the timings are reported.

    python benchmarks/bench_bootstrap.py [--images 24 500] [--resamples 1000] [--out benchmarks/results/bootstrap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from himbench.evaluation.runner import per_image_record as _record  # noqa: E402  (the exact per_image.json record format)
from himbench.metrics import DEFAULT_THRESHOLDS, ImageInstanceStats, IMQAccumulator, PairErrors  # noqa: E402
from himbench.metrics.bootstrap import resample_indices, summary_intervals  # noqa: E402


def synthetic_stats(n_images: int, seed: int = 0) -> list[ImageInstanceStats]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        num_gt = int(rng.integers(1, 9))
        num_pred = max(0, num_gt + int(rng.integers(-1, 2)))
        pairs = []
        for k in range(min(num_gt, num_pred)):
            pairs.append(PairErrors(
                pred_index=k, gt_index=k, iou=float(rng.uniform(0.3, 1.0)), union_pixels=int(rng.integers(500, 5000)),
                imq_mad=float(rng.uniform(0, 0.12)), imq_mse=float(rng.uniform(0, 0.08)),
                imq_grad=float(rng.uniform(0, 0.05)), imq_conn=float(rng.uniform(0, 0.12)),
                SAD=float(rng.uniform(0, 5)), MSE=float(rng.uniform(0, 20)), MAD=float(rng.uniform(0, 30)),
                Grad=float(rng.uniform(0, 3)), Conn=float(rng.uniform(0, 5)),
            ))
        images.append(ImageInstanceStats(num_pred=num_pred, num_gt=num_gt, height=480, width=640, pairs=tuple(pairs)))
    return images


def records_of(stats: list[ImageInstanceStats]) -> list[dict]:
    records = []
    for i, image in enumerate(stats):
        files = tuple(f"{k:02d}.png" for k in range(image.num_pred))
        records.append(_record(f"img{i:05d}", "ok", image, files, DEFAULT_THRESHOLDS))
    return json.loads(json.dumps(records))  # as read back from per_image.json


def loop_intervals(stats: list[ImageInstanceStats], resamples: int, seed: int, level: float) -> dict:
    indices = resample_indices(len(stats), resamples, seed)
    rows = []
    for draw in indices:
        accumulator = IMQAccumulator(DEFAULT_THRESHOLDS)
        for i in draw:
            accumulator.add(stats[i])
        rows.append(accumulator.summary())
    full = IMQAccumulator(DEFAULT_THRESHOLDS)
    for image in stats:
        full.add(image)
    point = full.summary()
    out = {}
    for key in point:
        low, high = np.quantile([row[key] for row in rows], [(1 - level) / 2, (1 + level) / 2])
        out[key] = {"value": point[key], "low": float(low), "high": float(high)}
    return out


def timed(function, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[24, 500])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="Timing repeats of the vectorised version (best).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bootstrap.json"))
    args = parser.parse_args()

    runs = []
    print(f"{'images':>7} {'vectorised s':>13} {'loop s':>9} {'speed-up':>9} {'max rel diff':>13}")
    for n in args.images:
        stats = synthetic_stats(n, args.seed)
        records = records_of(stats)
        fast_s, fast = timed(lambda r=records: summary_intervals(r, args.resamples, args.seed), args.repeats)
        loop_s, slow = timed(lambda stats=stats: loop_intervals(stats, args.resamples, args.seed, 0.95), 1)
        worst = 0.0
        for key, expected in slow.items():
            for part in ("value", "low", "high"):
                a, b = fast[key][part], expected[part]
                worst = max(worst, abs(a - b) / max(abs(b), 1e-12) if a != b else 0.0)
        if worst > 1e-9:
            raise SystemExit(f"vectorised and loop intervals disagree (max relative difference {worst:.3g})")
        print(f"{n:>7} {fast_s:>13.4f} {loop_s:>9.3f} {loop_s / fast_s:>8.0f}x {worst:>13.2g}")
        runs.append({"images": n, "resamples": args.resamples, "keys": len(slow), "vectorised_seconds": fast_s,
                     "loop_seconds": loop_s, "speedup": loop_s / fast_s, "max_relative_difference": worst,
                     "IMQ_mad@0.5": fast["IMQ_mad@0.5"]})

    result = {
        "benchmark": "bootstrap",
        "note": "vectorised = summary_intervals on per_image.json records (table building included); loop = one "
                "IMQAccumulator per resample; same index draws, every summary key",
        "runs": runs,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
