"""Speed of the instance metric suite: himbench.metrics vs a straightforward implementation, same run, same data.

Scene: one 1920x1080 image with 5 soft person-like instance mattes (8-bit), predictions = blurred, noisy, shifted
copies in shuffled order. "Suite" = IoU matrix + Hungarian matching + MAD, MSE, Grad, Conn for every matched pair
(everything IMQ needs), plus the whole-image per-instance table the library computes at the same time.

The straightforward version is what one writes from SPEC s.3 directly: full-image arrays, ``scipy.ndimage.label``
for every threshold, ``scipy.ndimage.convolve`` with the 9x9 kernel, pairwise IoU with logical ops. Results are
checked to agree (relative 1e-6) before timings are reported.

Simple metrics (SAD, MSE, MAD of five 1080p single-matte pairs with P3M-rule trimaps), same run: himbench's paths
(:mod:`himbench.metrics.errors`, the DIM convention, and :mod:`himbench.metrics.classic`'s P3M convention) against
peers written here the way the field's evaluators write them: GCA-Matting-style (float32 arrays, error map times the
unknown mask), MaGGIe-style (float32 means over the whole image) and P3M/AIM-style (``core/evaluate.py``'s functions:
float64, a forced copy of the prediction). Each himbench path must be at least as fast as the fastest peer that
computes the same quantity, with values agreeing to 1e-6 relative (GCA/MaGGIe-style sums are float32: 1e-5).

It then times ``himbench.evaluation.evaluate_folder`` on a temporary HIM-2K folder of such images with 1 worker and
with ``--workers`` (default: all cores), to show the folder evaluation scaling across cores.

    python benchmarks/bench_metrics.py [--repeats 5] [--simple-repeats 15] [--folder-images 8]
        [--out benchmarks/results/metrics.json]
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
from himbench.metrics import IMQAccumulator, errors, evaluate_instances  # noqa: E402
from himbench.metrics.classic import dim_simple_errors, p3m_trimap_errors, p3m_whole_errors  # noqa: E402

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


# ------------------------------------------------------------------- simple metrics: peers written as theirs are


def gca_style_trimap(pred, gt, trimap):
    """GCA-Matting-style: float32 error maps on the 0-255 scale times the unknown mask (SAD/1000, MSE, MAD)."""
    p, g = pred * 255.0, gt * 255.0
    weight = (trimap == 128).astype(np.float32)
    pixels = weight.sum() + 1e-8
    abs_map = np.abs(p - g) / 255.0
    sq_map = ((p - g) / 255.0) ** 2
    return {"SAD": np.sum(abs_map * weight) / 1000, "MSE": np.sum(sq_map * weight) / pixels * 1000,
            "MAD": np.sum(abs_map * weight) / pixels * 1000}


def maggie_style_whole(pred, gt, trimap=None):
    """MaGGIe-style: float32 means over the whole image (without MaGGIe's 1e10 / (H*W) scaling)."""
    diff = pred - gt
    return {"SAD": np.abs(diff).sum() * 1e-3, "MSE": np.mean(diff**2) * 1000, "MAD": np.mean(np.abs(diff)) * 1000}


def p3m_style_whole(pred, gt, trimap=None):
    """P3M/AIM ``calculate_sad_mse_mad_whole_img`` written straightforwardly: float64, means over the image."""
    predict, alpha = pred.astype(np.float64), gt.astype(np.float64)
    pixels = predict.shape[0] * predict.shape[1]
    return {"SAD": np.sum(np.abs(predict - alpha)) / 1000, "MSE": np.sum((predict - alpha) ** 2) / pixels,
            "MAD": np.sum(np.abs(predict - alpha)) / pixels}


def p3m_style_trimap(pred, gt, trimap):
    """P3M/AIM ``calculate_sad_mse_mad`` written straightforwardly: known pixels forced, whole-image sums."""
    predict, alpha = pred.astype(np.float64), gt.astype(np.float64)
    pixels = float((trimap == 128).sum())
    predict[trimap == 255] = 1.0
    predict[trimap == 0] = 0.0
    return {"SAD_trimap": np.sum(np.abs(predict - alpha)) / 1000,
            "MSE_trimap": np.sum((predict - alpha) ** 2) / pixels,
            "MAD_trimap": np.sum(np.abs(predict - alpha)) / pixels}


def himbench_dim_whole(pred, gt, trimap=None):
    return {"SAD": errors.sad(pred, gt), "MSE": errors.mse(pred, gt), "MAD": errors.mad(pred, gt)}


def himbench_dim_trimap(pred, gt, trimap):
    region = errors.unknown_region(trimap)
    return {"SAD": errors.sad(pred, gt, region), "MSE": errors.mse(pred, gt, region),
            "MAD": errors.mad(pred, gt, region)}


def himbench_dim_joint_whole(pred, gt, trimap=None):
    return dim_simple_errors(pred, gt)


def himbench_dim_joint_trimap(pred, gt, trimap):
    return dim_simple_errors(pred, gt, errors.unknown_region(trimap))


def himbench_p3m_whole(pred, gt, trimap=None):
    return p3m_whole_errors(pred, gt)


def himbench_p3m_trimap(pred, gt, trimap):
    out = p3m_trimap_errors(pred, gt, trimap)
    return {k: out[k] for k in ("SAD_trimap", "MSE_trimap", "MAD_trimap")}


# (task, name, function, is_himbench, reference peer for the agreement check, tolerance)
SIMPLE_PATHS = [
    ("whole", "peer: MaGGIe-style float32 (whole image)", maggie_style_whole, False, None, None),
    ("whole", "peer: P3M/AIM-style float64 (whole image)", p3m_style_whole, False, None, None),
    ("whole", "himbench errors.sad + mse + mad (3 calls)", himbench_dim_whole, True,
     "peer: MaGGIe-style float32 (whole image)", 1e-5),
    ("whole", "himbench classic dim_simple_errors (one call)", himbench_dim_joint_whole, True,
     "peer: MaGGIe-style float32 (whole image)", 1e-5),
    ("whole", "himbench classic p3m_whole_errors", himbench_p3m_whole, True,
     "peer: P3M/AIM-style float64 (whole image)", 1e-6),
    ("trimap", "peer: GCA-style float32 (unknown region)", gca_style_trimap, False, None, None),
    ("trimap", "peer: P3M/AIM-style float64 (forced trimap)", p3m_style_trimap, False, None, None),
    ("trimap", "himbench errors.sad + mse + mad on unknown", himbench_dim_trimap, True,
     "peer: GCA-style float32 (unknown region)", 1e-5),
    ("trimap", "himbench classic dim_simple_errors on unknown", himbench_dim_joint_trimap, True,
     "peer: GCA-style float32 (unknown region)", 1e-5),
    ("trimap", "himbench classic p3m_trimap_errors", himbench_p3m_trimap, True,
     "peer: P3M/AIM-style float64 (forced trimap)", 1e-6),
]


def p3m_rule_trimap(gt):
    """The trimap rule of tests/data/interop/classic: 255 = erode(alpha >= 250), 128 = dilate(alpha > 5) minus that."""
    kernel = np.ones((25, 25), np.uint8)
    code = np.round(gt * 255)
    fg = cv2.erode((code >= 250).astype(np.uint8), kernel)
    band = cv2.dilate((code > 5).astype(np.uint8), kernel)
    trimap = np.where(band > 0, 128, 0).astype(np.uint8)
    trimap[fg > 0] = 255
    return trimap


def bench_simple(preds, gts, repeats: int) -> dict:
    """Time every SAD/MSE/MAD path over the five pairs, interleaved round-robin (fair under a shared machine)."""
    trimaps = [p3m_rule_trimap(g) for g in gts]
    functions = {name: fn for _, name, fn, _, _, _ in SIMPLE_PATHS}
    times = {name: [] for name in functions}
    values = {}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            values[name] = [fn(p, g, t) for p, g, t in zip(preds, gts, trimaps, strict=True)]
            times[name].append(time.perf_counter() - start)
    best = {name: min(ts) for name, ts in times.items()}
    rows = []
    for task in ("whole", "trimap"):
        peers = [name for t, name, _, mine, _, _ in SIMPLE_PATHS if t == task and not mine]
        fastest = min(peers, key=best.get)
        for t, name, _, mine, reference, tolerance in SIMPLE_PATHS:
            if t != task:
                continue
            row = {"task": task, "path": name, "seconds": best[name]}
            if mine:
                worst = max(abs(float(a[k]) - float(b[k])) / max(abs(float(b[k])), 1e-12)
                            for a, b in zip(values[name], values[reference], strict=True) for k in b)
                if worst > tolerance:
                    raise SystemExit(f"{name} disagrees with {reference}: relative {worst:.3g} > {tolerance:g}")
                row.update({"fastest_peer": fastest, "fastest_peer_seconds": best[fastest],
                            "ratio_to_fastest_peer": best[name] / best[fastest],
                            "at_least_as_fast": best[name] <= best[fastest], "agrees_with": reference,
                            "max_relative_difference": worst})
            rows.append(row)
    every = all(row["at_least_as_fast"] for row in rows if "at_least_as_fast" in row)
    return {"pairs": len(preds), "repeats": repeats, "rows": rows, "every_path_at_least_as_fast": every}


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
    parser.add_argument("--simple-repeats", type=int, default=15, help="timed rounds of the SAD/MSE/MAD paths")
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

    simple = bench_simple(list(preds), list(gts), args.simple_repeats)
    print(f"\nSAD, MSE, MAD of {len(preds)} single-matte pairs (best of {args.simple_repeats} interleaved rounds)")
    print(f"{'task':<7} {'path':<48} {'seconds':>8} {'peer s':>8} {'ratio':>6}  verdict")
    for row in simple["rows"]:
        peer = ratio = verdict = ""
        if "fastest_peer" in row:
            peer, ratio = f"{row['fastest_peer_seconds']:.4f}", f"{row['ratio_to_fastest_peer']:.2f}"
            verdict = ("ok" if row["at_least_as_fast"] else "SLOWER") + (
                f" (agrees to {row['max_relative_difference']:.1e})")
        print(f"{row['task']:<7} {row['path']:<48} {row['seconds']:>8.4f} {peer:>8} {ratio:>6}  {verdict}")
    verdict = "yes" if simple["every_path_at_least_as_fast"] else "NO"
    print(f"every himbench path at least as fast as the fastest peer of its task: {verdict}")

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
        "simple_metrics": simple,
        "folder": folder,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
