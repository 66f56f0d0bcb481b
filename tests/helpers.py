"""Makers of tiny test inputs, shared by the test modules (``from helpers import ...``; tests/ is on sys.path).

- :func:`toy_sample`, :func:`toy_row`, :func:`make_toy_dataset`: soft-ellipse "people" written as Parquet shards
  directly (no synthesis engine, no OpenCV compositing): the cheapest shard folder, for data, training and predict
  tests.
- :func:`tiny_build`: a real ``build_dataset`` run of a tiny :class:`BuildConfig` (the synthesis engine, with its
  ``build_config.json`` and dataset card), for tests of the build folder itself. The session fixtures in
  ``conftest.py`` build the ones several modules share once per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from himbench.io import encode_alpha_png
from himbench.shards import boxes_from_alphas, shard_name, write_shard

__all__ = ["make_toy_dataset", "tiny_build", "toy_row", "toy_sample"]


def toy_sample(rng: np.random.Generator, height: int, width: int, num_people: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy background with ``num_people`` soft-edged coloured ellipses composited back to front (SPEC s.1)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = rng.uniform(0, 90, size=(height, width, 3)).astype(np.float32)
    raw = []
    for _ in range(num_people):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.7) * height
        rx, ry = rng.uniform(0.08, 0.18) * width, rng.uniform(0.2, 0.35) * height
        dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        raw.append(np.clip((1.15 - dist) / 0.3, 0.0, 1.0))  # soft border a few pixels wide
    visible = []
    for i, alpha in enumerate(raw):  # raw[i] is in front of raw[j < i]
        vis = alpha.copy()
        for front in raw[i + 1 :]:
            vis *= 1.0 - front
        visible.append(np.round(vis * 255) / 255)
    visible_arr = np.stack(visible).astype(np.float32) if visible else np.zeros((0, height, width), np.float32)
    for vis in visible_arr:
        colour = rng.uniform(120, 255, size=3).astype(np.float32)
        image = image * (1 - vis[..., None]) + colour * vis[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), visible_arr


def toy_row(sample_id: str, image: np.ndarray, alphas: np.ndarray, seed: int = 0) -> dict:
    """One shard row (SPEC s.2 columns) of an RGB ``image`` and its visible mattes."""
    ok, png = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    n = len(alphas)
    return {
        "id": sample_id,
        "seed": seed,
        "image": png.tobytes(),
        "alphas": [encode_alpha_png(a) for a in alphas],
        "boxes": boxes_from_alphas(alphas).tolist(),
        "depth_order": list(range(n)),
        "fg_sources": ["toy"] * n,
        "bg_source": "noise",
        "width": image.shape[1],
        "height": image.shape[0],
        "num_instances": n,
    }


def make_toy_dataset(
    root: Path,
    split: str = "train",
    num_images: int = 6,
    shards: int = 2,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    max_people: int = 3,
) -> Path:
    """Write ``num_images`` toy samples over ``shards`` Parquet shards under ``root/data``; returns ``root``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_images):
        image, alphas = toy_sample(rng, size[0], size[1], int(rng.integers(1, max_people + 1)))
        rows.append(toy_row(f"{split}_{i:04d}", image, alphas, seed=i))
    per = -(-num_images // shards)
    for s in range(shards):
        write_shard(rows[s * per : (s + 1) * per], Path(root) / "data" / shard_name(split, s, shards))
    return Path(root)


def tiny_build(config: Any, out: Path, **kwargs: Any) -> Path:
    """``build_dataset(config, out)`` on one local worker without a progress bar; returns ``out``.

    ``config`` is a ``BuildConfig``; the synthesis engine (and OpenCV) is imported only when a test builds.
    """
    from himbench.synthesis import build_dataset

    build_dataset(config, out, **{"workers": 1, "progress": False, **kwargs})
    return Path(out)


def tiny_clip_build(out: Path, *, width: int, height: int, frames: int, clips: int, min_instances: int = 2,
                    max_instances: int = 2, split: str = "test") -> dict[str, np.ndarray]:
    """A ``build-dataset --video`` build of ``clips`` clips into ``out`` (one worker); its mattes by clip id."""
    from himbench.build_config import BuildConfig
    from himbench.synthesis.video import VideoConfig, build_video_dataset
    from himbench.video_shards import read_video_split

    config = BuildConfig(splits={split: clips}, width=width, height=height, images_per_shard=2,
                         min_instances=min_instances, max_instances=max_instances)
    build_video_dataset(VideoConfig(config, frames=frames), out, workers=1)
    return {clip.id: clip.alphas for clip in read_video_split(out, split)}


def write_video_prediction(pred_dir: Path, clips: dict[str, np.ndarray], split: str = "test") -> Path:
    """``pred_dir/<split>/<video>/<frame>/<k>.png`` from (K, T, H, W) mattes in [0, 1]."""
    for video, alphas in clips.items():
        for t in range(alphas.shape[1]):
            folder = pred_dir / split / video / f"{t:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(len(alphas)):
                (folder / f"{k:02d}.png").write_bytes(encode_alpha_png(alphas[k, t]))
    return pred_dir
