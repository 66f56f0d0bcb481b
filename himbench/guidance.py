"""Guidance masks for mask-guided methods (benchmark protocol): ground truth made imperfect, or masks read from disk.

A two-stage system is only as good as the masks its first stage hands to the second. To study that without a
segmenter, the ground-truth visible mattes are binarised (``alpha >= 0.5``) and perturbed the way segmenters fail:

- ``erode``  : every mask shrinks by ``radius`` pixels (thin limbs and hair vanish),
- ``dilate`` : every mask grows by ``radius`` pixels (background bleeds in),
- ``drop``   : one instance, chosen at random, is missed,
- ``merge``  : two instances, chosen at random, come out as one mask (their union),
- ``none``   : the binarised ground truth, unperturbed.

Perturbations compose left to right (``"erode,drop"``). Randomness depends only on ``(seed, sample id)``, so every
method of a benchmark sees exactly the same masks whatever order the images are processed in.

Masks on disk follow the M-HIM2K layout: ``<root>/<split>/<stem>/<k>.png`` (``<root>`` may also be the folder that
holds ``masks/``), one 8-bit PNG per instance, binarised at 0.5.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from himbench.io import InputError, read_alpha

__all__ = [
    "PERTURBATIONS",
    "GuidanceConfig",
    "dilate_masks",
    "drop_mask",
    "erode_masks",
    "guidance_masks",
    "masks_from_alphas",
    "merge_masks",
    "perturb_masks",
    "read_disk_masks",
    "sample_rng",
]

PERTURBATIONS = ("none", "erode", "dilate", "drop", "merge")


@dataclass(frozen=True)
class GuidanceConfig:
    """Where the masks of a mask-guided method come from.

    ``perturb`` is a comma-separated list of :data:`PERTURBATIONS` applied to binarised ground truth, unless
    ``masks_dir`` is set, in which case masks are read from disk (M-HIM2K layout) and ``perturb`` still applies.
    """

    perturb: str = "none"
    radius: int = 4  # pixels, for erode / dilate
    seed: int = 0
    masks_dir: str | None = None

    def __post_init__(self) -> None:
        for step in self.steps:
            if step not in PERTURBATIONS:
                raise ValueError(f"unknown guidance perturbation {step!r}; choose from {', '.join(PERTURBATIONS)}")
        if self.radius < 0:
            raise ValueError(f"guidance radius must be >= 0, got {self.radius}")

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.perturb.split(",") if s.strip() and s.strip() != "none")

    @property
    def label(self) -> str:
        """Short text for tables: ``gt``, ``gt+erode``, ``disk`` ..."""
        source = "disk" if self.masks_dir else "gt"
        return "+".join([source, *self.steps])


def masks_from_alphas(alphas: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binarise mattes (N,H,W) into boolean masks, as a segmenter's output would be."""
    return np.asarray(alphas) >= threshold


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the sample id (crc32 is stable across runs, unlike hash())."""
    return np.random.default_rng([int(seed), zlib.crc32(sample_id.encode("utf-8"))])


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def erode_masks(masks: np.ndarray, radius: int) -> np.ndarray:
    """Shrink every mask by ``radius`` pixels (elliptical structuring element)."""
    if radius == 0 or len(masks) == 0:
        return masks.copy()
    kernel = _disk(radius)
    return np.stack([cv2.erode(m.astype(np.uint8), kernel, borderValue=0) > 0 for m in masks])


def dilate_masks(masks: np.ndarray, radius: int) -> np.ndarray:
    """Grow every mask by ``radius`` pixels (elliptical structuring element)."""
    if radius == 0 or len(masks) == 0:
        return masks.copy()
    kernel = _disk(radius)
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel, borderValue=0) > 0 for m in masks])


def drop_mask(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Remove one mask chosen at random (a missed person). Nothing to drop from an empty set."""
    if len(masks) == 0:
        return masks.copy()
    gone = int(rng.integers(len(masks)))
    return np.delete(masks, gone, axis=0)


def merge_masks(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace two masks chosen at random by their union (two people segmented as one). Needs two masks."""
    if len(masks) < 2:
        return masks.copy()
    i, j = sorted(rng.choice(len(masks), size=2, replace=False).tolist())
    merged = masks[i] | masks[j]
    keep = [m for k, m in enumerate(masks) if k not in (i, j)]
    return np.stack([merged, *keep])


def perturb_masks(masks: np.ndarray, config: GuidanceConfig, sample_id: str) -> np.ndarray:
    """Apply the perturbations of ``config`` in order; deterministic in ``(config.seed, sample_id)``."""
    rng = sample_rng(config.seed, sample_id)
    out = np.asarray(masks, dtype=bool)
    for step in config.steps:
        if step == "erode":
            out = erode_masks(out, config.radius)
        elif step == "dilate":
            out = dilate_masks(out, config.radius)
        elif step == "drop":
            out = drop_mask(out, rng)
        elif step == "merge":
            out = merge_masks(out, rng)
    return out


def _mask_folder(root: Path, split: str, stem: str) -> Path:
    from himbench.io import resolve_inside

    # split and stem come from shards and folders other people made: names, never paths
    for candidate in (resolve_inside(root, split, stem), resolve_inside(root, "masks", split, stem)):
        if candidate.is_dir():
            return candidate
    raise InputError(root / split / stem, "no guidance mask folder for this image (expected <root>/<split>/<stem>/)")


def read_disk_masks(root: str | Path, split: str, stem: str, shape: tuple[int, int]) -> np.ndarray:
    """Read the M-HIM2K-style masks of one image as boolean (N,H,W); raises InputError naming the bad file."""
    folder = _mask_folder(Path(root), split, stem)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        return np.zeros((0, *shape), dtype=bool)
    return np.stack([read_alpha(path, expected_shape=shape) >= 0.5 for path in files])


def guidance_masks(
    config: GuidanceConfig,
    sample_id: str,
    gt_alphas: np.ndarray | None,
    split: str = "test",
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """The guidance masks for one image: from disk if ``config.masks_dir`` is set, else binarised ground truth;
    then perturbed. Disk masks need the image shape: ``shape`` (H, W), else that of ``gt_alphas`` (N,H,W)."""
    if config.masks_dir:
        if shape is None and gt_alphas is None:
            raise ValueError("reading masks from disk needs the image shape (pass shape or gt_alphas)")
        size = tuple(shape) if shape is not None else tuple(gt_alphas.shape[1:])
        base = read_disk_masks(config.masks_dir, split, sample_id, size)
    else:
        if gt_alphas is None:
            raise ValueError("ground-truth guidance needs gt_alphas")
        base = masks_from_alphas(gt_alphas)
    return perturb_masks(base, config, sample_id)
