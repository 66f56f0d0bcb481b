"""Speed of the temporal metrics (dtSSD, MESSDdt): himbench.metrics.temporal vs MaGGIe's approach, same run, same data.

Clip: 30 frames (per size) with 3 soft, moving, elliptical "people" (8-bit mattes); predictions are the mattes
with per-frame noise and a one-pixel jitter, 8-bit. Flow is OpenCV Farneback with MaGGIe's parameters on every
frame pair of every instance, in both implementations (it is most of the cost, and the same work in both).

The MaGGIe-style peer is written here the way ``maggie/utils/metric.py`` and ``maggie/engine/test.py`` do it (our
own re-implementation of that approach, not its code): the test loop hands the metrics two frames at a time; for
each pair, dtSSD in float32 numpy over all instances at once, then MESSDdt instance by instance: Farneback, the
flow rounded into an int64 torch tensor, an ``ij`` meshgrid stacked [col, row], ``torch.take`` on the flattened
frames (its transposed warp), masks of ones multiplied in. The values of both are checked to agree (relative 1e-5:
the peer is float32, himbench float64) before the timings are reported.

Timed at each ``--sizes`` entry (H x W; default 480x640 and 240x320), in the same run:
  - with flow (Farneback included, most of the cost and the same work in both): ``himbench_maggie``
    (:func:`maggie_temporal` per instance, ``threads=1``: MaGGIe's variant only, single-threaded, the like-for-like
    number), ``himbench_maggie_threaded`` (the same with Farneback over frame pairs on ``--threads`` threads,
    himbench's default) and ``peer`` (the MaGGIe-style loop, single-threaded, as MaGGIe runs it), once each;
    ``flow_only`` and ``flow_only_threaded`` are :func:`gt_flow` alone on 1 and ``--threads`` threads, timed once
    each while the flows are precomputed;
  - the flow precomputed, to show the metric arithmetic alone, best of ``--repeats`` interleaved rounds:
    ``himbench_maggie_noflow``, ``himbench_both_noflow`` (:func:`clip_temporal`: paper and MaGGIe variants) and
    ``peer_noflow``.
Ratios are peer time / himbench time from the same run. The default run took about 100 s on 2 shared cores (load 4-6).

    python benchmarks/bench_temporal.py [--frames 30] [--instances 3] [--sizes 480x640,240x320] [--repeats 3]
        [--threads N (default himbench's DEFAULT_FLOW_THREADS)] [--out benchmarks/results/temporal.json]
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from himbench.io.atomic import atomic_write_text  # noqa: E402
from himbench.metrics.temporal import (  # noqa: E402
    DEFAULT_FLOW_THREADS,
    FARNEBACK_PARAMS,
    TemporalStat,
    clip_temporal,
    gt_flow,
    maggie_temporal,
)


# ------------------------------------------------------------------------------------------------------ data
def make_clip(frames: int, height: int, width: int, instances: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, H, W) float32 GT and prediction, 8-bit values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gt = np.zeros((frames, instances, height, width), dtype=np.float32)
    for n in range(instances):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.7) * height
        vx, vy = rng.uniform(-3, 3), rng.uniform(-1.5, 1.5)
        ax, ay = rng.uniform(0.06, 0.12) * width, rng.uniform(0.25, 0.4) * height
        for t in range(frames):
            r = np.sqrt(((xx - cx - vx * t) / ax) ** 2 + ((yy - cy - vy * t) / ay) ** 2)
            gt[t, n] = np.clip((1.0 - r) * 12.0, 0.0, 1.0)  # soft edge a few pixels wide
    gt = np.round(gt * 255) / 255
    pred = np.empty_like(gt)
    for t in range(frames):
        shift = rng.integers(-1, 2, size=2)
        moved = np.roll(gt[t], tuple(shift), axis=(1, 2))
        pred[t] = np.clip(moved + rng.normal(0, 0.02, moved.shape), 0, 1)
    pred = (np.round(pred * 255) / 255).astype(np.float32)
    return gt.astype(np.float32), pred


# ------------------------------------------------------------------------------- MaGGIe-style peer (our own)
def peer_flow(g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback((g0 * 255).astype(np.uint8), (g1 * 255).astype(np.uint8), None,
                                        *FARNEBACK_PARAMS)


def peer(pred: np.ndarray, gt: np.ndarray, flows: dict | None = None) -> dict[str, float]:
    """MaGGIe's video evaluation of one clip (T, N, H, W), returning its pooled averages."""
    pred = pred.copy()
    pred[pred <= 1.0 / 255.0] = 0.0
    pred[pred >= 254.0 / 255.0] = 1.0
    frames, count, h, w = gt.shape
    dt_score = dt_count = me_score = me_count = 0.0
    for t in range(frames - 1):
        p, g = pred[t:t + 2], gt[t:t + 2]
        mask = np.ones_like(g)
        # dtSSD.update on (1, 2, N, H, W)
        dadt, dgdt = p[None, 1:] - p[None, :-1], g[None, 1:] - g[None, :-1]
        err = ((dadt - dgdt) ** 2) * mask[None, :-1]
        dt_score += float(np.sum(np.sqrt(np.sum(err, axis=(0, 1, 3, 4)))) * 0.1)
        dt_count += count
        # MESSDdt.update: instance by instance
        for i in range(count):
            flow_np = flows[(t, i)] if flows is not None else peer_flow(g[0, i], g[1, i])
            flow = torch.from_numpy(np.rint(np.array([flow_np])).astype(np.int64))
            pp, gg, mm = torch.from_numpy(p[:, i]), torch.from_numpy(g[:, i]), torch.from_numpy(mask[:, i])
            p0, p1, g0, g1, m0, m1 = pp[:-1], pp[1:], gg[:-1], gg[1:], mm[:-1], mm[1:]
            rows, cols = torch.meshgrid([torch.arange(h), torch.arange(w)], indexing="ij")
            coords = torch.stack([cols, rows], dim=2).unsqueeze(0).repeat((1, 1, 1, 1))
            moved = coords + flow
            index = moved[..., 0].clamp(0, h - 1) * w + moved[..., 1].clamp(0, w - 1)
            p1, g1, m1 = torch.take(p1, index), torch.take(g1, index), torch.take(m1, index)
            change = (p0 - g0).pow(2) * m0 - (p1 - g1).pow(2) * m1
            error = change.abs().view(1, -1).sum(dim=1).numpy().sum() / (m0.view(1, -1).sum(dim=1) + 1.0).numpy().sum()
            me_score += float(error) * 10000
            me_count += 1
    return {"maggie_dtSSD": dt_score / (dt_count + 1e-6), "maggie_MESSDdt": me_score / (me_count + 1e-6)}


# ------------------------------------------------------------------------------------------------ himbench
def ours(pred: np.ndarray, gt: np.ndarray, both: bool, flows: list | None = None, threads: int = 1) -> dict[str, float]:
    stat = TemporalStat()
    for i in range(gt.shape[1]):
        flow = flows[i] if flows is not None else None
        if both:
            stat.update(clip_temporal(pred[:, i], gt[:, i], flow, threads=threads))
        else:
            stat.update(maggie_temporal(pred[:, i], gt[:, i], flow, threads=threads))
    return stat.result()


TOLERANCE = 1e-5  # relative: the peer sums in float32 (as MaGGIe's test loop), himbench in float64


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def parse_size(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit()) or int(height) < 8 or int(width) < 8:
        raise argparse.ArgumentTypeError(f"a size is HEIGHTxWIDTH, both at least 8, e.g. 480x640; got {text!r}")
    return int(height), int(width)


def bench_size(frames: int, height: int, width: int, instances: int, repeats: int, threads: int) -> dict:
    """Timings, ratios and values at one frame size."""
    gt, pred = make_clip(frames, height, width, instances)
    flow_seconds, flows = timed(lambda: [gt_flow(gt[:, i], threads=1) for i in range(instances)])
    threaded_seconds, threaded_flows = timed(lambda: [gt_flow(gt[:, i], threads=threads) for i in range(instances)])
    for serial, parallel in zip(flows, threaded_flows, strict=True):
        if not np.array_equal(serial, parallel):
            raise SystemExit(f"{height}x{width}: the flow on {threads} threads differs from the serial flow")
    peer_flows = {(t, i): flows[i][t] for i in range(instances) for t in range(frames - 1)}
    seconds, values = {}, {}
    # With flow: mostly Farneback, the same work on both sides; once each (a second round would double the run for
    # a ratio that Farneback's run-to-run noise dominates anyway). The peer runs single-threaded, as MaGGIe's loop.
    for name, fn in (("himbench_maggie", lambda: ours(pred, gt, both=False)),
                     ("himbench_maggie_threaded", lambda: ours(pred, gt, both=False, threads=threads)),
                     ("peer", lambda: peer(pred, gt))):
        seconds[name], values[name] = timed(fn)
    # Flow precomputed, the metric arithmetic alone: every variant once per round, best round kept, so that a load
    # change on a shared machine does not fall on one variant only.
    noflow = {
        "himbench_maggie_noflow": lambda: ours(pred, gt, both=False, flows=flows),
        "himbench_both_noflow": lambda: ours(pred, gt, both=True, flows=flows),
        "peer_noflow": lambda: peer(pred, gt, flows=peer_flows),
    }
    for _ in range(repeats):
        for name, fn in noflow.items():
            took, values[name] = timed(fn)
            seconds[name] = min(seconds.get(name, float("inf")), took)
    seconds["flow_only"] = flow_seconds
    seconds["flow_only_threaded"] = threaded_seconds

    worst = 0.0
    for name, reference in (("himbench_maggie", "peer"), ("himbench_maggie_threaded", "peer"),
                            ("himbench_maggie_noflow", "peer_noflow"),
                            ("himbench_both_noflow", "peer_noflow")):
        for key in ("maggie_dtSSD", "maggie_MESSDdt"):
            got, want = values[name][key], values[reference][key]
            relative = abs(got - want) / max(abs(want), 1e-12)
            worst = max(worst, relative)
            if relative > TOLERANCE:
                raise SystemExit(f"{height}x{width}: {name} {key} = {got!r} disagrees with the MaGGIe-style peer's "
                                 f"{want!r} (relative {relative:.2e} > {TOLERANCE:g})")
    both, reference = values["himbench_both_noflow"], values["peer"]
    return {
        "clip": {"frames": frames, "height": height, "width": width, "instances": instances},
        "seconds": {k: round(v, 5) for k, v in seconds.items()},
        "ratios": {
            "peer_over_himbench_maggie": round(seconds["peer"] / seconds["himbench_maggie"], 3),
            "peer_over_himbench_maggie_threaded": round(seconds["peer"] / seconds["himbench_maggie_threaded"], 3),
            "peer_over_himbench_maggie_noflow": round(seconds["peer_noflow"] / seconds["himbench_maggie_noflow"], 3),
            "peer_over_himbench_both_noflow": round(seconds["peer_noflow"] / seconds["himbench_both_noflow"], 3),
        },
        "agreement": {"tolerance_relative": TOLERANCE, "max_relative_difference": worst},
        "values": {
            "paper_dtSSD": both["dtSSD"], "paper_MESSDdt": both["MESSDdt"],
            "maggie_dtSSD": both["maggie_dtSSD"], "maggie_MESSDdt": both["maggie_MESSDdt"],
            "peer_maggie_dtSSD": reference["maggie_dtSSD"], "peer_maggie_MESSDdt": reference["maggie_MESSDdt"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--sizes", type=lambda s: [parse_size(x) for x in s.split(",")],
                        default=[(480, 640), (240, 320)], help="comma-separated HEIGHTxWIDTH (default 480x640,240x320)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=DEFAULT_FLOW_THREADS,
                        help=f"Farneback threads for the threaded himbench timings (default {DEFAULT_FLOW_THREADS})")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/temporal.json"))
    args = parser.parse_args()
    if args.frames < 2 or args.instances < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--frames must be at least 2, --instances, --repeats and --threads at least 1")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    # Warm-up on a tiny clip (imports, first-call allocations), so that no timed variant pays for them.
    bench_size(3, 16, 16, 1, 1, args.threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    sizes = [bench_size(args.frames, h, w, args.instances, args.repeats, args.threads) for h, w in args.sizes]
    result = {
        "repeats": args.repeats,
        # OpenCV's own threads and torch: 1. himbench's Farneback pairs: 1 thread, and "himbench_flow" threads in the
        # *_threaded timings; the peer is single-threaded throughout.
        "threads": {"opencv": 1, "torch": 1, "himbench_flow": args.threads},
        # Timings on a shared machine: the load averages before and after say how much to trust them.
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()],
                         "cores": os.cpu_count()},
        "wall_seconds": round(time.perf_counter() - start, 2),
        "sizes": sizes,
        "platform": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__, "machine": platform.machine()},
    }
    names = ("himbench_maggie", "himbench_maggie_threaded", "peer", "flow_only", "flow_only_threaded",
             "himbench_maggie_noflow", "himbench_both_noflow", "peer_noflow")
    print(f"{'clip (T x N x HxW)':<22}" + "".join(f"{n:>26}" for n in names))
    for size in sizes:
        c = size["clip"]
        label = f"{c['frames']} x {c['instances']} x {c['height']}x{c['width']}"
        print(f"{label:<22}" + "".join(f"{size['seconds'][n]:>24.3f} s" for n in names))
    for size in sizes:
        c = size["clip"]
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in size["ratios"].items())
        print(f"{c['height']}x{c['width']}: {ratios}; max relative difference "
              f"{size['agreement']['max_relative_difference']:.1e} (tolerance {TOLERANCE:g})")
    print(f"wall {result['wall_seconds']} s, load average before {result['load_average']['before']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
