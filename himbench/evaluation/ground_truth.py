"""Ground truth for evaluation: a built shard folder or a folder in the HIM-2K layout.

- Shards (``GT/data/<split>-*.parquet``, read through :class:`himbench.shards.ShardFolder`): one image per row,
  stem = the row's ``id``. Only the ``id``, ``alphas``, ``height`` and ``width`` columns are read here and the PNG
  bytes are decoded in the worker processes (``ShardFolder.samples`` would decode every composite image in the
  parent process, which evaluation never needs).
- HIM-2K folder: ``GT/alphas/<split>/<stem>/<k>.png`` (one matte per instance) and optionally
  ``GT/images/<split>/<stem>.jpg|png`` (used for the size when an image has no matte, and for ``--plot``).

Every item is a small picklable object whose :meth:`load` returns the (G, H, W) float32 mattes and the problems
found; a bad ground-truth file never stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import (
    HIM2K_IMAGE_SUFFIXES,
    MATTE_SUFFIXES,
    InputError,
    Problem,
    decode_alpha,
    decode_image,
    max_pixels,
    read_alpha,
    read_image,
    read_image_size,
)
from himbench.layouts import detect_layout, get_layout, list_samples
from himbench.shards import ShardFolder, check_sample_id

__all__ = [
    "FolderItem",
    "GroundTruth",
    "Problem",
    "ShardItem",
    "open_ground_truth",
]



@dataclass(frozen=True)
class ShardItem:
    stem: str
    source: str  # shard path, for messages
    alpha_pngs: tuple[bytes, ...] = ()
    height: int = 0
    width: int = 0
    problem: str | None = None  # why the row could not be used (a null or mistyped cell): scored as bad ground truth
    # hidden fraction per person (the shard's ``occlusion`` column); None for shards made before it existed
    occlusion: tuple[float, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def load(self, limit: int | None = None) -> tuple[np.ndarray | None, list[Problem]]:
        """(G, H, W) mattes and problems; ``limit``: the pixel limit (default :func:`himbench.io.max_pixels`)."""
        limit = max_pixels() if limit is None else limit
        if self.problem is not None:
            return None, [Problem(self.source, f"ground truth: {self.problem}; image not scored")]
        if self.height < 1 or self.width < 1 or self.height * self.width > limit:
            problem = f"ground truth: row says the image is {self.width}x{self.height}"
            problem += " (empty)" if min(self.height, self.width) < 1 else f", over the limit of {limit:,} pixels"
            return None, [Problem(f"{self.source}#{self.stem}", problem)]
        mattes = []
        for k, data in enumerate(self.alpha_pngs):
            name = f"{self.source}#{self.stem}/alpha{k:02d}"
            try:
                mattes.append(decode_alpha(data, name, self.shape, limit))
            except InputError as err:
                return None, [Problem(err.source, f"ground truth: {err.problem}")]
        return _stack(mattes, self.shape), []


@dataclass(frozen=True)
class FolderItem:
    stem: str
    alpha_paths: tuple[str, ...]
    image_path: str | None

    def load(self, limit: int | None = None) -> tuple[np.ndarray | None, list[Problem]]:
        """(G, H, W) mattes and problems; ``limit``: the pixel limit (default :func:`himbench.io.max_pixels`)."""
        limit = max_pixels() if limit is None else limit
        problems: list[Problem] = []
        shape = None
        if self.image_path:
            try:
                shape = read_image_size(self.image_path)
                if shape[0] * shape[1] > limit:
                    raise InputError(self.image_path, f"image is {shape[1]}x{shape[0]}, over the limit of {limit:,} "
                                                      "pixels (raise it with $HIMBENCH_MAX_PIXELS)")
            except InputError as err:  # the mattes still tell the size
                problems.append(Problem(err.source, f"ground truth image: {err.problem}"))
                shape = None
        mattes = []
        for path in self.alpha_paths:
            try:
                matte = read_alpha(path, shape, limit)
            except InputError as err:
                return None, [*problems, Problem(err.source, f"ground truth: {err.problem}")]
            shape = matte.shape
            mattes.append(matte)
        if shape is None:
            return None, [*problems, Problem(str(Path(self.alpha_paths[0]).parent) if self.alpha_paths else self.stem,
                                             "ground truth: no matte and no image to tell the size")]
        if shape[0] * shape[1] > limit:
            return None, [*problems, Problem(self.image_path or self.stem,
                                             f"ground truth: image is {shape[1]}x{shape[0]}, over the limit of "
                                             f"{limit:,} pixels")]
        return _stack(mattes, shape), problems


def _stack(mattes: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    return np.stack(mattes) if mattes else np.zeros((0, *shape), dtype=np.float32)


@dataclass
class GroundTruth:
    """One split of a ground-truth source, listed (cheap) but not decoded."""

    kind: str  # "shards" or "him2k"
    root: Path
    split: str
    stems: list[str]
    problems: list[Problem] = field(default_factory=list)
    # {stem: SingleMatteItem} for a single-matte benchmark layout (P3M-500, AIM-500, ...), None otherwise
    single_items: dict | None = None
    # Opened on first use and kept, so that looking up one photo after another reuses its id index.
    _shards: ShardFolder | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shards(self) -> ShardFolder:
        """The shard folder (only for ``kind == "shards"``)."""
        if self._shards is None:
            self._shards = ShardFolder(self.root)
        return self._shards

    def items(self) -> Iterator[ShardItem | FolderItem]:
        """Items in ``stems`` order (duplicates skipped)."""
        if self.single_items is not None:  # a single-matte benchmark (himbench.layouts)
            yield from (self.single_items[stem] for stem in self.stems)
            return
        if self.kind == "shards":
            yield from _shard_items(self.shards, self.split, set(self.stems))
        else:
            for stem in self.stems:
                yield _folder_item(self.root, self.split, stem)

    def image(self, stem: str) -> np.ndarray | None:
        """The RGB photo of one stem (for plots), or None when it is not available."""
        try:
            if self.single_items is not None:
                item = self.single_items.get(stem)
                return read_image(item.image_path) if item and item.image_path else None
            if self.kind == "shards":
                return _shard_image(self.shards, self.split, stem)
            path = _find_image(self.root, self.split, stem)
            return read_image(path) if path else None
        except Exception:  # plots only: a bad or unreadable photo just leaves its panel out
            return None

    def item(self, stem: str) -> ShardItem | FolderItem | None:
        if self.single_items is not None:
            return self.single_items.get(stem)
        if self.kind == "shards":
            return next(_shard_items(self.shards, self.split, {stem}), None)
        return _folder_item(self.root, self.split, stem)


# ---------------------------------------------------------------------------------------------------------- shards
_SHARD_COLUMNS = ("id", "alphas", "height", "width")


def _shard_ids(folder: ShardFolder, split: str) -> tuple[list[str], list[Problem]]:
    stems, seen, problems = [], set(), []
    for path in folder.shards(split):
        try:
            ids = folder.ids(path)
        except InputError as err:
            problems.append(Problem(err.source, f"ground truth: {err.problem}"))
            continue
        for index, stem in enumerate(ids):
            try:
                if stem is None:
                    raise InputError(path, "id is null")
                check_sample_id(stem, path)
            except InputError as err:
                problems.append(Problem(str(path), f"ground truth: row {index}: {err.problem}; image not scored"))
                continue
            if stem in seen:
                problems.append(Problem(f"{path}#{stem}", "ground truth: duplicate sample id; the first is used"))
                continue
            seen.add(stem)
            stems.append(stem)
    return stems, problems


def _shard_items(folder: ShardFolder, split: str, wanted: set[str]) -> Iterator[ShardItem]:
    """One item per wanted id, the first row of each; a row whose cells do not fit the format (null alphas, a
    height that is not a positive integer, ...) becomes an item that loads as a problem, and the rows after it are
    still read, so that one bad row costs one image."""
    done: set[str] = set()
    for path in folder.shards(split):
        occlusion = _occlusion_column(folder, path)
        try:
            for row, error in folder.checked_rows(path, _SHARD_COLUMNS):
                stem = row.get("id")
                if not isinstance(stem, str) or stem not in wanted or stem in done:
                    continue  # a bad id was reported by _shard_ids
                done.add(stem)
                if error is not None:
                    yield ShardItem(stem=stem, source=str(path), problem=error.problem)
                    continue
                yield ShardItem(
                    stem=stem,
                    source=str(path),
                    alpha_pngs=tuple(row["alphas"]),
                    height=int(row["height"]),
                    width=int(row["width"]),
                    occlusion=_occlusion(occlusion.get(stem), len(row["alphas"])),
                )
        except InputError as err:  # the file itself failed part-way (a corrupt page, a missing column)
            yield from _unread_items(folder, path, wanted, done, err.problem)


def _occlusion_column(folder: ShardFolder, path: Path) -> dict[str, object]:
    """{id: occlusion cell} of one shard (first row of an id), read apart from the scored columns: the column is
    optional (older shards lack it, pyarrow then leaves it out), and only the occlusion breakdown needs it, so a bad
    or missing cell must not cost the image its score."""
    try:
        columns = folder.read_columns(path, ["id", "occlusion"])
    except InputError:
        return {}
    cells: dict[str, object] = {}
    for stem, cell in zip(columns.get("id", []), columns.get("occlusion", []), strict=False):
        if isinstance(stem, str):
            cells.setdefault(stem, cell)
    return cells


def _occlusion(cell: object, people: int) -> tuple[float, ...] | None:
    """The row's per-person hidden fractions, or None when absent or not one finite number in [0, 1] per person
    (the occlusion breakdown then says the image has none; the image is still scored)."""
    if not isinstance(cell, list | tuple) or len(cell) != people:
        return None
    values = []
    for value in cell:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            return None  # NaN fails the range check too
        values.append(float(value))
    return tuple(values)


def _unread_items(
    folder: ShardFolder, path: Path, wanted: set[str], done: set[str], reason: str
) -> Iterator[ShardItem]:
    """Items that report ``reason`` for the wanted ids of a shard not read yet (each is scored as bad ground truth,
    so the report still has one record per image)."""
    try:
        ids = folder.ids(path)
    except InputError:  # the id column itself is unreadable: _shard_ids reported the shard and listed none of it
        return
    for stem in ids:
        if isinstance(stem, str) and stem in wanted and stem not in done:
            done.add(stem)
            yield ShardItem(stem=stem, source=str(path), problem=reason)


def _shard_image(folder: ShardFolder, split: str, stem: str) -> np.ndarray:
    location = folder.locate(stem, split)
    return decode_image(folder.read_row(location, ("image",))["image"], f"{location.path}#{stem}/image")


# --------------------------------------------------------------------------------------------------------- HIM-2K
def _find_image(root: Path, split: str, stem: str) -> Path | None:
    """The photo of ``stem``: the first of ``<stem>.jpg``, ``.jpeg``, ``.png`` (lower then upper case) that exists.
    When a stem has several photos, :func:`_folder_stems` reports them all and names the one used here."""
    for suffix in HIM2K_IMAGE_SUFFIXES:
        for candidate in (suffix, suffix.upper()):
            path = root / "images" / split / f"{stem}{candidate}"
            if path.is_file():
                return path
    return None


def _folder_item(root: Path, split: str, stem: str) -> FolderItem:
    folder = root / "alphas" / split / stem
    paths = []
    if folder.is_dir():
        paths = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MATTE_SUFFIXES)
    image = _find_image(root, split, stem)
    return FolderItem(stem=stem, alpha_paths=tuple(paths), image_path=str(image) if image else None)


def _folder_stems(root: Path, split: str) -> tuple[list[str], list[Problem]]:
    alpha_split = root / "alphas" / split
    stems = sorted(entry.name for entry in os.scandir(alpha_split) if entry.is_dir())
    problems = []
    image_split = root / "images" / split
    if image_split.is_dir():
        photos: dict[str, list[Path]] = {}
        for entry in sorted(os.scandir(image_split), key=lambda e: e.name):
            path = Path(entry.path)
            if path.suffix.lower() in HIM2K_IMAGE_SUFFIXES:
                photos.setdefault(path.stem, []).append(path)
        known = set(stems)
        for stem, paths in photos.items():
            if len(paths) > 1:
                # Only the size (when the image has no matte) and the plots come from the photo, so the image is
                # still scored; the problem says which photo that was, instead of passing over the others.
                used = _find_image(root, split, stem)
                names = " and ".join(p.name for p in paths)
                what = f"{used.name} is used for its size and plots" if used else "none is used"
                problems.append(Problem(str(paths[0]), f"ground truth: {len(paths)} images share the stem {stem!r} "
                                                       f"({names}); {what}"))
            if stem not in known:
                problems.append(Problem(str(paths[0]), "ground truth: image without an alphas/ folder; scored as 0 "
                                                       "people"))
                stems.append(stem)
                known.add(stem)
        stems.sort()
    return stems, problems


# ---------------------------------------------------------------------------------------------------------- open
def available_splits(gt: str | os.PathLike, layout: str | None = None) -> tuple[str, list[str]]:
    """(kind, splits) of a ground-truth folder, its kind (layout name) decided by :mod:`himbench.layouts`
    (``layout`` forces one); raises InputError listing the layouts when it fits none."""
    found = detect_layout(gt, "ground_truth", layout)
    return found.name, found.splits(gt)


def open_ground_truth(gt: str | os.PathLike, split: str, layout: str | None = None) -> GroundTruth:
    """List one split of a ground-truth folder (any layout of :mod:`himbench.layouts`; ``layout`` forces one)."""
    root = Path(gt)
    kind, splits = available_splits(root, layout)
    if split not in splits:
        raise InputError(root, f"no split {split!r} in the ground truth (found: {', '.join(splits) or 'none'})")
    found = get_layout(kind)
    if found.single:
        items, problems = list_samples(found, root)
        return GroundTruth(kind=kind, root=root, split=split, stems=[i.stem for i in items], problems=problems,
                           single_items={i.stem: i for i in items})
    if kind == "shards":
        truth = GroundTruth(kind=kind, root=root, split=split, stems=[])
        truth.stems, truth.problems = _shard_ids(truth.shards, split)
        return truth
    stems, problems = _folder_stems(root, split)
    return GroundTruth(kind=kind, root=root, split=split, stems=stems, problems=problems)
