"""Build throughput by engine: the local process pool with 1 and N workers, and Ray with N CPUs, same config.

The baseline is the local engine with one worker (the straightforward way). Every engine must produce the same
shard bytes; the benchmark checks it and records the result. Ray is timed twice: the build alone on an already
running local Ray (what a long job or a cluster sees), and including ``ray.init``/shutdown (what one CLI call sees).

    python benchmarks/bench_scaling.py                      # 32 images at 512 px, 2 workers/CPUs
    python benchmarks/bench_scaling.py --images 64 --size 1024 --workers 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.shards import list_shards
from himbench.synthesis import build_dataset


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


def timed_build(config: BuildConfig, engine: str, workers: int) -> tuple[float, dict[str, str]]:
    """Seconds for a fresh build, and the sha256 of each shard it wrote."""
    out = Path(tempfile.mkdtemp(prefix="himbench-scaling-"))
    try:
        tic = time.perf_counter()
        build_dataset(config, out, workers=workers, progress=False, write_card=False, engine=engine)
        seconds = time.perf_counter() - tic
        return seconds, _digest(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def best_of(repeats: int, config: BuildConfig, engine: str, workers: int) -> tuple[float, dict[str, str]]:
    runs = [timed_build(config, engine, workers) for _ in range(repeats)]
    return min(seconds for seconds, _ in runs), runs[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="Images in the build.")
    parser.add_argument("--size", type=int, default=512, help="Square canvas size in pixels.")
    parser.add_argument("--workers", type=int, default=2, help="Local workers / Ray CPUs for the parallel runs.")
    parser.add_argument("--images-per-shard", type=int, default=4, help="Shard size (one shard = one task).")
    parser.add_argument("--repeats", type=int, default=1, help="Timed builds per engine; the best is kept.")
    parser.add_argument("--out", default="benchmarks/results/scaling.json", help="Where to write the JSON results.")
    args = parser.parse_args()

    import ray

    from himbench.engines.ray_engine import start_local_ray

    config = BuildConfig(
        splits={"bench": args.images}, width=args.size, height=args.size, images_per_shard=args.images_per_shard
    )
    # Untimed: fill the on-disk cache of procedural people so every engine measures steady-state work.
    timed_build(config, "local", args.workers)

    seconds: dict[str, float] = {}
    digests: dict[str, dict[str, str]] = {}
    seconds["local_1"], digests["local_1"] = best_of(args.repeats, config, "local", 1)
    seconds[f"local_{args.workers}"], digests[f"local_{args.workers}"] = best_of(
        args.repeats, config, "local", args.workers
    )
    tic = time.perf_counter()
    start_local_ray(args.workers)
    ray_start = time.perf_counter() - tic
    try:
        seconds[f"ray_{args.workers}"], digests[f"ray_{args.workers}"] = best_of(
            args.repeats, config, "ray", args.workers
        )
    finally:
        tic = time.perf_counter()
        ray.shutdown()
        ray_stop = time.perf_counter() - tic
    # One CLI-style call: map_ray starts its own Ray and shuts it down.
    seconds[f"ray_{args.workers}_with_start"], digests[f"ray_{args.workers}_with_start"] = timed_build(
        config, "ray", args.workers
    )

    identical = all(d == digests["local_1"] for d in digests.values())
    rates = {name: args.images / value for name, value in seconds.items()}
    results = {
        "config": {
            "images": args.images,
            "size": args.size,
            "images_per_shard": args.images_per_shard,
            "workers": args.workers,
            "repeats": args.repeats,
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "ray_version": ray.__version__,
        "seconds": seconds,
        "images_per_s": rates,
        "speedup_vs_local_1": {name: rate / rates["local_1"] for name, rate in rates.items()},
        "ray_init_seconds": ray_start,
        "ray_shutdown_seconds": ray_stop,
        "shards_identical_across_engines": identical,
    }
    print(
        f"build throughput: {args.images} images at {args.size} px, {config.num_shards('bench')} shards, "
        f"{os.cpu_count()} cores, best of {args.repeats}"
    )
    print(f"  {'engine':<26}{'seconds':>9}{'img/s':>9}{'vs local x1':>13}")
    for name in seconds:
        print(
            f"  {name:<26}{seconds[name]:9.2f}{rates[name]:9.2f}{results['speedup_vs_local_1'][name]:12.2f}x"
        )
    print(f"  ray init {ray_start:.1f} s, shutdown {ray_stop:.1f} s; shards identical across engines: {identical}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not identical:
        raise SystemExit("engines wrote different shard bytes")


if __name__ == "__main__":
    main()
