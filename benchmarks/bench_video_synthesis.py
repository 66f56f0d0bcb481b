"""Video synthesis throughput: frames/s per core of ``synthesize_clip`` against a straightforward implementation.

Both make the same kind of clip (embedded people, 2-5 per clip, embedded backgrounds, T frames, PNG level 1 for
the composites and the mattes) in this one process, with OpenCV held to one thread, so CPU time is one core's time:

- **engine**: :func:`himbench.synthesis.video.synthesize_clip` (placement with the clip's occlusion rules and its
  retries, crop-based warping and compositing, 8-bit mattes through cumulative coverage, encoding).
- **straightforward**: the same cut-outs, the same placement at the middle frame (the image engine's, one try, so
  the rules are not enforced: this favours it) and the same trajectories; then per frame and per person a PIL
  pipeline: resize the RGBA cut-out to its drawn size, rotate and shear it about its feet with one affine
  ``Image.transform``, paste it on a full transparent canvas; visible mattes by the product formula on full float64
  canvases, each rounded to 8 bits; the composite from those 8-bit mattes in float64; PNG encoding by PIL.

    python benchmarks/bench_video_synthesis.py                 # writes benchmarks/results/video_synthesis.json
    python benchmarks/bench_video_synthesis.py --size 320 --clips 2 --frames 8
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from himbench.build_config import OCCLUSION_PRESETS, BuildConfig
from himbench.synthesis.sampler import drawable_cutout, pick_foregrounds, pick_source, place_people, procedural_height
from himbench.synthesis.sources import load_background, load_foreground, scan_backgrounds, scan_foregrounds
from himbench.synthesis.video import VideoConfig, _trajectory, _video_cap, clip_rng, synthesize_clip

REPO = Path(__file__).resolve().parents[1]


def _png(array: np.ndarray) -> bytes:
    sink = io.BytesIO()
    Image.fromarray(array).save(sink, format="PNG", compress_level=1)
    return sink.getvalue()


def straightforward_clip(video: VideoConfig, split: str, index: int, fg_refs, bg_refs) -> dict:
    """The textbook version of one clip (see the module docstring); returns the encoded frames and mattes."""
    build = video.build
    rng = clip_rng(video, split, index)
    cap, embedded_height = _video_cap(build, video), procedural_height(build)
    picked = pick_foregrounds(
        build, rng, fg_refs, lambda r: drawable_cutout(load_foreground(r, cap, embedded_height), r, build), {}, []
    )
    def load_bg(ref):
        return load_background(ref, build.height, build.width, rng)

    _, background = pick_source(bg_refs, rng, load_bg, {}, [], "bg")
    cutouts = [cut for _, cut in picked]
    placements = place_people(build, cutouts, rng)
    trajectories = [_trajectory(video, rng, 1.0) for _ in placements]
    h, w = build.height, build.width
    frames, mattes = [], []
    for t in range(video.frames):
        alphas, colours = np.zeros((len(placements), h, w)), np.zeros((len(placements), h, w, 3))
        for k, (placement, trajectory) in enumerate(zip(placements, trajectories, strict=True)):
            cut = cutouts[placement.source]
            grow, dx, bob, rotation, sway = trajectory.pose(t)
            base = placement.geometry
            height = max(1, round(base.shape[0] * grow))
            width = max(1, round(cut.shape[1] * height / cut.shape[0]))
            rgba = np.dstack([cut.fg, np.rint(cut.alpha * 255).astype(np.uint8)])
            person = Image.fromarray(rgba, "RGBA").resize((width, height), Image.BILINEAR)
            if placement.flip:
                person = person.transpose(Image.FLIP_LEFT_RIGHT)
            left = round((base.x0 + base.x1) / 2 + dx - width / 2)
            top = round(base.y1 - bob * height - height)
            # inverse affine (canvas -> cut-out): undo the rotation about the feet, then a whole-body shear (sway)
            fx, fy = left + width / 2, top + height
            cos, sin = math.cos(rotation), math.sin(rotation)
            shear = sway
            a, b = cos, sin
            d, e = -sin, cos
            coeffs = (a - shear * d, b - shear * e, 0, d, e, 0)
            c = width / 2 - (coeffs[0] * fx + coeffs[1] * fy)
            f = height - (coeffs[3] * fx + coeffs[4] * fy)
            layer = person.transform((w, h), Image.AFFINE, (coeffs[0], coeffs[1], c, coeffs[3], coeffs[4], f),
                                     resample=Image.BILINEAR)
            array = np.asarray(layer, np.float64)
            alphas[k], colours[k] = array[:, :, 3] / 255, array[:, :, :3]
        visible = np.zeros_like(alphas)
        for k in range(len(alphas)):
            visible[k] = alphas[k] * np.prod(1 - alphas[k + 1 :], axis=0)
        vis8 = np.rint(visible * 255)
        vis8 = np.minimum(vis8, 255 - np.concatenate([np.zeros((1, h, w)), np.cumsum(vis8, 0)[:-1]]).clip(0, 255))
        weights = vis8[..., None] / 255
        image = (colours * weights).sum(0) + background * (1 - weights.sum(0))
        frames.append(_png(np.rint(image).clip(0, 255).astype(np.uint8)))
        mattes.append([_png(v.astype(np.uint8)) for v in vis8])
    return {"frames": frames, "alphas": mattes}


def _timed(function, clips: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(clips):
        function(index)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "video_synthesis.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    fg_refs, _ = scan_foregrounds(("embedded",))
    bg_refs = scan_backgrounds(("embedded",))
    results = []
    for level in ("none", "hard"):
        build = BuildConfig(splits={"test": args.clips}, width=args.size, height=args.size,
                            occlusion_range=OCCLUSION_PRESETS[level])
        video = VideoConfig(build, frames=args.frames)
        # warm-up: draw the procedural people once at this size (cached per process), as a build's first clip does
        synthesize_clip(video, "warm", 0, fg_refs, bg_refs)
        straightforward_clip(video, "warm", 0, fg_refs, bg_refs)
        engine = _timed(lambda i, v=video: synthesize_clip(v, "test", i, fg_refs, bg_refs), args.clips)
        simple = _timed(lambda i, v=video: straightforward_clip(v, "test", i, fg_refs, bg_refs), args.clips)
        frames = args.clips * args.frames
        row = {
            "occlusion": level,
            "frames": frames,
            "engine": {"wall_s": round(engine[0], 3), "cpu_s": round(engine[1], 3),
                       "frames_per_s_per_core": round(frames / engine[1], 2)},
            "straightforward": {"wall_s": round(simple[0], 3), "cpu_s": round(simple[1], 3),
                                "frames_per_s_per_core": round(frames / simple[1], 2)},
            "speedup_cpu": round(simple[1] / engine[1], 2),
        }
        print(json.dumps(row))
        results.append(row)
    report = {
        "what": "video synthesis, frames/s per core (CPU time, OpenCV one thread), embedded people 2-5 per clip",
        "size": args.size, "frames_per_clip": args.frames, "clips": args.clips,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "note": "shared development machine; CPU time is the fair measure"},
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
