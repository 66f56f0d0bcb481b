"""Cost measurements: parameter count (from the method), latency per image, latency versus instance count on
synthetic probe images, and peak memory.

Latency is wall-clock seconds of ``predict`` only (data decoding and scoring excluded), with CUDA synchronised
before reading the clock. Peak memory is ``torch.cuda.max_memory_allocated`` on GPU (weights + activations), and on
CPU the peak resident set size during the run minus the resident size before the method was built (Linux
``VmHWM``, reset through ``/proc/self/clear_refs``; elsewhere ``ru_maxrss`` growth, a lower bound).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["MemoryProbe", "latency_vs_instances", "synthetic_probe", "timed"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str = "cpu") -> tuple[object, float]:
    """Run ``fn`` and return (its result, seconds), synchronising CUDA around it."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def synthetic_probe(num_instances: int, size: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` image with ``num_instances`` person-like blobs (head + body ellipses) on a smooth random
    background, and their boolean masks (N,H,W). People stand side by side on a grid, scaled to fit."""
    rng = np.random.default_rng([seed, num_instances])
    low = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    cols = int(np.ceil(np.sqrt(num_instances * 2)))
    rows = int(np.ceil(num_instances / cols))
    cell_w, cell_h = size / cols, size / rows
    masks = np.zeros((num_instances, size, size), dtype=bool)
    for k in range(num_instances):
        cx, cy = (k % cols + 0.5) * cell_w, (k // cols + 0.5) * cell_h
        body = np.zeros((size, size), dtype=np.uint8)
        bw, bh = int(cell_w * 0.3), int(cell_h * 0.32)
        cv2.ellipse(body, (int(cx), int(cy + cell_h * 0.1)), (bw, bh), 0, 0, 360, 1, -1)
        cv2.circle(body, (int(cx), int(cy - cell_h * 0.3)), max(2, int(min(cell_w, cell_h) * 0.12)), 1, -1)
        masks[k] = body > 0
        image[masks[k]] = rng.uniform(0, 255, 3)
    noise = rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image + noise, 0, 255).astype(np.uint8), masks


def latency_vs_instances(
    predict: Callable[[np.ndarray, np.ndarray], object],
    counts: Sequence[int] = tuple(range(1, 11)),
    size: int = 640,
    repeats: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    seed: int = 0,
) -> dict[int, float]:
    """Seconds of ``predict(image, masks)`` on :func:`synthetic_probe` images with each instance count: the minimum
    of ``repeats`` timed runs (the least disturbed one: on a shared machine the median still carries other
    processes' load, while the minimum is the method's own cost)."""
    result: dict[int, float] = {}
    for n in counts:
        image, masks = synthetic_probe(n, size, seed)
        for _ in range(warmup):
            predict(image, masks)
        times = [timed(lambda image=image, masks=masks: predict(image, masks), device)[1] for _ in range(repeats)]
        result[int(n)] = min(times)
    return result


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class MemoryProbe:
    """Peak memory of everything between :meth:`start` and :meth:`peak_mb` (see module docstring)."""

    device: str = "cpu"
    kind: str = ""
    _base_kb: int = 0

    def start(self) -> MemoryProbe:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.kind = "cuda_max_allocated"
            return self
        rss = _status_kb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as handle:  # resets VmHWM to the current RSS
                handle.write("5")
            self.kind, self._base_kb = "rss_peak_delta", int(rss or 0)
        except OSError:
            self.kind, self._base_kb = "maxrss_growth", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def peak_mb(self) -> float:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        if self.kind == "rss_peak_delta":
            return max(0, (_status_kb("VmHWM") or 0) - self._base_kb) / 1024
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._base_kb) / 1024
