"""The leaderboard's qualitative grid: one real photograph through every method of the results CSV.

Each distinct method of the CSV (at most ``limit``, the best by the plot metric when there are more) is rebuilt from
its row's ``spec`` column and run once on the photo; mask-guided methods get guidance masks from, in order: a folder
given by the caller, the photo's own ground truth (a photo in the HIM-2K layout), or the instance segmenter a
two-stage method declares (its spec's ``segmenter``, else the first stage of a registered two-stage method).

The default photo (:data:`GROUP_PHOTO`) ships with the package (``himbench/assets/group``, in the HIM-2K layout with
its mattes): a group composited by ``himbench build-dataset`` from real P3M portraits (MIT) onto pymatting's beach
photo (its ``PROVENANCE.txt`` says how). Never a non-commercial photo: the rendered grid is committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from himbench.leaderboard.plots import plot_qualitative
from himbench.leaderboard.tables import RANK_METRIC, method_spec, rank_rows

__all__ = [
    "GROUP_PHOTO",
    "Panel",
    "default_photo",
    "photo_ground_truth",
    "photo_masks",
    "qualitative_panels",
    "read_mattes",
    "render_qualitative",
    "segmenter_of",
]

GROUP_PHOTO = str(Path(__file__).resolve().parents[1] / "assets" / "group" / "images" / "test" / "p3m_group.jpg")

Panel = tuple[str, "np.ndarray | None", str]  # (title, (N, H, W) alphas or None, note)


def default_photo() -> str:
    """The qualitative grid's photo when the caller names none: :data:`GROUP_PHOTO`, shipped with the package."""
    return GROUP_PHOTO


def photo_ground_truth(photo: str | os.PathLike) -> Path | None:
    """The mattes of a photo in the HIM-2K layout (``ROOT/images/<split>/<stem>.jpg`` beside
    ``ROOT/alphas/<split>/<stem>/<k>.png``), or None when it has none (a plain photo)."""
    photo = Path(photo)
    if photo.parent.parent.name != "images":
        return None
    folder = photo.parent.parent.parent / "alphas" / photo.parent.name / photo.stem
    return folder if folder.is_dir() and any(folder.glob("*.png")) else None


def read_mattes(folder: Path, shape: tuple[int, int]) -> np.ndarray:
    """The ``<k>.png`` mattes of ``folder`` (sorted by name) as (N, H, W) float32; InputError on a bad file."""
    from himbench.io import read_alpha

    return np.stack([read_alpha(f, expected_shape=shape) for f in sorted(folder.glob("*.png"))])


def segmenter_of(rows: Sequence[dict]) -> tuple[str | None, str | None]:
    """(segmenter model, its checkpoint or None) that finds the people of a plain photo for mask-guided methods:
    the ``segmenter`` a row's method declares in its spec, else the registry's
    (:func:`himbench.registry.default_segmenter`); the checkpoint is the first ``seg_checkpoint`` of the rows' specs."""
    from himbench.registry import default_segmenter

    name = checkpoint = None
    for row in rows:  # one pass, stopping as soon as both are known (a CSV may hold 100,000 rows)
        spec = method_spec(row)
        name = name or spec.get("segmenter") or None
        checkpoint = checkpoint or spec.get("seg_checkpoint") or None
        if name and checkpoint:
            break
    return name or default_segmenter(), checkpoint


def photo_masks(folder: str | None, image: np.ndarray, segmenter: str | None, segmenter_checkpoint: str | None,
                device: str) -> tuple[np.ndarray | None, str]:
    """Guidance masks for mask-guided methods on the photo, and a note saying where they came from: the ``<k>.png``
    of ``folder`` when it has any, else the masks of registered model ``segmenter`` (its shipped checkpoint unless
    ``segmenter_checkpoint``), else none."""
    if folder:
        files = sorted(Path(folder).glob("*.png"))
        if files:
            from himbench.io import read_alpha

            masks = np.stack([read_alpha(f, expected_shape=image.shape[:2]) >= 0.5 for f in files])
            return masks, f"masks from {Path(folder).name}/"
    if segmenter is None:
        return None, "no masks: pass --photo-masks (no registered method declares a segmenter)"
    from himbench.checkpoints import load_registered_model
    from himbench.registry import default_checkpoint

    checkpoint = segmenter_checkpoint or default_checkpoint(segmenter)
    if checkpoint is None:
        return None, f"no masks: pass --photo-masks or ship a {segmenter} checkpoint"
    model, _ = load_registered_model(segmenter, checkpoint, device)
    alphas, _ = model.predict_instances(image)
    return alphas >= 0.5, f"masks from {segmenter}"


def _panel_rows(rows: Sequence[dict], limit: int | None, metric: str) -> list[dict]:
    """The first row of each distinct method, in CSV order; at most ``limit`` methods, the best-ranked ones
    (:func:`~himbench.leaderboard.rank_rows`) when the CSV has more: each panel runs a model."""
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        first.setdefault(row.get("method", "?"), i)
    if limit is None or len(first) <= limit:
        return [rows[i] for i in first.values()]
    chosen: dict[str, int] = {}
    for i in rank_rows(rows, metric):
        label = rows[i].get("method", "?")
        if label not in chosen:
            chosen[label] = first[label]
            if len(chosen) == limit:
                break
    return [rows[i] for i in sorted(chosen.values())]


def qualitative_panels(rows: Sequence[dict], image: np.ndarray, photo_stem: str, photo_masks_dir: str | None,
                       device: str, on_error: Callable[[str], None], limit: int | None = None,
                       metric: str = RANK_METRIC) -> list[Panel]:
    """One (title, alphas or None, note) per distinct method of the CSV (at most ``limit``, the best by ``metric``
    when there are more), each rebuilt from its ``spec`` column. A method that fails is reported to ``on_error``
    and gets an empty panel: one failure must not hide the others."""
    from himbench.guidance import GuidanceConfig, perturb_masks
    from himbench.methods import create_method

    panels: list[Panel] = []
    guide_cache: dict[str, tuple] = {}
    for row in _panel_rows(rows, limit, metric):
        label = row.get("method", "?")
        spec = method_spec(row)
        name = spec.pop("name", label.split("@")[0])
        try:
            method = create_method(name, **spec, device=device)
            masks, note = None, ""
            if method.needs_masks:
                if "base" not in guide_cache:  # made once, for the first mask-guided method
                    segmenter, checkpoint = segmenter_of(rows)  # used when the folder holds no masks
                    guide_cache["base"] = photo_masks(photo_masks_dir, image, segmenter, checkpoint, device)
                masks, note = guide_cache["base"]
                if masks is None:
                    panels.append((label, None, note))
                    continue
                guidance = method.guidance or GuidanceConfig()
                masks = perturb_masks(masks, guidance, photo_stem)
            prediction = method.predict(image, masks)
            note = note + ("" if method.trained else (" · " if note else "") + "untrained")
            panels.append((label, prediction.alphas, note))
        except Exception as err:  # one method failing must not hide the others
            on_error(f"{label}: {type(err).__name__}: {err}")
            panels.append((label, None, f"failed: {type(err).__name__}"))
    return panels


def render_qualitative(rows: Sequence[dict], photo: str | os.PathLike, out_path: str | os.PathLike, *,
                       masks_dir: str | None = None, device: str = "cpu",
                       on_error: Callable[[str], None] = lambda message: None, limit: int | None = None,
                       metric: str = RANK_METRIC) -> tuple[Path, str]:
    """Draw the grid of ``photo`` through the CSV's methods into ``out_path`` (a PNG); returns its path and the
    Markdown section that shows it (named ``qualitative.png`` beside the page). A photo in the HIM-2K layout gets a
    ground-truth panel first and, unless ``masks_dir``, its mattes as the guidance masks. InputError on a bad
    photo or matte."""
    from himbench.io import read_image

    photo_path = Path(photo)
    truth = photo_ground_truth(photo_path)
    image = read_image(photo_path)
    gt_alphas = read_mattes(truth, image.shape[:2]) if truth is not None else None
    masks_from = masks_dir or (str(truth) if truth is not None else None)
    panels = qualitative_panels(rows, image, photo_path.stem, masks_from, device, on_error, limit=limit,
                                metric=metric)
    if gt_alphas is not None:
        panels.insert(0, ("ground truth", gt_alphas, ""))
    path = plot_qualitative(image, panels, out_path)
    markdown = f"\n### Qualitative: `{photo_path.name}`\n\n![qualitative](qualitative.png)\n\n"
    if photo_path == Path(GROUP_PHOTO):
        markdown += (
            "The photo: three real P3M portraits (MIT; their faces are blurred in P3M's own release) composited "
            "onto a beach photo from pymatting by `himbench build-dataset` (`tests/data/realdata/group/"
            "PROVENANCE.txt` has the command), so its ground truth (second panel) is exact. "
        )
    if masks_dir:
        source = f"the masks in `{masks_dir}`"
    elif truth is not None:
        source = "the ground-truth mattes binarised at 0.5 (an oracle, as in the tables)"
    else:
        segmenter = segmenter_of(rows)[0] or "no"
        source = f"the {segmenter} segmenter's masks, since a plain photo has no ground truth"
    markdown += (f"Each colour is one predicted instance. Mask-guided methods get {source}, perturbed as their "
                 "row says.\n")
    return path, markdown
