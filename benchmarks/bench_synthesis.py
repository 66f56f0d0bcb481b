"""Synthesis throughput: images/s at 1024 px with 3 people, one worker and all workers, time per stage.

Compares the engine's compositing (crop-local layers, integer compositing equation, fast PNG) with a straightforward
implementation (full-canvas float64 layers, per-pixel loop over people, default PNG compression) on the same images.

    python benchmarks/bench_synthesis.py                 # 32 images, writes benchmarks/results/synthesis.json
    python benchmarks/bench_synthesis.py --images 64 --size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from himbench.synthesis import BuildConfig, build_dataset
from himbench.synthesis.build import _BAD_SOURCES
from himbench.synthesis.compose import composite, stack_layer_alphas, visible_mattes_u8
from himbench.synthesis.sampler import _place_people, image_rng, synthesize_image
from himbench.synthesis.sources import load_background, load_foreground, scan_backgrounds, scan_foregrounds


def straightforward_composite(background, layers, canvas_hw):
    """The textbook version: every layer on a full float64 canvas, vis by the product formula, per-layer rounding."""
    h, w = canvas_hw
    alphas = np.zeros((len(layers), h, w))
    fgs = np.zeros((len(layers), h, w, 3))
    for k, layer in enumerate(layers):
        y0, x0, y1, x1 = layer.box
        alphas[k, y0:y1, x0:x1] = layer.alpha
        fgs[k, y0:y1, x0:x1] = layer.fg / 255.0
    visible = np.zeros_like(alphas)
    for i in range(len(layers)):
        vis = alphas[i].copy()
        for j in range(i + 1, len(layers)):
            vis *= 1.0 - alphas[j]
        visible[i] = np.round(vis * 255) / 255
    image = (fgs * visible[..., None]).sum(0) + background / 255.0 * (1 - visible.sum(0))[..., None]
    image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    encoded = [cv2.imencode(".png", image[:, :, ::-1])[1]] + [
        cv2.imencode(".png", (v * 255).astype(np.uint8))[1] for v in visible
    ]
    return image, encoded


def engine_composite(background, layers, canvas_hw):
    visible = visible_mattes_u8(stack_layer_alphas(layers, canvas_hw), [layer.box for layer in layers])
    image = composite(background, layers, visible)
    encoded = [cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]] + [
        cv2.imencode(".png", v, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1] for v in visible
    ]
    return image, encoded


def compare_compositing(config: BuildConfig, images: int) -> dict:
    fg_refs, _ = scan_foregrounds(config.fg_sources)
    bg_refs = scan_backgrounds(config.bg_sources)
    cases = []
    for index in range(images):
        rng = image_rng(config, "bench", index)
        cutouts = [
            load_foreground(fg_refs[int(rng.integers(len(fg_refs)))], config.fg_max_side, 1024) for _ in range(3)
        ]
        background = load_background(bg_refs[int(rng.integers(len(bg_refs)))], config.height, config.width, rng)
        layers, _ = _place_people(config, cutouts, rng)
        cases.append((background, layers))
    timings = {}
    for name, fn in (("straightforward", straightforward_composite), ("himbench", engine_composite)):
        tic = time.perf_counter()
        for background, layers in cases:
            fn(background, layers, (config.height, config.width))
        timings[name] = (time.perf_counter() - tic) / len(cases)
    return timings


def run_build(config: BuildConfig, workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="himbench-bench-"))
    try:
        tic = time.perf_counter()
        build_dataset(config, out, workers=workers, progress=False, write_card=False)
        return time.perf_counter() - tic
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="benchmarks/results/synthesis.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    config = BuildConfig(
        splits={"bench": args.images},
        width=args.size,
        height=args.size,
        min_instances=3,
        max_instances=3,
        images_per_shard=max(1, args.images // (2 * max(args.workers, 1))),
    )
    fg_refs, _ = scan_foregrounds(config.fg_sources)
    bg_refs = scan_backgrounds(config.bg_sources)

    # Warm the per-user cache of procedural people so every measurement below is steady-state.
    run_build(
        BuildConfig(
            **{
                **config.to_dict(),
                "splits": {"warm": 2 * len(fg_refs)},
                "fg_sources": ("embedded",),
                "bg_sources": ("embedded",),
                "instance_weights": None,
            }
        ),
        args.workers,
    )

    # Stage shares, one process, steady state (people already prepared in this process).
    from himbench.synthesis.sampler import _embedded_height

    for ref in fg_refs:
        load_foreground(ref, config.fg_max_side, _embedded_height(config))
    stages = {"decode": 0.0, "composite": 0.0, "encode": 0.0}
    tic = time.perf_counter()
    for index in range(args.images):
        result = synthesize_image(config, "bench", index, fg_refs, bg_refs, _BAD_SOURCES)
        for key, value in result.seconds.items():
            stages[key] += value
    one_process = args.images / (time.perf_counter() - tic)

    one_worker = args.images / run_build(config, 1)
    all_workers = args.images / run_build(config, args.workers)
    compositing = compare_compositing(config, min(args.images, 16))
    total = sum(stages.values())
    results = {
        "size": args.size,
        "instances": 3,
        "images": args.images,
        "workers": args.workers,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "images_per_s_in_process": one_process,
        "images_per_s_build_1_worker": one_worker,
        f"images_per_s_build_{args.workers}_workers": all_workers,
        "images_per_s_per_core_all_workers": all_workers / args.workers,
        "stage_share": {k: v / total for k, v in stages.items()},
        "composite_seconds": compositing,
        "composite_speedup_vs_straightforward": compositing["straightforward"] / compositing["himbench"],
    }
    print(f"synthesis at {args.size} px, 3 people, {args.images} images ({os.cpu_count()} cores)")
    print(f"  in-process steady state     {one_process:7.2f} img/s")
    print(f"  build, 1 worker             {one_worker:7.2f} img/s (includes process start and shard writes)")
    per_core = all_workers / args.workers
    print(f"  build, {args.workers} workers            {all_workers:7.2f} img/s ({per_core:.2f} per core)")
    print("  stage share: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in results["stage_share"].items()))
    print(
        f"  composite+encode per image: himbench {1000 * compositing['himbench']:.1f} ms, straightforward "
        f"{1000 * compositing['straightforward']:.1f} ms -> {results['composite_speedup_vs_straightforward']:.1f}x"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
