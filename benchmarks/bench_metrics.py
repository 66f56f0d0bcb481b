"""Speed of the instance metric suite: himbench.metrics vs a straightforward implementation, same run, same data.

Scene: one 1920x1080 image with 5 soft person-like instance mattes (8-bit), predictions = blurred, noisy, shifted
copies in shuffled order. "Suite" = IoU matrix + Hungarian matching + MAD, MSE, Grad, Conn for every matched pair
(everything IMQ needs), plus the whole-image per-instance table the library computes at the same time.

The straightforward version is what one writes from SPEC s.3 directly: full-image arrays, ``scipy.ndimage.label``
for every threshold, ``scipy.ndimage.convolve`` with the 9x9 kernel, pairwise IoU with logical ops. Results are
checked to agree (relative 1e-6) before timings are reported.

It then times ``himbench.evaluation.evaluate_folder`` on a temporary HIM-2K folder of such images with 1 worker and
with ``--workers`` (default: all cores), to show the folder evaluation scaling across cores.

    python benchmarks/bench_metrics.py [--repeats 5] [--folder-images 8] [--out benchmarks/results/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from himbench.evaluation import evaluate_folder  # noqa: E402
from himbench.io import write_alpha_png  # noqa: E402
from himbench.metrics import IMQAccumulator, evaluate_instances  # noqa: E402

# ------------------------------------------------------------------------------------- straightforward version


def straight_kernel(sigma=1.4):
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    hx = np.zeros((2 * half + 1, 2 * half + 1))
    for i in range(2 * half + 1):
        for j in range(2 * half + 1):
            y, x = i - half, j - half
            gy = math.exp(-(y**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            gx = math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            hx[i, j] = gy * (-x * gx / sigma**2)
    hx /= math.sqrt((hx**2).sum())
    return hx, hx.T.copy()


HX, HY = straight_kernel()


def straight_grad_map(p, g):
    amp = []
    for a in (p.astype(np.float64), g.astype(np.float64)):
        amp.append(np.hypot(ndimage.convolve(a, HX, mode="nearest"), ndimage.convolve(a, HY, mode="nearest")))
    return (amp[0] - amp[1]) ** 2


def straight_conn_map(p, g):
    l_map = np.full(p.shape, -1.0)
    for k in range(1, 11):
        t = np.float32(k / 10)
        labels, count = ndimage.label((p >= t) & (g >= t))
        omega = np.zeros(p.shape, bool)
        if count:
            omega = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
        l_map[(l_map == -1) & ~omega] = (k - 1) / 10
    l_map[l_map == -1] = 1.0
    dp, dg = p - l_map, g - l_map
    return np.abs((1 - dp * (dp >= 0.15)) - (1 - dg * (dg >= 0.15)))


def straight_suite(preds, gts, thresholds=(0.5, 0.75)):
    iou = np.zeros((len(preds), len(gts)))
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            union = np.logical_or(p > 0, g > 0).sum()
            iou[i, j] = np.logical_and(p > 0, g > 0).sum() / union if union else 0.0
    rows, cols = linear_sum_assignment(1 - iou)
    out = {}
    errors = {}
    for i, j in zip(rows, cols, strict=True):
        if iou[i, j] < min(thresholds):
            continue
        p, g = preds[i], gts[j]
        union = (p > 0) | (g > 0)
        n = union.sum() + 1.0
        d = p.astype(np.float64) - g
        errors[(i, j)] = {
            "mad": np.abs(d)[union].sum() / n,
            "mse": (d**2)[union].sum() / n,
            "grad": straight_grad_map(p, g)[union].sum() / n,
            "conn": straight_conn_map(p, g)[union].sum() / n,
        }
    for thr in thresholds:
        tp_pairs = [(i, j) for i, j in zip(rows, cols, strict=True) if iou[i, j] >= thr]
        tp = len(tp_pairs)
        denominator = tp + (len(preds) - tp) / 2 + (len(gts) - tp) / 2
        for name in ("mad", "mse", "grad", "conn"):
            s = sum(1 - min(10 * errors[pair][name], 1) for pair in tp_pairs)
            out[f"IMQ_{name}@{thr:g}"] = 100 * s / denominator
        out[f"RQ@{thr:g}"] = 100 * tp / denominator
    return out


# ------------------------------------------------------------------------------------------------------- scene


def make_scene(seed=0, height=1080, width=1920, count=5):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    gts, preds = [], []
    for k in range(count):
        cx = width * (k + 0.5) / count + rng.uniform(-60, 60)
        cy = height * 0.55
        body = ((xx - cx) / (width / count * 0.45)) ** 2 + ((yy - cy) / (height * 0.42)) ** 2
        head = ((xx - cx) / 70) ** 2 + ((yy - height * 0.14) / 85) ** 2
        alpha = np.clip((1.05 - np.minimum(body, head)) * 12, 0, 1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2.5)
        hair = (rng.random((height, width)) < 0.2) & (alpha > 0.05) & (alpha < 0.95)
        alpha = np.where(hair, alpha * rng.uniform(0.3, 1.0, (height, width)), alpha)
        gt = np.round(np.clip(alpha, 0, 1) * 255) / 255
        pred = cv2.GaussianBlur(gt, (0, 0), 1.5) + rng.normal(0, 0.03, gt.shape) * (gt > 0)
        pred = np.roll(pred, int(rng.integers(-6, 7)), axis=1)
        pred = np.round(np.clip(pred, 0, 1) * 255) / 255
        gts.append(gt.astype(np.float32))
        preds.append(pred.astype(np.float32))
    order = rng.permutation(count)
    return np.stack(preds)[order], np.stack(gts)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_folder(images: int, workers: int, count: int) -> dict:
    """Time evaluate_folder on a temporary HIM-2K folder with 1 worker and with `workers`."""
    with tempfile.TemporaryDirectory(prefix="himbench-bench-") as tmp:
        root = Path(tmp)
        for k in range(images):
            preds, gts = make_scene(seed=k, count=count)
            for i, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
                write_alpha_png(root / "gt" / "alphas" / "test" / f"img{k:03d}" / f"{i:02d}.png", gt)
                write_alpha_png(root / "pred" / "test" / f"img{k:03d}" / f"{i:02d}.png", pred)
        timings = {}
        summaries = {}
        for n in sorted({1, workers}):
            start = time.perf_counter()
            result = evaluate_folder(root / "pred", root / "gt", workers=n, progress=False)
            timings[n] = time.perf_counter() - start
            summaries[n] = result.summary
        if summaries[1] != summaries[workers]:
            raise SystemExit("folder evaluation differs between 1 and several workers")
    return {"images": images, "seconds_by_workers": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the library (best is reported)")
    parser.add_argument("--straight-repeats", type=int, default=2, help="timed repeats of the straightforward one")
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--folder-images", type=int, default=8, help="images in the folder benchmark (0: skip it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers for the folder benchmark")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    preds, gts = make_scene(count=args.instances)
    lib_time, stats = best_of(lambda: evaluate_instances(preds, gts), args.repeats)
    straight_time, straight = best_of(lambda: straight_suite(list(preds), list(gts)), args.straight_repeats)
    library = IMQAccumulator().add(stats).summary()
    worst = max(abs(library[k] - v) / max(abs(v), 1e-12) for k, v in straight.items())
    if worst > 1e-6:
        raise SystemExit(f"library and straightforward results disagree (worst relative difference {worst:.3g})")

    rows = [
        ("library (himbench.metrics.evaluate_instances)", lib_time),
        ("straightforward (full image, ndimage)", straight_time),
    ]
    print(f"instance suite, {preds.shape[2]}x{preds.shape[1]}, {args.instances} instances, one core")
    print(f"{'implementation':<48} {'seconds':>9}")
    for name, seconds in rows:
        print(f"{name:<48} {seconds:>9.4f}")
    speedup = straight_time / lib_time
    verdict = "met" if lib_time < 0.3 and speedup >= 5 else "NOT met"
    print(f"speed-up x{speedup:.1f}; target < 0.3 s and >= x5: {verdict}")
    print(f"results agree: worst relative difference {worst:.2e}; IMQ_mad@0.5 = {library['IMQ_mad@0.5']:.3f}")

    folder = None
    if args.folder_images > 0:
        folder = bench_folder(args.folder_images, args.workers, args.instances)
        timings = folder["seconds_by_workers"]
        print(f"\nevaluate_folder, {args.folder_images} images (decode + metrics; equal results for all worker counts)")
        print(f"{'workers':<10} {'seconds':>9} {'images/s':>9}")
        for n, seconds in timings.items():
            print(f"{n:<10} {seconds:>9.3f} {args.folder_images / seconds:>9.2f}")
        if len(timings) > 1:
            print(f"parallel speed-up x{timings[1] / timings[args.workers]:.2f} with {args.workers} workers "
                  f"(machine has {os.cpu_count()} cores)")

    result = {
        "benchmark": "metrics",
        "image": [int(preds.shape[1]), int(preds.shape[2])],
        "instances": args.instances,
        "library_seconds": lib_time,
        "straightforward_seconds": straight_time,
        "speedup": speedup,
        "max_relative_difference": worst,
        "summary": {k: library[k] for k in straight},
        "folder": folder,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
