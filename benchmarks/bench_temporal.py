"""Speed of the temporal metrics (dtSSD, MESSDdt): himbench.metrics.temporal vs MaGGIe's approach, same run, same data.

Clip: 30 frames of 512 x 288 with 3 soft, moving, elliptical "people" (8-bit mattes); predictions are the mattes
with per-frame noise and a one-pixel jitter, 8-bit. Flow is OpenCV Farneback with MaGGIe's parameters on every
frame pair of every instance, in both implementations (it is most of the cost, and the same work in both).

The MaGGIe-style peer is written here the way ``maggie/utils/metric.py`` and ``maggie/engine/test.py`` do it (our
own re-implementation of that approach, not its code): the test loop hands the metrics two frames at a time; for
each pair, dtSSD in float32 numpy over all instances at once, then MESSDdt instance by instance: Farneback, the
flow rounded into an int64 torch tensor, an ``ij`` meshgrid stacked [col, row], ``torch.take`` on the flattened
frames (its transposed warp), masks of ones multiplied in. The values of both are checked to agree (relative 1e-5:
the peer is float32, himbench float64) before the timings are reported.

Timed, best of ``--repeats`` rounds, the variants interleaved within each round:
  - ``himbench_maggie``: :func:`maggie_temporal` per instance (MaGGIe's variant only: the like-for-like number);
  - ``himbench_both``: :func:`clip_temporal` per instance (paper and MaGGIe variants, flow computed once);
  - ``peer``: the MaGGIe-style loop (MaGGIe's variant only);
  - the same three with the flow precomputed, to show the metric arithmetic alone.

    python benchmarks/bench_temporal.py [--frames 30] [--width 512] [--height 288] [--instances 3] [--repeats 3]
        [--out benchmarks/results/temporal.json]
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
def ours(pred: np.ndarray, gt: np.ndarray, both: bool, flows: list | None = None) -> dict[str, float]:
    stat = TemporalStat()
    for i in range(gt.shape[1]):
        flow = flows[i] if flows is not None else None
        if both:
            stat.update(clip_temporal(pred[:, i], gt[:, i], flow))
        else:
            stat.update(maggie_temporal(pred[:, i], gt[:, i], flow))
    return stat.result()


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/temporal.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    load_before = os.getloadavg()
    gt, pred = make_clip(args.frames, args.height, args.width, args.instances)
    flows = [gt_flow(gt[:, i]) for i in range(args.instances)]
    peer_flows = {(t, i): flows[i][t] for i in range(args.instances) for t in range(args.frames - 1)}

    runs = {
        "himbench_maggie": lambda: ours(pred, gt, both=False),
        "himbench_both": lambda: ours(pred, gt, both=True),
        "peer": lambda: peer(pred, gt),
        "himbench_maggie_noflow": lambda: ours(pred, gt, both=False, flows=flows),
        "himbench_both_noflow": lambda: ours(pred, gt, both=True, flows=flows),
        "peer_noflow": lambda: peer(pred, gt, flows=peer_flows),
    }
    runs["flow_only"] = lambda: [gt_flow(gt[:, i]) for i in range(args.instances)]
    # Interleaved (every variant once per round, best round kept), so that a load change on a shared machine
    # does not fall on one variant only.
    seconds, values = dict.fromkeys(runs, float("inf")), {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            took, values[name] = best_of(1, fn)
            seconds[name] = min(seconds[name], took)
    flow_seconds = seconds.pop("flow_only")

    reference = values["peer"]
    for name in ("himbench_maggie", "himbench_both"):
        for key in ("maggie_dtSSD", "maggie_MESSDdt"):
            got, want = values[name][key], reference[key]
            if abs(got - want) > 1e-5 * max(abs(want), 1e-12):
                raise SystemExit(f"{name} {key} = {got!r} disagrees with the MaGGIe-style peer's {want!r}")

    ratios = {
        "peer_over_himbench_maggie": seconds["peer"] / seconds["himbench_maggie"],
        "peer_over_himbench_both": seconds["peer"] / seconds["himbench_both"],
        "peer_over_himbench_maggie_noflow": seconds["peer_noflow"] / seconds["himbench_maggie_noflow"],
        "peer_over_himbench_both_noflow": seconds["peer_noflow"] / seconds["himbench_both_noflow"],
    }
    both = values["himbench_both"]
    result = {
        "clip": {"frames": args.frames, "height": args.height, "width": args.width, "instances": args.instances},
        "repeats": args.repeats,
        "threads": {"opencv": 1, "torch": 1},
        # Timings on a shared machine: the load averages before and after say how much to trust them.
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()],
                         "cores": os.cpu_count()},
        "seconds": {k: round(v, 5) for k, v in seconds.items()} | {"flow_only": round(flow_seconds, 5)},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "values": {
            "paper_dtSSD": both["dtSSD"], "paper_MESSDdt": both["MESSDdt"],
            "maggie_dtSSD": both["maggie_dtSSD"], "maggie_MESSDdt": both["maggie_MESSDdt"],
            "peer_maggie_dtSSD": reference["maggie_dtSSD"], "peer_maggie_MESSDdt": reference["maggie_MESSDdt"],
        },
        "platform": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__, "machine": platform.machine()},
    }
    for name, value in seconds.items():
        print(f"{name:>24}: {value * 1000:9.1f} ms")
    print(f"{'flow_only':>24}: {flow_seconds * 1000:9.1f} ms")
    for name, value in ratios.items():
        print(f"{name:>34}: {value:6.2f}x")
    print("values agree with the MaGGIe-style peer (rel 1e-5):", {k: round(v, 6) for k, v in result["values"].items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
