"""A long embedded build with one worker: memory stays flat and the time per 1,000 images stays constant.

Runs ``himbench build-dataset`` (embedded people and backgrounds, ``--engine local -j 1``) in a child process and
samples, every second, its resident memory (VmRSS), its CPU time, the machine's load average and the shards it has
finished (a shard appears atomically when done). Finished shards are deleted as they appear (``--keep`` keeps them),
so a 10,000-image build at 1024 px does not need 13 GB of disk. Writes the samples, the time per 1,000 images (wall
and CPU) and the memory per 1,000 images to JSON, and a plot.

    python benchmarks/bench_synthesis_long.py                              # 10,000 images at 1024 px
    python benchmarks/bench_synthesis_long.py --images 2000 --size 512 --out benchmarks/results/synthesis_2k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SHARD = re.compile(r"^train-(\d{5})-of-(\d{5})\.parquet$")
_TICKS = os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    for k in range(1, len(xs)):
        if xs[k] >= x:
            x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images-per-shard", type=int, default=32)
    parser.add_argument("--block", type=int, default=1000, help="Images per block of the time/memory table.")
    parser.add_argument("--keep", action="store_true", help="Keep the shards (in a temporary folder, printed).")
    parser.add_argument("--out", default="benchmarks/results/synthesis_10k.json")
    parser.add_argument("--plot", default=None, help="PNG plot (default: --out with .png).")
    args = parser.parse_args()
    plot_path = Path(args.plot or Path(args.out).with_suffix(".png"))

    work = Path(tempfile.mkdtemp(prefix="himbench-long-"))
    out = work / "build"
    build_args = ["--splits", f"train={args.images}", "--size", str(args.size), "--engine", "local", "-j", "1",
                  "--images-per-shard", str(args.images_per_shard), "--no-progress"]
    command = [sys.executable, "-m", "himbench.cli", "build-dataset", "--out", str(out), *build_args]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[dict] = []
    done: dict[str, float] = {}  # shard name -> seconds since start when it was seen
    timeline = [(0.0, 0)]  # (seconds since start, images finished)
    images_done = 0
    while True:
        finished = child.poll() is not None
        now = time.perf_counter() - start
        for path in sorted((out / "data").glob("*.parquet")) if (out / "data").is_dir() else []:
            match = _SHARD.match(path.name)
            if not match or path.name in done:
                continue
            done[path.name] = now
            index = int(match[1])
            images_done += min(args.images_per_shard, args.images - index * args.images_per_shard)
            timeline.append((now, images_done))
            if not args.keep:
                path.unlink()
        rss, cpu = _rss_mb(child.pid), _cpu_seconds(child.pid)
        if rss is not None and cpu is not None and not finished:
            samples.append({"t": round(now, 2), "images": images_done, "rss_mb": round(rss, 1),
                            "cpu_s": round(cpu, 2), "load1": os.getloadavg()[0]})
        if finished:
            break
        time.sleep(0.5)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"build failed ({child.returncode}):\n{stderr}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples.append({"t": round(wall, 2), "images": images_done, "rss_mb": samples[-1]["rss_mb"] if samples else 0.0,
                    "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "load1": os.getloadavg()[0]})
    report = json.loads((out / "build_report.json").read_text())
    if args.keep:
        print(f"shards kept in {out}")
    else:
        shutil.rmtree(work, ignore_errors=True)

    # Per block of images: wall and CPU seconds, peak and final memory, mean load average. The first block starts
    # at the process start, so it also holds the start-up (imports, the people and backgrounds made once).
    ts = [0.0] + [s["t"] for s in samples]
    cpus = [0.0] + [s["cpu_s"] for s in samples]
    shard_t = [t for t, _ in timeline]
    shard_n = [n for _, n in timeline]
    blocks = []
    for first in range(0, args.images, args.block):
        last = min(first + args.block, args.images)
        t0, t1 = _interpolate(shard_n, shard_t, first), _interpolate(shard_n, shard_t, last)
        inside = [s for s in samples if t0 <= s["t"] <= t1] or samples[-1:]
        c0, c1 = _interpolate(ts, cpus, t0), _interpolate(ts, cpus, t1)
        blocks.append({
            "images": [first, last],
            "wall_s_per_1000": (t1 - t0) * 1000 / (last - first),
            "cpu_s_per_1000": (c1 - c0) * 1000 / (last - first),
            "rss_mb_max": max(s["rss_mb"] for s in inside),
            "rss_mb_end": inside[-1]["rss_mb"],
            "load1_mean": sum(s["load1"] for s in inside) / len(inside),
        })
    steady = blocks[1:] or blocks  # the first block also holds start-up (imports, people and backgrounds made)
    walls = [b["wall_s_per_1000"] for b in steady]
    cpu_blocks = [b["cpu_s_per_1000"] for b in steady]
    results = {
        "command": shlex.join(["python", "benchmarks/bench_synthesis_long.py", *sys.argv[1:]]),
        "build_command": shlex.join(["himbench", "build-dataset", "--out", "OUT", *build_args]),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "images": args.images,
        "size": args.size,
        "wall_seconds": wall,
        "cpu_seconds": samples[-1]["cpu_s"] if samples else None,
        "images_per_s": args.images / wall,
        "images_per_cpu_s": args.images / samples[-1]["cpu_s"] if samples else None,
        "report_seconds": report["seconds"],
        "rss_mb": {
            "max": max(s["rss_mb"] for s in samples),
            "after_first_block": blocks[0]["rss_mb_end"],
            "end": samples[-1]["rss_mb"],
        },
        "steady_blocks": {
            "wall_s_per_1000": {"min": min(walls), "max": max(walls), "mean": sum(walls) / len(walls)},
            "cpu_s_per_1000": {"min": min(cpu_blocks), "max": max(cpu_blocks),
                               "mean": sum(cpu_blocks) / len(cpu_blocks)},
        },
        "load_average": {"before": list(load_before), "after": list(os.getloadavg()),
                         "mean_during": sum(s["load1"] for s in samples) / max(len(samples), 1)},
        "blocks": blocks,
        "shards_finished": [[round(t, 2), n] for t, n in timeline],
        "samples": samples,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    _plot(results, plot_path)
    print(f"{args.images} images at {args.size} px in {wall / 60:.1f} min ({args.images / wall:.2f} img/s wall, "
          f"{results['images_per_cpu_s']:.2f} img/CPU-s); RSS max {results['rss_mb']['max']:.0f} MB, "
          f"{results['rss_mb']['after_first_block']:.0f} MB after {args.block} images, "
          f"{results['rss_mb']['end']:.0f} MB at the end")
    load = results["load_average"]["mean_during"]
    print(f"per {args.block} images after the first block: wall {min(walls):.1f}-{max(walls):.1f} s, "
          f"CPU {min(cpu_blocks):.1f}-{max(cpu_blocks):.1f} s; load average {load:.2f}")


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, blocks = results["samples"], results["blocks"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    top.plot([s["images"] for s in samples], [s["rss_mb"] for s in samples], lw=1.2, color="tab:blue")
    top.set_ylabel("resident memory (MB)")
    top.set_ylim(0, max(s["rss_mb"] for s in samples) * 1.15)
    top.set_title(f"{results['images']:,} embedded images at {results['size']} px, one worker "
                  f"({results['wall_seconds'] / 60:.1f} min, {results['cores']}-core shared machine)")
    top.grid(alpha=0.3)
    mids = [(b["images"][0] + b["images"][1]) / 2 for b in blocks]
    width = 0.38 * (blocks[0]["images"][1] - blocks[0]["images"][0])
    bottom.bar([m - width / 2 for m in mids], [b["wall_s_per_1000"] for b in blocks], width, label="wall")
    bottom.bar([m + width / 2 for m in mids], [b["cpu_s_per_1000"] for b in blocks], width, label="CPU")
    bottom.set_ylabel("seconds per 1,000 images")
    bottom.set_xlabel("images built")
    load = bottom.twinx()
    load.plot(mids, [b["load1_mean"] for b in blocks], "k.--", lw=0.8, label="load average (1 min)")
    load.set_ylabel("machine load average")
    load.set_ylim(0, max(4.0, max(b["load1_mean"] for b in blocks) * 1.2))
    handles = bottom.get_legend_handles_labels()
    extra = load.get_legend_handles_labels()
    bottom.legend(handles[0] + extra[0], handles[1] + extra[1], loc="lower right", fontsize=8)
    bottom.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
