"""The crowded-scenes study (issue 21): how e2ehim-tiny and the two-stage pipeline (seg-refine) cope as people hide
each other, with 95% bootstrap intervals.

    python benchmarks/crowd_study.py            # build him-crowd-640-{easy,medium,hard}, bench, plot (about 15 min)
    python benchmarks/crowd_study.py --plot-only  # redraw docs/crowd.png from earlier results

Each preset is its own build (one occlusion setting per build: `--occlusion easy|medium|hard`, 2-10 people, 640 px,
seed 777), scored on its first 16 images with `himbench bench --bootstrap 1000 --breakdown all`. The rows go to
leaderboard/crowd.csv (never into the main leaderboard), the breakdowns to bench-results/crowd/. The figure has four
panels: IMQ_mad@0.5 and RQ@0.5 per preset (image level), recall@0.5 per occlusion bucket of the ground-truth people
(person level) and RQ@0.5 per crowd size (image level), every number with its interval.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("easy", "medium", "hard")
METHODS = ("e2ehim-tiny", "seg-refine")  # plotted: the end-to-end model against the full two-stage pipeline
ORACLES = ("mask-only", "mask-cf", "mask-refine")  # tabled: second stages handed ground-truth masks (upper bounds)
COLOURS = {"e2ehim-tiny": "#1f77b4", "seg-refine": "#d62728"}


def _himbench() -> str:
    return str(Path(sys.executable).with_name("himbench"))


def build_and_bench(images: int) -> None:
    for preset in PRESETS:
        data = REPO / "data" / f"him-crowd-640-{preset}"
        if not (data / "build_config.json").is_file():
            subprocess.run([_himbench(), "build-dataset", "--out", str(data), "--splits", "test=32", "--size", "640",
                            "--seed", "777", "--instances", "2-10", "--occlusion", preset, "--workers", "1"],
                           check=True)
        subprocess.run([_himbench(), "bench", "--methods", ",".join(METHODS), "--data", str(data), "--limit",
                        str(images), "--threads", "2", "--bootstrap", "1000", "--breakdown", "all", "--leaderboard",
                        str(REPO / "leaderboard" / "crowd.csv"), "-o", str(REPO / "bench-results" / "crowd"),
                        "--no-progress", "--latency-repeats", "1", "--max-instances", "2", "--warmup", "0"],
                       check=True, cwd=REPO)
        subprocess.run([_himbench(), "bench", "--methods", ",".join(ORACLES), "--data", str(data), "--limit",
                        str(images), "--threads", "2", "--bootstrap", "1000", "--breakdown", "all", "--leaderboard",
                        str(REPO / "leaderboard" / "crowd.csv"), "-o", str(REPO / "bench-results" / "crowd-oracle"),
                        "--no-progress", "--latency-repeats", "1", "--max-instances", "2", "--warmup", "0"],
                       check=True, cwd=REPO)


def _rows() -> dict[tuple[str, str], dict[str, str]]:
    from himbench.bench.results import read_results

    return {(row["method"], row["data"]): row for row in read_results(REPO / "leaderboard" / "crowd.csv")}


def _breakdowns() -> dict[str, dict]:
    found = {}
    for preset in PRESETS:
        files = sorted((REPO / "bench-results" / "crowd").glob(f"bench_him-crowd-640-{preset}_*.breakdown.json"))
        if files:
            found[preset] = json.loads(files[-1].read_text())
    return found


def _value(row: dict[str, str], key: str) -> tuple[float, float, float]:
    return float(row[key]), float(row[f"{key}_lo"]), float(row[f"{key}_hi"])


def plot(out: Path) -> list[str]:
    """Draw the figure; returns the Markdown table lines of the per-preset numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, breakdowns = _rows(), _breakdowns()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    table = ["| method | preset | images | IMQ_mad@0.5 (95% CI) | RQ@0.5 (95% CI) |", "| --- | --- | --- | --- | --- |"]
    for offset, method in zip((-0.12, 0.12), METHODS, strict=True):
        colour = COLOURS[method]
        for panel, key in ((0, "IMQ_mad@0.5"), (1, "RQ@0.5")):
            xs, ys, lows, highs = [], [], [], []
            for x, preset in enumerate(PRESETS):
                row = rows.get((method, f"him-crowd-640-{preset}"))
                if row is None:
                    continue
                value, low, high = _value(row, key)
                xs.append(x + offset), ys.append(value), lows.append(value - low), highs.append(high - value)
            axes[panel].errorbar(xs, ys, yerr=[lows, highs], fmt="o", color=colour, capsize=3, label=method)
        # Person level: recall@0.5 per occlusion bucket, pooled over the presets only in the drawing (one marker per
        # preset and bucket with people in it, so every interval stays the one its own bootstrap gave).
        for marker, preset in zip("o^s", PRESETS, strict=True):
            buckets = breakdowns.get(preset, {}).get(method, {}).get("occlusion", {}).get("buckets", [])
            for x, bucket in enumerate(buckets):
                if not bucket.get("num_gt") or bucket.get("recall@0.5") is None:
                    continue
                value = bucket["recall@0.5"]
                low, high = bucket["intervals"]["recall@0.5"]["low"], bucket["intervals"]["recall@0.5"]["high"]
                axes[2].errorbar([x + offset + (PRESETS.index(preset) - 1) * 0.05], [value],
                                 yerr=[[value - low], [high - value]], fmt=marker, color=colour, capsize=2,
                                 label=f"{method}, {preset}")
                axes[2].set_xticks(range(len(buckets)), [b["label"] for b in buckets])
        # Image level: RQ@0.5 by crowd size (people per image), one marker per preset.
        for marker, preset in zip("o^s", PRESETS, strict=True):
            buckets = breakdowns.get(preset, {}).get(method, {}).get("people", {}).get("buckets", [])
            for x, bucket in enumerate(buckets):
                value, interval = bucket.get("RQ@0.5"), bucket.get("intervals", {}).get("RQ@0.5")
                if not bucket.get("num_images") or value is None or interval is None:
                    continue
                axes[3].errorbar([x + offset + (PRESETS.index(preset) - 1) * 0.05], [value],
                                 yerr=[[value - interval["low"]], [interval["high"] - value]], fmt=marker,
                                 color=colour, capsize=2)
                axes[3].set_xticks(range(len(buckets)), [b["label"] for b in buckets])
    axes[3].set_title("RQ@0.5 by people per image")
    axes[3].set_xlabel("people per image (markers: presets)")
    axes[3].set_ylim(0, 105)
    for method in (*METHODS, *ORACLES):
        for preset in PRESETS:
            row = rows.get((method, f"him-crowd-640-{preset}"))
            if row is not None:
                imq, rq = _value(row, "IMQ_mad@0.5"), _value(row, "RQ@0.5")
                label = method if method in METHODS else f"{method} @ gt masks"
                table.append(f"| {label} | {preset} | {row['n_images']} | {imq[0]:.1f} ({imq[1]:.1f}-{imq[2]:.1f}) | "
                             f"{rq[0]:.1f} ({rq[1]:.1f}-{rq[2]:.1f}) |")
    for panel, title in enumerate(("IMQ_mad@0.5 by preset", "RQ@0.5 by preset")):
        axes[panel].set_xticks(range(len(PRESETS)), PRESETS)
        axes[panel].set_title(title)
        axes[panel].set_ylim(0, 100)
    axes[2].set_title("recall@0.5 by hidden fraction of the person")
    axes[2].set_xlabel("occlusion bucket")
    axes[2].set_ylim(0, 105)
    axes[0].legend(loc="upper right", fontsize=8)
    handles, labels = axes[2].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[2].legend(unique.values(), unique.keys(), fontsize=6, loc="lower left")
    fig.suptitle("him-crowd-640 (16 images per preset, 2-10 people, 640 px): 95% bootstrap intervals over images")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plot-only", action="store_true", help="Only redraw the figure from earlier results.")
    parser.add_argument("--images", type=int, default=16, help="Images scored per preset.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "crowd.png")
    args = parser.parse_args()
    if not args.plot_only:
        build_and_bench(args.images)
    table = plot(args.out)
    print("\n".join(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
