"""Latency of one end-to-end pass (E2E-HIM) against two-stage pipelines, with 1..10 people at 640 x 640.

The paper claims E2E-HIM is 5x faster than two-stage methods with 6 instances in a 640 x 640 image. This script
measures it here: each method runs on the same synthetic probe images (himbench.bench.cost.synthetic_probe: n
person-shaped blobs with their masks), the fastest of --repeats timed runs after --warmup untimed ones. Two-stage
methods get the probe's n masks, so they do the work of a segmenter that found n people (seg-refine also runs its
segmenter on the image first; see SegRefineMethod.predict_for_timing). Latency does not depend on the weights, so
untrained weights are fine here unless --checkpoint says otherwise.

Prints a table of milliseconds per image and the ratio two-stage / E2E at each count (> 1: E2E is faster), and writes
the numbers as JSON to --out.

    python benchmarks/bench_methods.py                       # all methods, CPU, 1..10 people
    python benchmarks/bench_methods.py --device cuda --counts 1,6,10
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e2e", default="e2ehim-tiny", help="the end-to-end method (reference of the ratios)")
    parser.add_argument("--two-stage", default="mask-refine,seg-refine,mask-cf",
                        help="comma-separated two-stage methods to compare")
    parser.add_argument("--counts", default="1,2,3,4,5,6,7,8,9,10", help="people per probe image")
    parser.add_argument("--size", type=int, default=640, help="probe image side in pixels (the paper's 640)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per count (the fastest is kept)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per count")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="METHOD=PATH",
                        help="optional checkpoint for a method (repeatable)")
    parser.add_argument("--out", default="benchmarks/results/methods.json", help="JSON output path")
    args = parser.parse_args()

    import torch

    from himbench.bench.cost import latency_vs_instances
    from himbench.bench.environment import detect_environment
    from himbench.io import atomic_write_text
    from himbench.methods import create_method

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts = [int(c) for c in args.counts.split(",")]
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    names = [args.e2e, *[m for m in args.two_stage.split(",") if m]]
    env = detect_environment(args.device)
    curves: dict[str, dict[int, float]] = {}
    params: dict[str, int] = {}
    for name in names:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*random weights.*")
            method = create_method(name, device=args.device, checkpoint=checkpoints.get(name))
        params[name] = method.num_parameters()
        print(f"timing {name} ({params[name] / 1e6:.2f} M params) ...", flush=True)
        curves[name] = latency_vs_instances(
            method.predict_for_timing, counts, args.size, args.repeats, args.warmup, method.device
        )
        del method

    ref = curves[args.e2e]
    print(f"\nlatency (ms, best of {args.repeats}) at {args.size}x{args.size} on {env.slug}")
    print(f"{'people':>6} " + " ".join(f"{n:>12}" for n in names) + "   " +
          " ".join(f"{n + '/e2e':>16}" for n in names[1:]))
    for c in counts:
        ms = " ".join(f"{1000 * curves[n][c]:>12.1f}" for n in names)
        ratio = " ".join(f"{curves[n][c] / ref[c]:>16.2f}" for n in names[1:])
        print(f"{c:>6} {ms}   {ratio}")
    if 6 in counts:
        print("\nwith 6 people: " + ", ".join(f"{n} is {curves[n][6] / ref[6]:.2f}x the E2E time" for n in names[1:])
              + " (paper: two-stage 5x slower)")
    payload = {
        "environment": env.slug,
        "size": args.size,
        "repeats": args.repeats,
        "e2e": args.e2e,
        "params": params,
        "latency_s": {n: {str(c): t for c, t in curve.items()} for n, curve in curves.items()},
        "ratio_to_e2e": {n: {str(c): curves[n][c] / ref[c] for c in counts} for n in names[1:]},
    }
    atomic_write_text(Path(args.out), json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
